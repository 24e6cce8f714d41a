import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { Redis } from 'ioredis';
import pg from 'pg';

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** A database of the bench's own on the PostgreSQL of `adminUrl`, dropped at the end. */
export async function createDatabase(adminUrl: string): Promise<{ url: string; transactions(): Promise<number>; backendPids(): Promise<number[]>; drop(): Promise<void> }> {
  const name = `gatehouse_bench_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5000 });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  let stats: pg.Client | undefined;
  const statsClient = async () => {
    if (!stats) {
      stats = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5000 });
      await stats.connect();
    }
    return stats;
  };
  return {
    url: url.toString(),
    /** Transactions committed or rolled back in the database so far (each autocommit query is one), from pg_stat_database. */
    async transactions() {
      const result = await (await statsClient()).query<{ n: string }>('select xact_commit + xact_rollback as n from pg_stat_database where datname = $1', [name]);
      return Number(result.rows[0]?.n ?? 0);
    },
    /** The server processes (backends) of the connections open to this database now. */
    async backendPids() {
      const result = await (await statsClient()).query<{ pid: number }>('select pid from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [name]);
      return result.rows.map((row) => row.pid);
    },
    async drop() {
      await stats?.end().catch(() => undefined);
      stats = undefined;
      const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5000 });
      await client.connect();
      try {
        await client.query(`drop database if exists ${name} with (force)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** The pid of the Redis server at `url` when it runs on this machine (its INFO names a process of ours), else undefined. */
export async function localRedisPid(url: string): Promise<number | undefined> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 3000 });
  try {
    await redis.connect();
    const pid = Number(/^process_id:(\d+)/m.exec(await redis.info('server'))?.[1]);
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim().startsWith('redis') ? pid : undefined;
  } catch {
    return undefined;
  } finally {
    redis.disconnect();
  }
}

const LOCK_KEY = 'gatehouse-bench:owner';

/**
 * A Redis logical database of the bench's own (an empty one among 15…8, claimed with a marker key)
 * so that the sessions and codes it leaves behind can be flushed at the end without touching
 * anyone else's keys. When `fixedUrl` is given it is used as is and nothing is flushed.
 */
export async function claimRedis(baseUrl: string, fixedUrl: string | undefined): Promise<{ url: string; release(): Promise<void> }> {
  if (fixedUrl) {
    const probe = new Redis(fixedUrl, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 3000 });
    await probe.connect();
    await probe.ping();
    probe.disconnect();
    return { url: fixedUrl, release: async () => undefined };
  }
  const token = randomBytes(8).toString('hex');
  for (let db = 15; db >= 8; db -= 1) {
    const url = new URL(baseUrl);
    url.pathname = `/${db}`;
    const redis = new Redis(url.toString(), { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 3000 });
    await redis.connect();
    try {
      if ((await redis.dbsize()) !== 0) continue;
      if ((await redis.set(LOCK_KEY, token, 'EX', 3600, 'NX')) !== 'OK') continue;
      // Another bench may have claimed it between dbsize and set; the marker decides.
      if ((await redis.get(LOCK_KEY)) !== token) continue;
      return {
        url: url.toString(),
        async release() {
          const again = new Redis(url.toString(), { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 3000 });
          await again.connect();
          try {
            if ((await again.get(LOCK_KEY)) === token) await again.flushdb();
          } finally {
            again.disconnect();
          }
        },
      };
    } finally {
      redis.disconnect();
    }
  }
  throw new Error(`no empty Redis database among 8–15 at ${baseUrl}; set BENCH_REDIS_URL`);
}
