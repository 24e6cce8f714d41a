import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { createRemoteJWKSet, customFetch, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACR_MFA } from '../../src/accounts/authentication-context.js';
import { tailAudit } from '../../src/audit/audit-log.js';
import { isQrSvg } from '../../src/interactions/totp-qr.js';
import { insertPasskey } from '../../src/registry/passkey.repository.js';
import { Agent, authorizeUrl, codeFlow, hiddenInput, pkce } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';
import { totpCode } from '../fixtures/totp.js';

/*
 * Enrolment at sign-in (docs/design/sign-in-methods.md §3.6): a sign-in that needs a second factor,
 * by a person who has none, sets up an authenticator app on the page after the password (or at the
 * step-up of a password session), shows the recovery codes once, and finishes with acr mfa only at
 * Continue. In process: t.fetch; codes from otplib, as an authenticator app's.
 */

const REDIRECT_URI = 'http://127.0.0.1:8765/callback';

interface Person {
  id: string;
  email: string;
  password: string;
}

/** The form of a page whose action ends with `suffix`: its action and CSRF token. */
function formEndingWith(html: string, suffix: string): { action: string; csrf: string } {
  const action = [...html.matchAll(/<form method="post" action="([^"]+)"/g)].map((match) => match[1]!).find((candidate) => candidate.endsWith(suffix));
  if (!action) throw new Error(`no form ending with ${suffix}: ${html.slice(0, 300)}`);
  return { action, csrf: hiddenInput(html, 'csrf') ?? '' };
}

const unescapeHtml = (text: string) => text.replaceAll('&quot;', '"').replaceAll('&#39;', "'").replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&');

/** What the enrolment page shows: the otpauth URI (#totp-uri), its secret, the key as typed, and the QR code's SVG. */
function enrolmentOf(html: string) {
  const uriText = /<code id="totp-uri">([^<]+)<\/code>/.exec(html)?.[1];
  expect(uriText, html.slice(0, 500)).toBeTruthy();
  const uri = unescapeHtml(uriText!);
  const secret = new URL(uri).searchParams.get('secret') ?? '';
  recordSecret(secret);
  recordSecret(uri);
  const groups = [.../<p class="secret" id="totp-secret">(.*?)<\/p>/s.exec(html)![1]!.matchAll(/<code>([A-Z2-7]{1,4})<\/code>/g)].map((match) => match[1]!);
  const svg = /<figure class="qr" role="img" aria-label="QR code for your authenticator app">(<svg[\s\S]*?<\/svg>)<\/figure>/.exec(html)?.[1];
  return { uri, secret, groups, svg };
}

/** The recovery codes a page shows (`#recovery-codes li`), or [] when it shows none. */
function recoveryCodesOf(html: string): string[] {
  const list = /<ol id="recovery-codes"[^>]*>([\s\S]*?)<\/ol>/.exec(html)?.[1];
  if (!list) return [];
  const codes = [...list.matchAll(/<li><code>([^<]+)<\/code><\/li>/g)].map((match) => match[1]!);
  for (const code of codes) recordSecret(code);
  return codes;
}

