import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normaliseRecoveryCode, recoveryCodeDigest } from '../../src/accounts/recovery-codes.js';
import { tailAudit } from '../../src/audit/audit-log.js';
import { safeAccountPath } from '../../src/interactions/account-session.js';
import { describeUserAgent } from '../../src/interactions/account.routes.js';
import { insertSignIn } from '../../src/registry/sign-in.repository.js';
import { ACCOUNT_CLIENT_ID } from '../../src/services/built-in-clients.js';
import { deleteClient, grantClient, rotateClientSecret, updateClient } from '../../src/services/clients.service.js';
import { ConflictError } from '../../src/services/errors.js';
import { createSignInRecorder } from '../../src/services/sign-ins.service.js';
import { createLogger } from '../../src/observability/logger.js';
import { Agent, authorizeUrl, hiddenInput, pkce } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';
import { TEST_ACTOR } from '../fixtures/services.js';
import { totpCode } from '../fixtures/totp.js';

/*
 * The account page (docs/design/sign-in-methods.md §7.3, step 6 of §10), in process (t.fetch):
 * sign-in through the built-in client gatehouse-account, who is signed in read from the provider's
 * session by the parent Koa app (§13.1), recent authentication for sensitive changes, the account
 * CSRF token, the two-step verification section, and the sign-in history.
 */

const REDIRECT_URI = 'http://127.0.0.1:8765/callback';

interface Person {
  id: string;
  email: string;
  password: string;
}

const unescapeHtml = (text: string) => text.replaceAll('&quot;', '"').replaceAll('&#39;', "'").replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&');

/** The form whose action is `action` on a page: its CSRF token (every account form carries the same). */
function csrfOf(html: string): string {
  const token = hiddenInput(html, 'csrf');
  expect(token, html.slice(0, 400)).toBeTruthy();
  return token!;
}

/** The otpauth URI of #totp-uri and its secret. */
function enrolmentOf(html: string): { uri: string; secret: string; startedAt: string } {
  const text = /<code id="totp-uri">([^<]+)<\/code>/.exec(html)?.[1];
  expect(text, html.slice(0, 600)).toBeTruthy();
  const uri = unescapeHtml(text!);
  const secret = new URL(uri).searchParams.get('secret') ?? '';
  recordSecret(secret);
  recordSecret(uri);
  return { uri, secret, startedAt: hiddenInput(html, 'started_at') ?? '' };
}

/** The recovery codes of #recovery-codes li. */
function recoveryCodesOf(html: string): string[] {
  const list = /<ol id="recovery-codes"[^>]*>([\s\S]*?)<\/ol>/.exec(html)?.[1];
  if (!list) return [];
  const codes = [...list.matchAll(/<li><code>([^<]+)<\/code><\/li>/g)].map((match) => match[1]!);
  for (const code of codes) recordSecret(code);
  return codes;
}

