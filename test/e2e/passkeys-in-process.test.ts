import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { createRemoteJWKSet, customFetch, jwtVerify } from 'jose';
import { AuthenticatorEmulator, PasskeysCredentialsMemoryRepository, WebAuthnEmulator, type AuthenticatorParameters } from 'nid-webauthn-emulator';
import { generateRegistrationOptions, verifyRegistrationResponse, type PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACR_MFA } from '../../src/accounts/authentication-context.js';
import { relyingPartyOf } from '../../src/accounts/passkeys.js';
import { tailAudit } from '../../src/audit/audit-log.js';
import { insertPasskey } from '../../src/registry/passkey.repository.js';
import {
  listPasskeys,
  passkeyRegistrationOptions,
  passkeySignInOptions,
  registerPasskey,
  removePasskey,
  renamePasskey,
  verifyPasskeySignIn,
  WEBAUTHN_CHALLENGE,
  type PasskeyDeps,
} from '../../src/services/passkeys.service.js';
import { beginTotpEnrolment, confirmTotpEnrolment } from '../../src/services/second-factors.service.js';
import { disableUser } from '../../src/services/users.service.js';
import { loadDataKeyring } from '../../src/keys/data-key.js';
import { totpCode } from '../fixtures/totp.js';
import { Agent, authorizeUrl, hiddenInput, pkce } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';

/*
 * Passkeys in process (docs/design/sign-in-methods.md §4.4): nid-webauthn-emulator plays the
 * browser and authenticator against the in-process issuer http://gatehouse.test (the emulator takes
 * that RP ID: §13.4). People register through the service (the /account routes come later); they
 * sign in through the real pages with t.fetch. Every refusal: the page says why, no code is issued,
 * the passkeys row is unchanged, and an audit row names the reason.
 */

const REDIRECT_URI = 'http://127.0.0.1:8765/callback';

/**
 * An authenticator of its own: the emulator's default credential store is shared by every instance
 * in the process, so each test's authenticator gets a repository of its own.
 */
function freshAuthenticator(params: Partial<AuthenticatorParameters> = {}): AuthenticatorEmulator {
  return new AuthenticatorEmulator({ credentialsRepository: new PasskeysCredentialsMemoryRepository(), ...params });
}
const freshEmulator = () => new WebAuthnEmulator(freshAuthenticator());

interface Person {
  id: string;
  email: string;
  password: string;
}

