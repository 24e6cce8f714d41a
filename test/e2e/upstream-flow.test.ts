import { decodeJwt } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadDataKeyring } from '../../src/keys/data-key.js';
import { beginTotpEnrolment, confirmTotpEnrolment } from '../../src/services/second-factors.service.js';
import { disableUser } from '../../src/services/users.service.js';
import { linkUpstream } from '../../src/services/upstream-links.service.js';
import { createProvider, updateProvider, type UpstreamProviderDeps } from '../../src/services/upstream-providers.service.js';
import { totpCode } from '../fixtures/totp.js';
import { startFakeOp, type FakeOp } from '../fixtures/fake-op.js';
import { Agent, authorizeUrl, hiddenInput, pkce } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';
import { TEST_ACTOR } from '../fixtures/services.js';

/**
 * Sign-in with an upstream provider at the HTTP level (docs/design/sign-in-methods.md §6): the
 * fake provider of test/fixtures/fake-op.ts answers at once and misbehaves on request (wrong aud,
 * nonce or issuer; access_denied; a closed port), so each refusal is one case; the same flows in
 * Chromium against a real oidc-provider are in upstream-browser.test.ts.
 */

const REDIRECT = 'http://127.0.0.1:8767/cb';
const OP_CLIENT_ID = 'gatehouse-at-fake';
const OP_SECRET = 'fake-op-client-secret-0123456789';

