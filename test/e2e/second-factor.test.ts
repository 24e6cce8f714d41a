import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { createRemoteJWKSet, customFetch, decodeJwt, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACR_BASIC, ACR_MFA } from '../../src/accounts/authentication-context.js';
import { tailAudit } from '../../src/audit/audit-log.js';
import { loadDataKeyring } from '../../src/keys/data-key.js';
import { beginTotpEnrolment, confirmTotpEnrolment, type SecondFactorDeps } from '../../src/services/second-factors.service.js';
import { Agent, authorizeUrl, codeFlow, hiddenInput, pkce } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';
import { totpCode } from '../fixtures/totp.js';

/*
 * The second factor at sign-in (docs/design/sign-in-methods.md §3.5, §7.2, step 4): a person with a
 * confirmed authenticator app is asked for a code after every right password (D6), and a session
 * that needs a second factor steps up with one. In process: t.fetch. People enrol through the
 * service here (enrolment at sign-in: enrol-at-sign-in.test.ts); codes come from otplib, as an
 * authenticator app's.
 */

const REDIRECT_URI = 'http://127.0.0.1:8765/callback';
/** Wrong codes an account may send before the second-factor limiter locks it (this file's server). */
const MAX_FAILURES = 3;

interface Person {
  id: string;
  email: string;
  password: string;
}
interface EnrolledPerson extends Person {
  secret: string;
  recoveryCodes: string[];
}

/** The form of a page: its action and CSRF token. */
function formOf(html: string): { action: string; csrf: string } {
  const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1];
  if (!action) throw new Error(`no form: ${html.slice(0, 300)}`);
  return { action, csrf: hiddenInput(html, 'csrf') ?? '' };
}

/** The code an authenticator app shows `offsetMs` from now (clear of a step boundary: test/fixtures/totp.ts). */
const codeAt = (secret: string, offsetMs = 0) => totpCode(secret, offsetMs);

