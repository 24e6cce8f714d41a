import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliJson } from '../fixtures/cli.js';
import { createTestDatabase, type TestDatabase } from '../fixtures/database.js';
import { WORKER_REDIS_URL } from '../fixtures/env.js';
import { captureLogs, recordSecret } from '../fixtures/log-capture.js';
import { listeningPort, SERVER, spawnNode, waitForUrl, type Spawned } from '../fixtures/process.js';
import { TEST_COOKIE_KEY } from '../fixtures/server.js';

/** A name only: the workers listen on a port of the system's choice (PORT=0), read from their log. */
const ISSUER_HOST = 'localhost:3999';

/** One token request on a connection of its own, so the cluster hands it to any worker. */
function tokenOnNewConnection(port: number, clientId: string, clientSecret: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const body = 'grant_type=client_credentials&scope=read';
    const request = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/token',
        method: 'POST',
        agent: false,
        auth: `${clientId}:${clientSecret}`,
        // The issuer's host: the Host is pinned to it.
        headers: { host: ISSUER_HOST, 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
      },
      (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => (text += chunk.toString()));
        response.on('end', () => {
          const parsed = JSON.parse(text) as { access_token?: string };
          recordSecret(parsed.access_token);
          resolve(response.statusCode ?? 0);
        });
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

describe('GATEHOUSE_WORKERS=2', { timeout: 60_000 }, () => {
  let db: TestDatabase;
  let dir: string;
  let port: number;
  let server: Spawned;
  let env: Record<string, string>;
  const logs = captureLogs('workers');

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-workers-'));
    env = {
      NODE_ENV: 'development',
      // Bound at 0 by the primary's listening handle, which the two workers share (node:cluster
      // hands every worker's listen(0) the same port); each worker logs it.
      PORT: '0',
      ISSUER: `http://${ISSUER_HOST}`,
      DATABASE_URL: db.url,
      REDIS_URL: WORKER_REDIS_URL,
      KEYS_DIR: path.join(dir, 'keys'),
      COOKIE_KEYS: TEST_COOKIE_KEY,
      GATEHOUSE_WORKERS: '2',
    };
    server = spawnNode(SERVER, { cwd: dir, env, logs });
    port = await listeningPort(server);
    await waitForUrl(`http://127.0.0.1:${port}/readyz`, server);
  }, 60_000);

  afterAll(async () => {
    if (server.child.exitCode === null) {
      server.child.kill('SIGKILL');
      await server.exited;
    }
    await db.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('runs two workers on one port that share the keys and the registry', async () => {
    await cliJson(['resources', 'create', '--identifier', 'https://api.workers.test', '--scope', 'read'], env);
    const client = await cliJson<{ client_id: string; client_secret: string }>(
      ['clients', 'create', '--name', 'workers', '--resource', 'https://api.workers.test', '--scope', 'read'],
      env,
    );
    recordSecret(client.client_secret);
    await new Promise((resolve) => setTimeout(resolve, 500));

    const statuses = await Promise.all(
      Array.from({ length: 40 }, () => tokenOnNewConnection(port, client.client_id, client.client_secret)),
    );
    expect(statuses.every((status) => status === 200)).toBe(true);

    const entries = logs.entries();
    const listening = new Set(entries.filter((entry) => entry.msg === 'gatehouse listening').map((entry) => entry.pid));
    expect(listening.size).toBe(2);
    const served = new Set(entries.filter((entry) => entry.msg === 'request' && entry.path === '/token').map((entry) => entry.pid));
    expect(served.size).toBe(2);
    // Both workers sign with the one key the primary prepared.
    const kids = new Set(entries.filter((entry) => entry.msg === 'signing key loaded').map((entry) => entry.kid));
    expect(kids.size).toBe(1);
  });

  it('stops every worker and exits 0 on SIGTERM', async () => {
    server.child.kill('SIGTERM');
    const { code } = await server.exited;
    expect(code).toBe(0);
    const stopped = logs.entries().filter((entry) => entry.msg === 'stopped');
    expect(stopped).toHaveLength(2);
  });
});