describe('sign-in with an upstream provider (HTTP level, a fake provider that can misbehave)', () => {
  let t: TestServer;
  let base: string;
  let op: FakeOp;
  let deps: UpstreamProviderDeps;
  let client: { clientId: string; clientSecret: string };
  let counter = 0;

  beforeAll(async () => {
    recordSecret(OP_SECRET);
    t = await startTestServer({ name: 'upstream-flow' });
    base = t.config.issuer;
    op = await startFakeOp(OP_CLIENT_ID, OP_SECRET);
    deps = { ...t.services, dataKeys: await loadDataKeyring(t.config.keysDir, { generateIfMissing: false }), production: false };
    await createProvider(deps, TEST_ACTOR, { id: 'fake', name: 'Fake OP', issuer: op.issuer, client_id: OP_CLIENT_ID, client_secret: OP_SECRET, allow_signup: true });
    client = await t.build.client({ client_name: 'upstream app', redirect_uris: [REDIRECT], first_party: true });
  }, 60_000);
  afterAll(async () => {
    await op?.close();
    await t?.close();
  });
  beforeEach(async () => {
    Object.assign(op.behaviour, { sub: `subject-${(counter += 1)}`, email: undefined, emailVerified: false, name: 'Upstream Person' });
    for (const key of ['authorizationError', 'aud', 'nonce', 'iss', 'tokenError'] as const) delete op.behaviour[key];
    await updateProvider(deps, TEST_ACTOR, 'fake', { allow_signup: true, allowed_email_domains: [] });
  });

  const count = async (table: 'users' | 'upstream_links') =>
    Number((await t.server.registry.db.selectFrom(table).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
  const auditRows = (action: string) =>
    t.server.registry.db.selectFrom('audit_log').selectAll().where('action', '=', action).orderBy('seq', 'desc').execute();

  async function loginPage(agent = new Agent(base)) {
    const { verifier, challenge } = pkce();
    const { response, url } = await agent.follow(
      authorizeUrl({ client_id: client.clientId, redirect_uri: REDIRECT, code_challenge: challenge, code_challenge_method: 'S256', scope: 'openid email' }),
    );
    const html = await response.text();
    return { agent, verifier, url, html, response, uid: new URL(url).pathname.split('/')[2] ?? '', csrf: hiddenInput(html, 'csrf') ?? '' };
  }

  /** Clicks "Continue with Fake OP": the start POST, the provider's answer; returns the callback URL it sends the browser to. */
  async function toProvider(page: Awaited<ReturnType<typeof loginPage>>, providerId = 'fake') {
    const start = await page.agent.postForm(`/interaction/${page.uid}/upstream/${providerId}/start`, { csrf: page.csrf });
    expect(start.status).toBe(303);
    const authorize = new URL(start.headers.get('location') ?? '');
    const answer = await fetch(authorize, { redirect: 'manual' });
    expect(answer.status).toBe(302);
    return { authorize, callback: answer.headers.get('location') ?? '' };
  }

  /** The whole round trip; where the browser ends up. */
  async function viaProvider(page?: Awaited<ReturnType<typeof loginPage>>) {
    const login = page ?? (await loginPage());
    const { callback } = await toProvider(login);
    const end = await login.agent.follow(callback);
    return { ...end, login };
  }

  async function idTokenFrom(redirect: string, verifier: string) {
    const code = new URL(redirect).searchParams.get('code');
    expect(code, redirect).toBeTruthy();
    const token = await tokenRequest(base, { grant_type: 'authorization_code', code: code!, redirect_uri: REDIRECT, code_verifier: verifier }, client);
    expect(token.status).toBe(200);
    return decodeJwt(String(token.body.id_token));
  }

  it('shows "Continue with Fake OP" on the login page, and its form-action allows the provider', async () => {
    const page = await loginPage();
    expect(page.html).toMatch(/<button type="submit" class="secondary" data-provider="fake">Continue with Fake OP<\/button>/);
    expect(page.html).toContain(`action="/interaction/${page.uid}/upstream/fake/start"`);
    const csp = page.response.headers.get('content-security-policy') ?? '';
    expect(csp).toMatch(new RegExp(`form-action 'self'[^;]*${op.issuer.replace(/[.:/]/g, '\\$&')}`));
    expect(csp).not.toContain('unsafe-inline');
  });

  it('sends the browser to the provider with PKCE S256, state, nonce, the one redirect URI and the scopes', async () => {
    const { authorize } = await toProvider(await loginPage());
    const params = authorize.searchParams;
    expect(authorize.origin + authorize.pathname).toBe(`${op.issuer}/authorize`);
    expect(params.get('client_id')).toBe(OP_CLIENT_ID);
    expect(params.get('redirect_uri')).toBe(`${base}/upstream/callback`);
    expect(params.get('code_challenge_method')).toBe('S256');
    expect(params.get('code_challenge')).toMatch(/^[\w-]{43}$/);
    expect(params.get('state')).toMatch(/^[\w-]{20,}$/);
    expect(params.get('nonce')).toMatch(/^[\w-]{20,}$/);
    expect(params.get('scope')).toBe('openid email profile');
  });

  it('a first arrival with a verified email makes a person without a password, and the second arrival is that person again', async () => {
    op.behaviour.email = `new-${counter}@example.test`;
    op.behaviour.emailVerified = true;
    const users = await count('users');
    const first = await viaProvider();
    expect(first.url.startsWith(REDIRECT)).toBe(true);
    const idToken = await idTokenFrom(first.url, first.login.verifier);
    const user = await t.server.registry.db.selectFrom('users').selectAll().where('id', '=', String(idToken.sub)).executeTakeFirstOrThrow();
    expect(user).toMatchObject({ email: `new-${counter}@example.test`, email_verified: true, password_hash: null, name: 'Upstream Person' });
    expect(idToken.acr).toBe('urn:gatehouse:acr:basic');
    expect(idToken.amr).toBeUndefined();
    expect(await count('users')).toBe(users + 1);
    const [signup] = await auditRows('upstream.signup');
    expect(signup).toMatchObject({ actor: 'upstream:fake', target: `user:${user.id}`, details: { provider_id: 'fake', issuer: op.issuer, subject: op.behaviour.sub } });
    const [success] = await auditRows('signin.success');
    expect(success).toMatchObject({ actor: `user:${user.id}`, details: { method: 'upstream', provider_id: 'fake', signed_up: true } });
    // The person's "Recent sign-ins" has it, with the provider.
    const history = await t.server.registry.db.selectFrom('sign_ins').selectAll().where('user_id', '=', user.id).execute();
    expect(history).toHaveLength(1);
    expect(history[0]).toMatchObject({ method: 'upstream', upstream_provider_id: 'fake', acr: 'urn:gatehouse:acr:basic', amr: [] });

    const second = await viaProvider();
    expect((await idTokenFrom(second.url, second.login.verifier)).sub).toBe(user.id);
    expect(await count('users')).toBe(users + 1);
    // A password sign-in of this person is refused (there is none), as any wrong password is.
    const page = await loginPage();
    const refused = await page.agent.postForm(`/interaction/${page.uid}/login`, { csrf: page.csrf, email: user.email, password: 'any password at all 123' });
    expect(refused.status).toBe(401);
  });

  it('an existing person with that verified email links only after signing in with their password', async () => {
    const person = await t.build.person({ email: `owner-${counter}@example.test` });
    op.behaviour.email = person.email.toUpperCase();
    op.behaviour.emailVerified = true;
    const links = await count('upstream_links');
    const { response, url, login } = await viaProvider();
    // Back on the sign-in page, with the email filled in and a notice; nothing linked yet.
    expect(url).toBe(`${base}/interaction/${login.uid}`);
    const html = await response.text();
    expect(html).toContain(`An account for ${person.email} already exists. Sign in to it to connect Fake OP.`);
    expect(html).toContain(`value="${person.email}"`);
    expect(await count('upstream_links')).toBe(links);
    // A wrong password links nothing.
    const wrong = await login.agent.postForm(`/interaction/${login.uid}/login`, { csrf: login.csrf, email: person.email, password: 'not the right password 1' });
    expect(wrong.status).toBe(401);
    expect(await count('upstream_links')).toBe(links);
    const right = await login.agent.follow(`/interaction/${login.uid}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf: login.csrf, email: person.email, password: person.password }),
    });
    expect(right.url.startsWith(REDIRECT)).toBe(true);
    expect((await idTokenFrom(right.url, login.verifier)).sub).toBe(person.id);
    const link = await t.server.registry.db.selectFrom('upstream_links').selectAll().where('user_id', '=', person.id).executeTakeFirstOrThrow();
    expect(link).toMatchObject({ provider_id: 'fake', issuer: op.issuer, subject: op.behaviour.sub });
    const [audited] = await auditRows('upstream.link');
    expect(audited).toMatchObject({ actor: `person:${person.id}`, target: `user:${person.id}`, details: { provider_id: 'fake', subject: op.behaviour.sub } });
    // From now on the provider alone signs this person in.
    const again = await viaProvider();
    expect((await idTokenFrom(again.url, again.login.verifier)).sub).toBe(person.id);
  });

  it('a linked person with an authenticator app gives a code after the provider: amr otp+mfa, acr mfa', async () => {
    const person = await t.build.person();
    await linkUpstream(deps, TEST_ACTOR, person.id, { providerId: 'fake', iss: op.issuer, sub: op.behaviour.sub, email: null, emailVerified: false, name: null });
    const factors = { db: deps.db, audit: deps.audit, dataKeys: deps.dataKeys };
    const { secret } = await beginTotpEnrolment(factors, person.id, { issuer: 'Gatehouse' });
    recordSecret(secret);
    await confirmTotpEnrolment(factors, { actor: `person:${person.id}` }, person.id, await totpCode(secret, -30_000));
    const { response, url, login } = await viaProvider();
    // Not finished: the second-factor page of this interaction, and the resume URL gives nothing yet.
    expect(url).toBe(`${base}/interaction/${login.uid}`);
    const html = await response.text();
    expect(html).toContain('name="code"');
    const done = await login.agent.follow(`/interaction/${login.uid}/mfa`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf: login.csrf, code: await totpCode(secret) }),
    });
    expect(done.url.startsWith(REDIRECT)).toBe(true);
    const idToken = await idTokenFrom(done.url, login.verifier);
    expect(idToken).toMatchObject({ sub: person.id, acr: 'urn:gatehouse:acr:mfa', amr: ['otp', 'mfa'] });
    const [success] = await auditRows('signin.success');
    expect(success).toMatchObject({ actor: `user:${person.id}`, details: { method: 'upstream', amr: ['otp', 'mfa'] } });
    const history = await t.server.registry.db.selectFrom('sign_ins').selectAll().where('user_id', '=', person.id).execute();
    expect(history.map((row) => ({ method: row.method, amr: row.amr, acr: row.acr }))).toEqual([{ method: 'upstream', amr: ['otp', 'mfa'], acr: 'urn:gatehouse:acr:mfa' }]);
  });

  it('a linked person whose sessions were just ended (sessions_valid_after now) gets a session that counts: the sign-in waits out that second, as a password sign-in does', async () => {
    const person = await t.build.person();
    await linkUpstream(deps, TEST_ACTOR, person.id, { providerId: 'fake', iss: op.issuer, sub: op.behaviour.sub, email: null, emailVerified: false, name: null });
    const login = await loginPage();
    const { callback } = await toProvider(login);
    const hop = await login.agent.request(callback);
    expect(hop.status).toBe(303);
    expect(hop.headers.get('location')).toBe(`/interaction/${login.uid}/upstream`);
    // A password change (or an administrator ending the sessions) just before the sign-in finishes.
    // oidc-provider keeps loginTs in whole seconds, and a session of the cutoff's own second counts
    // as before it: without the wait, this sign-in would make a session that is over at once.
    // (At the start of a second, so that without the wait the sign-in would all but surely fall in
    // the cutoff's second: the wait is what this shows; with it the test passes whenever it finishes.)
    await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000) + 5));
    const cutoff = new Date();
    await t.server.registry.db.updateTable('users').set({ sessions_valid_after: cutoff }).where('id', '=', person.id).execute();
    const done = await login.agent.follow(`/interaction/${login.uid}/upstream`);
    expect(done.url.startsWith(REDIRECT)).toBe(true);
    expect((await idTokenFrom(done.url, login.verifier)).sub).toBe(person.id);
    const session = await t.server.host.provider.Session.find(login.agent.cookies.get('_session') ?? '');
    expect(session?.accountId).toBe(person.id);
    expect(session!.loginTs! * 1000).toBeGreaterThanOrEqual(cutoff.getTime());
    // The account page (which applies findAccount's rules to the session) takes it as signed in.
    const account = await login.agent.request('/account');
    expect(account.status).toBe(200);
  });

  it('the same with a second factor after the provider: the code\'s sign-in waits out the cutoff\'s second too', async () => {
    const person = await t.build.person();
    await linkUpstream(deps, TEST_ACTOR, person.id, { providerId: 'fake', iss: op.issuer, sub: op.behaviour.sub, email: null, emailVerified: false, name: null });
    const factors = { db: deps.db, audit: deps.audit, dataKeys: deps.dataKeys };
    const { secret } = await beginTotpEnrolment(factors, person.id, { issuer: 'Gatehouse' });
    recordSecret(secret);
    await confirmTotpEnrolment(factors, { actor: `person:${person.id}` }, person.id, await totpCode(secret, -30_000));
    const login = await loginPage();
    const { callback } = await toProvider(login);
    expect((await login.agent.request(callback)).status).toBe(303);
    const code = await totpCode(secret);
    await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000) + 5));
    const cutoff = new Date();
    await t.server.registry.db.updateTable('users').set({ sessions_valid_after: cutoff }).where('id', '=', person.id).execute();
    const asked = await login.agent.follow(`/interaction/${login.uid}/upstream`);
    expect(asked.url).toBe(`${base}/interaction/${login.uid}`);
    const done = await login.agent.follow(`/interaction/${login.uid}/mfa`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf: login.csrf, code }),
    });
    expect(done.url.startsWith(REDIRECT)).toBe(true);
    expect((await idTokenFrom(done.url, login.verifier)).sub).toBe(person.id);
    const session = await t.server.host.provider.Session.find(login.agent.cookies.get('_session') ?? '');
    expect(session!.loginTs! * 1000).toBeGreaterThanOrEqual(cutoff.getTime());
  });

  it('a client that requires a second factor: a linked person without one is asked to set one up, nothing finished', async () => {
    const person = await t.build.person();
    await linkUpstream(deps, TEST_ACTOR, person.id, { providerId: 'fake', iss: op.issuer, sub: op.behaviour.sub, email: null, emailVerified: false, name: null });
    const strict = await t.build.client({ client_name: 'strict app', redirect_uris: [REDIRECT], first_party: true, require_mfa: true });
    await t.server.cache.refresh();
    const agent = new Agent(base);
    const { challenge } = pkce();
    const start = await agent.follow(authorizeUrl({ client_id: strict.clientId, redirect_uri: REDIRECT, code_challenge: challenge, code_challenge_method: 'S256' }));
    const html = await start.response.text();
    const page = { agent, verifier: '', url: start.url, html, response: start.response, uid: new URL(start.url).pathname.split('/')[2] ?? '', csrf: hiddenInput(html, 'csrf') ?? '' };
    const { response, url } = await viaProvider(page);
    expect(url).toBe(`${base}/interaction/${page.uid}`);
    expect(await response.text()).toContain('id="totp-uri"');
    expect(await auditRows('signin.success').then((rows) => rows.filter((row) => row.actor === `user:${person.id}`))).toEqual([]);
  });

  it('signing in as someone else than the email named links nothing', async () => {
    const owner = await t.build.person({ email: `owner2-${counter}@example.test` });
    const other = await t.build.person();
    op.behaviour.email = owner.email;
    op.behaviour.emailVerified = true;
    const { login } = await viaProvider();
    const done = await login.agent.follow(`/interaction/${login.uid}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf: login.csrf, email: other.email, password: other.password }),
    });
    expect(done.url.startsWith(REDIRECT)).toBe(true);
    const links = await t.server.registry.db.selectFrom('upstream_links').selectAll().where('subject', '=', op.behaviour.sub).execute();
    expect(links).toEqual([]);
  });

  describe('refusals: a clear page, the right status, nothing written, an audit row with the reason', () => {
    async function refused(expected: { status: number; kind: string; text: RegExp }, run: () => Promise<{ response: Response }>) {
      const [users, links] = [await count('users'), await count('upstream_links')];
      const { response } = await run();
      expect(response.status).toBe(expected.status);
      expect(response.headers.get('content-type')).toMatch(/text\/html/);
      const html = await response.text();
      expect(html).toMatch(expected.text);
      expect(html).toContain(`<code>${expected.kind}</code>`);
      expect(html).not.toMatch(/at .*\.(ts|js):\d+/);
      expect([await count('users'), await count('upstream_links')]).toEqual([users, links]);
      const [row] = await auditRows('upstream.failure');
      expect(row?.details).toMatchObject({ kind: expected.kind });
      return { html, row };
    }

    it('an unverified email neither links to the person who has it nor signs up', async () => {
      const person = await t.build.person({ email: `unverified-${counter}@example.test` });
      op.behaviour.email = person.email;
      op.behaviour.emailVerified = false;
      await refused({ status: 400, kind: 'email_not_verified', text: /has not verified your email address/ }, () => viaProvider());
    });

    it('an email outside the allowed domains', async () => {
      await updateProvider(deps, TEST_ACTOR, 'fake', { allowed_email_domains: ['Example.ORG'] });
      op.behaviour.email = `someone-${counter}@example.test`;
      op.behaviour.emailVerified = true;
      await refused({ status: 400, kind: 'email_domain_not_allowed', text: /domain cannot sign in with Fake OP/ }, () => viaProvider());
      // The allowed domain, compared lower-cased, signs up.
      op.behaviour.email = `someone-${counter}@EXAMPLE.org`;
      const allowed = await viaProvider();
      expect(allowed.url.startsWith(REDIRECT)).toBe(true);
    });

    it('a new person where sign-up is off', async () => {
      await updateProvider(deps, TEST_ACTOR, 'fake', { allow_signup: false });
      op.behaviour.email = `nobody-${counter}@example.test`;
      op.behaviour.emailVerified = true;
      await refused({ status: 400, kind: 'signup_not_allowed', text: /cannot be used to create one/ }, () => viaProvider());
    });

    it('a linked person who is disabled, and a provider turned off between the start and the callback', async () => {
      const person = await t.build.person();
      await linkUpstream(deps, TEST_ACTOR, person.id, { providerId: 'fake', iss: op.issuer, sub: op.behaviour.sub, email: null, emailVerified: false, name: null });
      await disableUser(t.services, TEST_ACTOR, person.id);
      await refused({ status: 400, kind: 'account_disabled', text: /This account cannot sign in/ }, () => viaProvider());

      op.behaviour.sub = `${op.behaviour.sub}-other`;
      const login = await loginPage();
      const { callback } = await toProvider(login);
      await updateProvider(deps, TEST_ACTOR, 'fake', { enabled: false });
      try {
        await refused({ status: 400, kind: 'disabled_provider', text: /not available here/ }, () => login.agent.follow(callback));
      } finally {
        await updateProvider(deps, TEST_ACTOR, 'fake', { enabled: true });
      }
    });

    it('the provider answering access_denied', async () => {
      op.behaviour.authorizationError = 'access_denied';
      const { html, row } = await refused({ status: 400, kind: 'provider_error', text: /answered &quot;access_denied&quot;/ }, () => viaProvider());
      expect(row?.details).toMatchObject({ error: 'access_denied' });
      expect(row?.target).toBe('provider:fake');
      expect(html).toMatch(/href="\/interaction\/[\w-]+">Choose another way to sign in/);
    });

    for (const [fault, value] of [['aud', 'someone-else'], ['nonce', 'not-the-nonce'], ['iss', 'http://localhost:1']] as const) {
      it(`an ID token with the wrong ${fault}`, async () => {
        op.behaviour[fault] = value;
        op.behaviour.email = `${fault}-${counter}@example.test`;
        op.behaviour.emailVerified = true;
        const { row } = await refused({ status: 400, kind: 'invalid_response', text: /did not pass Gatehouse&#39;s checks/ }, () => viaProvider());
        expect(String(row?.details.error)).toMatch(new RegExp(`^OAUTH_\\w+:${fault}$`));
      });
    }

    it('the token endpoint refusing the code', async () => {
      op.behaviour.tokenError = 'invalid_grant';
      const { row } = await refused({ status: 400, kind: 'invalid_response', text: /did not pass Gatehouse&#39;s checks/ }, () => viaProvider());
      expect(row?.details).toMatchObject({ error: 'invalid_grant' });
    });

    it('a replayed callback, and a made-up state', async () => {
      op.behaviour.email = `replay-${counter}@example.test`;
      op.behaviour.emailVerified = true;
      const login = await loginPage();
      const { callback } = await toProvider(login);
      expect((await login.agent.follow(callback)).url.startsWith(REDIRECT)).toBe(true);
      await refused({ status: 400, kind: 'expired', text: /expired or was already used/ }, () => login.agent.follow(callback));
      const forged = new URL(callback);
      forged.searchParams.set('state', 'made-up-state-value-0123456789');
      await refused({ status: 400, kind: 'expired', text: /expired or was already used/ }, () => login.agent.follow(forged.href));
    });

    it('two callbacks racing with one state: exactly one goes on', async () => {
      op.behaviour.email = `race-${counter}@example.test`;
      op.behaviour.emailVerified = true;
      const login = await loginPage();
      const { callback } = await toProvider(login);
      const tokensBefore = op.seen.token;
      const answers = await Promise.all([fetch(callback, { redirect: 'manual' }), fetch(callback, { redirect: 'manual' })]);
      expect(answers.map((a) => a.status).sort()).toEqual([303, 400]);
      // The code was exchanged once.
      expect(op.seen.token).toBe(tokensBefore + 1);
    });

    it('the result cannot be finished in another browser (no interaction cookie)', async () => {
      op.behaviour.email = `elsewhere-${counter}@example.test`;
      op.behaviour.emailVerified = true;
      const users = await count('users');
      const { callback } = await toProvider(await loginPage());
      const other = await new Agent(base).follow(callback);
      expect(other.response.status).toBe(400);
      expect(await other.response.text()).toContain('This sign-in link has expired');
      expect(await count('users')).toBe(users);
    });

    it('the start form without its CSRF token goes nowhere', async () => {
      const page = await loginPage();
      const before = op.seen.authorize.length;
      const start = await page.agent.postForm(`/interaction/${page.uid}/upstream/fake/start`, { csrf: 'forged' });
      expect(start.status).toBe(403);
      expect(start.headers.get('location')).toBeNull();
      const unknown = await page.agent.postForm(`/interaction/${page.uid}/upstream/no-such/start`, { csrf: page.csrf });
      expect(unknown.status).toBe(400);
      expect(await unknown.text()).toContain('<code>disabled_provider</code>');
      expect(op.seen.authorize.length).toBe(before);
    });

    it('a provider that is down at discovery, and one that goes down before the token call: 502, and Gatehouse stays healthy', async () => {
      const down = await startFakeOp(OP_CLIENT_ID, OP_SECRET);
      await createProvider(deps, TEST_ACTOR, { id: 'down', name: 'Down OP', issuer: down.issuer, client_id: OP_CLIENT_ID, client_secret: OP_SECRET, enabled: false });
      await down.close();
      await updateProvider(deps, TEST_ACTOR, 'down', { enabled: true });
      const page = await loginPage();
      expect(page.html).toContain('data-provider="down"');
      const start = await page.agent.postForm(`/interaction/${page.uid}/upstream/down/start`, { csrf: page.csrf });
      expect(start.status).toBe(502);
      expect(await start.text()).toMatch(/Down OP could not be reached[\s\S]*<code>provider_unreachable<\/code>/);
      expect((await auditRows('upstream.failure'))[0]).toMatchObject({ target: 'provider:down', details: { kind: 'provider_unreachable' } });
      await updateProvider(deps, TEST_ACTOR, 'down', { enabled: false });

      const flaky = await startFakeOp(OP_CLIENT_ID, OP_SECRET);
      await createProvider(deps, TEST_ACTOR, { id: 'flaky', name: 'Flaky OP', issuer: flaky.issuer, client_id: OP_CLIENT_ID, client_secret: OP_SECRET });
      flaky.behaviour.email = `flaky-${counter}@example.test`;
      flaky.behaviour.emailVerified = true;
      const login = await loginPage();
      const { callback } = await toProvider(login, 'flaky');
      await flaky.close();
      await refused({ status: 502, kind: 'provider_unreachable', text: /Flaky OP could not be reached/ }, () => login.agent.follow(callback));
      await updateProvider(deps, TEST_ACTOR, 'flaky', { enabled: false });
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
    });
  });
});
