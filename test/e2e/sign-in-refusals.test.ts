import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disableUser } from '../../src/services/users.service.js';
import { TEST_ACTOR } from '../fixtures/services.js';
import { Agent, authorizeUrl, hiddenInput, pkce, signIn } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startOwnRedis, type OwnRedis } from '../fixtures/redis-server.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';

const PASSWORD = 'a long and unusual passphrase 7';
const REDIRECT = 'http://127.0.0.1:8766/cb';

describe('sign-in refusals', () => {
  let t: TestServer;
  let base: string;
  let email: string;
  let client: { clientId: string; clientSecret: string };

  const register = (name: string) =>
    t.build.client({ client_name: name, redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'] });

  /** Opens the login page of a fresh authorization request; returns the agent, the page and its csrf. */
  async function loginPage(params: Record<string, string> = {}) {
    const agent = new Agent(base);
    const { challenge } = pkce();
    const { response, url } = await agent.follow(
      authorizeUrl({ client_id: client.clientId, redirect_uri: REDIRECT, code_challenge: challenge, code_challenge_method: 'S256', ...params }),
    );
    const html = await response.text();
    return { agent, url, html, csrf: hiddenInput(html, 'csrf') ?? '', action: `${new URL(url).pathname}/login`, response };
  }

  beforeAll(async () => {
    t = await startTestServer({ name: 'sign-in-refusals', env: { LOGIN_MAX_FAILURES_PER_ACCOUNT: '4', LOGIN_MAX_FAILURES_PER_IP: '1000' } });
    base = t.server.url;
    ({ email } = await t.build.person({ email: `grace-${randomUUID()}@example.test`, password: PASSWORD, name: 'Grace Hopper' }));
    client = await register('Refusal App');
  });
  afterAll(() => t.close());

  describe('PKCE', () => {
    it('refuses an authorization request without code_challenge', async () => {
      const response = await new Agent(base).request(authorizeUrl({ client_id: client.clientId, redirect_uri: REDIRECT }));
      const location = new URL(response.headers.get('location') ?? '');
      expect(location.origin + location.pathname).toBe(REDIRECT);
      expect(location.searchParams.get('error')).toBe('invalid_request');
      expect(location.searchParams.get('error_description')).toMatch(/PKCE/);
    });

    it('refuses the plain method', async () => {
      const response = await new Agent(base).request(
        authorizeUrl({ client_id: client.clientId, redirect_uri: REDIRECT, code_challenge: 'x'.repeat(43), code_challenge_method: 'plain' }),
      );
      const location = new URL(response.headers.get('location') ?? '');
      expect(location.searchParams.get('error')).toBe('invalid_request');
    });

    it('refuses a wrong code_verifier with invalid_grant', async () => {
      const { challenge } = pkce();
      const url = authorizeUrl({ client_id: client.clientId, redirect_uri: REDIRECT, code_challenge: challenge, code_challenge_method: 'S256' });
      const { redirect } = await signIn(new Agent(base), { url, email, password: PASSWORD });
      const code = redirect.searchParams.get('code')!;
      recordSecret(code);
      const { status, body } = await tokenRequest(
        base,
        { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: pkce().verifier },
        client,
      );
      expect(status).toBe(400);
      expect(body.error).toBe('invalid_grant');
    });
  });

  it('shows an error page for an unregistered redirect URI and never redirects to it', async () => {
    for (const bad of ['https://evil.example/cb', `${REDIRECT}/`, 'http://127.0.0.1:9999/cb', `${REDIRECT}?x=1`]) {
      const { challenge } = pkce();
      const response = await new Agent(base).request(
        authorizeUrl({ client_id: client.clientId, redirect_uri: bad, code_challenge: challenge, code_challenge_method: 'S256' }),
      );
      expect(response.status).toBe(400);
      expect(response.headers.get('location')).toBeNull();
      const html = await response.text();
      expect(html).toContain('redirect_uri');
      expect(response.headers.get('content-type')).toMatch(/text\/html/);
    }
  });

  it('refuses a replayed code with invalid_grant and revokes what it issued', async () => {
    const { verifier, challenge } = pkce();
    const url = authorizeUrl({
      client_id: client.clientId,
      redirect_uri: REDIRECT,
      scope: 'openid offline_access',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      prompt: 'consent',
    });
    const { redirect } = await signIn(new Agent(base), { url, email, password: PASSWORD });
    const code = redirect.searchParams.get('code')!;
    recordSecret(code);
    const form = { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier };
    const first = await tokenRequest(base, form, client);
    expect(first.status).toBe(200);
    const refreshToken = String(first.body.refresh_token);
    recordSecret(refreshToken);
    const accessToken = String(first.body.access_token);
    expect((await fetch(`${base}/me`, { headers: { authorization: `Bearer ${accessToken}` } })).status).toBe(200);

    const replay = await tokenRequest(base, form, client);
    expect(replay.status).toBe(400);
    expect(replay.body.error).toBe('invalid_grant');
    const refresh = await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: refreshToken }, client);
    expect(refresh.body.error).toBe('invalid_grant');
    expect((await fetch(`${base}/me`, { headers: { authorization: `Bearer ${accessToken}` } })).status).toBe(401);
  });

  describe('login form', () => {
    it('refuses a missing or wrong CSRF token with 403 and signs nobody in', async () => {
      const page = await loginPage();
      const missing = await page.agent.postForm(page.action, { email, password: PASSWORD });
      expect(missing.status).toBe(403);
      const wrong = await page.agent.postForm(page.action, { csrf: `${page.csrf.slice(0, -2)}xx`, email, password: PASSWORD });
      expect(wrong.status).toBe(403);
      // Another interaction's token does not fit this one.
      const other = await loginPage();
      const foreign = await page.agent.postForm(page.action, { csrf: other.csrf, email, password: PASSWORD });
      expect(foreign.status).toBe(403);
      expect(foreign.headers.get('location')).toBeNull();
    });

    it('gives the same answer for a wrong password and an unknown email', async () => {
      const wrongPassword = await loginPage();
      const a = await wrongPassword.agent.postForm(wrongPassword.action, { csrf: wrongPassword.csrf, email, password: 'not the password at all' });
      const unknownEmail = await loginPage();
      const b = await unknownEmail.agent.postForm(unknownEmail.action, { csrf: unknownEmail.csrf, email: `nobody-${randomUUID()}@example.test`, password: 'not the password at all' });
      expect(a.status).toBe(401);
      expect(b.status).toBe(401);
      const message = (html: string) => /<p class="error"[^>]*>([^<]*)<\/p>/.exec(html)?.[1];
      const [ma, mb] = [message(await a.text()), message(await b.text())];
      expect(ma).toBe('Wrong email or password.');
      expect(mb).toBe(ma);
      // Success resets the account's count (the limit here is 4 failures).
      await signIn(new Agent(base), { url: authorizeUrl({ client_id: client.clientId, redirect_uri: REDIRECT, code_challenge: pkce().challenge, code_challenge_method: 'S256' }), email, password: PASSWORD });
    });

    it('treats SQL-looking input as a failed sign-in', async () => {
      const page = await loginPage();
      const response = await page.agent.postForm(page.action, { csrf: page.csrf, email: `' OR '1'='1' -- ${randomUUID()}`, password: "' OR 1=1; DROP TABLE users; --" });
      expect(response.status).toBe(401);
      expect(await response.text()).toContain('Wrong email or password.');
      const users = await t.server.registry.db.selectFrom('users').select('id').execute();
      expect(users.length).toBeGreaterThan(0);
    });

    it('does not sign in a disabled user', async () => {
      const disabledEmail = `disabled-${randomUUID()}@example.test`;
      const user = await t.build.person({ email: disabledEmail, password: PASSWORD });
      await disableUser(t.services, TEST_ACTOR, user.id);
      const page = await loginPage();
      const response = await page.agent.postForm(page.action, { csrf: page.csrf, email: disabledEmail, password: PASSWORD });
      expect(response.status).toBe(401);
      expect(await response.text()).toContain('Wrong email or password.');
    });

    it('renders a hostile client name escaped', async () => {
      const hostile = await register('<script>alert(1)</script>');
      const agent = new Agent(base);
      const { response } = await agent.follow(
        authorizeUrl({ client_id: hostile.clientId, redirect_uri: REDIRECT, code_challenge: pkce().challenge, code_challenge_method: 'S256' }),
      );
      const html = await response.text();
      expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
      expect(html).not.toContain('<script>');
      const csp = response.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toContain('unsafe-inline');
      expect(csp).toMatch(/form-action 'self' http:\/\/127\.0\.0\.1:8766/);
    });

    it('limits failures per account: 429 with Retry-After and a page that says when to try again', async () => {
      const target = `limited-${randomUUID()}@example.test`;
      await t.build.person({ email: target, password: PASSWORD });
      for (let i = 0; i < 4; i += 1) {
        const page = await loginPage();
        const response = await page.agent.postForm(page.action, { csrf: page.csrf, email: target, password: `wrong password number ${i}` });
        expect(response.status).toBe(401);
      }
      const page = await loginPage();
      // Even the right password is refused while the account is locked.
      const locked = await page.agent.postForm(page.action, { csrf: page.csrf, email: target.toUpperCase(), password: PASSWORD });
      expect(locked.status).toBe(429);
      expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(await locked.text()).toMatch(/Too many failed sign-ins\. Try again in \d+ minutes?\./);
    });
  });
});

