import { randomBytes, randomUUID } from 'node:crypto';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig, type Config } from '../../../src/config/load-config.js';
import { createLogger } from '../../../src/observability/logger.js';
import { insertClient } from '../../../src/registry/client.repository.js';
import { openCliDatabase, type RegistryDatabase } from '../../../src/registry/database.js';
import { migrateToLatest } from '../../../src/registry/migrate.js';
import { createRegistryCache } from '../../../src/registry/registry-cache.js';
import type { Database } from '../../../src/registry/tables.js';
import { createClient, deleteClient, updateClient, type ClientServiceDeps } from '../../../src/services/clients.service.js';
import { createResource, updateResource } from '../../../src/services/resources.service.js';
import { createTestDatabase, type TestDatabase } from '../../fixtures/database.js';
import { TEST_ACTOR, testServices } from '../../fixtures/services.js';

const silent = createLogger({ logLevel: 'silent' });
/**
 * How long a test waits for a change to reach a cache that polls every 100 ms: a bound on waiting,
 * not a budget (this machine is shared, and how fast changes arrive is no correctness property).
 */
const CHANGE_SEEN_WITHIN_MS = 10_000;

/** The cache's own connection: a Kysely that counts the queries it runs. */
function countingRegistry(url: string) {
  const counter = { queries: 0, sql: [] as string[] };
  const pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 2000 });
  pool.on('error', () => undefined);
  const db = new Kysely<Database>({
    dialect: new PostgresDialect({ pool }),
    log(event) {
      counter.queries += 1;
      counter.sql.push(event.query.sql);
    },
  });
  const registry: RegistryDatabase = {
    db,
    kind: 'postgres',
    ping: async () => undefined,
    close: () => db.destroy(),
  };
  return { registry, counter };
}

