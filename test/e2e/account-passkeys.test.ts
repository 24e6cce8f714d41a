import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { AuthenticatorEmulator, PasskeysCredentialsMemoryRepository, WebAuthnEmulator } from 'nid-webauthn-emulator';
import type { PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACR_MFA } from '../../src/accounts/authentication-context.js';
import { tailAudit } from '../../src/audit/audit-log.js';
import { WEBAUTHN_CHALLENGE } from '../../src/services/passkeys.service.js';
import { beginTotpEnrolment, confirmTotpEnrolment } from '../../src/services/second-factors.service.js';
import { loadDataKeyring } from '../../src/keys/data-key.js';
import { Agent, hiddenInput } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';
import { totpCode } from '../fixtures/totp.js';

/*
 * Passkeys on the account page (docs/design/sign-in-methods.md §4.2, §7.3), in process:
 * nid-webauthn-emulator plays the browser and authenticator against the real /account routes
 * (options, the form post, rename, remove), then signs in with the passkey on the login page with
 * no password. Every refusal: the status and words, and the passkeys rows and audit unchanged (or
 * one audit row saying why).
 */

interface Person {
  id: string;
  email: string;
  password: string;
}

const freshEmulator = () => new WebAuthnEmulator(new AuthenticatorEmulator({ credentialsRepository: new PasskeysCredentialsMemoryRepository() }));

function csrfOf(html: string): string {
  const token = hiddenInput(html, 'csrf');
  expect(token, html.slice(0, 400)).toBeTruthy();
  return token!;
}

/** The ids of the passkeys listed on the account page, in order (from their rename forms). */
const listedIds = (html: string) => [...html.matchAll(/action="\/account\/passkeys\/([0-9a-f-]{36})\/rename"/g)].map((match) => match[1]!);