describe('setting up an authenticator app during a sign-in that needs one', () => {
  let t: TestServer;
  let plain: { clientId: string; clientSecret: string };
  let strict: { clientId: string; clientSecret: string };
  /** Every authorization code the provider saved, by its client. */
  const codesFor: string[] = [];

  beforeAll(async () => {
    t = await startTestServer({ name: 'enrol-at-sign-in', listen: false });
    (t.server.host.provider as unknown as NodeJS.EventEmitter).on('authorization_code.saved', (code: { clientId: string }) => codesFor.push(code.clientId));
    plain = await t.build.client({ client_name: 'Plain App', redirect_uris: [REDIRECT_URI], first_party: true });
    strict = await t.build.client({ client_name: 'Strict App', redirect_uris: [REDIRECT_URI], first_party: true, require_mfa: true });
  });
  afterAll(() => t.close());

  const newPerson = (): Promise<Person> => t.build.person({ email: `enrol-${randomUUID()}@example.test` });

  /** Starts an authorization request on `agent`: where it stopped, its page, and the PKCE verifier. */
  async function start(agent: Agent, clientId: string, params: Record<string, string> = {}) {
    const { verifier, challenge } = pkce();
    const state = randomUUID();
    const { response, url } = await agent.follow(
      authorizeUrl({ client_id: clientId, redirect_uri: REDIRECT_URI, code_challenge: challenge, code_challenge_method: 'S256', state, ...params }),
    );
    return { response, url, state, verifier, html: url.startsWith(t.server.url) ? await response.text() : '' };
  }

  /** Signs in with the password at the strict client on a new browser, up to the enrolment page. */
  async function toEnrolment(person: Person) {
    const agent = new Agent(t.server.url, t.fetch);
    const started = await start(agent, strict.clientId);
    const login = formEndingWith(started.html, '/login');
    const posted = await agent.postForm(login.action, { csrf: login.csrf, email: person.email, password: person.password });
    const interactionPath = new URL(started.url).pathname;
    // Post/redirect/get, as for the second-factor page: a reload does not post the password again.
    expect(posted.status).toBe(303);
    expect(posted.headers.get('location')).toBe(interactionPath);
    const { response, url } = await agent.follow(posted.headers.get('location')!);
    expect(url).toBe(`${t.server.url}${interactionPath}`);
    expect(response.status).toBe(200);
    const html = await response.text();
    return { agent, started, response, html, uid: interactionPath.split('/').at(-1)!, interactionPath, enrol: formEndingWith(html, '/mfa/enrol'), ...enrolmentOf(html) };
  }

  /** Posts `form` (with its CSRF token) and answers the response, not followed. */
  const post = (agent: Agent, form: { action: string; csrf: string }, fields: Record<string, string> = {}) => agent.postForm(form.action, { csrf: form.csrf, ...fields });

  /** The code at the redirect_uri exchanged for tokens; the ID token verified against the JWKS. */
  async function idTokenOf(redirect: string, verifier: string, client = strict) {
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
  const auditSince = async (seq: number) => (await tailAudit(t.server.registry.db, { afterSeq: seq })).map((row) => ({ actor: row.actor, action: row.action, target: row.target, details: row.details }));

  /** The person's authenticator rows (state and when each started) and how many recovery codes they hold. */
  async function factorState(userId: string) {
    const rows = await sql<{ state: string; created_at: Date }>`select state, created_at from totp_factors where user_id = ${userId} order by state`.execute(t.server.registry.db);
    const codes = await sql<{ n: string }>`select count(*) as n from recovery_codes where user_id = ${userId}`.execute(t.server.registry.db);
    return { factors: rows.rows.map((row) => `${row.state}@${new Date(row.created_at).getTime()}`), recoveryCodes: Number(codes.rows[0]?.n) };
  }

  it('a require_mfa client and a person without a factor: the enrolment page (QR code as inline SVG, #totp-uri, the key), a right code shows ten recovery codes, Continue gives acr mfa and amr pwd, otp, mfa; next time the code is asked for', async () => {
    const person = await newPerson();
    const before = await lastSeq();
    const page = await toEnrolment(person);

    expect(page.html).toContain('A second factor is required');
    expect(page.html).toContain('Strict App requires a second factor for every sign-in.');
    expect(page.html).toContain(person.email);
    expect(page.html).toContain('Set up an authenticator app');
    expect(page.uri).toMatch(/^otpauth:\/\/totp\/Gatehouse:/);
    expect(decodeURIComponent(page.uri)).toContain(`otpauth://totp/Gatehouse:${person.email}?`);
    expect(new URL(page.uri).searchParams.get('issuer')).toBe('Gatehouse');
    expect(page.secret).toMatch(/^[A-Z2-7]{32}$/);
    expect(page.groups.join('')).toBe(page.secret);
    expect(page.groups.every((group) => group.length === 4)).toBe(true);
    // The QR code: inline SVG of the one shape the page prints unescaped, without the person's text.
    expect(page.svg).toBeDefined();
    expect(isQrSvg(page.svg!)).toBe(true);
    expect(page.svg).not.toContain(person.email);
    expect(page.svg).not.toContain(page.secret);
    // No script, no inline style: the page's CSP is the script-free one, unchanged.
    expect(page.html).not.toMatch(/<script|style=|\son[a-z]+=/i);
    const csp = page.response.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('script-src');
    expect(page.response.headers.get('cache-control')).toBe('no-store');
    expect(page.html).toContain('name="code"');
    expect(page.html).toContain('autocomplete="one-time-code"');
    expect(page.html).toContain('aria-live="assertive"');
    expect(page.html).not.toContain('name="password"');
    // Cancel is still offered.
    expect(formEndingWith(page.html, '/mfa/cancel').action).toBe(`${page.interactionPath}/mfa/cancel`);
    // Nothing is finished or confirmed yet: a pending enrolment only, no code, nothing audited.
    expect((await factorState(person.id)).factors).toEqual([expect.stringMatching(/^pending@/)]);
    expect(codesFor).not.toContain(strict.clientId);
    expect(await auditSince(before)).toEqual([]);

    const confirmed = await post(page.agent, page.enrol, { code: await totpCode(page.secret) });
    expect(confirmed.status).toBe(200);
    expect(confirmed.headers.get('cache-control')).toBe('no-store');
    const shown = await confirmed.text();
    const recovery = recoveryCodesOf(shown);
    expect(recovery).toHaveLength(10);
    for (const code of recovery) expect(code).toMatch(/^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$/);
    expect(new Set(recovery).size).toBe(10);
    expect((await factorState(person.id))).toEqual({ factors: [expect.stringMatching(/^active@/)], recoveryCodes: 10 });
    // Set up, audited by the service as the person; still no code for the app.
    expect(await auditSince(before)).toEqual([
      { actor: `person:${person.id}`, action: 'totp.enable', target: `user:${person.id}`, details: {} },
      { actor: `person:${person.id}`, action: 'recovery_codes.generate', target: `user:${person.id}`, details: { count: 10 } },
    ]);
    expect(codesFor).not.toContain(strict.clientId);

    const seq = await lastSeq();
    const done = await page.agent.follow(formEndingWith(shown, '/mfa/enrol/continue').action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf: formEndingWith(shown, '/mfa/enrol/continue').csrf }),
    });
    expect(new URL(done.url).searchParams.get('state')).toBe(page.started.state);
    expect(await idTokenOf(done.url, page.started.verifier)).toMatchObject({ sub: person.id, acr: ACR_MFA, amr: ['pwd', 'otp', 'mfa'] });
    expect(await auditSince(seq)).toEqual([
      { actor: `user:${person.id}`, action: 'mfa.success', target: `user:${person.id}`, details: { method: 'totp', step_up: false, enrolment: true, client_id: strict.clientId } },
      { actor: `user:${person.id}`, action: 'signin.success', target: `user:${person.id}`, details: { client_id: strict.clientId, method: 'password', acr: ACR_MFA, amr: ['pwd', 'otp', 'mfa'] } },
    ]);
    const logs = t.logs.text();
    expect(logs).not.toContain(page.secret);
    for (const code of recovery) expect(logs).not.toContain(code);

    // Next time, at any client, the password leads to the second-factor page, and the app's code (of the next step: this one was used) finishes.
    const agent = new Agent(t.server.url, t.fetch);
    const again = await start(agent, plain.clientId);
    const login = formEndingWith(again.html, '/login');
    const { response } = await agent.follow(login.action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf: login.csrf, email: person.email, password: person.password }),
    });
    const html = await response.text();
    expect(html).toContain('Confirm it&#39;s you');
    expect(html).not.toContain('totp-uri');
    const second = await agent.follow(formEndingWith(html, '/mfa').action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf: hiddenInput(html, 'csrf') ?? '', code: await totpCode(page.secret, 30_000) }),
    });
    expect(await idTokenOf(second.url, again.verifier, plain)).toMatchObject({ sub: person.id, acr: ACR_MFA, amr: ['pwd', 'otp', 'mfa'] });
  });

  it('a wrong or malformed code: the enrolment page again with the error (alert, aria-invalid) and the same key, nothing confirmed, no code; a reload shows the same key too; then the right code works', async () => {
    const person = await newPerson();
    const page = await toEnrolment(person);
    const state = await factorState(person.id);
    const codes = codesFor.length;
    const before = await lastSeq();
    const right = await totpCode(page.secret);
    const wrong = String((Number(right) + 500_000) % 1_000_000).padStart(6, '0');
    for (const [input, status, message] of [
      [wrong, 401, 'That code is not right.'],
      ['abcdef', 400, 'Enter the 6-digit code your authenticator app shows.'],
      ['12345', 400, 'Enter the 6-digit code'],
      ['', 400, 'Enter the 6-digit code'],
      ['x'.repeat(2000), 400, 'Enter the 6-digit code'],
    ] as const) {
      const answer = await post(page.agent, page.enrol, { code: input });
      expect(answer.status, input).toBe(status);
      expect(answer.headers.get('location')).toBeNull();
      const html = await answer.text();
      expect(html, input).toContain(message);
      expect(html).toContain('role="alert"');
      expect(html).toContain('aria-invalid="true"');
      expect(html).toContain('aria-describedby="mfa-error code-help"');
      expect(recoveryCodesOf(html)).toEqual([]);
      // The same enrolment, not a new secret.
      expect(enrolmentOf(html).uri).toBe(page.uri);
    }
    expect(await factorState(person.id)).toEqual(state);
    expect(state).toEqual({ factors: [expect.stringMatching(/^pending@/)], recoveryCodes: 0 });
    expect(codesFor.length).toBe(codes);
    // The wrong code counts as for codes at sign-in; the malformed ones compared nothing.
    expect((await auditSince(before)).map((row) => [row.action, row.details.reason, row.details.enrolment])).toEqual([['mfa.failure', 'invalid_code', true]]);

    // Reloading the page shows the same pending enrolment: no second secret replaces the one being typed.
    const reloaded = await page.agent.follow(page.interactionPath);
    expect(enrolmentOf(await reloaded.response.text()).uri).toBe(page.uri);
    expect(await factorState(person.id)).toEqual(state);

    const confirmed = await post(page.agent, page.enrol, { code: ` ${right.slice(0, 3)} ${right.slice(3)} ` });
    expect(confirmed.status).toBe(200);
    expect(recoveryCodesOf(await confirmed.text())).toHaveLength(10);
  });

  it('a wrong or missing CSRF token is refused (403) on the code and on Continue, and confirms or finishes nothing', async () => {
    const person = await newPerson();
    const page = await toEnrolment(person);
    const right = await totpCode(page.secret);
    const state = await factorState(person.id);
    const before = await lastSeq();
    for (const csrf of [`${page.enrol.csrf}x`, '']) {
      const answer = await page.agent.postForm(page.enrol.action, { csrf, code: right });
      expect(answer.status).toBe(403);
      expect(answer.headers.get('location')).toBeNull();
    }
    expect(await factorState(person.id)).toEqual(state);
    expect(await auditSince(before)).toEqual([]);

    const confirmed = await post(page.agent, page.enrol, { code: right });
    const cont = formEndingWith(await confirmed.text(), '/mfa/enrol/continue');
    const codes = codesFor.length;
    for (const csrf of [`${cont.csrf}x`, '']) {
      const answer = await page.agent.postForm(cont.action, { csrf });
      expect(answer.status).toBe(403);
      expect(answer.headers.get('location')).toBeNull();
    }
    expect(codesFor.length).toBe(codes);
    // Continue with the right token still works.
    const done = await page.agent.follow(cont.action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ csrf: cont.csrf }) });
    expect(await idTokenOf(done.url, page.started.verifier)).toMatchObject({ acr: ACR_MFA });
  });

  it('the recovery codes are shown once: the form sent again and the page reloaded show Continue without them; Continue is taken once', async () => {
    const person = await newPerson();
    const page = await toEnrolment(person);
    const code = await totpCode(page.secret);
    const first = await post(page.agent, page.enrol, { code });
    expect(recoveryCodesOf(await first.text())).toHaveLength(10);

    const resent = await post(page.agent, page.enrol, { code });
    expect(resent.status).toBe(200);
    const resentHtml = await resent.text();
    expect(recoveryCodesOf(resentHtml)).toEqual([]);
    expect(resentHtml).toContain('cannot be shown again');
    const reloaded = await page.agent.follow(page.interactionPath);
    const html = await reloaded.response.text();
    expect(recoveryCodesOf(html)).toEqual([]);
    expect(html).not.toContain('<li>');
    expect(html).toContain('cannot be shown again');
    expect(html).not.toContain('totp-uri');
    // Still one set of codes, made once.
    expect(await factorState(person.id)).toEqual({ factors: [expect.stringMatching(/^active@/)], recoveryCodes: 10 });

    const cont = formEndingWith(html, '/mfa/enrol/continue');
    const answers = await Promise.all([post(page.agent, cont), post(page.agent, cont)]);
    expect(answers.map((answer) => answer.status).sort()).toEqual([303, 400]);
    const finished = answers.find((answer) => answer.status === 303)!;
    const done = await page.agent.follow(finished.headers.get('location')!);
    expect(await idTokenOf(done.url, page.started.verifier)).toMatchObject({ acr: ACR_MFA, amr: ['pwd', 'otp', 'mfa'] });
  });

  it('a browser that skips to the resume URL after the code, before Continue, gets no code and is not signed in', async () => {
    const person = await newPerson();
    const page = await toEnrolment(person);
    const confirmed = await post(page.agent, page.enrol, { code: await totpCode(page.secret) });
    expect(recoveryCodesOf(await confirmed.text())).toHaveLength(10);
    const codes = codesFor.length;
    const resumed = await page.agent.follow(`/auth/${page.uid}`);
    expect(resumed.url.startsWith(`${t.server.url}/interaction/`), resumed.url).toBe(true);
    expect(new URL(resumed.url).searchParams.get('code')).toBeNull();
    expect(await resumed.response.text()).toContain('name="password"');
    expect(codesFor.length).toBe(codes);
    const silent = await start(page.agent, plain.clientId, { prompt: 'none' });
    expect(new URL(silent.url).searchParams.get('error')).toBe('login_required');
  });

  it('the enrolment routes are refused where nothing is set up (400): no second factor needed, or the person has one already (a password never replaces it)', async () => {
    const person = await newPerson();
    const agent = new Agent(t.server.url, t.fetch);
    const started = await start(agent, plain.clientId);
    const { csrf } = formEndingWith(started.html, '/login');
    for (const path of ['/mfa/enrol', '/mfa/enrol/continue']) {
      const refused = await agent.postForm(`${new URL(started.url).pathname}${path}`, { csrf, code: '123456' });
      expect(refused.status, path).toBe(400);
      expect(refused.headers.get('location')).toBeNull();
    }

    // A person who set up an app: a new sign-in at the strict client asks for its code; the enrolment route is refused, nothing changes.
    const page = await toEnrolment(person);
    const shown = await (await post(page.agent, page.enrol, { code: await totpCode(page.secret) })).text();
    const cont = formEndingWith(shown, '/mfa/enrol/continue');
    await page.agent.follow(cont.action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ csrf: cont.csrf }) });
    const state = await factorState(person.id);
    const other = new Agent(t.server.url, t.fetch);
    const again = await start(other, strict.clientId);
    const login = formEndingWith(again.html, '/login');
    const { response } = await other.follow(login.action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf: login.csrf, email: person.email, password: person.password }),
    });
    const html = await response.text();
    expect(html).toContain('Confirm it&#39;s you');
    const before = await lastSeq();
    const refused = await other.postForm(`${new URL(again.url).pathname}/mfa/enrol`, { csrf: login.csrf, code: await totpCode(page.secret, 30_000) });
    expect(refused.status).toBe(400);
    expect(await factorState(person.id)).toEqual(state);
    expect(await auditSince(before)).toEqual([]);
  });

  it('a passkey added while the enrolment page is open: its code is refused (400), nothing is set up, the password alone adds no second factor beside the passkey', async () => {
    const person = await newPerson();
    const page = await toEnrolment(person);
    await insertPasskey(t.server.registry.db, { id: randomUUID(), user_id: person.id, credential_id: randomUUID(), public_key: Buffer.from([1]), counter: 0, transports: [], backup_eligible: false, backup_state: false, aaguid: null, name: 'Added meanwhile' });
    const state = await factorState(person.id);
    const before = await lastSeq();
    const refused = await post(page.agent, page.enrol, { code: await totpCode(page.secret) });
    expect(refused.status).toBe(400);
    expect(await factorState(person.id)).toEqual(state);
    expect(await auditSince(before)).toEqual([]);
  });

  it('a password session that an app now needs at acr mfa, without a factor: the enrolment page at once (no password), then Continue gives acr mfa, amr pwd, otp, mfa, audited as a step-up', async () => {
    const person = await newPerson();
    const agent = new Agent(t.server.url, t.fetch);
    const { status, body } = await codeFlow(agent, { client: plain, redirectUri: REDIRECT_URI, email: person.email, password: person.password });
    expect(status).toBe(200);
    recordSecret(String(body.id_token));

    const started = await start(agent, plain.clientId, { acr_values: ACR_MFA });
    expect(started.response.status).toBe(200);
    expect(started.html).toContain('Plain App asked for a sign-in with a second factor.');
    expect(started.html).not.toContain('name="password"');
    const { secret, svg } = enrolmentOf(started.html);
    expect(isQrSvg(svg!)).toBe(true);
    const shown = await (await post(agent, formEndingWith(started.html, '/mfa/enrol'), { code: await totpCode(secret) })).text();
    expect(recoveryCodesOf(shown)).toHaveLength(10);
    const before = await lastSeq();
    const cont = formEndingWith(shown, '/mfa/enrol/continue');
    const done = await agent.follow(cont.action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ csrf: cont.csrf }) });
    expect(await idTokenOf(done.url, started.verifier, plain)).toMatchObject({ sub: person.id, acr: ACR_MFA, amr: ['pwd', 'otp', 'mfa'] });
    expect((await auditSince(before)).map((row) => [row.action, row.details.step_up ?? row.details.method])).toEqual([
      ['mfa.success', true],
      ['signin.success', 'step_up'],
    ]);
    // The session is at mfa now: the app gets a code without a prompt.
    const silent = await start(agent, plain.clientId, { prompt: 'none', acr_values: ACR_MFA });
    expect(new URL(silent.url).searchParams.get('code')).toBeTruthy();
  });
});