describe('sign-in limits per IP', () => {
  let t: TestServer;
  let redis: OwnRedis;
  // Every test server signs in from 127.0.0.1: this one counts in a Redis of its own, empty at the start.
  beforeAll(async () => {
    redis = await startOwnRedis();
    t = await startTestServer({
      name: 'sign-in-ip-limit',
      env: { LOGIN_MAX_FAILURES_PER_ACCOUNT: '100', LOGIN_MAX_FAILURES_PER_IP: '3', REDIS_URL: redis.url },
    });
  });
  afterAll(async () => {
    await t?.close();
    await redis?.stop();
  });

  it('refuses an IP that failed too often, whatever account it tries next', async () => {
    const client = await t.build.client({ client_name: 'ip', redirect_uris: [REDIRECT] });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i += 1) {
      const agent = new Agent(t.server.url);
      const { response, url } = await agent.follow(
        authorizeUrl({ client_id: client.clientId, redirect_uri: REDIRECT, code_challenge: pkce().challenge, code_challenge_method: 'S256' }),
      );
      const csrf = hiddenInput(await response.text(), 'csrf') ?? '';
      const answer = await agent.postForm(`${new URL(url).pathname}/login`, { csrf, email: `someone-${i}@example.test`, password: 'wrong password here' });
      statuses.push(answer.status);
    }
    expect(statuses).toEqual([401, 401, 401, 429]);
  });
});
