import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';

describe('HTTP hygiene', () => {
  let t: TestServer;

  beforeAll(async () => {
    t = await startTestServer({ name: 'hygiene', env: { BODY_LIMIT_BYTES: '4096' } });
  });
  afterAll(() => t.close());

  it.each(['/.well-known/openid-configuration', '/jwks', '/healthz', '/readyz', '/no-such-page', '/token'])(
    'sets security headers on %s',
    async (path) => {
      const response = await fetch(`${t.server.url}${path}`);
      expect(response.headers.get('x-powered-by')).toBeNull();
      expect(response.headers.get('x-content-type-options')).toBe('nosniff');
      expect(response.headers.get('referrer-policy')).toBe('no-referrer');
      expect(response.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
      // The issuer is http://localhost here: no HSTS.
      expect(response.headers.get('strict-transport-security')).toBeNull();
    },
  );

  it('keeps a well-formed X-Request-Id from the caller and replaces a hostile one', async () => {
    const kept = await fetch(`${t.server.url}/healthz`, { headers: { 'x-request-id': 'abc-123' } });
    expect(kept.headers.get('x-request-id')).toBe('abc-123');
    const replaced = await fetch(`${t.server.url}/healthz`, { headers: { 'x-request-id': 'a b <script>' } });
    expect(replaced.headers.get('x-request-id')).not.toContain('script');
  });

  it('answers 413 to a body over the limit, in the OAuth error format', async () => {
    const body = new URLSearchParams({ grant_type: 'client_credentials', padding: 'x'.repeat(8000) });
    const response = await fetch(`${t.server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ error: 'invalid_request' });
  });

  it('answers 413 to a chunked body over the limit too', async () => {
    const big = 'grant_type=client_credentials&padding=' + 'x'.repeat(200_000);
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(big));
        controller.close();
      },
    });
    const response = await fetch(`${t.server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(response.status).toBe(413);
  });

  it('never answers a server error with a stack trace', async () => {
    const response = await fetch(`${t.server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"grant_type":',
    });
    const text = await response.text();
    expect(response.status).toBeLessThan(500);
    expect(text).not.toMatch(/\bat .+\.(js|ts):\d+/);
  });

  it('writes one JSON log line per request, with its request id', async () => {
    const { clientId, clientSecret } = await t.build.serviceClient();
    const response = await fetch(`${t.server.url}/healthz`, { headers: { 'x-request-id': 'log-line-check' } });
    expect(response.status).toBe(200);
    await tokenRequest(t.server.url, { grant_type: 'client_credentials' }, { clientId, clientSecret });
    const entries = t.logs.entries();
    expect(entries.length).toBeGreaterThan(0);
    const mine = entries.filter((entry) => entry.requestId === 'log-line-check');
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ msg: 'request', method: 'GET', path: '/healthz', status: 200 });
    const token = entries.find((entry) => entry.msg === 'request' && entry.path === '/token' && entry.status === 200);
    expect(token).toMatchObject({ clientId });
    expect(t.logs.text()).not.toContain(clientSecret);
  });
});

describe('HTTP hygiene behind an https issuer', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ name: 'hygiene-https', env: { ISSUER: 'https://auth.example.test' } });
  });
  afterAll(() => t.close());

  it('sends HSTS', async () => {
    const response = await fetch(`${t.server.url}/healthz`);
    expect(response.headers.get('strict-transport-security')).toMatch(/max-age=\d+/);
  });
});
