import { randomUUID } from 'node:crypto';
import { createRemoteJWKSet, customFetch, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACR_BASIC, ACR_MFA } from '../../src/accounts/authentication-context.js';
import { tailAudit } from '../../src/audit/audit-log.js';
import { Agent, authorizeUrl, codeFlow, hiddenInput, pkce } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';

/*
 * How a sign-in's strength reaches the apps (acr, amr), and the apps (or the server) that require a
 * second factor (docs/design/sign-in-methods.md §3, steps 1 and 2 of §10). In process: t.fetch.
 */

const REDIRECT_URI = 'http://127.0.0.1:8765/callback';

describe('acr and amr', () => {
  let t: TestServer;
  let person: { id: string; email: string; password: string };

  beforeAll(async () => {
    t = await startTestServer({ name: 'step-up-acr', listen: false });
    person = await t.build.person({ email: `amr-${randomUUID()}@example.test` });
  });
  afterAll(() => t.close());

  it('discovery lists both acr values, and acr and amr among the claims', async () => {
    const discovery = (await (await t.fetch('/.well-known/openid-configuration')).json()) as Record<string, unknown>;
    expect(discovery.acr_values_supported).toEqual([ACR_BASIC, ACR_MFA]);
    expect(discovery.claims_supported).toEqual(expect.arrayContaining(['acr', 'amr']));
  });

  it('a password sign-in gives an ID token with acr basic and amr pwd (verified against the JWKS); userinfo carries neither', async () => {
    const client = await t.build.client({ client_name: 'Acr App', redirect_uris: [REDIRECT_URI], first_party: true });
    const { status, body } = await codeFlow(new Agent(t.server.url, t.fetch), {
      client,
      redirectUri: REDIRECT_URI,
      email: person.email,
      password: person.password,
      params: { scope: 'openid email' },
    });
    expect(status).toBe(200);
    const jwks = createRemoteJWKSet(new URL(`${t.server.url}/jwks`), { [customFetch]: t.fetch });
    const { payload } = await jwtVerify(String(body.id_token), jwks, { issuer: t.config.issuer, audience: client.clientId });
    expect(payload).toMatchObject({ sub: person.id, acr: ACR_BASIC, amr: ['pwd'], email: person.email });

    const userinfo = await t.fetch('/me', { headers: { authorization: `Bearer ${String(body.access_token)}` } });
    expect(userinfo.status).toBe(200);
    const claims = (await userinfo.json()) as Record<string, unknown>;
    expect(claims.sub).toBe(person.id);
    expect(claims).not.toHaveProperty('acr');
    expect(claims).not.toHaveProperty('amr');
  });

  it('a third-party client gets them too, after consent, and acr_values naming basic changes nothing', async () => {
    const client = await t.build.client({ client_name: 'Third Party Acr', redirect_uris: [REDIRECT_URI] });
    const { status, body } = await codeFlow(new Agent(t.server.url, t.fetch), {
      client,
      redirectUri: REDIRECT_URI,
      email: person.email,
      password: person.password,
      params: { acr_values: ACR_BASIC },
    });
    expect(status).toBe(200);
    recordSecret(String(body.id_token));
    const jwks = createRemoteJWKSet(new URL(`${t.server.url}/jwks`), { [customFetch]: t.fetch });
    const { payload } = await jwtVerify(String(body.id_token), jwks, { issuer: t.config.issuer, audience: client.clientId });
    expect(payload).toMatchObject({ acr: ACR_BASIC, amr: ['pwd'] });
  });
});

/** The form of a page (the first, or the one whose action ends with `suffix`): its action and CSRF token. */
function formOf(html: string, suffix = ''): { action: string; csrf: string } {
  const action = [...html.matchAll(/<form method="post" action="([^"]+)"/g)].map((match) => match[1]!).find((candidate) => candidate.endsWith(suffix));
  if (!action) throw new Error(`no form: ${html.slice(0, 300)}`);
  return { action, csrf: hiddenInput(html, 'csrf') ?? '' };
}

