import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PGlite } from '@electric-sql/pglite';
import { Kysely, PGliteDialect, PostgresDialect, sql, type KyselyConfig, type LogEvent } from 'kysely';
import pg from 'pg';
import type { Config } from '../config/load-config.js';
import type { Logger } from '../observability/logger.js';
import { readLockHolder, tryAcquireLock } from './embedded-lock.js';
import type { Database } from './tables.js';

/** The registry's connection, whichever engine is behind it. */
export interface RegistryDatabase {
  readonly db: Kysely<Database>;
  readonly kind: 'postgres' | 'pglite' | 'pglite-socket';
  /** Resolves when the database answers a trivial query within the timeout, else rejects. */
  ping(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export class DatabaseBusyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatabaseBusyError';
  }
}

const PG_SOCKET_PORT = 5432;
const WAIT_FOR_EMBEDDED_MS = 15_000;

/** Where the embedded database keeps its files, its lock and the socket it serves the CLI on. */
export function embeddedPaths(dataDir: string) {
  return {
    pgliteDir: path.join(dataDir, 'pglite'),
    lock: path.join(dataDir, 'pglite.lock'),
    socketDir: dataDir,
    socket: path.join(dataDir, `.s.PGSQL.${PG_SOCKET_PORT}`),
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function pingWith(db: Kysely<Database>) {
  return (timeoutMs = 2000) => withTimeout(sql`select 1`.execute(db).then(() => undefined), timeoutMs, 'database');
}

function createPostgresPool(options: pg.PoolConfig, logger: Logger): pg.Pool {
  const pool = new pg.Pool({ connectionTimeoutMillis: 2000, idleTimeoutMillis: 30_000, ...options });
  // An idle client losing its server must not take the process down: the pool reconnects on next use.
  pool.on('error', (error) => logger.warn({ err: { message: error.message } }, 'database connection lost'));
  // A checked-out client whose server goes away between queries emits 'error' with no pool
  // listener attached: without this, that is an uncaught exception.
  pool.on('connect', (client) => {
    client.on('error', (error) => logger.warn({ err: { message: error.message } }, 'database connection lost'));
  });
  return pool;
}

/** Called after every query with its duration and whether it failed (the Prometheus dependency histogram). */
export type QueryObserver = (seconds: number, failed: boolean) => void;

function queryLog(observe: QueryObserver | undefined): KyselyConfig['log'] {
  if (!observe) return undefined;
  return (event: LogEvent) => observe(event.queryDurationMillis / 1000, event.level === 'error');
}

function openPostgres(url: string, logger: Logger, max: number, observe?: QueryObserver): RegistryDatabase {
  const pool = createPostgresPool({ connectionString: url, max }, logger);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), log: queryLog(observe) });
  return { db, kind: 'postgres', ping: pingWith(db), close: () => db.destroy() };
}

/** The embedded database as a PostgreSQL client sees it, through the server's socket. */
function overSocket(
  paths: ReturnType<typeof embeddedPaths>,
  max: number,
  logger: Logger,
  kind: RegistryDatabase['kind'],
  afterClose: () => Promise<void> = () => Promise.resolve(),
  observe?: QueryObserver,
): RegistryDatabase {
  const pool = createPostgresPool({ host: paths.socketDir, port: PG_SOCKET_PORT, user: 'postgres', database: 'postgres', max }, logger);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), log: queryLog(observe) });
  return {
    db,
    kind,
    ping: pingWith(db),
    close: async () => {
      await db.destroy().catch(() => undefined);
      await afterClose();
    },
  };
}

function socketAnswers(socketPath: string): Promise<boolean> {
  if (!existsSync(socketPath)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const socket = net.connect(socketPath);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function openPglite(dataDir: string, release: () => void): Promise<{ pglite: PGlite; close: () => Promise<void> }> {
  const { pgliteDir } = embeddedPaths(dataDir);
  await mkdir(pgliteDir, { recursive: true });
  try {
    // Loaded only for the embedded database: a server on PostgreSQL never loads PGlite.
    const { PGlite } = await import('@electric-sql/pglite');
    const pglite = await PGlite.create(pgliteDir);
    return {
      pglite,
      close: async () => {
        try {
          // Kysely's PGlite driver may have closed it already.
          if (!pglite.closed) await pglite.close();
        } finally {
          release();
        }
      },
    };
  } catch (error) {
    release();
    throw error;
  }
}

/**
 * Opens the registry for the server. With DATABASE_URL it is PostgreSQL; without, PGlite in
 * DATA_DIR, which the server also serves on a local socket so that the CLI can use it meanwhile.
 *
 * @example
 * const registry = await openServerDatabase(config, logger);
 * await migrateToLatest(registry.db);
 */
export async function openServerDatabase(config: Config, logger: Logger, observe?: QueryObserver): Promise<RegistryDatabase> {
  if (config.databaseUrl) return openPostgres(config.databaseUrl, logger, 10, observe);

  const paths = embeddedPaths(config.dataDir);
  const deadline = Date.now() + WAIT_FOR_EMBEDDED_MS;
  let release = tryAcquireLock(paths.lock);
  while (!release) {
    const holder = readLockHolder(paths.lock);
    if (await socketAnswers(paths.socket)) {
      throw new DatabaseBusyError(
        `another Gatehouse server (pid ${holder ?? 'unknown'}) is using the embedded database in ${config.dataDir}`,
      );
    }
    if (Date.now() > deadline) {
      throw new DatabaseBusyError(`the embedded database in ${config.dataDir} is held by pid ${holder ?? 'unknown'}`);
    }
    await sleep(100);
    release = tryAcquireLock(paths.lock);
  }

  const started = Date.now();
  const { pglite, close } = await openPglite(config.dataDir, release);
  logger.warn({ dataDir: paths.pgliteDir, ms: Date.now() - started }, 'using the embedded PGlite database (development only: set DATABASE_URL for PostgreSQL)');
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  const socketServer = new PGLiteSocketServer({ db: pglite, path: paths.socket, maxConnections: 16 });
  await socketServer.start();
  // The server too goes through the socket: its queue keeps each connection's transaction whole,
  // so the server's queries never run inside a transaction the CLI has open, and the reverse.
  return overSocket(
    paths,
    4,
    logger,
    'pglite',
    async () => {
      await socketServer.stop().catch(() => undefined);
      await close();
    },
    observe,
  );
}

/**
 * Opens the registry for a CLI command. Without DATABASE_URL it reaches a running server's
 * embedded database through its socket, or opens the files itself when no server runs.
 */
export async function openCliDatabase(config: Config, logger: Logger): Promise<RegistryDatabase> {
  if (config.databaseUrl) return openPostgres(config.databaseUrl, logger, 2);

  const paths = embeddedPaths(config.dataDir);
  const deadline = Date.now() + WAIT_FOR_EMBEDDED_MS;
  for (;;) {
    if (await socketAnswers(paths.socket)) return overSocket(paths, 1, logger, 'pglite-socket');
    const release = tryAcquireLock(paths.lock);
    if (release) {
      const { pglite, close } = await openPglite(config.dataDir, release);
      const db = new Kysely<Database>({ dialect: new PGliteDialect({ pglite }) });
      return {
        db,
        kind: 'pglite',
        ping: pingWith(db),
        close: async () => {
          await db.destroy().catch(() => undefined);
          await close();
        },
      };
    }
    if (Date.now() > deadline) {
      throw new DatabaseBusyError(`the embedded database in ${config.dataDir} is busy (pid ${readLockHolder(paths.lock) ?? 'unknown'}); try again`);
    }
    await sleep(100);
  }
}
