import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DATABASE_URL, WORKER_REDIS_URL, withRedisDatabase, workerRedisDatabase } from '../fixtures/env.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';
import { startTcpProxy, type TcpProxy } from '../fixtures/tcp-proxy.js';
import { createTestDatabase, type TestDatabase } from '../fixtures/database.js';

async function readyz(base: string) {
  const response = await fetch(`${base}/readyz`);
  return { status: response.status, body: (await response.json()) as { status: string; checks: Record<string, string>; failing?: string[] } };
}

async function eventually<T>(probe: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await probe();
  while (!ok(last) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    last = await probe();
  }
  return last;
}

describe('/healthz and /readyz', () => {
  let db: TestDatabase;
  let pgProxy: TcpProxy;
  let redisProxy: TcpProxy;
  let t: TestServer;

  beforeAll(async () => {
    db = await createTestDatabase();
    const pgUrl = new URL(db.url);
    pgProxy = await startTcpProxy({ host: pgUrl.hostname, port: Number(pgUrl.port || 5432) });
    const redisUrl = new URL(WORKER_REDIS_URL);
    redisProxy = await startTcpProxy({ host: redisUrl.hostname, port: Number(redisUrl.port || 6379) });
    pgUrl.host = `127.0.0.1:${pgProxy.port}`;
    t = await startTestServer({
      name: 'health',
      env: { DATABASE_URL: pgUrl.toString(), REDIS_URL: withRedisDatabase(`redis://127.0.0.1:${redisProxy.port}`, workerRedisDatabase()) },
    });
  });
  afterAll(async () => {
    await t.close();
    await pgProxy.close();
    await redisProxy.close();
    await db.drop();
  });

  it('answers /healthz while the process is up', async () => {
    const response = await fetch(`${t.server.url}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('is ready when PostgreSQL and Redis answer', async () => {
    const { status, body } = await readyz(t.server.url);
    expect(status).toBe(200);
    expect(body.checks).toEqual({ database: 'ok', store: 'ok' });
  });

  it('names Redis when it is unreachable, and recovers without a restart', async () => {
    await redisProxy.cut();
    const down = await eventually(() => readyz(t.server.url), (r) => r.status === 503);
    expect(down.status).toBe(503);
    expect(down.body.failing).toEqual(['store']);
    expect(down.body.checks.database).toBe('ok');
    // Health is about the process, not its dependencies.
    expect((await fetch(`${t.server.url}/healthz`)).status).toBe(200);

    await redisProxy.restore();
    const up = await eventually(() => readyz(t.server.url), (r) => r.status === 200);
    expect(up.status).toBe(200);
  });

  it('names PostgreSQL when it is unreachable, and recovers without a restart', async () => {
    await pgProxy.cut();
    const down = await eventually(() => readyz(t.server.url), (r) => r.status === 503);
    expect(down.status).toBe(503);
    expect(down.body.failing).toEqual(['database']);

    await pgProxy.restore();
    const up = await eventually(() => readyz(t.server.url), (r) => r.status === 200);
    expect(up.status).toBe(200);
    expect(up.body.checks).toEqual({ database: 'ok', store: 'ok' });
  });

  it('issues client-credentials tokens to a cached client without touching PostgreSQL or Redis', async () => {
    const { clientId, clientSecret } = await t.build.serviceClient();
    const auth = { clientId, clientSecret };
    // Let the cache take in the registry's latest revision (a later poll would drop what we warm), then warm it.
    await t.server.cache.refresh();
    const deadline = Date.now() + 5000;
    let warm = await tokenRequest(t.server.url, { grant_type: 'client_credentials', scope: 'read' }, auth);
    while (warm.status !== 200 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      warm = await tokenRequest(t.server.url, { grant_type: 'client_credentials', scope: 'read' }, auth);
    }
    expect(warm.status).toBe(200);

    await pgProxy.cut();
    await redisProxy.cut();
    try {
      const results = await Promise.all(
        Array.from({ length: 50 }, () => tokenRequest(t.server.url, { grant_type: 'client_credentials', scope: 'read' }, auth)),
      );
      expect(results.map((r) => r.status)).toEqual(Array.from({ length: 50 }, () => 200));
      expect(results.every((r) => typeof r.body.access_token === 'string')).toBe(true);
    } finally {
      await pgProxy.restore();
      await redisProxy.restore();
    }
  });

  it('uses the real services through the proxies', () => {
    expect(TEST_DATABASE_URL).toContain('127.0.0.1');
    expect(t.env.REDIS_URL).toBe(`redis://127.0.0.1:${redisProxy.port}/${workerRedisDatabase()}`);
  });
});