describe('registry cache over PostgreSQL', () => {
  let database: TestDatabase;
  let config: Config;
  let writer: RegistryDatabase;
  let deps: ClientServiceDeps;

  beforeAll(async () => {
    database = await createTestDatabase();
    config = loadConfig({ DATABASE_URL: database.url, NODE_ENV: 'test', LOG_LEVEL: 'silent' });
    // Changes come through the services on a connection of their own, as the CLI or another node would make them.
    writer = await openCliDatabase(config, silent);
    await migrateToLatest(writer.db);
    deps = { db: writer.db, issuer: config.issuer, digestKey: randomBytes(32), audit: testServices(writer.db).audit };
  });
  afterAll(async () => {
    await writer?.close();
    await database?.drop();
  });

  /** A started cache on its own counting connection; stopped and closed by the returned function. */
  async function startCache(pollMs = 100, logger = silent) {
    const { registry, counter } = countingRegistry(database.url);
    const cache = createRegistryCache({ registry, logger, pollMs });
    await cache.refresh();
    cache.start();
    return {
      cache,
      registry,
      counter,
      async dispose() {
        cache.stop();
        await registry.close().catch(() => undefined);
      },
    };
  }

  const clientQueries = (counter: { sql: string[] }) => counter.sql.filter((q) => q.includes('"clients"')).length;

  it('serves a client from memory after the first read', async () => {
    const { client } = await createClient(deps, TEST_ACTOR, { client_name: 'cached' });
    const { cache, counter, dispose } = await startCache(60_000);
    try {
      const first = await cache.getClient(client.clientId);
      expect(first?.clientName).toBe('cached');
      const queriesAfterFirst = clientQueries(counter);
      expect(queriesAfterFirst).toBe(1);
      const second = await cache.getClient(client.clientId);
      expect(second).toBe(first);
      await Promise.all(Array.from({ length: 20 }, () => cache.getClient(client.clientId)));
      expect(clientQueries(counter)).toBe(queriesAfterFirst);
    } finally {
      await dispose();
    }
  });

  it('reads concurrent first requests for one client once', async () => {
    const { client } = await createClient(deps, TEST_ACTOR, { client_name: 'stampede' });
    const { cache, counter, dispose } = await startCache(60_000);
    try {
      const results = await Promise.all(Array.from({ length: 10 }, () => cache.getClient(client.clientId)));
      expect(new Set(results).size).toBe(1);
      expect(clientQueries(counter)).toBe(1);
    } finally {
      await dispose();
    }
  });

  it('sees a client updated from another connection at its next poll', async () => {
    const { client } = await createClient(deps, TEST_ACTOR, { client_name: 'old name' });
    const { cache, dispose } = await startCache(100);
    try {
      expect((await cache.getClient(client.clientId))?.clientName).toBe('old name');
      await updateClient(deps, TEST_ACTOR, client.clientId, { client_name: 'new name' });
      await vi.waitFor(async () => expect((await cache.getClient(client.clientId))?.clientName).toBe('new name'), {
        timeout: CHANGE_SEEN_WITHIN_MS,
        interval: 20,
      });
    } finally {
      await dispose();
    }
  });

  it('sees a client deleted from another connection at its next poll', async () => {
    const { client } = await createClient(deps, TEST_ACTOR, { client_name: 'doomed' });
    const { cache, dispose } = await startCache(100);
    try {
      expect(await cache.getClient(client.clientId)).toBeDefined();
      await deleteClient(deps, TEST_ACTOR, client.clientId);
      await vi.waitFor(async () => expect(await cache.getClient(client.clientId)).toBeUndefined(), { timeout: CHANGE_SEEN_WITHIN_MS, interval: 20 });
    } finally {
      await dispose();
    }
  });

  it('forgets a cached miss once the client is created from another connection', async () => {
    const { cache, dispose } = await startCache(100);
    try {
      const clientId = `late-${randomUUID()}`;
      expect(await cache.getClient(clientId)).toBeUndefined();
      await insertClient(writer.db, {
        client_id: clientId,
        client_name: 'late',
        secret_digest: null,
        token_endpoint_auth_method: 'private_key_jwt',
        grant_types: ['client_credentials'],
        redirect_uris: [],
        post_logout_redirect_uris: [],
        scopes: [],
        default_resource: null,
        jwks: JSON.stringify({ keys: [{ kty: 'OKP', crv: 'Ed25519', x: 'x' }] }),
        logo_uri: null,
        first_party: false,
      });
      // A miss remembered for good would be a client that cannot authenticate until a restart.
      await vi.waitFor(async () => expect((await cache.getClient(clientId))?.clientName).toBe('late'), { timeout: CHANGE_SEEN_WITHIN_MS, interval: 20 });
    } finally {
      await dispose();
    }
  });

  it('caches resource servers by identifier only and sees their changes', async () => {
    const identifier = `https://api-${randomUUID()}.example.test`;
    const created = await createResource(deps, TEST_ACTOR, { identifier, scope: 'a' });
    const { cache, counter, dispose } = await startCache(100);
    try {
      const first = await cache.getResourceServer(identifier);
      expect(first?.scopes).toEqual(['a']);
      expect(await cache.getResourceServer(identifier)).toBe(first);
      expect(counter.sql.filter((q) => q.includes('"resource_servers"'))).toHaveLength(1);
      expect(await cache.getResourceServer(created.id)).toBeUndefined();

      await updateResource(deps, TEST_ACTOR, identifier, { scope: 'a b' });
      await vi.waitFor(async () => expect((await cache.getResourceServer(identifier))?.scopes).toEqual(['a', 'b']), {
        timeout: CHANGE_SEEN_WITHIN_MS,
        interval: 20,
      });
    } finally {
      await dispose();
    }
  });

  it('keeps serving cached clients when its database is unreachable, and says so once', async () => {
    const { client } = await createClient(deps, TEST_ACTOR, { client_name: 'survivor' });
    const lines: string[] = [];
    const logger = createLogger({ logLevel: 'warn' }, { write: (line: string) => void lines.push(line) });
    const { cache, registry, dispose } = await startCache(50, logger);
    try {
      const cached = await cache.getClient(client.clientId);
      expect(cached?.clientName).toBe('survivor');
      await registry.close();
      // Several polls fail meanwhile.
      await vi.waitFor(() => expect(lines.some((line) => line.includes('registry revision poll failed'))).toBe(true), {
        timeout: 2000,
        interval: 20,
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await cache.getClient(client.clientId)).toBe(cached);
      expect(lines.filter((line) => line.includes('registry revision poll failed'))).toHaveLength(1);
      // A client it never read cannot be served while the database is away: an error, not a false miss.
      await expect(cache.getClient(`unknown-${randomUUID()}`)).rejects.toThrow();
    } finally {
      await dispose();
    }
  });
});
