import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { deleteUser } from '../../src/services/users.service.js';
import type { BuiltPerson } from '../fixtures/builders.js';
import { TEST_ACTOR } from '../fixtures/services.js';
import { Agent, authorizeUrl, codeFlow, hiddenInput, pkce, signIn } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startOwnRedis, type OwnRedis } from '../fixtures/redis-server.js';
import { startTestServer, tokenRequest as tokenRequestVia, type TestServer } from '../fixtures/server.js';

const PASSWORD = 'sessions need long passwords 9';
const REDIRECT = 'http://127.0.0.1:8767/cb';
const SPA_ORIGIN = 'http://127.0.0.1:8767';

// The servers listen on no port: every request goes to the app's handler in this process (t.fetch),
// and nothing may go over a socket (global fetch fails here).
beforeAll(() => {
  vi.stubGlobal('fetch', () => Promise.reject(new Error('fetch over a socket in an in-process test: use t.fetch')));
});
afterAll(() => {
  vi.unstubAllGlobals();
});

describe('sessions, refresh tokens, revocation, logout', () => {
  let t: TestServer;
  let redis: OwnRedis;
  let base: string;
  let email: string;
  let userId: string;
  let person: BuiltPerson;
  let client: { clientId: string; clientSecret: string };
  let spa: { clientId: string };
  const api = `https://api-${randomUUID()}.example.test`;
  const tokenRequest = (url: string, form: Record<string, string>, auth?: { clientId: string; clientSecret: string }) => tokenRequestVia(url, form, auth, t.fetch);

  async function signInForTokens(agent = new Agent(base, t.fetch), scope = 'openid offline_access') {
    // offline_access is honoured only with prompt=consent (OpenID Connect Core 11).
    const { status, body } = await codeFlow(agent, { client, redirectUri: REDIRECT, email, password: PASSWORD, params: { scope, prompt: 'consent' } });
    expect(status).toBe(200);
    return { agent, body };
  }

  beforeAll(async () => {
    // This server has a Redis of its own, so the test can empty it.
    redis = await startOwnRedis();
    t = await startTestServer({ name: 'sessions', env: { REDIS_URL: redis.url }, listen: false });
    base = t.server.url;
    await t.build.resource({ identifier: api, scope: 'read' });
    person = await t.build.person({ email: `lin-${randomUUID()}@example.test`, password: PASSWORD, name: 'Lin' });
    ({ email, id: userId } = person);
    client = await t.build.client({
      client_name: 'Session App',
      redirect_uris: [REDIRECT],
      post_logout_redirect_uris: ['http://127.0.0.1:8767/bye'],
      grant_types: ['authorization_code', 'refresh_token'],
    });
    // The app asks for the API by name (resource=): it holds a grant there.
    await t.build.grant(client.clientId, api, 'read');
    const spaCreated = await t.build.client({ client_name: 'SPA', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'] });
    spa = { clientId: spaCreated.clientId };
  });
  afterAll(async () => {
    await t?.close();
    await redis?.stop();
  });

  it('sets signed, HttpOnly, SameSite=Lax session cookies', async () => {
    const agent = new Agent(base, t.fetch);
    const { challenge } = pkce();
    const response = await agent.request(authorizeUrl({ client_id: client.clientId, redirect_uri: REDIRECT, code_challenge: challenge, code_challenge_method: 'S256' }));
    const cookies = response.headers.getSetCookie();
    const interaction = cookies.find((c) => c.startsWith('_interaction='));
    expect(interaction).toMatch(/httponly/i);
    expect(interaction).toMatch(/samesite=lax/i);
    expect(interaction).not.toMatch(/;\s*secure/i);
    expect(cookies.some((c) => c.startsWith('_interaction.sig='))).toBe(true);
  });

  it('keeps every refresh token working when Redis loses everything, and signs the person out', async () => {
    const { agent, body } = await signInForTokens();
    expect(agent.cookies.has('_session')).toBe(true);
    await redis.flush();

    const refreshed = await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: String(body.refresh_token) }, client);
    expect(refreshed.status).toBe(200);
    recordSecret(refreshed.body.refresh_token as string);
    recordSecret(refreshed.body.access_token as string);

    // The Gatehouse session is gone: the same browser sees the login page again.
    const { challenge } = pkce();
    const { response, url } = await agent.follow(authorizeUrl({ client_id: client.clientId, redirect_uri: REDIRECT, code_challenge: challenge, code_challenge_method: 'S256' }));
    expect(url).toContain('/interaction/');
    expect(await response.text()).toContain('name="password"');
  });

  it('revokes a refresh token (RFC 7009): it introspects inactive and no longer refreshes', async () => {
    // Made through the provider's models: this case is about what comes after the sign-in.
    const refreshToken = await t.build.refreshToken({ client, person });
    const auth = `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}`;
    const introspect = async (token: string) => {
      const response = await t.fetch(`${base}/token/introspection`, {
        method: 'POST',
        headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token }),
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    const active = await introspect(refreshToken);
    expect(active.body).toMatchObject({ active: true, client_id: client.clientId, sub: userId });

    const revoked = await t.fetch(`${base}/token/revocation`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: refreshToken, token_type_hint: 'refresh_token' }),
    });
    expect(revoked.status).toBe(200);
    expect((await introspect(refreshToken)).body).toEqual({ active: false });
    const refresh = await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: refreshToken }, client);
    expect(refresh.body.error).toBe('invalid_grant');
  });

  it('introspects only for authenticated clients', async () => {
    const response = await t.fetch(`${base}/token/introspection`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: 'anything' }),
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toMatch(/invalid_request|invalid_client/);
  });

  it('lets a client introspect and revoke only its own tokens', async () => {
    const refreshToken = await t.build.refreshToken({ client, person });
    const nosy = await t.build.client({ client_name: 'Nosy Service', default_resource: api, scope: 'read' });
    const call = (endpoint: string, who: { clientId: string; clientSecret: string }) =>
      t.fetch(`${base}/token/${endpoint}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${who.clientId}:${who.clientSecret}`).toString('base64')}` },
        body: new URLSearchParams({ token: refreshToken, token_type_hint: 'refresh_token' }),
      });
    expect(await (await call('introspection', nosy)).json()).toEqual({ active: false });
    const revoke = await call('revocation', nosy);
    expect(revoke.status).toBe(400);
    expect(((await revoke.json()) as { error: string }).error).toBe('invalid_request');
    // Untouched, and visible to its own client.
    expect(((await (await call('introspection', client)).json()) as { active: boolean }).active).toBe(true);
  });

  it('says that a JWT access token is self-contained when it is introspected or revoked', async () => {
    const { body } = await codeFlow(new Agent(base, t.fetch), {
      client,
      redirectUri: REDIRECT,
      email,
      password: PASSWORD,
      params: { scope: 'openid read', resource: api },
      tokenParams: { resource: api },
    });
    const jwt = String(body.access_token);
    expect(jwt.split('.')).toHaveLength(3);
    const auth = `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}`;
    const response = await t.fetch(`${base}/token/introspection`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: jwt }),
    });
    const answer = (await response.json()) as Record<string, unknown>;
    expect(answer.active === false || answer.error === 'unsupported_token_type').toBe(true);
    const revocation = await t.fetch(`${base}/token/revocation`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: jwt }),
    });
    const revocationBody = (await revocation.json().catch(() => ({}))) as Record<string, unknown>;
    expect(revocation.status).toBe(400);
    expect(revocationBody.error).toBe('unsupported_token_type');
    expect(String(revocationBody.error_description)).toMatch(/exp/);
  });

  it('answers CORS on the token endpoint only for a public client and its registered origin', async () => {
    const preflight = (origin: string) =>
      t.fetch(`${base}/token`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' } });
    expect((await preflight(SPA_ORIGIN)).status).toBeLessThan(300);
    const { verifier, challenge } = pkce();
    const url = authorizeUrl({ client_id: spa.clientId, redirect_uri: REDIRECT, scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' });
    const { redirect } = await signIn(new Agent(base, t.fetch), { url, email, password: PASSWORD });
    const form = new URLSearchParams({ grant_type: 'authorization_code', code: redirect.searchParams.get('code')!, redirect_uri: REDIRECT, code_verifier: verifier, client_id: spa.clientId });
    const allowed = await t.fetch(`${base}/token`, { method: 'POST', headers: { origin: SPA_ORIGIN, 'content-type': 'application/x-www-form-urlencoded' }, body: form });
    expect(allowed.headers.get('access-control-allow-origin')).toBe(SPA_ORIGIN);
    const tokens = (await allowed.json()) as Record<string, string>;
    for (const key of ['access_token', 'id_token', 'refresh_token']) recordSecret(tokens[key]);

    const refused = await t.fetch(`${base}/token`, {
      method: 'POST',
      headers: { origin: 'https://evil.example', 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token ?? '', client_id: spa.clientId }),
    });
    expect(refused.headers.get('access-control-allow-origin')).toBeNull();
    // A confidential client's token request gets no CORS answer even from a registered origin.
    const confidential = await t.fetch(`${base}/token`, {
      method: 'POST',
      headers: { origin: SPA_ORIGIN, authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'nope' }),
    });
    expect(confidential.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('logs out with a confirmation page and a registered post_logout_redirect_uri, and clears the session', async () => {
    const { agent, body } = await signInForTokens();
    const idToken = String(body.id_token);
    const unregistered = await agent.request(
      `/session/end?${new URLSearchParams({ id_token_hint: idToken, post_logout_redirect_uri: 'https://evil.example/bye', client_id: client.clientId })}`,
    );
    expect(unregistered.status).toBe(400);
    expect(unregistered.headers.get('location')).toBeNull();

    const page = await agent.request(
      `/session/end?${new URLSearchParams({ id_token_hint: idToken, post_logout_redirect_uri: 'http://127.0.0.1:8767/bye', client_id: client.clientId, state: 'xyz' })}`,
    );
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('Sign out');
    expect(html).toContain('Session App');
    expect(page.headers.get('content-security-policy')).toContain('form-action');
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1] ?? '';
    const xsrf = hiddenInput(html, 'xsrf') ?? '';
    expect(agent.cookies.has('_session')).toBe(true);
    const done = await agent.postForm(action, { xsrf, logout: 'yes' });
    expect(done.status).toBe(303);
    const location = new URL(done.headers.get('location') ?? '');
    expect(location.origin + location.pathname).toBe('http://127.0.0.1:8767/bye');
    expect(location.searchParams.get('state')).toBe('xyz');
    expect(agent.cookies.has('_session')).toBe(false);
  });

  it('revokes a deleted user’s grants and refresh tokens', async () => {
    const other = await t.build.person({ email: `deleted-${randomUUID()}@example.test`, password: PASSWORD });
    const { body } = await codeFlow(new Agent(base, t.fetch), {
      client,
      redirectUri: REDIRECT,
      email: other.email,
      password: PASSWORD,
      params: { scope: 'openid offline_access', prompt: 'consent' },
    });
    expect(typeof body.refresh_token).toBe('string');
    await deleteUser(t.services, TEST_ACTOR, other.id);
    const refresh = await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: String(body.refresh_token) }, client);
    expect(refresh.body.error).toBe('invalid_grant');
  });
});

describe('cookies behind an https issuer', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ name: 'sessions-https', env: { ISSUER: 'https://auth.example.test', TRUST_PROXY: 'true' }, listen: false });
  });
  afterAll(() => t.close());

  it('marks session and interaction cookies Secure', async () => {
    const created = await t.build.client({ client_name: 'secure', redirect_uris: ['https://app.example.test/cb'] });
    const response = await t.fetch(
      `${t.server.url}${authorizeUrl({ client_id: created.clientId, redirect_uri: 'https://app.example.test/cb', code_challenge: pkce().challenge, code_challenge_method: 'S256' })}`,
      { redirect: 'manual', headers: { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'auth.example.test' } },
    );
    const cookies = response.headers.getSetCookie();
    expect(cookies.length).toBeGreaterThan(0);
    for (const cookie of cookies) expect(cookie).toMatch(/;\s*secure/i);
  });
});