function setUp(name: string, env: Record<string, string> = {}) {
  const ctx = {} as { t: TestServer; origin: string };
  beforeAll(async () => {
    ctx.t = await startTestServer({ name, listen: false, env });
    ctx.origin = new URL(ctx.t.config.issuer).origin;
  });
  afterAll(() => ctx.t.close());
  const db = () => ctx.t.server.registry.db;

  async function signInWithPassword(person: Person, agent = new Agent(ctx.t.server.url, ctx.t.fetch), code?: () => Promise<string>) {
    let { response, url } = await agent.follow('/account');
    let html = await response.text();
    const login = /<form method="post" action="([^"]+\/login)"/.exec(html)?.[1];
    expect(login, `${url}: ${html.slice(0, 300)}`).toBeTruthy();
    const posted = await agent.postForm(login!, { csrf: csrfOf(html), email: person.email, password: person.password });
    expect(posted.status).toBe(303);
    ({ response, url } = await agent.follow(posted.headers.get('location')!));
    html = await response.text();
    const mfa = /<form method="post" action="([^"]+\/mfa)"/.exec(html)?.[1];
    if (mfa) {
      expect(code, 'the second-factor page was not expected').toBeDefined();
      const sent = await agent.postForm(mfa, { csrf: csrfOf(html), code: await code!() });
      expect(sent.status).toBe(303);
      ({ response, url } = await agent.follow(sent.headers.get('location')!));
      html = await response.text();
    }
    expect(url).toBe(`${ctx.t.server.url}/account`);
    return { agent, html };
  }

  async function optionsRequest(agent: Agent, csrf: unknown) {
    return agent.request('/account/passkeys/options', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ csrf }) });
  }

  /** Options from /account, the emulator's new credential, and the form post (answered, not followed). */
  async function addPasskey(agent: Agent, html: string, emulator: WebAuthnEmulator, name = 'Laptop') {
    const answer = await optionsRequest(agent, csrfOf(html));
    expect(answer.status).toBe(200);
    expect(answer.headers.get('cache-control')).toBe('no-store');
    const options = (await answer.json()) as PublicKeyCredentialCreationOptionsJSON;
    const response = JSON.stringify(emulator.createJSON(ctx.origin, options));
    const posted = await agent.postForm('/account/passkeys', { csrf: csrfOf(html), name, response });
    return { options, response, posted };
  }

  /** Signs in on the account page's login page with the passkey only (no password). */
  async function signInWithPasskey(emulator: WebAuthnEmulator, agent = new Agent(ctx.t.server.url, ctx.t.fetch)) {
    const { response } = await agent.follow('/account');
    const html = await response.text();
    const form = /<form id="passkey-form"[^>]*action="([^"]+)"[^>]*data-options="([^"]+)"/.exec(html);
    expect(form, html.slice(0, 400)).toBeTruthy();
    const got = await agent.request(form![2]!, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ csrf: csrfOf(html) }) });
    expect(got.status).toBe(200);
    const options = (await got.json()) as PublicKeyCredentialRequestOptionsJSON;
    const posted = await agent.postForm(form![1]!, { csrf: csrfOf(html), response: JSON.stringify(emulator.getJSON(ctx.origin, options)) });
    return { agent, posted };
  }

  async function ageSession(agent: Agent, seconds: number) {
    const session = await ctx.t.server.host.provider.Session.find(agent.cookies.get('_session')!);
    session!.loginTs = (session!.loginTs ?? 0) - seconds;
    await session!.save(3600);
  }

  const rowsOf = async (userId: string) =>
    (await sql<Record<string, unknown>>`select id, credential_id, counter::text as counter, name, last_used_at from passkeys where user_id = ${userId} order by created_at, id`.execute(db())).rows;
  const lastSeq = async () => (await tailAudit(db(), { limit: 1 })).at(-1)?.seq ?? 0;
  const auditSince = async (seq: number) => (await tailAudit(db(), { afterSeq: seq })).map((row) => ({ actor: row.actor, action: row.action, target: row.target, details: row.details }));
  const challengeOf = (agentSessionUid: string) => ctx.t.server.store.find(WEBAUTHN_CHALLENGE, `register:${agentSessionUid}`);
  const sessionUid = async (agent: Agent) => (await ctx.t.server.host.provider.Session.find(agent.cookies.get('_session')!))!.uid;
  const newPerson = (): Promise<Person> => ctx.t.build.person({ email: `acct-pk-${randomUUID()}@example.test` });

  /**
   * A person with one passkey (added after a password sign-in), signed in again with it: a recent
   * session with acr mfa, which every later sensitive change needs now that they have a second factor.
   */
  async function withPasskeySession(person?: Person) {
    const who = person ?? (await newPerson());
    const first = await signInWithPassword(who);
    const emulator = freshEmulator();
    expect((await addPasskey(first.agent, first.html, emulator)).posted.status).toBe(303);
    const { agent, posted } = await signInWithPasskey(emulator);
    expect(posted.status).toBe(303);
    const landed = await agent.follow(posted.headers.get('location')!);
    expect(landed.url).toBe(`${ctx.t.server.url}/account`);
    return { person: who, agent, html: await landed.response.text(), emulator, passwordAgent: first.agent };
  }

  return { ctx, db, signInWithPassword, withPasskeySession, optionsRequest, addPasskey, signInWithPasskey, ageSession, rowsOf, lastSeq, auditSince, challengeOf, sessionUid, newPerson };
}

