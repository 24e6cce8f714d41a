import { randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { tailAudit } from '../../src/audit/audit-log.js';
import { loadDataKeyring } from '../../src/keys/data-key.js';
import { beginTotpEnrolment, confirmTotpEnrolment } from '../../src/services/second-factors.service.js';
import { disableUser } from '../../src/services/users.service.js';
import type { BuiltPerson } from '../fixtures/builders.js';
import { Agent, hiddenInput } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { isBackgroundQuery, startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';
import { TEST_ACTOR } from '../fixtures/services.js';
import { startSmtpSink, type SmtpSink, type SunkMail } from '../fixtures/smtp-sink.js';
import { totpCode } from '../fixtures/totp.js';

/*
 * Password reset (issue 17 §3), in process (t.fetch), with mail delivered over SMTP to a real SMTP
 * server on loopback (the sink) and read from there: "Forgot password?" → the neutral answer → the
 * mail's one link → the new-password page → the password is set, every session and refresh token of
 * the person ends. And what is refused: dead, reused and garbage links, disabled people, weak
 * passwords, missing CSRF tokens, and too many requests, each leaving everything as it was.
 */

/** Requests per address this file's server allows within the hour. */
const PER_ADDRESS = 3;
const NEW_PASSWORD = 'a brand new password for the reset 2718';

const csrfOf = (html: string) => hiddenInput(html, 'csrf') ?? '';

describe('password reset by mail', () => {
  let sink: SmtpSink;
  let t: TestServer;
  let issuer: string;

  beforeAll(async () => {
    sink = await startSmtpSink();
    // The shared Redis counts requests per IP across runs (every test signs in from 127.0.0.1): the
    // IP limit is tested on a server of its own, with the in-process store.
    t = await startTestServer({ name: 'password-reset', listen: false, env: { SMTP_URL: sink.url, RESET_MAX_PER_ADDRESS: String(PER_ADDRESS), RESET_MAX_PER_IP: '100000' } });
    issuer = t.config.issuer;
  });
  afterAll(async () => {
    await t?.close();
    await sink?.close();
  });

  const db = () => t.server.registry.db;
  const browser = () => new Agent(issuer, t.fetch);
  const newPerson = (input: { password?: string } = {}) => t.build.person({ email: `reset-${randomUUID()}@example.test`, ...input });
  const passwordHashOf = async (id: string) => (await sql<{ password_hash: string | null }>`select password_hash from users where id = ${id}`.execute(db())).rows[0]?.password_hash;
  const linkRows = async (id: string) => (await sql<{ digest: string; used_at: Date | null }>`select digest, used_at from email_links where user_id = ${id}`.execute(db())).rows;

  /** Asks for a reset of `email` on `agent` from the "Forgot password?" page, as a browser would. */
  async function askReset(agent: Agent, email: string, options: { start?: string } = {}) {
    const form = await agent.request(options.start ?? '/reset');
    expect(form.status).toBe(200);
    const html = await form.text();
    return agent.postForm('/reset', { csrf: csrfOf(html), email, return: hiddenInput(html, 'return') ?? '' });
  }

  /** The one link of a reset mail: under the issuer, its value in the query. */
  function linkOf(mail: SunkMail): string {
    const links = [...new Set(mail.links)];
    expect(links).toHaveLength(1);
    expect(links[0]!.startsWith(`${issuer}/reset/password?token=`)).toBe(true);
    recordSecret(new URL(links[0]!).searchParams.get('token'));
    return links[0]!;
  }

  /** Asks for a reset and reads its link from the mail the sink received. */
  async function resetLinkFor(person: BuiltPerson, agent = browser()): Promise<string> {
    const answer = await askReset(agent, person.email);
    expect(answer.status).toBe(200);
    return linkOf(await sink.waitFor((mail) => mail.to.includes(person.email)));
  }

  /** Opens the link and sets `password` through its form; answers the POST's response. */
  async function setPassword(agent: Agent, link: string, password: string, confirm = password) {
    const page = await agent.request(link);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('name="password"');
    return agent.postForm('/reset/password', { csrf: csrfOf(html), token: hiddenInput(html, 'token') ?? '', password, confirm });
  }

  /** Signs in at /account on `agent` with a password: the page it ended on (the account page, the second-factor page, or the login page again). */
  async function signInAtAccount(agent: Agent, email: string, password: string) {
    const { response } = await agent.follow('/account');
    const html = await response.text();
    const login = /<form method="post" action="([^"]+\/login)"/.exec(html)?.[1];
    expect(login, html.slice(0, 300)).toBeTruthy();
    recordSecret(password);
    const posted = await agent.postForm(login!, { csrf: csrfOf(html), email, password });
    if (posted.status !== 303) return { status: posted.status, url: login!, html: await posted.text() };
    const followed = await agent.follow(posted.headers.get('location')!);
    return { status: followed.response.status, url: followed.url, html: await followed.response.text() };
  }

  it('the login page links to "Forgot password?" (#forgot-password), whose form asks for name="email" and returns to that sign-in', async () => {
    const agent = browser();
    const { response } = await agent.follow('/account');
    const html = await response.text();
    const href = /<a id="forgot-password" href="([^"]+)"/.exec(html)?.[1]?.replaceAll('&amp;', '&');
    expect(href).toMatch(/^\/reset\?return=%2Finteraction%2F[A-Za-z0-9_-]+$/);
    const uid = decodeURIComponent(href!.split('=')[1]!);
    const form = await agent.request(href!);
    expect(form.status).toBe(200);
    expect(form.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(form.headers.get('cache-control')).toBe('no-store');
    const page = await form.text();
    expect(page).toContain('name="email"');
    expect(page).toContain('<meta name="referrer" content="no-referrer">');
    expect(hiddenInput(page, 'return')).toBe(uid);
    expect(page).toContain(`<a href="${uid}">Back to sign in</a>`);
    // In German when the browser asks for it.
    const german = await (await agent.request(href!, { headers: { 'accept-language': 'de' } })).text();
    expect(german).toContain('Passwort zurücksetzen');
    expect(german).toContain('lang="de"');
    // Only an interaction's path may be returned to.
    const foreign = await (await agent.request('/reset?return=https%3A%2F%2Fevil.example%2F')).text();
    expect(hiddenInput(foreign, 'return')).toBe('/account');
    expect(foreign).not.toContain('evil.example');
  });

  it('a full reset: the mail (one link under the issuer, 30 minutes, "ignore it"), the new password signs in and the old does not; other sessions, refresh tokens and the link end; audited', async () => {
    const person = await newPerson();
    const client = await t.build.client({ client_name: 'Reset App', redirect_uris: ['http://127.0.0.1:8765/cb'], grant_types: ['authorization_code', 'refresh_token'], first_party: true });
    const refreshToken = await t.build.refreshToken({ client, person });
    // Another browser, signed in before the reset.
    const other = browser();
    expect((await signInAtAccount(other, person.email, person.password)).url).toBe(`${issuer}/account`);
    const before = (await tailAudit(db(), { limit: 1 })).at(-1)?.seq ?? 0;

    const agent = browser();
    const answer = await askReset(agent, person.email);
    expect(answer.status).toBe(200);
    const mail = await sink.waitFor((m) => m.to.includes(person.email));
    expect(mail.subject).toBe('Reset your Gatehouse password');
    expect(mail.text).toContain('30 minutes');
    expect(mail.text).toContain('If you did not ask for this, ignore this mail');
    expect(mail.html).toContain('lang="en"');
    const link = linkOf(mail);
    // Only its digest is stored.
    const [row] = await linkRows(person.id);
    expect(row?.digest).not.toContain(new URL(link).searchParams.get('token'));

    const done = await setPassword(agent, link, NEW_PASSWORD);
    expect(done.status).toBe(200);
    const donePage = await done.text();
    expect(donePage).toContain('Your password has been changed');
    expect(donePage).toContain('<a href="/account" id="reset-sign-in">');
    recordSecret(NEW_PASSWORD);

    // The other browser's session has ended; its refresh token is refused.
    const otherAccount = await other.request('/account');
    expect(otherAccount.status).toBe(303);
    expect(otherAccount.headers.get('location')).toBe('/account/sign-in');
    const refreshed = await tokenRequest(issuer, { grant_type: 'refresh_token', refresh_token: refreshToken }, client, t.fetch);
    expect(refreshed.status).toBe(400);
    expect(refreshed.body.error).toBe('invalid_grant');

    // The old password no longer signs in, the new one does.
    const old = await signInAtAccount(browser(), person.email, person.password);
    expect(old.status).toBe(401);
    expect((await signInAtAccount(browser(), person.email, NEW_PASSWORD)).url).toBe(`${issuer}/account`);

    // Used once: a second use is refused and changes nothing.
    const hash = await passwordHashOf(person.id);
    const again = await agent.request(link);
    expect(again.status).toBe(410);
    expect(await again.text()).toContain('This link was already used');
    const page = await agent.request('/reset');
    const reused = await agent.postForm('/reset/password', { csrf: csrfOf(await page.text()), token: new URL(link).searchParams.get('token')!, password: 'yet another password 31415', confirm: 'yet another password 31415' });
    expect(reused.status).toBe(410);
    expect(await passwordHashOf(person.id)).toBe(hash);

    const audit = (await tailAudit(db(), { afterSeq: before })).filter((r) => r.action === 'user.password_reset');
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actor: `person:${person.id}`, target: `user:${person.id}` });
    expect(audit[0]!.details).toMatchObject({ sessions_ended: true });
    // Following the mailed link proved the address: it is verified now (it was not before).
    expect((audit[0]!.details as { before: { email_verified: boolean }; after: { email_verified: boolean } }).before.email_verified).toBe(false);
    expect((await sql<{ email_verified: boolean }>`select email_verified from users where id = ${person.id}`.execute(db())).rows[0]?.email_verified).toBe(true);
    // The link's value never reached a log line.
    expect(t.logs.text()).not.toContain(new URL(link).searchParams.get('token')!);
  });

  it('answers byte for byte the same for a person, an unknown address, a disabled person and one without a password; only the person gets a link', async () => {
    const known = await newPerson();
    const disabled = await newPerson();
    await disableUser(t.services, TEST_ACTOR, disabled.id);
    const passwordless = await newPerson();
    await sql`update users set password_hash = null where id = ${passwordless.id}`.execute(db());
    const unknown = `nobody-${randomUUID()}@example.test`;

    const agent = browser();
    // The CSRF cookie is set once, by the first form.
    await agent.request('/reset');
    const answers: Array<{ status: number; body: string; cookies: string[] }> = [];
    for (const email of [known.email, unknown, disabled.email, passwordless.email, known.email.toUpperCase()]) {
      const response = await askReset(agent, email);
      answers.push({ status: response.status, body: await response.text(), cookies: response.headers.getSetCookie() });
    }
    for (const answer of answers) expect(answer).toEqual(answers[0]);
    expect(answers[0]!.status).toBe(200);
    expect(answers[0]!.body).toContain('If an account exists for that address, we sent a link to it.');
    for (const email of [known.email, unknown, disabled.email, passwordless.email]) expect(answers[0]!.body).not.toContain(email);

    // The person (asked for twice, in two spellings) gets mail; nobody else does.
    await sink.waitFor((m) => m.to.includes(known.email));
    expect(await linkRows(disabled.id)).toHaveLength(0);
    expect(await linkRows(passwordless.id)).toHaveLength(0);
    const sentinel = await newPerson();
    await resetLinkFor(sentinel);
    for (const email of [unknown, disabled.email, passwordless.email]) expect(sink.messages.filter((m) => m.to.includes(email))).toHaveLength(0);
    const reasons = t.logs.entries().filter((e) => e.msg === 'password reset: no mail sent').map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(['unknown', 'disabled', 'no_password']));
  });

  it('does the same work before answering for a person and for an unknown address: the link and its mail come after the answer (no timing to tell them apart)', async () => {
    const known = await newPerson();
    const unknown = `nobody-${randomUUID()}@example.test`;
    const agent = browser();
    await agent.request('/reset');
    // Each registry query, with how many log lines were written when it ran (logging is synchronous):
    // the request's own 'request' line is written when its answer is complete.
    const executor = db().getExecutor();
    const original = executor.executeQuery.bind(executor);
    const spy = vi.spyOn(executor, 'executeQuery');
    const before = async (email: string, settled: () => Promise<unknown>) => {
      spy.mockClear();
      const at: number[] = [];
      spy.mockImplementation((...args) => {
        at.push(t.logs.lines().length);
        return original(...args);
      });
      const linesBefore = t.logs.lines().length;
      const answer = await askReset(agent, email);
      expect(answer.status).toBe(200);
      const entries = t.logs.entries().slice(linesBefore);
      const answered = linesBefore + entries.findIndex((e) => e.msg === 'request' && e.method === 'POST' && e.path === '/reset') + 1;
      expect(answered).toBeGreaterThan(linesBefore);
      await settled();
      const sqls = spy.mock.calls.map(([query]) => (query as { sql: string }).sql);
      // Not the server's own background queries (the registry's revision poll, the audit-log follower).
      const own = (_: string, i: number) => !isBackgroundQuery(sqls[i]!);
      return { beforeAnswer: sqls.filter((q, i) => own(q, i) && at[i]! < answered), afterAnswer: sqls.filter((q, i) => own(q, i) && at[i]! >= answered) };
    };
    try {
      // Settled: the person's mail has come; for the unknown address, a later request has been answered.
      const person = await before(known.email, () => sink.waitFor((m) => m.to.includes(known.email)));
      const nobody = await before(unknown, () => agent.request('/reset'));
      // Before the answer: the same one look-up of the address, whoever it is.
      expect(person.beforeAnswer).toHaveLength(1);
      expect(person.beforeAnswer).toEqual(nobody.beforeAnswer);
      expect(person.beforeAnswer[0]).toMatch(/from "users"/);
      // After it, and only for the person: the link is stored.
      expect(person.afterAnswer.some((q) => /insert into "email_links"/.test(q))).toBe(true);
      expect(nobody.afterAnswer.some((q) => /email_links/.test(q))).toBe(false);
    } finally {
      spy.mockRestore();
    }
  });

  it('an expired link is refused (GET and POST) and the password stays', async () => {
    const person = await newPerson();
    const link = await resetLinkFor(person);
    const agent = browser();
    const page = await (await agent.request(link)).text();
    await sql`update email_links set expires_at = now() - interval '1 second' where user_id = ${person.id}`.execute(db());
    const hash = await passwordHashOf(person.id);
    const opened = await agent.request(link);
    expect(opened.status).toBe(410);
    const html = await opened.text();
    expect(html).toContain('This link has expired');
    expect(html).toContain('href="/reset"');
    expect(html).not.toContain('name="password"');
    const posted = await agent.postForm('/reset/password', { csrf: csrfOf(page), token: hiddenInput(page, 'token')!, password: NEW_PASSWORD, confirm: NEW_PASSWORD });
    expect(posted.status).toBe(410);
    expect(await passwordHashOf(person.id)).toBe(hash);
  });

  it('a link of a person disabled since is refused, the link stays unused and the password unchanged', async () => {
    const person = await newPerson();
    const link = await resetLinkFor(person);
    const agent = browser();
    const page = await (await agent.request(link)).text();
    await disableUser(t.services, TEST_ACTOR, person.id);
    const hash = await passwordHashOf(person.id);
    const opened = await agent.request(link);
    expect(opened.status).toBe(403);
    expect(await opened.text()).toContain('This password cannot be reset');
    const posted = await agent.postForm('/reset/password', { csrf: csrfOf(page), token: hiddenInput(page, 'token')!, password: NEW_PASSWORD, confirm: NEW_PASSWORD });
    expect(posted.status).toBe(403);
    expect(await passwordHashOf(person.id)).toBe(hash);
    expect((await linkRows(person.id)).map((row) => row.used_at)).toEqual([null]);
  });

  it('short, common and mismatched passwords are refused with the field marked and focused; the link still works afterwards', async () => {
    const person = await newPerson();
    const link = await resetLinkFor(person);
    const agent = browser();
    const hash = await passwordHashOf(person.id);

    const short = await setPassword(agent, link, 'short');
    expect(short.status).toBe(400);
    const shortHtml = await short.text();
    expect(shortHtml).toContain('The password must be at least 12 characters long.');
    expect(shortHtml).toMatch(/<input id="password"[^>]*aria-describedby="reset-password-error password-hint"[^>]* autofocus aria-invalid="true">/);

    const common = await setPassword(agent, link, '1qaz2wsx3edc');
    expect(common.status).toBe(400);
    expect(await common.text()).toContain('too common');

    const overlong = await setPassword(agent, link, 'x'.repeat(1025));
    expect(overlong.status).toBe(400);
    expect(await overlong.text()).toContain('at most 1024 characters');

    const mismatch = await setPassword(agent, link, NEW_PASSWORD, `${NEW_PASSWORD}!`);
    expect(mismatch.status).toBe(400);
    const mismatchHtml = await mismatch.text();
    expect(mismatchHtml).toContain('The two passwords are not the same.');
    expect(mismatchHtml).toMatch(/<input id="confirm"[^>]*autofocus aria-invalid="true" aria-describedby="reset-password-error">/);

    expect(await passwordHashOf(person.id)).toBe(hash);
    expect((await setPassword(agent, link, NEW_PASSWORD)).status).toBe(200);
    expect(await passwordHashOf(person.id)).not.toBe(hash);
  });

  it('garbage in the link (10,000 characters of HTML) gets a clear page that echoes none of it', async () => {
    const agent = browser();
    const garbage = `<script>alert(1)</script>"'&${'A'.repeat(10_000)}`;
    const opened = await agent.request(`/reset/password?token=${encodeURIComponent(garbage)}`);
    expect(opened.status).toBe(400);
    const html = await opened.text();
    expect(html).toContain('This link does not work');
    expect(html).not.toContain('<script>');
    expect(html).not.toContain('AAAAAAAAAA');
    const page = await (await agent.request('/reset')).text();
    const posted = await agent.postForm('/reset/password', { csrf: csrfOf(page), token: garbage, password: NEW_PASSWORD, confirm: NEW_PASSWORD });
    expect(posted.status).toBe(400);
    const postedHtml = await posted.text();
    expect(postedHtml).not.toContain('<script>');
    expect(postedHtml).not.toContain('AAAAAAAAAA');
    // No token at all, or two of them: the same page.
    expect((await agent.request('/reset/password')).status).toBe(400);
    expect((await agent.request('/reset/password?token=a&token=b')).status).toBe(400);
  });

  it('the email field: not an address → the form again, the field marked, escaped', async () => {
    const agent = browser();
    const posted = await askReset(agent, '<b>not an address</b>');
    expect(posted.status).toBe(400);
    const html = await posted.text();
    expect(html).toContain('Enter your email address');
    expect(html).toContain('value="&lt;b&gt;not an address&lt;/b&gt;"');
    expect(html).toMatch(/<input id="email"[^>]*aria-describedby="reset-email-error" aria-invalid="true">/);
  });

  it('a mail in German for a person whose language is German', async () => {
    const person = await newPerson();
    await sql`update users set locale = 'de' where id = ${person.id}`.execute(db());
    await askReset(browser(), person.email);
    const mail = await sink.waitFor((m) => m.to.includes(person.email));
    expect(mail.subject).toBe('Ihr Gatehouse-Passwort zurücksetzen');
    expect(mail.text).toContain('30 Minuten');
    expect(mail.text).toContain('ignorieren Sie diese E-Mail');
    expect(mail.html).toContain('lang="de"');
    linkOf(mail);
  });

  it('forms without their CSRF token (or with another browser\'s) are refused: no mail, no password set', async () => {
    const person = await newPerson();
    const agent = browser();
    await agent.request('/reset');
    const missing = await agent.postForm('/reset', { email: person.email });
    expect(missing.status).toBe(403);
    expect(await missing.text()).toContain('This form has expired');
    const foreignPage = await (await browser().request('/reset')).text();
    const foreign = await agent.postForm('/reset', { csrf: csrfOf(foreignPage), email: person.email });
    expect(foreign.status).toBe(403);
    expect(await linkRows(person.id)).toHaveLength(0);

    const link = await resetLinkFor(person);
    const page = await (await agent.request(link)).text();
    const hash = await passwordHashOf(person.id);
    const noToken = await agent.postForm('/reset/password', { token: hiddenInput(page, 'token')!, password: NEW_PASSWORD, confirm: NEW_PASSWORD });
    expect(noToken.status).toBe(403);
    const cookieless = await browser().postForm('/reset/password', { csrf: csrfOf(page), token: hiddenInput(page, 'token')!, password: NEW_PASSWORD, confirm: NEW_PASSWORD });
    expect(cookieless.status).toBe(403);
    expect(await passwordHashOf(person.id)).toBe(hash);
    expect((await linkRows(person.id)).map((row) => row.used_at)).toEqual([null]);
  });

  it(`per address: ${PER_ADDRESS} requests an hour get mail; the next gets the same answer and no mail`, async () => {
    const person = await newPerson();
    const agent = browser();
    const bodies: string[] = [];
    for (let i = 0; i <= PER_ADDRESS; i += 1) {
      const answer = await askReset(agent, person.email);
      expect(answer.status).toBe(200);
      bodies.push(await answer.text());
    }
    expect(new Set(bodies).size).toBe(1);
    const limited = t.logs.entries().filter((e) => e.msg === 'password reset: no mail sent, too many requests for this address');
    expect(limited.length).toBeGreaterThanOrEqual(1);
    // An unknown address is counted the same (so the limit tells nothing either).
    const unknown = `nobody-${randomUUID()}@example.test`;
    const before = t.logs.entries().filter((e) => e.msg === 'password reset: no mail sent, too many requests for this address').length;
    for (let i = 0; i <= PER_ADDRESS; i += 1) expect((await askReset(agent, unknown)).status).toBe(200);
    expect(t.logs.entries().filter((e) => e.msg === 'password reset: no mail sent, too many requests for this address').length).toBe(before + 1);
    // Mail in order: after a later person's mail, the limited person has exactly PER_ADDRESS.
    await resetLinkFor(await newPerson());
    await sink.waitFor(() => sink.messages.filter((m) => m.to.includes(person.email)).length >= PER_ADDRESS);
    expect(sink.messages.filter((m) => m.to.includes(person.email))).toHaveLength(PER_ADDRESS);
    expect(await (await t.fetch('/metrics')).text()).toMatch(/gatehouse_rate_limited_total\{limiter="reset_address"\} [1-9]/);
  });

  it('a person with a second factor is still asked for it at the sign-in after a reset', async () => {
    const person = await newPerson();
    const deps = { ...t.services, dataKeys: await loadDataKeyring(t.config.keysDir, { generateIfMissing: false }) };
    const { secret } = await beginTotpEnrolment(deps, person.id, { issuer: 'Gatehouse' });
    recordSecret(secret);
    await confirmTotpEnrolment(deps, { actor: `person:${person.id}` }, person.id, await totpCode(secret, -30_000));
    const link = await resetLinkFor(person);
    const done = await setPassword(browser(), link, NEW_PASSWORD);
    expect(done.status).toBe(200);
    expect(await done.text()).toContain('Your second factor still protects your account');
    const signIn = await signInAtAccount(browser(), person.email, NEW_PASSWORD);
    expect(signIn.status).toBe(200);
    expect(signIn.url).not.toBe(`${issuer}/account`);
    expect(signIn.html).toContain('name="code"');
  });
});

