import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureLogs, recordSecret } from '../fixtures/log-capture.js';
import { freePort } from '../fixtures/ports.js';
import { BIN, runNode, SERVER, spawnNode, waitForUrl, type Spawned } from '../fixtures/process.js';
import { tokenRequest } from '../fixtures/server.js';

/** How long to wait for the server to see a change the CLI made: a bound on waiting, not a budget. */
const CHANGE_SEEN_WITHIN_MS = 10_000;

// `npm start` with nothing configured: PGlite under ./.data, the in-process store, a key made
// into ./keys on first start; and the CLI used from another terminal while it runs.
describe('npm start on the embedded defaults', { timeout: 120_000 }, () => {
  let cwd: string;
  let port: number;
  let server: Spawned;
  const logs = captureLogs('embedded-defaults');
  const cli = (...args: string[]) => runNode([BIN, ...args, '--json'], { cwd, env: { PORT: String(port) } });

  beforeAll(async () => {
    cwd = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-embedded-'));
    port = await freePort();
    server = spawnNode(SERVER, { cwd, env: { PORT: String(port) }, logs });
    await waitForUrl(`http://localhost:${port}/.well-known/openid-configuration`, server, 60_000);
  }, 90_000);

  afterAll(async () => {
    if (server.child.exitCode === null) {
      server.child.kill('SIGTERM');
      await server.exited;
    }
    await rm(cwd, { recursive: true, force: true });
  });

  it('serves discovery with the default issuer, on PGlite and the in-process store', async () => {
    const discovery = (await (await fetch(`http://localhost:${port}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(discovery.issuer).toBe(`http://localhost:${port}`);
    expect(discovery.token_endpoint).toBe(`http://localhost:${port}/token`);
    expect(existsSync(path.join(cwd, '.data', 'pglite'))).toBe(true);
    const keyFiles = (await readdir(path.join(cwd, 'keys'))).filter((name) => name.endsWith('.json'));
    // The signing key (RS256) and, beside it, the FAPI 2.0 profile key (ES256), both made at the first start.
    const keys = await Promise.all(keyFiles.map(async (name) => JSON.parse(await readFile(path.join(cwd, 'keys', name), 'utf8')) as { alg: string; profile?: string }));
    expect(keys.map((key) => `${key.alg}${key.profile ? ` ${key.profile}` : ''}`).sort()).toEqual(['ES256 fapi2', 'RS256']);
    const listening = logs.entries().find((entry) => entry.msg === 'gatehouse listening');
    expect(listening).toMatchObject({ database: 'pglite', store: 'memory' });
    expect(logs.entries().some((entry) => entry.msg === 'migrations applied')).toBe(true);
  });

  it('lets the CLI register a resource and a client while the server runs, and the server sees them', async () => {
    const resource = await cli('resources', 'create', '--identifier', 'https://api.embedded.test', '--scope', 'read write');
    expect(resource.code, resource.stderr).toBe(0);
    const created = await cli('clients', 'create', '--name', 'embedded service', '--resource', 'https://api.embedded.test', '--scope', 'read');
    expect(created.code, created.stderr).toBe(0);
    const client = JSON.parse(created.stdout) as { client_id: string; client_secret: string };
    recordSecret(client.client_secret);

    const started = Date.now();
    let result = await tokenRequest(`http://localhost:${port}`, { grant_type: 'client_credentials', scope: 'read' }, {
      clientId: client.client_id,
      clientSecret: client.client_secret,
    });
    while (result.status !== 200 && Date.now() - started < CHANGE_SEEN_WITHIN_MS) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      result = await tokenRequest(`http://localhost:${port}`, { grant_type: 'client_credentials', scope: 'read' }, {
        clientId: client.client_id,
        clientSecret: client.client_secret,
      });
    }
    expect(result.status).toBe(200);
    expect(decodeProtectedHeader(String(result.body.access_token))).toMatchObject({ alg: 'RS256', typ: 'at+jwt' });

    const listed = await cli('clients', 'list');
    expect((JSON.parse(listed.stdout) as Array<{ client_id: string }>).map((c) => c.client_id)).toContain(client.client_id);
  });

  it('sees a client deleted with the CLI without a restart', async () => {
    const created = await cli('clients', 'create', '--name', 'short-lived', '--resource', 'https://api.embedded.test', '--scope', 'read');
    const client = JSON.parse(created.stdout) as { client_id: string; client_secret: string };
    recordSecret(client.client_secret);
    const auth = { clientId: client.client_id, clientSecret: client.client_secret };
    expect((await tokenRequest(`http://localhost:${port}`, { grant_type: 'client_credentials' }, auth)).status).toBe(200);

    const deleted = await cli('clients', 'delete', client.client_id);
    expect(deleted.code, deleted.stderr).toBe(0);
    const started = Date.now();
    let status = 200;
    while (status === 200 && Date.now() - started < CHANGE_SEEN_WITHIN_MS) {
      status = (await tokenRequest(`http://localhost:${port}`, { grant_type: 'client_credentials' }, auth)).status;
      if (status === 200) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(status).toBe(401);
  });

  it('stops cleanly on SIGTERM and keeps its data for the next start', async () => {
    server.child.kill('SIGTERM');
    const { code } = await server.exited;
    expect(code).toBe(0);
    // With the server gone, the CLI opens the embedded database itself.
    const listed = await cli('resources', 'list');
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as Array<{ identifier: string }>).map((r) => r.identifier)).toContain('https://api.embedded.test');
  });
});