describe('passkeys on the account page', () => {
  const k = setUp('account-passkeys');

  it('register on /account (303 to the list, audited as the person), sign in with it and no password, rename, remove: then the passkey is refused as unknown', async () => {
    const person = await k.newPerson();
    const { agent, html } = await k.signInWithPassword(person);
    // The section: the button, in a form that posts without script; the page carries its scripts by nonce only.
    expect(html).toContain('id="passkeys-empty"');
    expect(html).toMatch(/<button type="submit" id="add-passkey"[^>]*>Add a passkey<\/button>/);
    expect(html).toMatch(/<form id="add-passkey-form" method="post" action="\/account\/passkeys" data-passkey="register" data-options="\/account\/passkeys\/options"/);
    const emulator = freshEmulator();
    const before = await k.lastSeq();
    const { options, posted } = await k.addPasskey(agent, html, emulator, 'Work laptop');
    expect(options.rp.id).toBe('gatehouse.test');
    expect(options.authenticatorSelection).toMatchObject({ residentKey: 'required', userVerification: 'required' });
    expect(options.excludeCredentials).toEqual([]);
    expect(posted.status).toBe(303);
    expect(posted.headers.get('location')).toBe('/account#passkeys');
    const rows = await k.rowsOf(person.id);
    expect(rows).toHaveLength(1);
    const id = rows[0]!.id as string;
    expect(rows[0]).toMatchObject({ name: 'Work laptop', counter: '0', last_used_at: null });
    expect(await k.auditSince(before)).toEqual([
      { actor: `person:${person.id}`, action: 'passkey.register', target: `passkey:${id}`, details: expect.objectContaining({ user_id: person.id, name: 'Work laptop' }) },
    ]);
    const listed = await (await agent.request('/account')).text();
    expect(listedIds(listed)).toEqual([id]);
    expect(listed).toContain('<strong id="passkey-name-0">Work laptop</strong> <span class="tag">Synced</span>');
    expect(listed).toContain('Last used Never');
    expect(listed).not.toContain('id="passkeys-empty"');

    // Now the person has a second factor: this password session is no longer enough for a change.
    expect((await k.optionsRequest(agent, csrfOf(listed))).status).toBe(401);

    // Sign in elsewhere with the passkey alone.
    const { agent: other, posted: signedIn } = await k.signInWithPasskey(emulator);
    expect(signedIn.status).toBe(303);
    const landed = await other.follow(signedIn.headers.get('location')!);
    expect(landed.url).toBe(`${k.ctx.t.server.url}/account`);
    const session = await k.ctx.t.server.host.provider.Session.find(other.cookies.get('_session')!);
    expect(session).toMatchObject({ accountId: person.id, acr: ACR_MFA });
    let page = await landed.response.text();
    // A second one: the options exclude the first credential (the browser will not make it again).
    const second = await k.optionsRequest(other, csrfOf(page));
    expect(second.status).toBe(200);
    const secondOptions = (await second.json()) as PublicKeyCredentialCreationOptionsJSON;
    expect(secondOptions.excludeCredentials?.map((c) => c.id)).toEqual([rows[0]!.credential_id]);
    expect(page).toMatch(/Last used <time datetime="[^"]+">/);
    expect(page).toContain('<td>Passkey</td>');

    // Rename (a label only: the signed-in session and its token).
    const renamedFrom = await k.lastSeq();
    const renamed = await other.postForm(`/account/passkeys/${id}/rename`, { csrf: csrfOf(page), name: 'Phone' });
    expect(renamed.status).toBe(200);
    page = await renamed.text();
    expect(page).toContain('Passkey renamed to “Phone”.');
    expect(page).toContain('<strong id="passkey-name-0">Phone</strong>');
    expect(await k.auditSince(renamedFrom)).toEqual([
      { actor: `person:${person.id}`, action: 'passkey.rename', target: `passkey:${id}`, details: { user_id: person.id, from: 'Work laptop', name: 'Phone' } },
    ]);

    // Remove (recent: the passkey sign-in just now, acr mfa).
    const removedFrom = await k.lastSeq();
    const removed = await other.postForm(`/account/passkeys/${id}/delete`, { csrf: csrfOf(page), name: 'Phone' });
    expect(removed.status).toBe(200);
    page = await removed.text();
    expect(page).toContain('Passkey removed.');
    expect(page).toContain('id="passkeys-empty"');
    expect(await k.rowsOf(person.id)).toEqual([]);
    expect((await k.auditSince(removedFrom)).map((row) => [row.action, row.target])).toEqual([['passkey.remove', `passkey:${id}`]]);

    // The credential stays in the authenticator, and is refused as unknown.
    const refusedFrom = await k.lastSeq();
    const { posted: refused } = await k.signInWithPasskey(emulator);
    expect(refused.status).toBe(401);
    expect(await refused.text()).toContain('This passkey is not registered here.');
    expect((await k.auditSince(refusedFrom)).map((row) => [row.action, row.details.reason])).toEqual([['signin.failure', 'unknown_credential']]);
  });

  it('CSRF: options and the form with no token or another session\'s token are refused (403), no challenge kept, nothing stored', async () => {
    const person = await k.newPerson();
    const { agent, html } = await k.signInWithPassword(person);
    const { html: foreignHtml } = await k.signInWithPassword(await k.newPerson());
    const foreign = csrfOf(foreignHtml);
    const uid = await k.sessionUid(agent);
    for (const token of [undefined, '', foreign]) {
      const answer = await k.optionsRequest(agent, token);
      expect(answer.status).toBe(403);
      expect(await answer.json()).toEqual({ error: 'csrf_token_invalid' });
      expect(answer.headers.get('cache-control')).toBe('no-store');
    }
    expect(await k.challengeOf(uid)).toBeUndefined();
    // A real answer to real options, posted with a wrong token: nothing stored.
    const answer = await k.optionsRequest(agent, csrfOf(html));
    const response = JSON.stringify(freshEmulator().createJSON(k.ctx.origin, (await answer.json()) as PublicKeyCredentialCreationOptionsJSON));
    const before = await k.lastSeq();
    for (const form of [{ name: 'x', response }, { csrf: foreign, name: 'x', response }] as Record<string, string>[]) {
      const posted = await agent.postForm('/account/passkeys', form);
      expect(posted.status).toBe(403);
      expect(await posted.text()).toContain('This form has expired');
    }
    expect(await k.rowsOf(person.id)).toEqual([]);
    expect(await k.auditSince(before)).toEqual([]);
    // Options as a form or too large: refused the same way.
    const asForm = await agent.postForm('/account/passkeys/options', { csrf: csrfOf(html) });
    expect(asForm.status).toBe(415);
    const tooLarge = await k.optionsRequest(agent, 'x'.repeat(2048));
    expect(tooLarge.status).toBe(413);
  });

  it('not recent: options answer 401 reauth_required with no challenge, the form and a removal answer 303 to re-authentication, nothing stored; renaming still works', async () => {
    const person = await k.newPerson();
    const { agent, html } = await k.signInWithPassword(person);
    // A passkey made while recent, then the session grows old.
    const made = await k.addPasskey(agent, html, freshEmulator());
    expect(made.posted.status).toBe(303);
    const [row] = await k.rowsOf(person.id);
    await k.ageSession(agent, 3600);
    const page = await (await agent.request('/account')).text();
    const uid = await k.sessionUid(agent);
    await k.ctx.t.server.store.destroy(WEBAUTHN_CHALLENGE, `register:${uid}`);
    const options = await k.optionsRequest(agent, csrfOf(page));
    expect(options.status).toBe(401);
    expect(await options.json()).toEqual({ error: 'reauth_required' });
    expect(await k.challengeOf(uid)).toBeUndefined();
    const before = await k.lastSeq();
    for (const [path, form] of [
      ['/account/passkeys', { csrf: csrfOf(page), name: 'x', response: '' }],
      [`/account/passkeys/${row!.id}/delete`, { csrf: csrfOf(page) }],
    ] as const) {
      const posted = await agent.postForm(path, form);
      expect(posted.status, path).toBe(303);
      expect(posted.headers.get('location')).toBe('/account/reauth?next=%2Faccount%23passkeys');
    }
    expect(await k.rowsOf(person.id)).toEqual([row]);
    expect(await k.auditSince(before)).toEqual([]);
    // The person now has a passkey, a second factor: the re-authentication asks for acr mfa.
    const reauth = await agent.request('/account/reauth?next=%2Faccount%23passkeys');
    const location = new URL(reauth.headers.get('location')!, k.ctx.t.server.url);
    expect(location.searchParams.get('max_age')).toBe('0');
    expect(location.searchParams.get('acr_values')).toBe(ACR_MFA);
    // A rename is a label: no recent sign-in needed.
    const renamed = await agent.postForm(`/account/passkeys/${row!.id}/rename`, { csrf: csrfOf(page), name: 'Old laptop' });
    expect(renamed.status).toBe(200);
    expect((await k.rowsOf(person.id))[0]).toMatchObject({ name: 'Old laptop' });
  });

  it('a replayed registration response is refused (the challenge was taken), one row only, audited passkey.register_failure', async () => {
    const { person, agent, html } = await k.withPasskeySession();
    const { response, posted } = await k.addPasskey(agent, html, freshEmulator());
    expect(posted.status).toBe(303);
    const rows = await k.rowsOf(person.id);
    const before = await k.lastSeq();
    const again = await agent.postForm('/account/passkeys', { csrf: csrfOf(html), name: 'Again', response });
    expect(again.status).toBe(400);
    expect(await again.text()).toContain('That passkey prompt has expired.');
    expect(await k.rowsOf(person.id)).toEqual(rows);
    expect(await k.auditSince(before)).toEqual([{ actor: `user:${person.id}`, action: 'passkey.register_failure', target: `user:${person.id}`, details: { reason: 'replayed_challenge' } }]);
    // Unreadable, empty (no script) and oversized answers: a clear page, nothing stored.
    const fresh = await k.optionsRequest(agent, csrfOf(html));
    expect(fresh.status).toBe(200);
    for (const [value, status, text] of [
      ['{not json', 400, 'could not be read'],
      ['', 400, 'needs JavaScript'],
      ['x'.repeat(17 * 1024), 413, 'too large'],
    ] as const) {
      const answer = await agent.postForm('/account/passkeys', { csrf: csrfOf(html), name: '', response: value });
      expect(answer.status, text).toBe(status);
      expect(await answer.text()).toContain(text);
    }
    expect(await k.rowsOf(person.id)).toEqual(rows);
  });

  it('another person\'s passkey id (and an id that is no id): rename and remove answer 404, nothing changed, nothing audited', async () => {
    const owner = await k.newPerson();
    const mine = await k.signInWithPassword(owner);
    expect((await k.addPasskey(mine.agent, mine.html, freshEmulator())).posted.status).toBe(303);
    const [theirs] = await k.rowsOf(owner.id);
    const intruder = await k.newPerson();
    const { agent, html } = await k.signInWithPassword(intruder);
    const before = await k.lastSeq();
    for (const id of [theirs!.id as string, randomUUID(), 'not-a-uuid', "1' or '1'='1"]) {
      for (const action of ['rename', 'delete']) {
        const answer = await agent.postForm(`/account/passkeys/${encodeURIComponent(id)}/${action}`, { csrf: csrfOf(html), name: 'Mine now' });
        expect(answer.status, `${action} ${id}`).toBe(404);
        expect(await answer.text()).toContain('Passkey not found');
      }
    }
    expect(await k.rowsOf(owner.id)).toEqual([theirs]);
    expect(await k.auditSince(before)).toEqual([]);
  });

  it('names: NFKC, control characters removed, 1–64 characters, escaped on the page; an empty name is "Passkey <date>"; a bad one stores nothing', async () => {
    const { person, agent, html } = await k.withPasskeySession();
    const hostile = '<img src=x onerror=alert(1)>\u0007"&\'ﬁ';
    expect((await k.addPasskey(agent, html, freshEmulator(), hostile)).posted.status).toBe(303);
    expect((await k.rowsOf(person.id))[1]).toMatchObject({ name: '<img src=x onerror=alert(1)>"&\'fi' });
    const page = await (await agent.request('/account')).text();
    expect(page).toContain('&lt;img src=x onerror=alert(1)&gt;&quot;&amp;&#39;fi');
    expect(page).not.toContain('<img src=x');
    expect((await k.addPasskey(agent, page, freshEmulator(), '')).posted.status).toBe(303);
    expect((await k.rowsOf(person.id))[2]!.name).toMatch(/^Passkey \d{4}-\d{2}-\d{2}$/);
    const rows = await k.rowsOf(person.id);
    for (const name of ['x'.repeat(65), '\u0001\u0002', '   ']) {
      const answer = await agent.postForm(`/account/passkeys/${rows[0]!.id}/rename`, { csrf: csrfOf(page), name });
      expect(answer.status, JSON.stringify(name)).toBe(400);
      expect(await answer.text()).toContain('1 to 64 characters');
    }
    const long = await k.addPasskey(agent, page, freshEmulator(), 'y'.repeat(65));
    expect(long.posted.status).toBe(400);
    // The refused name's field has the focus, marked invalid and tied to the message.
    expect(await long.posted.text()).toMatch(/<input id="passkey-name"[^>]*aria-describedby="account-error passkey-name-help" aria-invalid="true" autofocus>/);
    expect(await k.rowsOf(person.id)).toEqual(rows);
  });

  it('a person without a password (an upstream sign-up) cannot remove their only passkey (409, row kept, nothing audited); with a second one, one can go', async () => {
    const { person, agent, html } = await k.withPasskeySession();
    await sql`update users set password_hash = null where id = ${person.id}`.execute(k.db());
    const rows = await k.rowsOf(person.id);
    expect(rows).toHaveLength(1);
    const before = await k.lastSeq();
    const refused = await agent.postForm(`/account/passkeys/${rows[0]!.id}/delete`, { csrf: csrfOf(html) });
    expect(refused.status).toBe(409);
    expect(await refused.text()).toContain('This passkey is your only way to sign in.');
    expect(await k.rowsOf(person.id)).toEqual(rows);
    expect(await k.auditSince(before)).toEqual([]);
    expect((await k.addPasskey(agent, html, freshEmulator(), 'Phone')).posted.status).toBe(303);
    expect(await k.rowsOf(person.id)).toHaveLength(2);
    const removed = await agent.postForm(`/account/passkeys/${rows[0]!.id}/delete`, { csrf: csrfOf(html) });
    expect(removed.status).toBe(200);
    expect((await k.rowsOf(person.id)).map((row) => row.name)).toEqual(['Phone']);
  });
});