describe('a second factor at sign-in (TOTP and recovery codes)', () => {
  let t: TestServer;
  let deps: SecondFactorDeps;
  let plain: { clientId: string; clientSecret: string };
  let strict: { clientId: string; clientSecret: string };
  /** Every authorization code the provider saved, by its client. */
  const codesFor: string[] = [];

  beforeAll(async () => {
    t = await startTestServer({ name: 'second-factor', listen: false, env: { LOGIN_MAX_FAILURES_PER_ACCOUNT: String(MAX_FAILURES) } });
    (t.server.host.provider as unknown as NodeJS.EventEmitter).on('authorization_code.saved', (code: { clientId: string }) => codesFor.push(code.clientId));
    // The data key the server made on its start (outside production): the service seals with it.
    deps = { ...t.services, dataKeys: await loadDataKeyring(t.config.keysDir, { generateIfMissing: false }) };
    plain = await t.build.client({ client_name: 'Plain App', redirect_uris: [REDIRECT_URI], first_party: true });
    strict = await t.build.client({ client_name: 'Strict App', redirect_uris: [REDIRECT_URI], first_party: true, require_mfa: true });
  });
  afterAll(() => t.close());

  /** Enrols a person's authenticator app through the service, confirmed with the previous step's code (the current one stays unused). */
  async function enrol(person: Person): Promise<EnrolledPerson> {
    const { secret } = await beginTotpEnrolment(deps, person.id, { issuer: 'Gatehouse' });
    recordSecret(secret);
    const { recoveryCodes } = await confirmTotpEnrolment(deps, { actor: `person:${person.id}` }, person.id, await codeAt(secret, -30_000));
    for (const code of recoveryCodes) recordSecret(code);
    return { ...person, secret, recoveryCodes };
  }

  const enrolledPerson = async () => enrol(await t.build.person({ email: `totp-${randomUUID()}@example.test` }));

  /** Starts an authorization request on `agent`: where it stopped, its page, and the PKCE verifier. */
  async function start(agent: Agent, clientId: string, params: Record<string, string> = {}) {
    const { verifier, challenge } = pkce();
    const state = randomUUID();
    const { response, url } = await agent.follow(
      authorizeUrl({ client_id: clientId, redirect_uri: REDIRECT_URI, code_challenge: challenge, code_challenge_method: 'S256', state, ...params }),
    );
    return { response, url, state, verifier, html: url.startsWith(t.server.url) ? await response.text() : '' };
  }

  /** Signs in with the password on a new browser, up to the second-factor page. */
  async function toSecondFactor(person: Person, clientId = plain.clientId, params: Record<string, string> = {}) {
    const agent = new Agent(t.server.url, t.fetch);
    const started = await start(agent, clientId, params);
    const login = formOf(started.html);
    expect(login.action).toMatch(/\/login$/);
    const posted = await agent.postForm(login.action, { csrf: login.csrf, email: person.email, password: person.password });
    const interactionPath = new URL(started.url).pathname;
    // Post/redirect/get: the password is not posted again by a reload of the page.
    expect(posted.status).toBe(303);
    expect(posted.headers.get('location')).toBe(interactionPath);
    const { response, url } = await agent.follow(posted.headers.get('location')!);
    expect(url).toBe(`${t.server.url}${interactionPath}`);
    const html = await response.text();
    expect(response.status).toBe(200);
    expect(html).toContain('name="code"');
    expect(html).not.toContain('name="password"');
    return { agent, started, response, html, uid: interactionPath.split('/').at(-1)!, ...formOf(html) };
  }

  /** Posts a code on the second-factor form; follows on to wherever it ends. */
  async function submitCode(agent: Agent, form: { action: string; csrf: string }, code: string) {
    return agent.follow(form.action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ csrf: form.csrf, code }) });
  }

  /** The code at the redirect_uri exchanged for tokens; the ID token verified against the JWKS. */
  async function idTokenOf(redirect: string, verifier: string, client = plain) {
    const url = new URL(redirect);
    expect(url.origin + url.pathname).toBe(REDIRECT_URI);
    const code = url.searchParams.get('code');
    expect(code, redirect).toBeTruthy();
    recordSecret(code);
    const { status, body } = await tokenRequest(t.server.url, { grant_type: 'authorization_code', code: code!, redirect_uri: REDIRECT_URI, code_verifier: verifier }, client, t.fetch);
    expect(status).toBe(200);
    recordSecret(String(body.id_token));
    recordSecret(String(body.access_token));
    const jwks = createRemoteJWKSet(new URL(`${t.server.url}/jwks`), { [customFetch]: t.fetch });
    return (await jwtVerify(String(body.id_token), jwks, { issuer: t.config.issuer, audience: client.clientId })).payload;
  }

  const lastSeq = async () => (await tailAudit(t.server.registry.db, { limit: 1 })).at(-1)?.seq ?? 0;
  const auditSince = async (seq: number) => (await tailAudit(t.server.registry.db, { afterSeq: seq })).map((row) => ({ action: row.action, target: row.target, details: row.details }));

  /** What a sign-in may change of a person's second factors: the last step used, and the recovery codes left. */
  async function factorState(userId: string) {
    const step = await sql<{ last_used_step: string }>`select last_used_step from totp_factors where user_id = ${userId} and state = 'active'`.execute(t.server.registry.db);
    const left = await sql<{ n: string }>`select count(*) as n from recovery_codes where user_id = ${userId} and used_at is null`.execute(t.server.registry.db);
    return { lastUsedStep: String(step.rows[0]?.last_used_step), recoveryCodesLeft: Number(left.rows[0]?.n) };
  }

  it('password then a TOTP code: an ID token with acr mfa and amr pwd, otp, mfa; the page asks for the code without script; audited without the code', async () => {
    const person = await enrolledPerson();
    const before = await lastSeq();
    const { agent, started, response, html, action, csrf } = await toSecondFactor(person);

    expect(html).toContain('Confirm it&#39;s you');
    expect(html).toContain(person.email);
    expect(html).toContain('autocomplete="one-time-code"');
    expect(html).toContain('aria-describedby="code-help"');
    expect(html).toContain('aria-live="assertive"');
    expect(html).not.toContain('<script');
    expect(action).toBe(`${new URL(started.url).pathname}/mfa`);
    expect(csrf).not.toBe('');
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(response.headers.get('content-security-policy')).toContain("default-src 'none'");
    // The password alone finished nothing: no code yet, and no audit row says signed in.
    expect(codesFor).not.toContain(plain.clientId);
    expect((await auditSince(before)).map((row) => row.action)).toEqual([]);

    const code = await codeAt(person.secret);
    const done = await submitCode(agent, { action, csrf }, code);
    const redirect = new URL(done.url);
    expect(redirect.searchParams.get('state')).toBe(started.state);
    const payload = await idTokenOf(done.url, started.verifier);
    expect(payload).toMatchObject({ sub: person.id, acr: ACR_MFA, amr: ['pwd', 'otp', 'mfa'] });

    const rows = await auditSince(before);
    expect(rows).toEqual([
      { action: 'mfa.success', target: `user:${person.id}`, details: { method: 'totp', step_up: false, client_id: plain.clientId, recovery_codes_left: 10 } },
      { action: 'signin.success', target: `user:${person.id}`, details: { client_id: plain.clientId, method: 'password', acr: ACR_MFA, amr: ['pwd', 'otp', 'mfa'] } },
    ]);
    expect(JSON.stringify(rows)).not.toContain(code);
    expect(t.logs.text()).not.toContain(`"${code}"`);

    // The session holds the combined result: an app asking for mfa gets a code without a prompt.
    const silent = await start(agent, plain.clientId, { prompt: 'none', acr_values: ACR_MFA });
    expect(new URL(silent.url).searchParams.get('code')).toBeTruthy();
  });

  it('a recovery code (typed in lower case with spaces) works once: a second sign-in with it is refused and issues no code', async () => {
    const person = await enrolledPerson();
    const recovery = person.recoveryCodes[3]!;
    const typed = ` ${recovery.toLowerCase().replaceAll('-', ' ')} `;
    const first = await toSecondFactor(person);
    const before = await lastSeq();
    const done = await submitCode(first.agent, first, typed);
    expect(await idTokenOf(done.url, first.started.verifier)).toMatchObject({ acr: ACR_MFA, amr: ['pwd', 'otp', 'mfa'] });
    const rows = await auditSince(before);
    expect(rows[0]).toEqual({ action: 'mfa.success', target: `user:${person.id}`, details: { method: 'recovery_code', step_up: false, client_id: plain.clientId, recovery_codes_left: 9 } });
    expect(JSON.stringify(rows)).not.toContain(recovery);
    expect(JSON.stringify(rows).toUpperCase()).not.toContain(recovery.replaceAll('-', ''));

    const codes = codesFor.length;
    const again = await toSecondFactor(person);
    const refused = await submitCode(again.agent, again, recovery);
    expect(refused.response.status).toBe(401);
    expect(refused.url).toBe(`${t.server.url}${new URL(again.started.url).pathname}/mfa`);
    expect(await refused.response.text()).toContain('That code is not right.');
    expect(codesFor.length).toBe(codes);
    expect(await factorState(person.id)).toMatchObject({ recoveryCodesLeft: 9 });
    expect(t.logs.text()).not.toContain(recovery);
  });

  it('the same TOTP code twice: the second sign-in is refused (already used), no code, nothing changed', async () => {
    const person = await enrolledPerson();
    const code = await codeAt(person.secret);
    const first = await toSecondFactor(person);
    expect(await idTokenOf((await submitCode(first.agent, first, code)).url, first.started.verifier)).toMatchObject({ acr: ACR_MFA });

    const state = await factorState(person.id);
    const codes = codesFor.length;
    const before = await lastSeq();
    const second = await toSecondFactor(person);
    const refused = await submitCode(second.agent, second, code);
    expect(refused.response.status).toBe(401);
    const html = await refused.response.text();
    expect(html).toContain('That code was already used.');
    expect(html).toContain('role="alert"');
    expect(html).toContain('aria-invalid="true"');
    expect(codesFor.length).toBe(codes);
    expect(await factorState(person.id)).toEqual(state);
    expect(await auditSince(before)).toEqual([
      { action: 'mfa.failure', target: `user:${person.id}`, details: { reason: 'code_reused', step_up: false, client_id: plain.clientId } },
    ]);

    // The next step's code still works on that page.
    const done = await submitCode(second.agent, second, await codeAt(person.secret, 30_000));
    expect(await idTokenOf(done.url, second.started.verifier)).toMatchObject({ acr: ACR_MFA, amr: ['pwd', 'otp', 'mfa'] });
  });

  it('a wrong code, letters, 5 or 7 digits and an empty code: the page again with a clear error, no code, nothing changed; then the right code (spaced) works', async () => {
    const person = await enrolledPerson();
    const { agent, started, action, csrf } = await toSecondFactor(person);
    const right = await codeAt(person.secret);
    const wrong = String((Number(right) + 500_000) % 1_000_000).padStart(6, '0');
    const state = await factorState(person.id);
    const codes = codesFor.length;
    const before = await lastSeq();
    for (const [input, status, message] of [
      [wrong, 401, 'That code is not right.'],
      ['abcdef', 400, 'Enter the 6-digit code from your authenticator app, or one of your recovery codes.'],
      [right.slice(0, 5), 400, 'Enter the 6-digit code'],
      [`${right}7`, 400, 'Enter the 6-digit code'],
      ['', 400, 'Enter the 6-digit code'],
      ['x'.repeat(2000), 400, 'Enter the 6-digit code'],
    ] as const) {
      const answer = await agent.postForm(action, { csrf, code: input });
      expect(answer.status, input).toBe(status);
      expect(answer.headers.get('location'), input).toBeNull();
      const html = await answer.text();
      expect(html, input).toContain(message);
      expect(html).toContain('name="code"');
      expect(html).toContain('id="mfa-error"');
      expect(html).toContain('aria-describedby="mfa-error code-help"');
    }
    expect(codesFor.length).toBe(codes);
    expect(await factorState(person.id)).toEqual(state);
    // Only the wrong code was a guess: one mfa.failure; the malformed inputs compared nothing.
    expect((await auditSince(before)).map((row) => [row.action, row.details.reason])).toEqual([['mfa.failure', 'invalid_code']]);

    const done = await submitCode(agent, { action, csrf }, ` ${right.slice(0, 3)} ${right.slice(3)} `);
    expect(await idTokenOf(done.url, started.verifier)).toMatchObject({ acr: ACR_MFA, amr: ['pwd', 'otp', 'mfa'] });
  });

  it(`the limiter: after ${MAX_FAILURES} wrong codes the account is locked (429, Retry-After), even for the right code, and mfa.lockout is audited once`, async () => {
    const person = await enrolledPerson();
    const { agent, action, csrf } = await toSecondFactor(person);
    const right = await codeAt(person.secret);
    const wrong = String((Number(right) + 500_000) % 1_000_000).padStart(6, '0');
    const before = await lastSeq();
    for (let i = 0; i < MAX_FAILURES; i += 1) expect((await agent.postForm(action, { csrf, code: wrong })).status).toBe(401);
    const locked = await agent.postForm(action, { csrf, code: right });
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await locked.text()).toMatch(/Too many wrong codes\. Try again in \d+ minutes?\./);
    expect((await agent.postForm(action, { csrf, code: wrong })).status).toBe(429);
    const rows = await auditSince(before);
    expect(rows.map((row) => row.action)).toEqual([...Array<string>(MAX_FAILURES).fill('mfa.failure'), 'mfa.lockout']);
    expect(rows.at(-1)).toMatchObject({ target: `user:${person.id}`, details: { client_id: plain.clientId } });
    expect(rows.at(-1)!.details.retry_after_seconds).toBeGreaterThan(0);

    // A new sign-in with the right password meets the same lock on the code; the password limiter is not the one counting.
    const again = await toSecondFactor(person);
    expect((await again.agent.postForm(again.action, { csrf: again.csrf, code: right })).status).toBe(429);
    expect(await factorState(person.id)).toMatchObject({ recoveryCodesLeft: 10 });
  });

  it('a wrong or missing CSRF token is refused (403) and changes nothing; the right one then works', async () => {
    const person = await enrolledPerson();
    const { agent, started, action, csrf } = await toSecondFactor(person);
    const right = await codeAt(person.secret);
    const state = await factorState(person.id);
    const before = await lastSeq();
    for (const form of [{ csrf: `${csrf}x`, code: right }, { code: right }, { csrf: '', code: right }] as Array<Record<string, string>>) {
      const answer = await agent.postForm(action, form);
      expect(answer.status).toBe(403);
      expect(answer.headers.get('location')).toBeNull();
    }
    // A token of another interaction is not this one's.
    const other = await toSecondFactor(person);
    expect((await agent.postForm(action, { csrf: other.csrf, code: right })).status).toBe(403);
    expect(await factorState(person.id)).toEqual(state);
    expect(await auditSince(before)).toEqual([]);
    const done = await submitCode(agent, { action, csrf }, right);
    expect(await idTokenOf(done.url, started.verifier)).toMatchObject({ acr: ACR_MFA });
  });

  it('two right codes posted at once on one page finish one sign-in only: the PendingSignIn is taken once', async () => {
    const person = await enrolledPerson();
    const { agent, action, csrf } = await toSecondFactor(person);
    const answers = await Promise.all([
      agent.postForm(action, { csrf, code: await codeAt(person.secret) }),
      agent.postForm(action, { csrf, code: person.recoveryCodes[0]! }),
    ]);
    const statuses = answers.map((answer) => answer.status).sort();
    expect(statuses).toEqual([303, 400]);
    const finished = answers.find((answer) => answer.status === 303)!;
    expect(finished.headers.get('location')).toMatch(/\/auth\//);
    const before = await lastSeq();
    // The page is gone with it: a third code is refused.
    expect((await agent.postForm(action, { csrf, code: person.recoveryCodes[1]! })).status).toBe(400);
    expect(await auditSince(before)).toEqual([]);
  });

  it('a browser that skips from the second-factor page to the resume URL gets no code, only a sign-in page again', async () => {
    const person = await enrolledPerson();
    const { agent, uid } = await toSecondFactor(person);
    const codes = codesFor.length;
    const resumed = await agent.follow(`/auth/${uid}`);
    expect(resumed.url.startsWith(`${t.server.url}/interaction/`), resumed.url).toBe(true);
    expect(new URL(resumed.url).searchParams.get('code')).toBeNull();
    expect(await resumed.response.text()).toContain('name="password"');
    expect(codesFor.length).toBe(codes);
    // And the browser is not signed in.
    const silent = await start(agent, plain.clientId, { prompt: 'none' });
    expect(new URL(silent.url).searchParams.get('error')).toBe('login_required');
  });

  it('the second-factor route is refused where no code is asked for (400), and the person without an authenticator signs in as before: acr basic, amr pwd', async () => {
    const person = await t.build.person({ email: `plain-${randomUUID()}@example.test` });
    const agent = new Agent(t.server.url, t.fetch);
    const started = await start(agent, plain.clientId);
    const { csrf } = formOf(started.html);
    const refused = await agent.postForm(`${new URL(started.url).pathname}/mfa`, { csrf, code: '123456' });
    expect(refused.status).toBe(400);
    expect(refused.headers.get('location')).toBeNull();

    const { status, body } = await codeFlow(new Agent(t.server.url, t.fetch), { client: plain, redirectUri: REDIRECT_URI, email: person.email, password: person.password });
    expect(status).toBe(200);
    recordSecret(String(body.id_token));
    expect(decodeJwt(String(body.id_token))).toMatchObject({ acr: ACR_BASIC, amr: ['pwd'] });
  });

  it('cancel on the second-factor page ends at the app with access_denied, and the code is no longer asked for there', async () => {
    const person = await enrolledPerson();
    const { agent, html, action, csrf } = await toSecondFactor(person);
    const abort = /href="([^"]+\/abort)"/.exec(html)?.[1];
    expect(abort).toBeTruthy();
    const cancelled = await agent.follow(abort!);
    expect(new URL(cancelled.url).searchParams.get('error')).toBe('access_denied');
    expect(new URL(cancelled.url).searchParams.get('code')).toBeNull();
    expect((await agent.postForm(action, { csrf, code: await codeAt(person.secret) })).status).toBe(400);
  });

  it('a client with require_mfa and a person with an authenticator: the second-factor page (not the enrolment one), then acr mfa', async () => {
    const person = await enrolledPerson();
    const { agent, started, html, action, csrf } = await toSecondFactor(person, strict.clientId);
    expect(html).toContain('Strict App requires a second factor for every sign-in.');
    expect(html).not.toContain('A second factor is required');
    expect(html).not.toContain('totp-uri');
    const done = await submitCode(agent, { action, csrf }, await codeAt(person.secret));
    expect(await idTokenOf(done.url, started.verifier, strict)).toMatchObject({ acr: ACR_MFA, amr: ['pwd', 'otp', 'mfa'] });
  });

  describe('step-up of a password session (the person enrolled after signing in)', () => {
    let person: EnrolledPerson;
    let agent: Agent;
    let authTime: number;

    beforeAll(async () => {
      const built = await t.build.person({ email: `step-up-${randomUUID()}@example.test` });
      agent = new Agent(t.server.url, t.fetch);
      // max_age makes the ID token carry auth_time (it does not fire: the sign-in is recent).
      const { status, body } = await codeFlow(agent, { client: plain, redirectUri: REDIRECT_URI, email: built.email, password: built.password, params: { max_age: '3600' } });
      expect(status).toBe(200);
      recordSecret(String(body.id_token));
      const claims = decodeJwt(String(body.id_token));
      expect(claims).toMatchObject({ acr: ACR_BASIC, amr: ['pwd'] });
      authTime = Number(claims.auth_time);
      expect(authTime).toBeGreaterThan(0);
      person = await enrol(built);
    });

    it('prompt=none with acr_values naming mfa: login_required, no code', async () => {
      const answer = await start(agent, plain.clientId, { prompt: 'none', acr_values: ACR_MFA });
      const redirect = new URL(answer.url);
      expect(redirect.origin + redirect.pathname).toBe(REDIRECT_URI);
      expect(redirect.searchParams.get('error')).toBe('login_required');
      expect(redirect.searchParams.get('code')).toBeNull();
    });

    it('acr_values naming mfa: the second-factor page at once (no password), then acr mfa, amr pwd, otp, mfa and a new auth_time', async () => {
      // auth_time counts whole seconds: the step-up is a second later than the password.
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const started = await start(agent, plain.clientId, { acr_values: ACR_MFA, max_age: '3600' });
      expect(started.response.status).toBe(200);
      expect(started.html).toContain('name="code"');
      expect(started.html).not.toContain('name="password"');
      expect(started.html).toContain('Plain App asked for a sign-in with a second factor.');
      const before = await lastSeq();
      const done = await submitCode(agent, formOf(started.html), await codeAt(person.secret));
      const payload = await idTokenOf(done.url, started.verifier);
      expect(payload).toMatchObject({ sub: person.id, acr: ACR_MFA, amr: ['pwd', 'otp', 'mfa'] });
      expect(Number(payload.auth_time)).toBeGreaterThan(authTime);
      expect((await auditSince(before)).slice(0, 2).map((row) => [row.action, row.details.step_up ?? row.details.method])).toEqual([
        ['mfa.success', true],
        ['signin.success', 'step_up'],
      ]);
    });
  });
});