describe('password reset: the limit per IP', () => {
  let sink: SmtpSink;
  let t: TestServer;

  beforeAll(async () => {
    sink = await startSmtpSink();
    t = await startTestServer({ name: 'password-reset-ip', listen: false, store: 'memory', env: { SMTP_URL: sink.url, RESET_MAX_PER_IP: '2' } });
  });
  afterAll(async () => {
    await t?.close();
    await sink?.close();
  });

  it('past RESET_MAX_PER_IP requests an hour, a 429 page with Retry-After, whatever the address, naming none', async () => {
    const agent = new Agent(t.config.issuer, t.fetch);
    const html = await (await agent.request('/reset')).text();
    const person = await t.build.person({ email: `reset-ip-${randomUUID()}@example.test` });
    const ask = (email: string) => agent.postForm('/reset', { csrf: csrfOf(html), email });
    expect((await ask(`a-${randomUUID()}@example.test`)).status).toBe(200);
    expect((await ask(`b-${randomUUID()}@example.test`)).status).toBe(200);
    for (const email of [person.email, `c-${randomUUID()}@example.test`]) {
      const refused = await ask(email);
      expect(refused.status).toBe(429);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      const body = await refused.text();
      expect(body).toContain('Too many requests');
      expect(body).not.toContain(email);
    }
    expect((await sql`select 1 from email_links where user_id = ${person.id}`.execute(t.server.registry.db)).rows).toHaveLength(0);
    expect(await (await t.fetch('/metrics')).text()).toContain('gatehouse_rate_limited_total{limiter="reset_ip"} 2');
  });
});