describe('passkeys on the account page under MFA_REQUIRED, and the account page\'s code limit', () => {
  const k = setUp('account-passkeys-mfa', { MFA_REQUIRED: 'true', LOGIN_MAX_FAILURES_PER_ACCOUNT: '3' });

  /** A person with an authenticator app (set up through the service), signed in with password and code. */
  async function withApp() {
    const person = await k.newPerson();
    const deps = { ...k.ctx.t.services, dataKeys: await loadDataKeyring(k.ctx.t.config.keysDir, { generateIfMissing: false }) };
    const enrolment = await beginTotpEnrolment(deps, person.id, { issuer: 'Gatehouse' });
    recordSecret(enrolment.secret);
    // The previous step's code confirms it; the sign-in uses the current one (each step is used once).
    await confirmTotpEnrolment(deps, { actor: `person:${person.id}` }, person.id, await totpCode(enrolment.secret, -30_000), { startedAt: enrolment.startedAt });
    const signedIn = await k.signInWithPassword(person, undefined, () => totpCode(enrolment.secret));
    return { person, ...signedIn };
  }

  it('a passkey is a second factor: the app can be turned off when a passkey remains; then the last passkey cannot be removed (409, row kept)', async () => {
    const { person, agent, html } = await withApp();
    expect(html).toContain('id="totp-required"');
    expect(html).not.toContain('id="disable-totp"');
    expect((await k.addPasskey(agent, html, freshEmulator())).posted.status).toBe(303);
    let page = await (await agent.request('/account')).text();
    expect(page).toContain('id="disable-totp"');
    const off = await agent.postForm('/account/totp/delete', { csrf: csrfOf(page) });
    expect(off.status).toBe(200);
    page = await off.text();
    expect((await sql<{ n: string }>`select count(*) as n from totp_factors where user_id = ${person.id}`.execute(k.db())).rows[0]!.n).toBe('0');
    expect(page).toContain('id="passkey-required"');
    const rows = await k.rowsOf(person.id);
    const before = await k.lastSeq();
    const refused = await agent.postForm(`/account/passkeys/${rows[0]!.id}/delete`, { csrf: csrfOf(page) });
    expect(refused.status).toBe(409);
    expect(await refused.text()).toContain('your last passkey cannot be removed');
    expect(await k.rowsOf(person.id)).toEqual(rows);
    expect(await k.auditSince(before)).toEqual([]);
  });

  it('the confirming code of a new app on /account counts with the mfa limiter: wrong codes are audited, the limit answers 429 with Retry-After and compares no code', async () => {
    // A person with a passkey and no app (the app turned off once the passkey was there) sets an app up again.
    const { agent: appAgent, html: appHtml, person: owner } = await withApp();
    expect((await k.addPasskey(appAgent, appHtml, freshEmulator())).posted.status).toBe(303);
    let page = await (await appAgent.request('/account')).text();
    expect((await appAgent.postForm('/account/totp/delete', { csrf: csrfOf(page) })).status).toBe(200);
    page = await (await appAgent.request('/account')).text();
    const started = await appAgent.postForm('/account/totp', { csrf: csrfOf(page) });
    expect(started.status).toBe(200);
    const startedHtml = await started.text();
    const uri = /<code id="totp-uri">([^<]+)<\/code>/.exec(startedHtml)![1]!.replaceAll('&amp;', '&');
    const secret = new URL(uri).searchParams.get('secret')!;
    recordSecret(secret);
    const startedAt = hiddenInput(startedHtml, 'started_at')!;
    const before = await k.lastSeq();
    const wrong = async () => {
      const right = await totpCode(secret);
      return right === '000000' ? '111111' : '000000';
    };
    // Not six digits: no guess, not counted.
    const malformed = await appAgent.postForm('/account/totp/confirm', { csrf: csrfOf(page), started_at: startedAt, code: 'abc' });
    expect(malformed.status).toBe(400);
    for (let i = 0; i < 3; i += 1) {
      const answer = await appAgent.postForm('/account/totp/confirm', { csrf: csrfOf(page), started_at: startedAt, code: await wrong() });
      expect(answer.status).toBe(401);
    }
    const limited = await appAgent.postForm('/account/totp/confirm', { csrf: csrfOf(page), started_at: startedAt, code: await totpCode(secret) });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await limited.text()).toContain('Too many wrong codes.');
    const audit = await k.auditSince(before);
    expect(audit.map((row) => [row.action, row.details.reason ?? null])).toEqual([
      ['mfa.failure', 'invalid_code'],
      ['mfa.failure', 'invalid_code'],
      ['mfa.failure', 'invalid_code'],
      ['mfa.lockout', null],
    ]);
    expect(audit.every((row) => row.actor === `user:${owner.id}`)).toBe(true);
    const states = await sql<{ state: string }>`select state from totp_factors where user_id = ${owner.id}`.execute(k.db());
    expect(states.rows.map((row) => row.state)).toEqual(['pending']);
  });
});