describe('passkeys (in process, WebAuthn emulator)', () => {
  let t: TestServer;
  let deps: PasskeyDeps;
  let app: { clientId: string; clientSecret: string };
  let thirdParty: { clientId: string; clientSecret: string };
  let strict: { clientId: string; clientSecret: string };
  let origin: string;
  const codesFor: string[] = [];

  beforeAll(async () => {
    t = await startTestServer({ name: 'passkeys-in-process', listen: false });
    (t.server.host.provider as unknown as NodeJS.EventEmitter).on('authorization_code.saved', (code: { clientId: string }) => codesFor.push(code.clientId));
    origin = new URL(t.config.issuer).origin;
    deps = { ...t.services, store: t.server.store, relyingParty: relyingPartyOf(t.config.issuer) };
    app = await t.build.client({ client_name: 'Passkey App', redirect_uris: [REDIRECT_URI], first_party: true });
    thirdParty = await t.build.client({ client_name: 'Third Party', redirect_uris: [REDIRECT_URI] });
    strict = await t.build.client({ client_name: 'Strict App', redirect_uris: [REDIRECT_URI], first_party: true, require_mfa: true });
  });
  afterAll(() => t.close());

  /** A person with a passkey in `emulator`, registered through the service as the person would on /account. */
  async function withPasskey(emulator = freshEmulator(), person?: Person) {
    const who = person ?? (await t.build.person({ email: `pk-${randomUUID()}@example.test` }));
    const binding = randomUUID();
    const options = await passkeyRegistrationOptions(deps, who.id, binding);
    const response = emulator.createJSON(origin, options);
    const passkey = await registerPasskey(deps, { actor: `person:${who.id}` }, who.id, JSON.stringify(response), 'Laptop', binding);
    return { person: who, emulator, passkey };
  }

  async function start(agent: Agent, clientId = app.clientId, params: Record<string, string> = {}) {
    const { verifier, challenge } = pkce();
    const state = randomUUID();
    const { response, url } = await agent.follow(authorizeUrl({ client_id: clientId, redirect_uri: REDIRECT_URI, code_challenge: challenge, code_challenge_method: 'S256', state, ...params }));
    const html = await response.text();
    return { response, url, verifier, state, html, uid: new URL(url).pathname.split('/').at(-1)! };
  }

  /** The passkey form of a page: its action, options URL and CSRF token. */
  function passkeyForm(html: string) {
    const form = /<form id="passkey-form"[^>]*action="([^"]+)"[^>]*data-options="([^"]+)"/.exec(html);
    if (!form) throw new Error(`no passkey form: ${html.slice(0, 400)}`);
    return { action: form[1]!, options: form[2]!, csrf: hiddenInput(html, 'csrf') ?? '' };
  }

  async function optionsFor(agent: Agent, url: string, csrf: string): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const answer = await agent.request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ csrf }) });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('cache-control')).toBe('no-store');
    return (await answer.json()) as PublicKeyCredentialRequestOptionsJSON;
  }

  /** To the login page, then the discoverable options and the emulator's answer (not posted yet). */
  async function assertion(emulator: WebAuthnEmulator, agent = new Agent(t.server.url, t.fetch), clientId = app.clientId) {
    const started = await start(agent, clientId);
    const form = passkeyForm(started.html);
    const options = await optionsFor(agent, form.options, form.csrf);
    return { agent, started, form, options, response: () => JSON.stringify(emulator.getJSON(origin, options)) };
  }

  const post = (agent: Agent, form: { action: string; csrf: string }, response: string) => agent.postForm(form.action, { csrf: form.csrf, response });

  async function idTokenOf(redirect: string, verifier: string, client = app) {
    const code = new URL(redirect).searchParams.get('code');
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
  const rowsOf = async (userId: string) =>
    (await sql<Record<string, unknown>>`select id, credential_id, counter::text as counter, backup_state, last_used_at, name from passkeys where user_id = ${userId} order by id`.execute(t.server.registry.db)).rows;

  /** A refused passkey sign-in: the status and words of the page, no code, the rows unchanged, and one audit row with the reason. */
  async function expectRefused(
    run: () => Promise<Response>,
    expected: { status: number; text: string; reason: string; userId?: string; target?: string | null },
  ) {
    const rows = expected.userId ? await rowsOf(expected.userId) : undefined;
    const codes = codesFor.length;
    const before = await lastSeq();
    const answer = await run();
    expect(answer.status).toBe(expected.status);
    expect(answer.headers.get('location')).toBeNull();
    const html = await answer.text();
    expect(html).toContain(expected.text);
    expect(codesFor.length).toBe(codes);
    if (expected.userId) expect(await rowsOf(expected.userId)).toEqual(rows);
    const audit = await auditSince(before);
    expect(audit.map((row) => [row.action, row.details.reason, row.details.method])).toEqual([['signin.failure', expected.reason, 'passkey']]);
    if (expected.target !== undefined) expect(audit[0]!.target).toBe(expected.target);
    return html;
  }

  it('register through the service (audited as the person), then sign in with no password: an ID token with acr mfa and amr swk, mfa; the counter moves on', async () => {
    const someone = await t.build.person({ email: `pk-${randomUUID()}@example.test` });
    const before = await lastSeq();
    const { person, emulator, passkey } = await withPasskey(freshEmulator(), someone);
    expect(await auditSince(before)).toEqual([
      { actor: `person:${person.id}`, action: 'passkey.register', target: `passkey:${passkey.id}`, details: { user_id: person.id, name: 'Laptop', backup_eligible: true, aaguid: expect.any(String) } },
    ]);
    expect(await listPasskeys(t.server.registry.db, person.id)).toEqual([{ id: passkey.id, name: 'Laptop', synced: true, createdAt: expect.any(Date), lastUsedAt: null }]);

    const { agent, started, form, options, response } = await assertion(emulator);
    // Discoverable: no list of credentials, user verification required, for the issuer's host.
    expect(options.rpId).toBe('gatehouse.test');
    expect(options.userVerification).toBe('required');
    expect(options.allowCredentials ?? []).toEqual([]);
    const signedInFrom = await lastSeq();
    const answer = await post(agent, form, response());
    expect(answer.status).toBe(303);
    const done = await agent.follow(answer.headers.get('location')!);
    const payload = await idTokenOf(done.url, started.verifier);
    expect(payload).toMatchObject({ sub: person.id, acr: ACR_MFA, amr: ['swk', 'mfa'] });
    expect(await auditSince(signedInFrom)).toEqual([
      { actor: `user:${person.id}`, action: 'signin.success', target: `user:${person.id}`, details: { client_id: app.clientId, method: 'passkey', passkey_id: passkey.id, acr: ACR_MFA, amr: ['swk', 'mfa'] } },
    ]);
    const [row] = await rowsOf(person.id);
    expect(row).toMatchObject({ counter: '1', backup_state: true });
    expect(row!.last_used_at).toBeInstanceOf(Date);
    // The person's last sign-in is recorded as for a password, in the same transaction as the counter.
    const user = (await sql<{ last_login_at: Date | null }>`select last_login_at from users where id = ${person.id}`.execute(t.server.registry.db)).rows[0];
    expect(user!.last_login_at).toEqual(row!.last_used_at);
  });

  it('the login page: the #passkey-signin button in a form that works without script, the email field offers passkeys (autocomplete), scripts only with this response\'s nonce; the consent page still has no script', async () => {
    const agent = new Agent(t.server.url, t.fetch);
    const started = await start(agent, thirdParty.clientId);
    const html = started.html;
    expect(html).toMatch(/<button type="submit" id="passkey-signin"[^>]*>Sign in with a passkey<\/button>/);
    expect(html).toContain('autocomplete="username webauthn"');
    const csp = started.response.headers.get('content-security-policy')!;
    const nonce = /script-src 'nonce-([A-Za-z0-9+/=]+)'/.exec(csp)?.[1];
    expect(nonce).toBeTruthy();
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).toContain("connect-src 'self'");
    expect(html).toContain(`<script src="/assets/webauthn.js" nonce="${nonce}" defer></script>`);
    expect(html).toContain(`<script src="/assets/passkey.js" nonce="${nonce}" defer></script>`);
    // No inline script: every script tag has a src.
    expect(html.match(/<script(?![^>]*\bsrc=)[^>]*>/g)).toBeNull();
    // A new nonce for every response.
    const again = await agent.request(new URL(started.url).pathname);
    expect(again.headers.get('content-security-policy')).not.toContain(nonce);

    // Without script the form posts an empty response: a clear page, nothing tried, nothing audited.
    const form = passkeyForm(html);
    const before = await lastSeq();
    const noScript = await agent.postForm(form.action, { csrf: form.csrf, response: '' });
    expect(noScript.status).toBe(400);
    expect(await noScript.text()).toContain('Passkeys need JavaScript in this browser');
    expect(await auditSince(before)).toEqual([]);

    // The consent page (a third-party app, after a passkey sign-in) keeps no script at all.
    const { emulator } = await withPasskey();
    const options = await optionsFor(agent, form.options, form.csrf);
    const answer = await post(agent, form, JSON.stringify(emulator.getJSON(origin, options)));
    const consent = await agent.follow(answer.headers.get('location')!);
    const consentHtml = await consent.response.text();
    expect(consentHtml).toContain('name="decision"');
    expect(consent.response.headers.get('content-security-policy')).not.toContain('script-src');
    expect(consentHtml).not.toContain('<script');
  });

  it('the scripts: /assets/webauthn.js is @simplewebauthn/browser from node_modules, /assets/passkey.js our glue, both cacheable JavaScript', async () => {
    const lib = await t.fetch('/assets/webauthn.js');
    expect(lib.status).toBe(200);
    expect(lib.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(lib.headers.get('cache-control')).toBe('public, max-age=3600');
    expect(await lib.text()).toMatch(/^\/\* \[@simplewebauthn\/browser@14\./);
    const glue = await t.fetch('/assets/passkey.js');
    expect(glue.status).toBe(200);
    const text = await glue.text();
    expect(text).toContain('startAuthentication');
    expect(text).not.toMatch(/\beval\(|new Function/);
  });

  it('the options endpoint: JSON with the CSRF token only, at most 1 KiB, never cached', async () => {
    const agent = new Agent(t.server.url, t.fetch);
    const { html } = await start(agent);
    const form = passkeyForm(html);
    const ask = (body: string, type = 'application/json') => agent.request(form.options, { method: 'POST', headers: { 'content-type': type }, body });
    for (const [body, type, status] of [
      [JSON.stringify({ csrf: 'forged' }), 'application/json', 403],
      [JSON.stringify({}), 'application/json', 403],
      [`csrf=${form.csrf}`, 'application/x-www-form-urlencoded', 415],
      ['{not json', 'application/json', 400],
      [JSON.stringify({ csrf: form.csrf, pad: 'x'.repeat(2000) }), 'application/json', 413],
    ] as const) {
      const answer = await ask(body, type);
      expect(answer.status, body.slice(0, 40)).toBe(status);
      expect(answer.headers.get('cache-control')).toBe('no-store');
      expect(JSON.stringify(await answer.json())).not.toContain('challenge');
    }
  });

  it('a passkey answer with a forged or missing CSRF token: 403, the challenge still unused, nothing changed; the right token then signs in', async () => {
    const { person, emulator } = await withPasskey();
    const { agent, started, form, response } = await assertion(emulator);
    const answer = response();
    const rows = await rowsOf(person.id);
    for (const csrf of ['forged', '']) {
      const refused = await agent.postForm(form.action, { csrf, response: answer });
      expect(refused.status).toBe(403);
      expect(await refused.text()).toContain('This form has expired');
    }
    expect(await rowsOf(person.id)).toEqual(rows);
    expect((await t.server.store.find(WEBAUTHN_CHALLENGE, `login:${started.uid}`))?.consumed).toBeUndefined();
    expect((await post(agent, form, answer)).status).toBe(303);
  });

  it('the same response posted twice: the second is refused as a replayed challenge, the row unchanged, audited', async () => {
    const { person, emulator } = await withPasskey();
    const { agent, form, response } = await assertion(emulator);
    const once = response();
    expect((await post(agent, form, once)).status).toBe(303);
    await expectRefused(() => post(agent, form, once), { status: 401, text: 'That passkey prompt has expired.', reason: 'replayed_challenge', userId: person.id });
  });

  it('a challenge that expired before the answer: refused as stale, the row unchanged, audited', async () => {
    const { person, emulator } = await withPasskey();
    const { agent, started, form, response } = await assertion(emulator);
    const key = `login:${started.uid}`;
    const stored = await t.server.store.find(WEBAUTHN_CHALLENGE, key);
    expect(stored).toBeDefined();
    // The same challenge, now living one second: it is gone after two.
    await t.server.store.upsert(WEBAUTHN_CHALLENGE, key, stored!, 1);
    await new Promise((resolve) => setTimeout(resolve, 2100));
    expect(await t.server.store.find(WEBAUTHN_CHALLENGE, key)).toBeUndefined();
    await expectRefused(() => post(agent, form, response()), { status: 401, text: 'That passkey prompt has expired.', reason: 'stale_challenge', userId: person.id });
  });

  it('a challenge replaced by a new options request between the answer\'s find and consume: refused as stale, never verified against the old one', async () => {
    const { person, emulator } = await withPasskey();
    const binding = randomUUID();
    const options = await passkeySignInOptions(deps, 'login', binding);
    const response = JSON.stringify(emulator.getJSON(origin, options));
    // The page's autofill prompt or a second tab asks for options while this answer is being taken.
    const racing: PasskeyDeps = {
      ...deps,
      store: {
        ...deps.store,
        consume: async (model: string, id: string) => {
          await passkeySignInOptions(deps, 'login', binding);
          return deps.store.consume(model, id);
        },
      },
    };
    const rows = await rowsOf(person.id);
    expect(await verifyPasskeySignIn(racing, 'login', binding, response)).toMatchObject({ ok: false, reason: 'stale_challenge' });
    expect(await rowsOf(person.id)).toEqual(rows);
  });

  it('a passkey registered nowhere here: "not registered here", nothing written, audited without a target', async () => {
    const stranger = freshEmulator();
    const other = await generateRegistrationOptions({ rpName: 'x', rpID: 'gatehouse.test', userName: 'nobody', attestationType: 'none', authenticatorSelection: { residentKey: 'required', userVerification: 'required' } });
    stranger.createJSON(origin, other);
    const { agent, form, response } = await assertion(stranger);
    await expectRefused(() => post(agent, form, response()), { status: 401, text: 'This passkey is not registered here.', reason: 'unknown_credential', target: null });
  });

  it('a counter that goes back (a cloned authenticator): refused, the row unchanged', async () => {
    const { person, emulator, passkey } = await withPasskey();
    const first = await assertion(emulator);
    expect((await post(first.agent, first.form, first.response())).status).toBe(303);
    await sql`update passkeys set counter = 100 where id = ${passkey.id}`.execute(t.server.registry.db);
    const { agent, form, response } = await assertion(emulator);
    await expectRefused(() => post(agent, form, response()), { status: 401, text: 'This passkey could not be used', reason: 'counter_regression', userId: person.id, target: `passkey:${passkey.id}` });
    expect((await rowsOf(person.id))[0]).toMatchObject({ counter: '100' });
  });

  it('an authenticator that did not verify the user (UV false): refused, the row unchanged', async () => {
    const authenticator = freshAuthenticator();
    const { person } = await withPasskey(new WebAuthnEmulator(authenticator));
    // The person is present but not verified (no PIN, no biometric) for this sign-in.
    authenticator.params = { ...authenticator.params, userGetAssertionInteraction: () => ({ options: { uv: false, up: true } }) };
    const { agent, form, response } = await assertion(new WebAuthnEmulator(authenticator));
    await expectRefused(() => post(agent, form, response()), { status: 401, text: 'did not confirm it is you', reason: 'user_verification', userId: person.id });
  });

  it('an answer made for another origin, and one for another RP ID: refused, rows unchanged', async () => {
    const { person, emulator } = await withPasskey();
    const evil = await assertion(emulator);
    const fromEvil = JSON.stringify(emulator.getJSON('https://evil.example', { ...evil.options, rpId: 'gatehouse.test' }, ['https://evil.example']));
    await expectRefused(() => post(evil.agent, evil.form, fromEvil), { status: 401, text: 'This passkey could not be used', reason: 'wrong_origin', userId: person.id });

    // A credential of the RP example.org, for this person, stored here by mistake: its signature is over another RP ID.
    const rp = await generateRegistrationOptions({ rpName: 'Example', rpID: 'example.org', userName: person.email, userID: new TextEncoder().encode(person.id), attestationType: 'none', authenticatorSelection: { residentKey: 'required', userVerification: 'required' } });
    const made = emulator.createJSON('https://example.org', rp);
    const verified = await verifyRegistrationResponse({ response: made, expectedChallenge: rp.challenge, expectedOrigin: 'https://example.org', expectedRPID: 'example.org' });
    const cred = verified.registrationInfo!.credential;
    await insertPasskey(t.server.registry.db, { id: randomUUID(), user_id: person.id, credential_id: cred.id, public_key: Buffer.from(cred.publicKey), counter: 0, transports: [], backup_eligible: true, backup_state: true, aaguid: null, name: 'Other RP' });
    const other = await assertion(emulator);
    const forOtherRp = JSON.stringify(emulator.getJSON(origin, { ...other.options, rpId: 'example.org' }, [origin]));
    await expectRefused(() => post(other.agent, other.form, forOtherRp), { status: 401, text: 'This passkey could not be used', reason: 'wrong_rp_id', userId: person.id });
  });

  it('malformed and oversized responses: a 400 or 413 page, nothing changed; malformed is audited, oversized is refused before anything is read', async () => {
    const { person, emulator } = await withPasskey();
    const { agent, form, response } = await assertion(emulator);
    for (const bad of ['not json', '{"id":"abc"}', JSON.stringify({ ...JSON.parse(response()), type: 'password' }), '[]']) {
      await expectRefused(() => post(agent, form, bad), { status: 400, text: 'This passkey response could not be read.', reason: 'malformed', userId: person.id });
    }
    const rows = await rowsOf(person.id);
    const before = await lastSeq();
    const huge = await post(agent, form, JSON.stringify({ id: 'a'.repeat(17 * 1024) }));
    expect(huge.status).toBe(413);
    expect(await huge.text()).toContain('This passkey response is too large');
    expect(await rowsOf(person.id)).toEqual(rows);
    expect(await auditSince(before)).toEqual([]);
  });

  it('a disabled person: their passkey is refused, the row unchanged', async () => {
    const { person, emulator } = await withPasskey();
    await disableUser(t.services, { actor: 'cli:test' }, person.id);
    const { agent, form, response } = await assertion(emulator);
    await expectRefused(() => post(agent, form, response()), { status: 401, text: 'This passkey could not be used', reason: 'disabled', userId: person.id });
  });

  it('the limit per account: after 10 refused uses of a known passkey, even a right one is refused (429, Retry-After) before its signature is checked; signin.lockout once', async () => {
    const { person, emulator, passkey } = await withPasskey();
    await sql`update passkeys set counter = 1000000 where id = ${passkey.id}`.execute(t.server.registry.db);
    const before = await lastSeq();
    for (let attempt = 0; attempt < 10; attempt += 1) {
      const { agent, form, response } = await assertion(emulator);
      expect((await post(agent, form, response())).status).toBe(401);
    }
    const rows = await auditSince(before);
    expect(rows.filter((row) => row.action === 'signin.failure').map((row) => row.details.reason)).toEqual(Array(10).fill('counter_regression'));
    expect(rows.filter((row) => row.action === 'signin.lockout')).toEqual([
      { actor: 'anonymous', action: 'signin.lockout', target: `user:${person.id}`, details: { method: 'passkey', retry_after_seconds: expect.any(Number), client_id: app.clientId } },
    ]);
    // Now a right answer (the counter put back): still refused, the row untouched, nothing more audited.
    await sql`update passkeys set counter = 0 where id = ${passkey.id}`.execute(t.server.registry.db);
    const state = await rowsOf(person.id);
    const codes = codesFor.length;
    const locked = await lastSeq();
    const { agent, form, response } = await assertion(emulator);
    const answer = await post(agent, form, response());
    expect(answer.status).toBe(429);
    expect(Number(answer.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await answer.text()).toContain('Too many failed sign-ins.');
    expect(codesFor.length).toBe(codes);
    expect(await rowsOf(person.id)).toEqual(state);
    expect(await auditSince(locked)).toEqual([]);
  });

  it('answers that name someone else\'s passkey (a wrong user handle) are no guess at it: 11 of them do not lock its owner out', async () => {
    const { person, emulator } = await withPasskey();
    const other = await t.build.person({ email: `pk-${randomUUID()}@example.test` });
    const before = await lastSeq();
    for (let attempt = 0; attempt < 11; attempt += 1) {
      const { agent, form, response } = await assertion(emulator);
      const forged = JSON.parse(response()) as { response: { userHandle?: string } };
      forged.response.userHandle = Buffer.from(other.id).toString('base64url');
      expect((await post(agent, form, JSON.stringify(forged))).status).toBe(401);
    }
    const rows = await auditSince(before);
    expect(rows.filter((row) => row.action === 'signin.failure').map((row) => row.details.reason)).toEqual(Array(11).fill('wrong_user'));
    expect(rows.filter((row) => row.action === 'signin.lockout')).toEqual([]);
    const { agent, form, response, started } = await assertion(emulator);
    const done = await post(agent, form, response());
    expect(done.status).toBe(303);
    const finished = await agent.follow(done.headers.get('location')!);
    expect((await idTokenOf(finished.url, started.verifier)).sub).toBe(person.id);
  });

  it('rename and remove through the service, audited as the person; a removed passkey is then unknown', async () => {
    const { person, emulator, passkey } = await withPasskey();
    const before = await lastSeq();
    await renamePasskey(t.services, { actor: `person:${person.id}` }, person.id, passkey.id, '  Work\u0007 key ');
    await removePasskey(t.services, { actor: `person:${person.id}` }, person.id, passkey.id);
    expect(await auditSince(before)).toEqual([
      { actor: `person:${person.id}`, action: 'passkey.rename', target: `passkey:${passkey.id}`, details: { user_id: person.id, from: 'Laptop', name: 'Work key' } },
      { actor: `person:${person.id}`, action: 'passkey.remove', target: `passkey:${passkey.id}`, details: { user_id: person.id, name: 'Work key', backup_eligible: true } },
    ]);
    const { agent, form, response } = await assertion(emulator);
    await expectRefused(() => post(agent, form, response()), { status: 401, text: 'This passkey is not registered here.', reason: 'unknown_credential' });
  });

  it('after a password, a person with a passkey (and no authenticator app) is asked for it, even where the app requires a second factor: amr pwd, swk, mfa', async () => {
    const { person, emulator, passkey } = await withPasskey();
    const agent = new Agent(t.server.url, t.fetch);
    const started = await start(agent, strict.clientId);
    const login = /<form method="post" action="([^"]+\/login)"/.exec(started.html)![1]!;
    const posted = await agent.postForm(login, { csrf: hiddenInput(started.html, 'csrf')!, email: person.email, password: person.password });
    expect(posted.status).toBe(303);
    const page = await agent.follow(posted.headers.get('location')!);
    const html = await page.response.text();
    expect(html).toContain('Confirm it&#39;s you');
    expect(html).toContain('Use your passkey');
    expect(html).not.toContain('name="code"');
    expect(html).not.toContain('totp-uri');
    expect(page.response.headers.get('content-security-policy')).toMatch(/script-src 'nonce-/);
    const form = passkeyForm(html);
    expect(form.action).toBe(`/interaction/${started.uid}/mfa/passkey`);
    const options = await optionsFor(agent, form.options, form.csrf);
    expect(options.allowCredentials?.map((c) => c.id)).toEqual([(await sql<{ credential_id: string }>`select credential_id from passkeys where id = ${passkey.id}`.execute(t.server.registry.db)).rows[0]!.credential_id]);

    // Another person's passkey is not this person's second factor.
    const { emulator: otherEmulator } = await withPasskey();
    const otherOptions = await optionsFor(agent, form.options, form.csrf);
    const foreign = JSON.stringify(otherEmulator.getJSON(origin, { ...otherOptions, allowCredentials: [] }));
    const before = await lastSeq();
    const refused = await agent.postForm(form.action, { csrf: form.csrf, response: foreign });
    expect(refused.status).toBe(401);
    expect((await auditSince(before)).map((row) => [row.action, row.details.reason, row.details.method])).toEqual([['mfa.failure', 'wrong_user', 'passkey']]);

    const fresh = await optionsFor(agent, form.options, form.csrf);
    const from = await lastSeq();
    const answer = await agent.postForm(form.action, { csrf: form.csrf, response: JSON.stringify(emulator.getJSON(origin, fresh)) });
    expect(answer.status).toBe(303);
    const done = await agent.follow(answer.headers.get('location')!);
    expect(await idTokenOf(done.url, started.verifier, strict)).toMatchObject({ sub: person.id, acr: ACR_MFA, amr: ['pwd', 'swk', 'mfa'] });
    expect((await auditSince(from)).map((row) => [row.action, row.details.method, row.details.amr])).toEqual([
      ['mfa.success', 'passkey', undefined],
      ['signin.success', 'password', ['pwd', 'swk', 'mfa']],
    ]);
  });

  it('a password session that an app now needs at acr mfa, for a person who has added a passkey since: the passkey page at once (no password), then amr pwd, swk, mfa, audited as a step-up', async () => {
    const person = await t.build.person({ email: `step-up-${randomUUID()}@example.test` });
    const agent = new Agent(t.server.url, t.fetch);
    const first = await start(agent);
    const login = /<form method="post" action="([^"]+\/login)"/.exec(first.html)![1]!;
    const signedIn = await agent.postForm(login, { csrf: hiddenInput(first.html, 'csrf')!, email: person.email, password: person.password });
    const done = await agent.follow(signedIn.headers.get('location')!);
    expect(await idTokenOf(done.url, first.verifier)).toMatchObject({ sub: person.id, amr: ['pwd'] });

    const { emulator } = await withPasskey(freshEmulator(), person);
    const stepUp = await start(agent, app.clientId, { acr_values: ACR_MFA });
    expect(stepUp.html).toContain('Confirm it&#39;s you');
    expect(stepUp.html).not.toContain('name="password"');
    const form = passkeyForm(stepUp.html);
    expect(form.action).toBe(`/interaction/${stepUp.uid}/mfa/passkey`);
    const options = await optionsFor(agent, form.options, form.csrf);
    const before = await lastSeq();
    const answer = await agent.postForm(form.action, { csrf: form.csrf, response: JSON.stringify(emulator.getJSON(origin, options)) });
    expect(answer.status).toBe(303);
    const finished = await agent.follow(answer.headers.get('location')!);
    expect(await idTokenOf(finished.url, stepUp.verifier)).toMatchObject({ sub: person.id, acr: ACR_MFA, amr: ['pwd', 'swk', 'mfa'] });
    expect((await auditSince(before)).map((row) => [row.action, row.details.method, row.details.step_up])).toEqual([
      ['mfa.success', 'passkey', true],
      ['signin.success', 'step_up', undefined],
    ]);
  });

  it('a person with an authenticator app and a passkey: after the password, the code field and "Use a passkey instead" (scripts by nonce), and the passkey finishes: amr pwd, swk, mfa', async () => {
    const { person, emulator } = await withPasskey();
    const secondFactors = { ...t.services, dataKeys: await loadDataKeyring(t.config.keysDir, { generateIfMissing: false }) };
    const { secret } = await beginTotpEnrolment(secondFactors, person.id, { issuer: 'Gatehouse' });
    recordSecret(secret);
    const codes = await confirmTotpEnrolment(secondFactors, { actor: `person:${person.id}` }, person.id, await totpCode(secret, -30_000));
    for (const code of codes.recoveryCodes) recordSecret(code);

    const agent = new Agent(t.server.url, t.fetch);
    const started = await start(agent);
    const login = /<form method="post" action="([^"]+\/login)"/.exec(started.html)![1]!;
    const posted = await agent.postForm(login, { csrf: hiddenInput(started.html, 'csrf')!, email: person.email, password: person.password });
    const page = await agent.follow(posted.headers.get('location')!);
    const html = await page.response.text();
    expect(html).toContain('name="code"');
    expect(html).toMatch(/<button type="submit" id="mfa-passkey" class="secondary"[^>]*>Use a passkey instead<\/button>/);
    expect(page.response.headers.get('content-security-policy')).toMatch(/script-src 'nonce-/);
    const form = passkeyForm(html);
    const options = await optionsFor(agent, form.options, form.csrf);
    const answer = await agent.postForm(form.action, { csrf: form.csrf, response: JSON.stringify(emulator.getJSON(origin, options)) });
    const done = await agent.follow(answer.headers.get('location')!);
    expect(await idTokenOf(done.url, started.verifier)).toMatchObject({ sub: person.id, acr: ACR_MFA, amr: ['pwd', 'swk', 'mfa'] });
  });
});