describe('the account page', () => {
  let t: TestServer;
  let strict: { clientId: string; clientSecret: string };

  beforeAll(async () => {
    t = await startTestServer({ name: 'account', listen: false });
    strict = await t.build.client({ client_name: 'Strict App', redirect_uris: [REDIRECT_URI], first_party: true });
  });
  afterAll(() => t.close());

  const newPerson = (): Promise<Person> => t.build.person({ email: `account-${randomUUID()}@example.test` });
  const db = () => t.server.registry.db;

  /** Follows /account on `agent` to the login page, signs in with the password (and `code` when asked), and answers where it ended. */
  async function signInAtAccount(agent: Agent, person: Person, options: { code?: () => Promise<string>; userAgent?: string; start?: string } = {}) {
    let { response, url } = await agent.follow(options.start ?? '/account');
    let html = await response.text();
    const login = /<form method="post" action="([^"]+\/login)"/.exec(html)?.[1];
    expect(login, `${url}: ${html.slice(0, 300)}`).toBeTruthy();
    const headers: Record<string, string> = options.userAgent ? { 'user-agent': options.userAgent } : {};
    const posted = await agent.postForm(login!, { csrf: csrfOf(html), email: person.email, password: person.password }, headers);
    expect(posted.status).toBe(303);
    ({ response, url } = await agent.follow(posted.headers.get('location')!));
    html = await response.text();
    const mfa = /<form method="post" action="([^"]+\/mfa)"/.exec(html)?.[1];
    if (mfa) {
      expect(options.code, 'the second-factor page was not expected').toBeDefined();
      const code = await options.code!();
      const sent = await agent.postForm(mfa, { csrf: csrfOf(html), code }, headers);
      expect(sent.status).toBe(303);
      ({ response, url } = await agent.follow(sent.headers.get('location')!));
      html = await response.text();
    } else {
      expect(options.code, 'the second-factor page was expected').toBeUndefined();
    }
    return { response, url, html, askedForCode: Boolean(mfa) };
  }

  /** A person signed in on a new browser, on their account page. */
  async function signedIn(person?: Person) {
    const who = person ?? (await newPerson());
    const agent = new Agent(t.server.url, t.fetch);
    const page = await signInAtAccount(agent, who);
    expect(page.url).toBe(`${t.server.url}/account`);
    expect(page.response.status).toBe(200);
    return { person: who, agent, html: page.html };
  }

  /** Moves the browser session's sign-in time back by `seconds`, as if it signed in that long ago. */
  async function ageSession(agent: Agent, seconds: number) {
    const id = agent.cookies.get('_session');
    expect(id).toBeTruthy();
    const session = await t.server.host.provider.Session.find(id!);
    expect(session?.accountId).toBeTruthy();
    session!.loginTs = (session!.loginTs ?? 0) - seconds;
    await session!.save(3600);
  }

  const lastSeq = async () => (await tailAudit(db(), { limit: 1 })).at(-1)?.seq ?? 0;
  const auditSince = async (seq: number) => (await tailAudit(db(), { afterSeq: seq })).map((row) => ({ actor: row.actor, action: row.action, target: row.target }));

  async function factorRows(userId: string) {
    const factors = await sql<{ state: string }>`select state from totp_factors where user_id = ${userId} order by state`.execute(db());
    const codes = await sql<{ digest: string; used_at: Date | null }>`select digest, used_at from recovery_codes where user_id = ${userId} order by digest`.execute(db());
    return { factors: factors.rows.map((row) => row.state), digests: codes.rows.map((row) => row.digest) };
  }

  async function signInRows(userId: string) {
    const rows = await sql<{ method: string; amr: string[]; acr: string; client_id: string | null; ip: string | null; user_agent: string | null }>`
      select method, amr, acr, client_id, ip, user_agent from sign_ins where user_id = ${userId} order by at, id`.execute(db());
    return rows.rows;
  }

  /** Enables TOTP from the account page of a recently signed-in session; answers the secret and the codes. */
  async function enableTotp(agent: Agent, html: string) {
    const started = await agent.postForm('/account/totp', { csrf: csrfOf(html) });
    expect(started.status).toBe(200);
    const startedHtml = await started.text();
    const { secret, startedAt, uri } = enrolmentOf(startedHtml);
    expect(uri).toMatch(/^otpauth:\/\/totp\/Gatehouse:/);
    const confirmed = await agent.postForm('/account/totp/confirm', { csrf: csrfOf(startedHtml), started_at: startedAt, code: await totpCode(secret) });
    expect(confirmed.status).toBe(200);
    const confirmedHtml = await confirmed.text();
    const codes = recoveryCodesOf(confirmedHtml);
    return { secret, codes, html: confirmedHtml };
  }

  it('not signed in: /account → /account/sign-in → the authorization endpoint with the built-in client (PKCE, its callback, a state); after the password, back on /account with no consent page; the session is read by the parent app', async () => {
    const person = await newPerson();
    const agent = new Agent(t.server.url, t.fetch);
    const first = await agent.request('/account');
    expect(first.status).toBe(303);
    expect(first.headers.get('location')).toBe('/account/sign-in');
    const toAuth = await agent.request('/account/sign-in');
    expect(toAuth.status).toBe(303);
    const auth = new URL(toAuth.headers.get('location')!, t.server.url);
    expect(auth.pathname).toBe('/auth');
    expect(auth.searchParams.get('client_id')).toBe(ACCOUNT_CLIENT_ID);
    expect(auth.searchParams.get('redirect_uri')).toBe(`${t.config.issuer}/account/callback`);
    expect(auth.searchParams.get('code_challenge_method')).toBe('S256');
    expect(auth.searchParams.get('state')).toMatch(/^[\w-]{20,}$/);
    expect(auth.searchParams.get('max_age')).toBeNull();

    const page = await signInAtAccount(agent, person);
    expect(page.url).toBe(`${t.server.url}/account`);
    expect(page.response.status).toBe(200);
    expect(page.html).toContain('<h1>Your account</h1>');
    expect(page.html).toContain('<main class="card wide">');
    expect(page.html).toContain(person.email);
    expect(page.html).toContain('<h2 id="two-step">Two-step verification</h2>');
    expect(page.html).toContain('id="enable-totp"');
    // The passkeys section: its empty state and #add-passkey, whose script is the page's only one (by this response's nonce).
    expect(page.html).toContain('<h2 id="passkeys">Passkeys</h2>');
    expect(page.html).toContain('id="passkeys-empty"');
    expect(page.html).toContain('id="add-passkey"');
    expect(page.html).not.toContain('Allow access');
    const csp = page.response.headers.get('content-security-policy')!;
    expect(csp).toMatch(/default-src 'none'/);
    expect(csp).not.toMatch(/unsafe-inline/);
    const nonce = /script-src 'nonce-([A-Za-z0-9+/=]+)'; connect-src 'self'/.exec(csp)?.[1];
    expect(nonce).toBeTruthy();
    expect([...page.html.matchAll(/<script[^>]*>/g)].map((match) => match[0])).toEqual([
      `<script src="/assets/webauthn.js" nonce="${nonce}" defer>`,
      `<script src="/assets/passkey.js" nonce="${nonce}" defer>`,
    ]);
    expect(page.response.headers.get('cache-control')).toBe('no-store');
    // And again: the session is there, no sign-in.
    const again = await agent.request('/account');
    expect(again.status).toBe(200);

    // Sign out: the provider's end-session page, then /account asks to sign in again.
    expect(page.html).toContain('<a href="/session/end?client_id=gatehouse-account" id="sign-out">Sign out</a>');
    const logout = await agent.request('/session/end?client_id=gatehouse-account');
    expect(logout.status).toBe(200);
    const logoutHtml = await logout.text();
    const confirm = /<form[^>]*action="([^"]+)"/.exec(logoutHtml)?.[1];
    expect(confirm, logoutHtml.slice(0, 400)).toBeTruthy();
    const ended = await agent.postForm(confirm!, { xsrf: hiddenInput(logoutHtml, 'xsrf') ?? '', logout: 'yes' });
    expect(ended.status).toBe(303);
    const after = await agent.request('/account');
    expect(after.status).toBe(303);
    expect(after.headers.get('location')).toBe('/account/sign-in');
  });

  it('the code the account client gets is never redeemable: the token endpoint refuses the client with or without a secret (invalid_client)', async () => {
    const person = await newPerson();
    const agent = new Agent(t.server.url, t.fetch);
    const start = await agent.follow('/account');
    let response = start.response;
    const html = await response.text();
    const posted = await agent.postForm(/action="([^"]+\/login)"/.exec(html)![1]!, { csrf: csrfOf(html), email: person.email, password: person.password });
    // Follow by hand up to the callback, to read the code on the way.
    let location = posted.headers.get('location')!;
    for (let hops = 0; hops < 5 && !location.includes('/account/callback'); hops += 1) {
      response = await agent.request(location);
      location = response.headers.get('location') ?? '';
    }
    const url = new URL(location, t.server.url).toString();
    const code = new URL(url).searchParams.get('code');
    expect(code, url).toBeTruthy();
    recordSecret(code);
    const form = { grant_type: 'authorization_code', code: code!, redirect_uri: `${t.config.issuer}/account/callback`, code_verifier: 'a'.repeat(43) };
    const asPublic = await tokenRequest(t.server.url, { ...form, client_id: ACCOUNT_CLIENT_ID }, undefined, t.fetch);
    expect(asPublic.status).toBe(401);
    expect(asPublic.body.error).toBe('invalid_client');
    for (const secret of ['none: the account page never redeems its codes', 'guess']) {
      const withSecret = await tokenRequest(t.server.url, form, { clientId: ACCOUNT_CLIENT_ID, clientSecret: secret }, t.fetch);
      expect(withSecret.status, secret).toBe(401);
      expect(withSecret.body.error).toBe('invalid_client');
    }
    // The browser still lands on its account page.
    const landed = await agent.follow(location);
    expect(landed.url).toBe(`${t.server.url}/account`);
  });

  it('the callback takes only the state this browser started: a missing, foreign or replayed state is a 400 page, not a redirect', async () => {
    const { agent } = await signedIn();
    const other = new Agent(t.server.url, t.fetch);
    const started = await other.request('/account/sign-in');
    const foreignState = new URL(started.headers.get('location')!, t.server.url).searchParams.get('state')!;
    const foreign = await agent.request(`/account/callback?code=x&state=${foreignState}`);
    expect(foreign.status).toBe(400);
    expect(await foreign.text()).toContain('This sign-in link has expired');
    const none = await new Agent(t.server.url, t.fetch).request('/account/callback?code=x');
    expect(none.status).toBe(400);
    // The right state, once: a second use finds its cookie gone.
    const own = await agent.request('/account/sign-in');
    const state = new URL(own.headers.get('location')!, t.server.url).searchParams.get('state')!;
    const firstUse = await agent.request(`/account/callback?code=x&state=${state}`);
    expect(firstUse.status).toBe(303);
    expect(firstUse.headers.get('location')).toBe('/account');
    expect((await agent.request(`/account/callback?code=x&state=${state}`)).status).toBe(400);
    // An error from the authorization endpoint (the person cancelled) is a page.
    const cancelled = await agent.request('/account/sign-in');
    const cancelState = new URL(cancelled.headers.get('location')!, t.server.url).searchParams.get('state')!;
    const answer = await agent.request(`/account/callback?error=access_denied&state=${cancelState}`);
    expect(answer.status).toBe(400);
    expect(await answer.text()).toContain('Sign-in cancelled');
  });

  it('next= of a re-authentication is a same-origin /account path only: other origins, schemes and paths fall back to /account', async () => {
    const issuer = t.config.issuer;
    for (const hostile of ['https://evil.example/account', '//evil.example/account', '/\\evil.example', '/accountx', '/admin/v1/clients', 'javascript:alert(1)', '/account/../admin', '/account/sign-in', '/account/reauth?next=/x', '', '/%2F%2Fevil.example']) {
      const safe = safeAccountPath(hostile, issuer);
      expect(safe.startsWith('/account'), hostile).toBe(true);
      expect(new URL(safe, issuer).origin, hostile).toBe(new URL(issuer).origin);
      expect(/^\/account(\/|#|\?|$)/.test(safe), `${hostile} → ${safe}`).toBe(true);
      expect(safe, hostile).not.toMatch(/evil|admin|sign-in|reauth/);
    }
    expect(safeAccountPath('/account#two-step', issuer)).toBe('/account#two-step');
    expect(safeAccountPath(['/account', '/x'], issuer)).toBe('/account');

    // Through the whole flow: a hostile next ends on /account.
    const person = await newPerson();
    const agent = new Agent(t.server.url, t.fetch);
    const page = await signInAtAccount(agent, person, { start: '/account/reauth?next=https%3A%2F%2Fevil.example%2F' });
    expect(page.url).toBe(`${t.server.url}/account`);
  });

  it('enable TOTP from /account (#enable-totp, #totp-uri, a code from otplib, ten #recovery-codes li, audited as the person); a step-up then a new sign-in ask for the code; each sign-in is recorded with its method', async () => {
    const person = await newPerson();
    const before = await lastSeq();
    const { agent, html } = await signedIn(person);
    const { secret, codes, html: enabledHtml } = await enableTotp(agent, html);
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    expect(enabledHtml).toContain('Your authenticator app is on.');
    expect(enabledHtml).toContain('id="disable-totp"');
    expect((await factorRows(person.id)).factors).toEqual(['active']);
    const audit = (await auditSince(before)).filter((row) => row.target === `user:${person.id}` && row.actor.startsWith('person:'));
    expect(audit).toEqual([
      { actor: `person:${person.id}`, action: 'totp.enable', target: `user:${person.id}` },
      { actor: `person:${person.id}`, action: 'recovery_codes.generate', target: `user:${person.id}` },
    ]);
    // Shown once: the page again has no codes.
    const reloaded = await agent.request('/account');
    const reloadedHtml = await reloaded.text();
    expect(recoveryCodesOf(reloadedHtml)).toEqual([]);
    expect(reloadedHtml).toContain('10 of 10 recovery codes left.');

    // A step-up of this password session at an app that asks for a second factor: the code page.
    const { challenge } = pkce();
    const stepUp = await agent.follow(
      authorizeUrl({ client_id: strict.clientId, redirect_uri: REDIRECT_URI, code_challenge: challenge, code_challenge_method: 'S256', acr_values: 'urn:gatehouse:acr:mfa' }),
    );
    const stepUpHtml = await stepUp.response.text();
    const mfaAction = /<form method="post" action="([^"]+\/mfa)"/.exec(stepUpHtml)?.[1];
    expect(mfaAction, stepUpHtml.slice(0, 300)).toBeTruthy();
    const sent = await agent.postForm(mfaAction!, { csrf: csrfOf(stepUpHtml), code: await totpCode(secret, 30_000) });
    expect(sent.status).toBe(303);
    const landed = await agent.follow(sent.headers.get('location')!);
    expect(landed.url.startsWith(REDIRECT_URI)).toBe(true);

    // A new browser: password, then the code (a recovery code here: the app's next step was just used).
    const fresh = new Agent(t.server.url, t.fetch);
    const page = await signInAtAccount(fresh, person, { code: () => Promise.resolve(codes[0]!) });
    expect(page.askedForCode).toBe(true);
    expect(page.url).toBe(`${t.server.url}/account`);
    expect(page.html).toContain('9 of 10 recovery codes left.');

    const rows = await signInRows(person.id);
    expect(rows.map((row) => [row.method, row.amr, row.acr, row.client_id])).toEqual([
      ['password', ['pwd'], 'urn:gatehouse:acr:basic', ACCOUNT_CLIENT_ID],
      ['step_up', ['pwd', 'otp', 'mfa'], 'urn:gatehouse:acr:mfa', strict.clientId],
      ['password', ['pwd', 'otp', 'mfa'], 'urn:gatehouse:acr:mfa', ACCOUNT_CLIENT_ID],
    ]);
    // The page lists them, newest first, with the app's name.
    const listed = await fresh.request('/account');
    const listedHtml = await listed.text();
    const tableRows = [...listedHtml.matchAll(/<tr><td><time[^>]*>[^<]+<\/time><\/td><td>([^<]+)<\/td><td>([^<]+)<\/td><td[^>]*>([^<]+)<\/td><td>([^<]+)<\/td><\/tr>/g)].map((m) => [m[1], m[4]]);
    expect(tableRows).toEqual([
      ['Password and authenticator code', 'Your account page'],
      ['Second step (authenticator code)', 'Strict App'],
      ['Password', 'Your account page'],
    ]);
  });

  it('a sensitive change needs a recent sign-in: an old loginTs, or a password-only session of a person with a second factor, gets 303 to /account/reauth (max_age=0, acr_values mfa) and nothing changes', async () => {
    const person = await newPerson();
    const { agent, html } = await signedIn(person);
    // Enabling straight after signing in is allowed; now the person has a second factor and the
    // session is still password-only (acr basic): regenerating and turning off need a sign-in with it.
    const { codes } = await enableTotp(agent, html);
    const page = await (await agent.request('/account')).text();
    const rowsBefore = await factorRows(person.id);
    const seq = await lastSeq();
    for (const action of ['/account/recovery-codes', '/account/totp/delete']) {
      const answer = await agent.postForm(action, { csrf: csrfOf(page) });
      expect(answer.status, action).toBe(303);
      expect(answer.headers.get('location')).toBe(`/account/reauth?next=${encodeURIComponent('/account#two-step')}`);
    }
    const reauth = await agent.request(`/account/reauth?next=${encodeURIComponent('/account#two-step')}`);
    expect(reauth.status).toBe(303);
    const auth = new URL(reauth.headers.get('location')!, t.server.url);
    expect(auth.searchParams.get('max_age')).toBe('0');
    expect(auth.searchParams.get('acr_values')).toBe('urn:gatehouse:acr:mfa');
    expect(await factorRows(person.id)).toEqual(rowsBefore);
    expect((await auditSince(seq)).filter((row) => row.target === `user:${person.id}`)).toEqual([]);

    // Signing in again with the code (a recovery code) makes the session recent and mfa: allowed.
    const again = await signInAtAccount(agent, person, { start: reauth.headers.get('location')!, code: () => Promise.resolve(codes[0]!) });
    expect(again.url).toBe(`${t.server.url}/account#two-step`);
    const regenerated = await agent.postForm('/account/recovery-codes', { csrf: csrfOf(again.html) });
    expect(regenerated.status).toBe(200);
    const fresh = recoveryCodesOf(await regenerated.text());
    expect(fresh).toHaveLength(10);

    // An old sign-in time: the same refusal, nothing changed.
    await ageSession(agent, t.config.accountReauthSeconds + 60);
    const aged = await (await agent.request('/account')).text();
    const agedRows = await factorRows(person.id);
    const agedSeq = await lastSeq();
    const refused = await agent.postForm('/account/totp/delete', { csrf: csrfOf(aged) });
    expect(refused.status).toBe(303);
    expect(refused.headers.get('location')).toMatch(/^\/account\/reauth\?next=/);
    expect(await factorRows(person.id)).toEqual(agedRows);
    expect((await auditSince(agedSeq)).filter((row) => row.target === `user:${person.id}`)).toEqual([]);

    // And a person without a second factor whose sign-in is old: enabling is refused too.
    const other = await signedIn();
    await ageSession(other.agent, t.config.accountReauthSeconds + 60);
    const otherPage = await (await other.agent.request('/account')).text();
    const enable = await other.agent.postForm('/account/totp', { csrf: csrfOf(otherPage) });
    expect(enable.status).toBe(303);
    const otherReauth = await other.agent.request(enable.headers.get('location')!);
    const otherAuth = new URL(otherReauth.headers.get('location')!, t.server.url);
    expect(otherAuth.searchParams.get('max_age')).toBe('0');
    expect(otherAuth.searchParams.get('acr_values')).toBeNull();
    expect((await factorRows(other.person.id)).factors).toEqual([]);
  });

  it('new recovery codes replace the old ones (the old ones no longer work), and turning the app off removes it and its codes; both audited as the person', async () => {
    const person = await newPerson();
    const { agent, html } = await signedIn(person);
    const { codes } = await enableTotp(agent, html);
    // A sign-in with a second factor, recent: the session may now change things.
    const mfaAgent = new Agent(t.server.url, t.fetch);
    const mfaPage = await signInAtAccount(mfaAgent, person, { code: () => Promise.resolve(codes[1]!) });
    const oldDigests = codes.map((code) => recoveryCodeDigest(normaliseRecoveryCode(code)!));
    const seq = await lastSeq();
    const regenerated = await mfaAgent.postForm('/account/recovery-codes', { csrf: csrfOf(mfaPage.html) });
    expect(regenerated.status).toBe(200);
    const regeneratedHtml = await regenerated.text();
    expect(regeneratedHtml).toContain('The old ones no longer work.');
    const fresh = recoveryCodesOf(regeneratedHtml);
    expect(fresh).toHaveLength(10);
    const { digests } = await factorRows(person.id);
    expect(digests).toHaveLength(10);
    expect(digests.filter((digest) => oldDigests.includes(digest))).toEqual([]);
    // An old code is refused at sign-in; a new one works.
    const refusedAgent = new Agent(t.server.url, t.fetch);
    const { response, url } = await refusedAgent.follow('/account');
    const login = await response.text();
    const posted = await refusedAgent.postForm(/action="([^"]+\/login)"/.exec(login)![1]!, { csrf: csrfOf(login), email: person.email, password: person.password });
    const mfa = await (await refusedAgent.follow(posted.headers.get('location')!)).response.text();
    const wrong = await refusedAgent.postForm(/action="([^"]+\/mfa)"/.exec(mfa)![1]!, { csrf: csrfOf(mfa), code: codes[2]! });
    expect(wrong.status, url).toBe(401);

    const off = await mfaAgent.postForm('/account/totp/delete', { csrf: csrfOf(regeneratedHtml) });
    expect(off.status).toBe(200);
    const offHtml = await off.text();
    expect(offHtml).toContain('Your authenticator app is off');
    expect(offHtml).toContain('id="enable-totp"');
    expect(await factorRows(person.id)).toEqual({ factors: [], digests: [] });
    expect((await auditSince(seq)).filter((row) => row.actor === `person:${person.id}`)).toEqual([
      { actor: `person:${person.id}`, action: 'recovery_codes.generate', target: `user:${person.id}` },
      { actor: `person:${person.id}`, action: 'totp.disable', target: `user:${person.id}` },
    ]);
    // And the next sign-in asks for no code.
    const plain = await signInAtAccount(new Agent(t.server.url, t.fetch), person);
    expect(plain.askedForCode).toBe(false);
  });

  it('a wrong or malformed confirming code keeps the enrolment (the same key is shown again) and turns nothing on', async () => {
    const { person, agent, html } = await signedIn();
    const started = await agent.postForm('/account/totp', { csrf: csrfOf(html) });
    const startedHtml = await started.text();
    const enrolment = enrolmentOf(startedHtml);
    const good = await totpCode(enrolment.secret);
    const wrongCode = String((Number(good) + 1) % 1_000_000).padStart(6, '0');
    const wrong = await agent.postForm('/account/totp/confirm', { csrf: csrfOf(startedHtml), started_at: enrolment.startedAt, code: wrongCode });
    expect(wrong.status).toBe(401);
    const wrongHtml = await wrong.text();
    expect(wrongHtml).toContain('That code is not right.');
    expect(enrolmentOf(wrongHtml).secret).toBe(enrolment.secret);
    const malformed = await agent.postForm('/account/totp/confirm', { csrf: csrfOf(startedHtml), started_at: enrolment.startedAt, code: 'abc' });
    expect(malformed.status).toBe(400);
    const stale = await agent.postForm('/account/totp/confirm', { csrf: csrfOf(startedHtml), started_at: '12345', code: good });
    expect(stale.status).toBe(400);
    expect(await stale.text()).toContain('This setup has expired.');
    expect((await factorRows(person.id)).factors).toEqual(['pending']);
  });

  it('CSRF: a missing token, or the token of another session, is a 403 page and nothing changes', async () => {
    const alice = await signedIn();
    const bob = await signedIn();
    const seq = await lastSeq();
    for (const action of ['/account/totp', '/account/recovery-codes', '/account/totp/delete', '/account/totp/confirm']) {
      const missing = await alice.agent.postForm(action, {});
      expect(missing.status, action).toBe(403);
      expect(await missing.text()).toContain('This form has expired');
      const foreign = await alice.agent.postForm(action, { csrf: csrfOf(bob.html) });
      expect(foreign.status, action).toBe(403);
    }
    // The token of the same person's previous session stops working after a new sign-in.
    await ageSession(alice.agent, 60);
    const previous = csrfOf(await (await alice.agent.request('/account')).text());
    const again = await signInAtAccount(alice.agent, alice.person, { start: '/account/reauth?next=/account' });
    expect(csrfOf(again.html)).not.toBe(previous);
    expect((await alice.agent.postForm('/account/totp', { csrf: previous })).status).toBe(403);
    // Not a form: 415.
    const json = await alice.agent.request('/account/totp', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(json.status).toBe(415);
    expect((await factorRows(alice.person.id)).factors).toEqual([]);
    expect((await factorRows(bob.person.id)).factors).toEqual([]);
    expect((await auditSince(seq)).filter((row) => row.actor.startsWith('person:'))).toEqual([]);
  });

  it('a disabled person, or a session from before sessions_valid_after, is not shown the page (sent to sign in) and cannot change anything', async () => {
    const disabled = await signedIn();
    await sql`update users set disabled = true where id = ${disabled.person.id}`.execute(db());
    const page = await disabled.agent.request('/account');
    expect(page.status).toBe(303);
    expect(page.headers.get('location')).toBe('/account/sign-in');
    const post = await disabled.agent.postForm('/account/totp', { csrf: csrfOf(disabled.html) });
    expect(post.status).toBe(303);
    expect(post.headers.get('location')).toBe('/account/sign-in');
    expect((await factorRows(disabled.person.id)).factors).toEqual([]);
    // The authorization request then ends the session: the login page.
    const { response } = await disabled.agent.follow('/account');
    expect(await response.text()).toMatch(/action="[^"]+\/login"/);

    const ended = await signedIn();
    await sql`update users set sessions_valid_after = now() + interval '1 second' where id = ${ended.person.id}`.execute(db());
    const endedPage = await ended.agent.request('/account');
    expect(endedPage.status).toBe(303);
    expect(endedPage.headers.get('location')).toBe('/account/sign-in');
  });

  it('recent sign-ins show method, IP and the browser; a User-Agent with markup is escaped, never markup', async () => {
    const person = await newPerson();
    const agent = new Agent(t.server.url, t.fetch);
    const hostile = '<script>alert(1)</script><img src=x onerror=alert(2)>';
    await signInAtAccount(agent, person, { userAgent: hostile });
    await signInAtAccount(new Agent(t.server.url, t.fetch), person, { userAgent: 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0' });
    const rows = await signInRows(person.id);
    expect(rows.map((row) => row.user_agent)).toEqual([hostile, 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0']);
    expect(rows.every((row) => typeof row.ip === 'string' && row.ip.length > 0)).toBe(true);
    const html = await (await agent.request('/account')).text();
    expect(html).toContain('Firefox on Linux');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    // The only script tags are the page's own two (by src, with the nonce).
    expect(html.match(/<script/g)).toHaveLength(2);
    expect(html.match(/<script(?![^>]*\bsrc="\/assets\/(webauthn|passkey)\.js")[^>]*>/g)).toBeNull();
    expect(html).not.toContain('<img src=x');
    expect(html).toContain(`<td>${rows[0]!.ip}</td>`);
  });

  it('the history keeps SIGN_IN_HISTORY_DAYS: a new sign-in deletes the person\'s older rows (not others\'), and a failed write does not throw', async () => {
    const person = await newPerson();
    const other = await newPerson();
    const now = Date.now();
    const day = 24 * 3600 * 1000;
    const farFuture = new Date(0);
    for (const [userId, ageDays] of [[person.id, 91], [person.id, 89], [other.id, 200]] as const) {
      await insertSignIn(db(), { userId, method: 'password', amr: ['pwd'], acr: 'urn:gatehouse:acr:basic', at: new Date(now - ageDays * day) }, farFuture);
    }
    const logged: string[] = [];
    const logger = createLogger({ logLevel: 'warn' }, { write: (line: string) => void logged.push(line) });
    const recorder = createSignInRecorder({ db: db(), historyDays: t.config.signInHistoryDays, logger });
    expect(t.config.signInHistoryDays).toBe(90);
    await recorder.record({ userId: person.id, method: 'password', amr: ['pwd'], acr: 'urn:gatehouse:acr:basic', clientId: null, ip: '192.0.2.1', userAgent: null });
    const ages = async (userId: string) =>
      (await sql<{ at: Date }>`select at from sign_ins where user_id = ${userId} order by at`.execute(db())).rows.map((row) => Math.max(0, Math.round((now - new Date(row.at).getTime()) / day)));
    expect(await ages(person.id)).toEqual([89, 0]);
    expect(await ages(other.id)).toEqual([200]);
    // A person who does not exist (the foreign key refuses): logged, not thrown.
    await expect(recorder.record({ userId: 'no-such-person', method: 'password', amr: ['pwd'], acr: 'urn:gatehouse:acr:basic', userAgent: 'secret-agent/1.0' })).resolves.toBeUndefined();
    expect(logged).toHaveLength(1);
    expect(logged[0]).toContain('sign-in not recorded in the sign-in history');
    expect(logged[0]).not.toContain('secret-agent');
    expect((await recorder.recent(person.id)).map((entry) => entry.ip)).toEqual(['192.0.2.1', null]);
    // The hourly sweep: the rows of someone who never signs in again go too, and only past the setting.
    expect(await recorder.purge()).toBeGreaterThanOrEqual(1);
    expect(await ages(other.id)).toEqual([]);
    expect(await ages(person.id)).toEqual([89, 0]);
  });

  it('describes browsers shortly and leaves unknown ones as text', () => {
    expect(describeUserAgent('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36')).toBe('Chrome on Windows');
    expect(describeUserAgent('Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15')).toBe('Safari on macOS');
    expect(describeUserAgent('Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1')).toBe('Safari on iOS');
    expect(describeUserAgent('curl/8.5.0')).toBe('curl/8.5.0');
    expect(describeUserAgent(null)).toBe('Unknown browser');
    expect(describeUserAgent('x'.repeat(200))).toHaveLength(60);
  });

  it('the built-in client cannot be changed, granted, rotated or deleted through the services (the CLI and admin API share them): refused by name; and it is not a registry row', async () => {
    const { identifier } = await t.build.resource();
    const clients = { ...t.services, issuer: t.config.issuer, digestKey: Buffer.alloc(32) };
    const attempts: Array<[string, () => Promise<unknown>]> = [
      ['update', () => updateClient(clients, TEST_ACTOR, ACCOUNT_CLIENT_ID, { client_name: 'mine now' })],
      ['grant', () => grantClient(clients, TEST_ACTOR, ACCOUNT_CLIENT_ID, { resource: identifier })],
      ['rotate', () => rotateClientSecret(clients, TEST_ACTOR, ACCOUNT_CLIENT_ID)],
      ['delete', () => deleteClient(clients, TEST_ACTOR, ACCOUNT_CLIENT_ID)],
    ];
    for (const [name, attempt] of attempts) {
      const error = await attempt().then(
        () => undefined,
        (thrown: unknown) => thrown,
      );
      expect(error, name).toBeInstanceOf(ConflictError);
      expect((error as Error).message, name).toMatch(/gatehouse-account is built into Gatehouse/);
    }
    const rows = await sql<{ n: string }>`select count(*) as n from clients where client_id = ${ACCOUNT_CLIENT_ID}`.execute(db());
    expect(Number(rows.rows[0]!.n)).toBe(0);
    // The provider knows it nonetheless: a first-party client with the account callback.
    const client = await t.server.host.provider.Client.find(ACCOUNT_CLIENT_ID);
    expect(client?.redirectUris).toEqual([`${t.config.issuer}/account/callback`]);
  });

  it('the admin API refuses to change, rotate or delete the built-in client (409 problem naming client_id), and cannot create one with its id', async () => {
    const admin = await t.build.client({ client_name: `admin ${randomUUID()}`, admin: true });
    await t.server.cache.refresh();
    const { status, body } = await tokenRequest(t.server.url, { grant_type: 'client_credentials', scope: 'admin' }, admin, t.fetch);
    expect(status).toBe(200);
    const token = String(body.access_token);
    recordSecret(token);
    const call = async (method: string, path: string, json?: unknown) => {
      const response = await t.fetch(`/admin/v1${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(json === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(json === undefined ? {} : { body: JSON.stringify(json) }),
      });
      const text = await response.text();
      return { status: response.status, type: response.headers.get('content-type'), body: (text ? JSON.parse(text) : undefined) as Record<string, unknown> | undefined };
    };
    for (const [method, path, json] of [
      ['PATCH', `/clients/${ACCOUNT_CLIENT_ID}`, { client_name: 'mine now' }],
      ['DELETE', `/clients/${ACCOUNT_CLIENT_ID}`, undefined],
      ['POST', `/clients/${ACCOUNT_CLIENT_ID}/secret`, undefined],
    ] as const) {
      const answer = await call(method, path, json);
      expect(answer.status, `${method} ${path}`).toBe(409);
      expect(answer.type).toMatch(/^application\/problem\+json/);
      expect(answer.body?.errors).toEqual([{ field: 'client_id', message: expect.stringMatching(/built into Gatehouse/) }]);
    }
    // A create cannot name its client_id (the server picks a random one): refused, nothing stored.
    const created = await call('POST', '/clients', { client_name: 'impostor', client_id: ACCOUNT_CLIENT_ID, redirect_uris: [REDIRECT_URI] });
    expect(created.status).toBe(400);
    expect(created.body?.errors).toEqual([{ field: 'body', message: 'Unrecognized key: "client_id"' }]);
    const rows = await sql<{ n: string }>`select count(*) as n from clients where client_id = ${ACCOUNT_CLIENT_ID}`.execute(db());
    expect(Number(rows.rows[0]!.n)).toBe(0);
  });

  it('the CLI refuses to change or delete the built-in client, saying why (exit 1)', async () => {
    for (const args of [
      ['clients', 'delete', ACCOUNT_CLIENT_ID],
      ['clients', 'update', ACCOUNT_CLIENT_ID, '--name', 'mine now'],
    ]) {
      const result = await t.cliRaw(...args);
      expect(result.code, args.join(' ')).toBe(1);
      expect(result.stderr).toMatch(/gatehouse-account is built into Gatehouse \(the account page's own client\): it cannot be created, changed or deleted/);
    }
  });
});

describe('the account page under MFA_REQUIRED', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ name: 'account-mfa-required', listen: false, env: { MFA_REQUIRED: 'true' } });
  });
  afterAll(() => t.close());

  it('turning the authenticator app off is refused (409, nothing changed); new recovery codes are allowed', async () => {
    const person = await t.build.person({ email: `required-${randomUUID()}@example.test` });
    const agent = new Agent(t.server.url, t.fetch);
    // The first sign-in sets an app up (enrolment at sign-in), then comes back to /account.
    let { response } = await agent.follow('/account');
    let html = await response.text();
    const posted = await agent.postForm(/action="([^"]+\/login)"/.exec(html)![1]!, { csrf: csrfOf(html), email: person.email, password: person.password });
    ({ response } = await agent.follow(posted.headers.get('location')!));
    html = await response.text();
    const { secret } = enrolmentOf(html);
    const enrolAction = /action="([^"]+\/mfa\/enrol)"/.exec(html)![1]!;
    const enrolled = await agent.postForm(enrolAction, { csrf: csrfOf(html), code: await totpCode(secret) });
    expect(enrolled.status).toBe(200);
    const enrolledHtml = await enrolled.text();
    const continued = await agent.postForm(/action="([^"]+\/mfa\/enrol\/continue)"/.exec(enrolledHtml)![1]!, { csrf: csrfOf(enrolledHtml) });
    const landed = await agent.follow(continued.headers.get('location')!);
    expect(landed.url).toBe(`${t.server.url}/account`);
    const page = await landed.response.text();
    expect(page).not.toContain('id="disable-totp"');
    expect(page).toContain('This server requires a second factor for every sign-in');
    const seq = (await tailAudit(t.server.registry.db, { limit: 1 })).at(-1)?.seq ?? 0;
    const refused = await agent.postForm('/account/totp/delete', { csrf: csrfOf(page) });
    expect(refused.status).toBe(409);
    expect(await refused.text()).toContain('cannot be turned off');
    const factors = await sql<{ state: string }>`select state from totp_factors where user_id = ${person.id}`.execute(t.server.registry.db);
    expect(factors.rows.map((row) => row.state)).toEqual(['active']);
    expect((await tailAudit(t.server.registry.db, { afterSeq: seq })).filter((row) => row.action === 'totp.disable')).toEqual([]);
    const regenerated = await agent.postForm('/account/recovery-codes', { csrf: csrfOf(page) });
    expect(regenerated.status).toBe(200);
    expect(recoveryCodesOf(await regenerated.text())).toHaveLength(10);
  });
});