describe('a sign-in that needs a second factor (mfa_required)', () => {
  let t: TestServer;
  let person: { id: string; email: string; password: string };
  /** A client that requires MFA (require_mfa), and one that does not. */
  let strict: { clientId: string; clientSecret: string };
  let plain: { clientId: string; clientSecret: string };
  /** Every authorization code the provider saved (its client), and every browser session it saved (whom it signs in). */
  const codesFor: string[] = [];
  const sessionsOf: Array<string | undefined> = [];

  beforeAll(async () => {
    t = await startTestServer({ name: 'step-up-mfa', listen: false });
    const events = t.server.host.provider as unknown as NodeJS.EventEmitter;
    events.on('authorization_code.saved', (code: { clientId: string }) => codesFor.push(code.clientId));
    events.on('session.saved', (session: { accountId?: string }) => sessionsOf.push(session.accountId));
    person = await t.build.person({ email: `mfa-${randomUUID()}@example.test` });
    strict = await t.build.client({ client_name: 'Bank <b>&</b> Co', redirect_uris: [REDIRECT_URI], first_party: true, require_mfa: true });
    plain = await t.build.client({ client_name: 'Plain App', redirect_uris: [REDIRECT_URI], first_party: true });
  });
  afterAll(() => t.close());

  /** Starts an authorization request on `agent`: where it stopped, and that page's text. */
  async function start(agent: Agent, clientId: string, params: Record<string, string> = {}) {
    const state = randomUUID();
    const { response, url } = await agent.follow(
      authorizeUrl({ client_id: clientId, redirect_uri: REDIRECT_URI, code_challenge: pkce().challenge, code_challenge_method: 'S256', state, ...params }),
    );
    return { response, url, state, html: url.startsWith(t.server.url) ? await response.text() : '' };
  }

  /**
   * Posts the login form of `html` with the person's password: `posted` is its answer; when that is
   * the post/redirect/get to the interaction's own page (a second factor is asked for), `response`
   * and `html` are that page's, else the answer's.
   */
  async function logIn(agent: Agent, html: string) {
    const { action, csrf } = formOf(html);
    expect(action).toMatch(/\/login$/);
    const posted = await agent.postForm(action, { csrf, email: person.email, password: person.password });
    const location = posted.headers.get('location');
    if (posted.status === 303 && location === action.replace(/\/login$/, '')) {
      const { response } = await agent.follow(location);
      return { posted, response, html: await response.text() };
    }
    return { posted, response: posted, html: await posted.text() };
  }

  /** A browser signed in with a password alone (acr basic), through the client that needs nothing more. */
  async function signedInAgent(): Promise<Agent> {
    const agent = new Agent(t.server.url, t.fetch);
    const { status } = await codeFlow(agent, { client: plain, redirectUri: REDIRECT_URI, email: person.email, password: person.password });
    expect(status).toBe(200);
    return agent;
  }

  it('a client with require_mfa: the right password leads to a page that says a second factor is needed and offers to set one up, and cancel ends at the client with unmet_authentication_requirements', async () => {
    const agent = new Agent(t.server.url, t.fetch);
    sessionsOf.length = 0;
    const started = await start(agent, strict.clientId);
    expect(started.html).toContain('name="password"');
    const before = (await tailAudit(t.server.registry.db, { limit: 1 })).at(-1)?.seq ?? 0;

    const { posted, response, html } = await logIn(agent, started.html);
    expect(posted.status).toBe(303);
    expect(posted.headers.get('location')).toBe(new URL(started.url).pathname);
    expect(response.status).toBe(200);
    expect(html).toContain('A second factor is required');
    // The page sets up an authenticator app (test/e2e/enrol-at-sign-in.test.ts): a QR code, the otpauth URI, a code.
    expect(html).toContain('<code id="totp-uri">otpauth://totp/Gatehouse:');
    expect(html).toContain('<svg xmlns="http://www.w3.org/2000/svg"');
    expect(html).toContain('name="code"');
    expect(html).toContain('Bank &lt;b&gt;&amp;&lt;/b&gt; Co requires a second factor for every sign-in.');
    expect(html).not.toContain('<b>&</b>');
    expect(html).toContain(person.email);
    expect(html).toContain('aria-live="polite"');
    expect(html).not.toContain('name="password"');
    expect(html).not.toContain('<script');
    const csp = response.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain(`form-action 'self' ${new URL(REDIRECT_URI).origin}`);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const { action, csrf } = formOf(html, '/mfa/cancel');
    expect(action).toBe(`${new URL(started.url).pathname}/mfa/cancel`);
    expect(formOf(html).action).toBe(`${new URL(started.url).pathname}/mfa/enrol`);
    expect(csrf).not.toBe('');

    // Nothing is recorded yet: the sign-in is neither a success nor a failure until the second factor (as for a person who has one).
    expect(await tailAudit(t.server.registry.db, { afterSeq: before })).toEqual([]);

    // Nothing was finished: going straight to the resume step gives no code, only the login page again.
    const resumed = await agent.follow(`/auth/${new URL(started.url).pathname.split('/').at(-1)}`);
    expect(resumed.url.startsWith(`${t.server.url}/interaction/`), resumed.url).toBe(true);
    expect(await resumed.response.text()).toContain('name="password"');

    // A new request from the same browser: not signed in (prompt=none says login_required).
    const silent = await start(agent, plain.clientId, { prompt: 'none' });
    expect(new URL(silent.url).searchParams.get('error')).toBe('login_required');
    expect(new URL(silent.url).searchParams.get('code')).toBeNull();
    // No browser session ever held the person, and no code was made.
    expect(sessionsOf.filter((accountId) => accountId !== undefined)).toEqual([]);
    expect(codesFor).not.toContain(strict.clientId);
  });

  it('cancel: a wrong CSRF token is refused (403) and changes nothing; the right one ends at the client with unmet_authentication_requirements and no code', async () => {
    const agent = new Agent(t.server.url, t.fetch);
    const started = await start(agent, strict.clientId);
    const { html } = await logIn(agent, started.html);
    const { action, csrf } = formOf(html, '/mfa/cancel');

    const forged = await agent.postForm(action, { csrf: `${csrf}x` });
    expect(forged.status).toBe(403);
    expect(forged.headers.get('location')).toBeNull();
    const missing = await agent.postForm(action, {});
    expect(missing.status).toBe(403);

    const cancelled = await agent.follow(action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ csrf }) });
    const redirect = new URL(cancelled.url);
    expect(redirect.origin + redirect.pathname).toBe(REDIRECT_URI);
    expect(redirect.searchParams.get('error')).toBe('unmet_authentication_requirements');
    expect(redirect.searchParams.get('state')).toBe(started.state);
    expect(redirect.searchParams.get('code')).toBeNull();
    // The interaction is over: cancelling again is refused.
    expect((await agent.postForm(action, { csrf })).status).toBe(400);
  });

  it('acr_values naming only …:mfa, with a password session: the second-factor page at once (no password form); cancel gives unmet_authentication_requirements', async () => {
    const agent = await signedInAgent();
    const started = await start(agent, plain.clientId, { acr_values: ACR_MFA });
    expect(started.response.status).toBe(200);
    expect(started.html).toContain('Plain App asked for a sign-in with a second factor.');
    expect(started.html).toContain(person.email);
    expect(started.html).not.toContain('name="password"');
    expect(started.html).toContain('id="totp-uri"');
    const { action, csrf } = formOf(started.html, '/mfa/cancel');
    const cancelled = await agent.follow(action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ csrf }) });
    const redirect = new URL(cancelled.url);
    expect(redirect.searchParams.get('error')).toBe('unmet_authentication_requirements');
    expect(redirect.searchParams.get('code')).toBeNull();

    // The person is still signed in at acr basic: the plain client still signs in without a prompt.
    const again = await start(agent, plain.clientId, { prompt: 'none' });
    expect(new URL(again.url).searchParams.get('code')).toBeTruthy();
  });

  it('with prompt=none, a request that needs a second factor gets login_required at the redirect_uri, and no code', async () => {
    const agent = await signedInAgent();
    for (const [clientId, params] of [
      [plain.clientId, { acr_values: ACR_MFA }],
      [plain.clientId, { acr_values: `urn:example:unknown ${ACR_MFA}` }],
      [strict.clientId, {}],
    ] as const) {
      const answer = await start(agent, clientId, { prompt: 'none', ...params });
      const redirect = new URL(answer.url);
      expect(redirect.origin + redirect.pathname, JSON.stringify(params)).toBe(REDIRECT_URI);
      expect(redirect.searchParams.get('error')).toBe('login_required');
      expect(redirect.searchParams.get('state')).toBe(answer.state);
      expect(redirect.searchParams.get('code')).toBeNull();
    }
  });

  it('acr_values "…:mfa …:basic" accepts the password session as it is: a code, and acr basic in the ID token', async () => {
    const agent = await signedInAgent();
    const { status, body } = await codeFlow(agent, {
      client: plain,
      redirectUri: REDIRECT_URI,
      email: person.email,
      password: person.password,
      params: { acr_values: `${ACR_MFA} ${ACR_BASIC}`, prompt: 'none' },
    });
    expect(status).toBe(200);
    const jwks = createRemoteJWKSet(new URL(`${t.server.url}/jwks`), { [customFetch]: t.fetch });
    const { payload } = await jwtVerify(String(body.id_token), jwks, { issuer: t.config.issuer, audience: plain.clientId });
    expect(payload).toMatchObject({ acr: ACR_BASIC, amr: ['pwd'] });
  });

  it('a change of require_mfa reaches sign-in once the registry cache has it: set, the second-factor page; cleared, a code', async () => {
    const client = await t.build.client({ client_name: 'Switching App', redirect_uris: [REDIRECT_URI], first_party: true });
    const attempt = async () => {
      const agent = new Agent(t.server.url, t.fetch);
      const started = await start(agent, client.clientId);
      return logIn(agent, started.html);
    };
    const finished = await attempt();
    expect(finished.posted.status).toBe(303);
    expect(finished.posted.headers.get('location')).toMatch(/\/auth\//);

    await t.build.update(client.clientId, { require_mfa: true });
    await t.server.cache.refresh();
    const refused = await attempt();
    expect(refused.posted.status).toBe(303);
    expect(refused.posted.headers.get('location')).toMatch(/^\/interaction\//);
    expect(refused.response.status).toBe(200);
    expect(refused.html).toContain('Switching App requires a second factor for every sign-in.');

    await t.build.update(client.clientId, { require_mfa: false });
    await t.server.cache.refresh();
    const { status } = await codeFlow(new Agent(t.server.url, t.fetch), { client, redirectUri: REDIRECT_URI, email: person.email, password: person.password });
    expect(status).toBe(200);
  });

  it('never made a code for the client that requires a second factor, through every case above', () => {
    expect(codesFor).toContain(plain.clientId);
    expect(codesFor).not.toContain(strict.clientId);
    // The listeners do see what they watch: the plain client's sign-ins saved sessions of the person.
    expect(sessionsOf).toContain(person.id);
  });

  it('the cancel route is refused where no second factor is needed (400), and the sign-in carries on', async () => {
    const agent = new Agent(t.server.url, t.fetch);
    const started = await start(agent, plain.clientId);
    const { csrf } = formOf(started.html);
    const refused = await agent.postForm(`${new URL(started.url).pathname}/mfa/cancel`, { csrf });
    expect(refused.status).toBe(400);
    expect(refused.headers.get('location')).toBeNull();
    const { posted } = await logIn(agent, started.html);
    expect(posted.status).toBe(303);
    expect(posted.headers.get('location')).toMatch(/\/auth\//);
  });
});

describe('MFA_REQUIRED=true', () => {
  let t: TestServer;

  beforeAll(async () => {
    t = await startTestServer({ name: 'step-up-global', listen: false, env: { MFA_REQUIRED: 'true' } });
  });
  afterAll(() => t.close());

  it('every client: the password leads to the page that sets up a second factor, cancel to unmet_authentication_requirements', async () => {
    const person = await t.build.person({ email: `global-${randomUUID()}@example.test` });
    const client = await t.build.client({ client_name: 'Any App', redirect_uris: [REDIRECT_URI] });
    const agent = new Agent(t.server.url, t.fetch);
    const { response, url } = await agent.follow(authorizeUrl({ client_id: client.clientId, redirect_uri: REDIRECT_URI, code_challenge: pkce().challenge, code_challenge_method: 'S256' }));
    const login = formOf(await response.text());
    const posted = await agent.follow(login.action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf: login.csrf, email: person.email, password: person.password }),
    });
    const html = await posted.response.text();
    expect(posted.response.status).toBe(200);
    expect(posted.url).toBe(new URL(url).href);
    expect(html).toContain('Every sign-in on this server needs a second factor.');
    expect(html).toContain('id="totp-uri"');
    const cancel = formOf(html, '/mfa/cancel');
    expect(cancel.action).toBe(`${new URL(url).pathname}/mfa/cancel`);
    const cancelled = await agent.follow(cancel.action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ csrf: cancel.csrf }) });
    expect(new URL(cancelled.url).searchParams.get('error')).toBe('unmet_authentication_requirements');
    expect(new URL(cancelled.url).searchParams.get('code')).toBeNull();
  });
});
