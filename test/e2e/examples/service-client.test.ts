import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createResourceServer } from '../../../examples/resource-server/resource-server.js';
import { callApi, createTokenSource, refreshMargin, TokenRequestError, type TokenSourceOptions } from '../../../examples/service-client/service-client.js';
import { recordSecret } from '../../fixtures/log-capture.js';
import { freePort } from '../../fixtures/ports.js';
import { REPO_ROOT, runNode, spawnNode, waitForUrl } from '../../fixtures/process.js';
import { startTestServer, type TestServer } from '../../fixtures/server.js';
import { countingFetch, listen, tokensIssued } from './helpers.js';

/**
 * examples/service-client against a live Gatehouse and examples/resource-server: one token request
 * per token lifetime (counted on the wire and by Gatehouse's own metrics), shared by concurrent
 * callers, replaced shortly before expiry, kept through an outage while it is still good.
 */
describe('examples/service-client: client credentials with a token cache', () => {
  let t: TestServer;
  let issuer: string;
  let audience: string;
  let api: Awaited<ReturnType<typeof listen>>;

  async function client(options: { scope?: string; resource?: string } = {}) {
    return t.build.client({ client_name: `service ${randomUUID().slice(0, 8)}`, default_resource: options.resource ?? audience, scope: options.scope ?? 'read:orders write:orders' });
  }

  /** A token source over a counting fetch: for a new client with these scopes, or for the one given. */
  async function source(options: Partial<TokenSourceOptions> = {}, credentials?: { clientId: string; clientSecret: string }) {
    const { clientId, clientSecret } = credentials ?? (await client({ scope: options.scope, resource: options.resource }));
    const counter = countingFetch();
    const tokens = createTokenSource({ issuer, clientId, clientSecret, scope: 'read:orders', fetch: counter.fetch, ...options });
    const getToken = async () => {
      const token = await tokens.getToken();
      recordSecret(token);
      return token;
    };
    return { clientId, tokens, getToken, counter };
  }

  beforeAll(async () => {
    t = await startTestServer({ name: 'example-service-client' });
    issuer = t.config.issuer;
    audience = `https://orders-${t.config.port}.example.test`;
    await t.build.resource({ identifier: audience, scope: 'read:orders write:orders' });
    api = await listen(createResourceServer({ issuer, audience }));
  }, 60_000);

  afterAll(async () => {
    await api.close();
    await t.close();
  });

  it('gets one token and reuses it for several API calls', async () => {
    const { clientId, tokens, counter } = await source();
    for (let i = 0; i < 5; i += 1) {
      const response = await callApi(tokens, `${api.url}/orders`, {}, counter.fetch);
      expect(response.status).toBe(200);
      expect(((await response.json()) as { caller: { sub: string } }).caller.sub).toBe(clientId);
    }
    expect(counter.state.tokenRequests).toBe(1);
    expect(tokensIssued(t.logs, clientId)).toBe(1);
  });

  it('makes concurrent callers share one token request', async () => {
    const { clientId, getToken, counter } = await source();
    const all = await Promise.all(Array.from({ length: 10 }, () => getToken()));
    expect(new Set(all).size).toBe(1);
    expect(counter.state.tokenRequests).toBe(1);
    expect(tokensIssued(t.logs, clientId)).toBe(1);
  });

  it('replaces the token once less than max(30 s, 10% of its life) remains (a 600 s token: after 540 s)', async () => {
    expect(refreshMargin(600)).toBe(60);
    expect(refreshMargin(120)).toBe(30);
    expect(refreshMargin(40)).toBe(20); // never past half its life
    let clock = Date.now();
    const { clientId, tokens, getToken, counter } = await source({ now: () => clock });
    const first = await getToken();
    const start = clock;
    clock = start + 539_000;
    expect(await getToken()).toBe(first);
    expect(counter.state.tokenRequests).toBe(1);
    clock = start + 541_000;
    const second = await getToken();
    expect(second).not.toBe(first);
    expect(counter.state.tokenRequests).toBe(2);
    expect(await getToken()).toBe(second);
    expect(counter.state.tokenRequests).toBe(2);
    expect(tokensIssued(t.logs, clientId)).toBe(2);
    expect((await callApi(tokens, `${api.url}/orders`, {}, counter.fetch)).status).toBe(200);
  });

  it('replaces a short-lived token in real time: a 4 s token after 2 s', async () => {
    const short = `https://orders-short-${t.config.port}.example.test`;
    await t.build.resource({ identifier: short, scope: 'read:orders', access_token_ttl: 4 });
    const shortApi = await listen(createResourceServer({ issuer, audience: short }));
    try {
      const { clientId, tokens, getToken, counter } = await source({ resource: short, scope: 'read:orders' });
      const first = await getToken();
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await getToken()).toBe(first);
      await new Promise((resolve) => setTimeout(resolve, 1800));
      const second = await getToken();
      expect(second).not.toBe(first);
      expect(counter.state.tokenRequests).toBe(2);
      expect(tokensIssued(t.logs, clientId)).toBe(2);
      expect((await callApi(tokens, `${shortApi.url}/orders`, {}, counter.fetch)).status).toBe(200);
    } finally {
      await shortApi.close();
    }
  });

  it('keeps a still-valid token while Gatehouse is unreachable, and never keeps a failure', async () => {
    let clock = Date.now();
    const { getToken, counter } = await source({ now: () => clock });
    const start = clock;
    const first = await getToken();
    counter.state.down = true;
    clock = start + 541_000; // due for replacement, not expired
    expect(await getToken()).toBe(first);
    expect(counter.state.tokenRequests).toBe(2);
    clock = start + 601_000; // expired: no token to fall back on
    await expect(getToken()).rejects.toThrow('fetch failed');
    expect(counter.state.tokenRequests).toBe(3);
    counter.state.down = false;
    const next = await getToken();
    expect(next).not.toBe(first);
    expect(counter.state.tokenRequests).toBe(4);
  });

  it('throws the OAuth error of a refusal, and asks again next time', async () => {
    const { clientId } = await client();
    const counter = countingFetch();
    const tokens = createTokenSource({ issuer, clientId, clientSecret: 'not the secret', scope: 'read:orders', fetch: counter.fetch });
    const refusal = await tokens.getToken().catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(TokenRequestError);
    expect(refusal).toMatchObject({ status: 401, error: 'invalid_client' });
    await expect(tokens.getToken()).rejects.toMatchObject({ error: 'invalid_client' });
    expect(counter.state.tokenRequests).toBe(2);
    const scoped = createTokenSource({ issuer, ...(await client({ scope: 'read:orders' })), scope: 'write:orders' });
    await expect(scoped.getToken()).rejects.toMatchObject({ status: 400, error: 'invalid_scope' });
  });

  it('retries once with a new token on 401 invalid_token, and not on 403 insufficient_scope', async () => {
    // A client whose tokens are for another API: this one answers invalid_token every time.
    const elsewhere = `https://elsewhere-${t.config.port}.example.test`;
    await t.build.resource({ identifier: elsewhere, scope: 'read:orders' });
    const wrong = await source({}, await client({ resource: elsewhere, scope: 'read:orders' }));
    const refused = await callApi(wrong.tokens, `${api.url}/orders`, {}, wrong.counter.fetch);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(wrong.counter.state.tokenRequests).toBe(2);

    const order = { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"item":"tea","quantity":1}' };
    const reader = await source({ scope: 'read:orders' });
    const forbidden = await callApi(reader.tokens, `${api.url}/orders`, order, reader.counter.fetch);
    expect(forbidden.status).toBe(403);
    expect(reader.counter.state.tokenRequests).toBe(1);

    const writer = await source({ scope: 'read:orders write:orders' });
    expect((await callApi(writer.tokens, `${api.url}/orders`, order, writer.counter.fetch)).status).toBe(201);
    expect(writer.counter.state.tokenRequests).toBe(1);
  });

  it('runs as programs, as the READMEs show: the resource server, then the service client calling it', async () => {
    const credentials = await client({ scope: 'read:orders' });
    const port = await freePort();
    const server = spawnNode([path.join(REPO_ROOT, 'examples/resource-server/resource-server.ts')], {
      cwd: REPO_ROOT,
      env: { ISSUER: issuer, AUDIENCE: audience, PORT: String(port) },
    });
    try {
      await waitForUrl(`http://127.0.0.1:${port}/healthz`, server, 15_000);
      expect(server.output()).toContain(`orders API for ${audience} on http://localhost:${port}, trusting ${issuer}`);
      const env = { ISSUER: issuer, CLIENT_ID: credentials.clientId, CLIENT_SECRET: credentials.clientSecret, API_URL: `http://127.0.0.1:${port}/orders` };
      const ok = await runNode([path.join(REPO_ROOT, 'examples/service-client/service-client.ts')], { cwd: REPO_ROOT, env: { ...env, SCOPE: 'read:orders' } });
      expect(ok.stderr).toBe('');
      expect(ok.stdout).toBe(`200 {"caller":{"sub":"${credentials.clientId}","client_id":"${credentials.clientId}"},"orders":[]}\n`);
      expect(ok.code).toBe(0);
      // Without a scope the token carries none: the API refuses it and the program says so.
      const refused = await runNode([path.join(REPO_ROOT, 'examples/service-client/service-client.ts')], { cwd: REPO_ROOT, env });
      expect(refused.stdout).toMatch(/^403 /);
      expect(refused.code).toBe(1);
      expect(tokensIssued(t.logs, credentials.clientId)).toBe(2);
    } finally {
      server.child.kill('SIGTERM');
      expect((await server.exited).code).toBe(0);
    }
  }, 30_000);
});