describe('password reset in development without SMTP_URL: the outbox', () => {
  let t: TestServer;

  beforeAll(async () => {
    t = await startTestServer({ name: 'password-reset-outbox', listen: false, store: 'memory' });
  });
  afterAll(() => t?.close());

  it('the mail is written as an .eml file under DATA_DIR/outbox, its one link works', async () => {
    const person = await t.build.person({ email: `reset-outbox-${randomUUID()}@example.test` });
    const agent = new Agent(t.config.issuer, t.fetch);
    const html = await (await agent.request('/reset')).text();
    expect((await agent.postForm('/reset', { csrf: csrfOf(html), email: person.email })).status).toBe(200);
    const outbox = t.config.mail.outboxDir;
    expect(outbox).toBe(path.join(t.env.DATA_DIR!, 'outbox'));
    let files: string[] = [];
    await expect.poll(async () => (files = (await readdir(outbox).catch(() => [])).filter((f) => f.endsWith('.eml'))).length, { timeout: 10_000 }).toBe(1);
    const eml = await readFile(path.join(outbox, files[0]!), 'utf8');
    expect(eml).toContain(`To: ${person.email}`);
    // Quoted-printable: soft line breaks joined, = decoded.
    const text = eml.replace(/=\r?\n/g, '').replace(/=3D/g, '=');
    const link = new RegExp(`${t.config.issuer.replace(/[.]/g, '\\.')}/reset/password\\?token=[A-Za-z0-9_-]{43}`).exec(text)?.[0];
    expect(link).toBeDefined();
    recordSecret(new URL(link!).searchParams.get('token'));
    const page = await agent.request(link!);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('name="password"');
  });
});
