import { randomUUID } from 'node:crypto';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tailAudit } from '../../src/audit/audit-log.js';
import { disableUser } from '../../src/services/users.service.js';
import { Agent, authorizeUrl, hiddenInput, pkce, signIn } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';
import { TEST_ACTOR } from '../fixtures/services.js';
import { startSmtpSink, type SmtpSink, type SunkMail } from '../fixtures/smtp-sink.js';

/*
 * Email addresses (issue 17 part 2; docs/design/self-service.md "Email addresses"), in process
 * (t.fetch) with mail delivered over SMTP to a real server on loopback (the sink) and read there:
 * sign-up inside the interaction, the verification link (email_verified in the ID token follows),
 * refusals of bad links, and changing one's address on /account.
 */

const PASSWORD = 'a long sign-up password 4711';
const REDIRECT_URI = 'http://127.0.0.1:8765/callback';

/** The one link of a mail, recorded as a secret for the log audit. */
function linkOf(mail: SunkMail, path: string): string {
  const link = mail.links.find((url) => new URL(url).pathname === path);
  expect(link, mail.text).toBeTruthy();
  const token = new URL(link!).searchParams.get('token');
  recordSecret(token);
  return link!;
}

describe('email addresses: sign-up, verification, change', () => {
  let t: TestServer;
  let sink: SmtpSink;
  let client: { clientId: string; clientSecret: string };

  beforeAll(async () => {
    sink = await startSmtpSink();
    t = await startTestServer({ name: 'email-addresses', listen: false, env: { SMTP_URL: sink.url, SIGNUP_ENABLED: 'true', SIGNUP_MAX_PER_IP: '100000', BRAND_NAME: 'Acme' } });
    client = await t.build.client({ client_name: 'Photo App', redirect_uris: [REDIRECT_URI], grant_types: ['authorization_code'] });
  });
  afterAll(async () => {
    await t?.close();
    await sink?.close();
  });

  const db = () => t.server.registry.db;
  const userByEmail = (email: string) => db().selectFrom('users').selectAll().where('email', '=', email).executeTakeFirst();
  const userById = (id: string) => db().selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const lastSeq = async () => (await tailAudit(db(), { limit: 1 })).at(-1)?.seq ?? 0;
  const auditSince = async (seq: number) => (await tailAudit(db(), { afterSeq: seq })).map((row) => ({ actor: row.actor, action: row.action, target: row.target, details: row.details }));
  const mailTo = (address: string, subject: string | RegExp) =>
    sink.waitFor((mail) => mail.to.includes(address) && (typeof subject === 'string' ? mail.subject === subject : subject.test(mail.subject)));

  /** An authorization request in a new browser, up to its login page: the agent, the uid and the page. */
  async function loginPage(params: Record<string, string> = {}, headers: Record<string, string> = {}) {
    const agent = new Agent(t.server.url, t.fetch);
    const { challenge } = pkce();
    const url = authorizeUrl({ client_id: client.clientId, redirect_uri: REDIRECT_URI, scope: 'openid email', code_challenge: challenge, code_challenge_method: 'S256', ...params });
    const first = await agent.request(url, { headers });
    expect(first.status).toBe(303);
    const location = first.headers.get('location')!;
    const uid = /\/interaction\/([^/?#]+)/.exec(location)?.[1];
    expect(uid).toBeTruthy();
    const response = await agent.request(location, { headers });
    return { agent, uid: uid!, html: await response.text() };
  }

  /** The sign-up form of a new authorization request; answers the POST of `form` (with the page's CSRF token unless given). */
  async function signUp(form: Record<string, string>, options: { params?: Record<string, string>; headers?: Record<string, string> } = {}) {
    const { agent, uid, html: login } = await loginPage(options.params, options.headers);
    const link = /<a href="([^"]+)" id="signup-link">/.exec(login)?.[1];
    expect(link).toBe(`/interaction/${uid}/signup`);
    const page = await agent.request(link!, { headers: options.headers ?? {} });
    expect(page.status).toBe(200);
    const html = await page.text();
    recordSecret(form.password);
    const response = await agent.postForm(link!, { csrf: hiddenInput(html, 'csrf') ?? '', ...form }, options.headers);
    return { agent, uid, response, html: await response.text() };
  }

  /** Authorization code + PKCE as `email` on `agent` (signing in unless the session already has), the ID token's claims. */
  async function idTokenClaims(email: string, password: string) {
    const agent = new Agent(t.server.url, t.fetch);
    const { verifier, challenge } = pkce();
    const url = authorizeUrl({ client_id: client.clientId, redirect_uri: REDIRECT_URI, scope: 'openid email', code_challenge: challenge, code_challenge_method: 'S256' });
    const { redirect } = await signIn(agent, { url, email, password });
    const code = redirect.searchParams.get('code')!;
    recordSecret(code);
    const { status, body } = await tokenRequest(t.server.url, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier }, client, t.fetch);
    expect(status).toBe(200);
    recordSecret(String(body.id_token));
    recordSecret(String(body.access_token));
    const userinfo = await t.fetch('/me', { headers: { authorization: `Bearer ${String(body.access_token)}` } });
    return { id: decodeJwt(String(body.id_token)), userinfo: (await userinfo.json()) as Record<string, unknown> };
  }

  /** The page at a link (GET), and its confirm form's fields. */
  async function openLink(link: string, agent = new Agent(t.server.url, t.fetch)) {
    const response = await agent.request(link);
    const html = await response.text();
    return { agent, response, html, csrf: hiddenInput(html, 'csrf'), token: hiddenInput(html, 'token') };
  }

  /** GET the link, then POST its button: the answer of the POST. */
  async function useLink(link: string) {
    const page = await openLink(link);
    expect(page.response.status, page.html.slice(0, 400)).toBe(200);
    const path = new URL(link).pathname;
    const response = await page.agent.postForm(path, { csrf: page.csrf ?? '', token: page.token ?? '' });
    return { response, html: await response.text(), page };
  }

  /** Signs in at /account with the password on a new browser. */
  async function accountSession(email: string, password: string) {
    const agent = new Agent(t.server.url, t.fetch);
    const { response } = await agent.follow('/account');
    const html = await response.text();
    const login = /<form method="post" action="([^"]+\/login)"/.exec(html)?.[1];
    expect(login, html.slice(0, 300)).toBeTruthy();
    const posted = await agent.postForm(login!, { csrf: hiddenInput(html, 'csrf') ?? '', email, password });
    expect(posted.status).toBe(303);
    const end = await agent.follow(posted.headers.get('location')!);
    expect(end.url).toBe(`${t.server.url}/account`);
    const page = await end.response.text();
    return { agent, html: page, csrf: hiddenInput(page, 'csrf') ?? '' };
  }

  async function ageSession(agent: Agent, seconds: number) {
    const session = await t.server.host.provider.Session.find(agent.cookies.get('_session')!);
    session!.loginTs = (session!.loginTs ?? 0) - seconds;
    await session!.save(3600);
  }

  it('sign-up → mail from the sink → link → email_verified true in a new ID token and at userinfo; the link works once', async () => {
    const email = `new-${randomUUID()}@example.test`;
    const before = await lastSeq();
    const { agent, uid, response, html } = await signUp({ email, password: PASSWORD, name: 'Grace Hopper' });
    expect(response.status).toBe(200);
    expect(html).toContain('Check your email');
    expect(html).toContain(`We sent a message to ${email}.`);
    expect(html).toContain(`<a href="/interaction/${uid}" id="continue-sign-in">Continue to sign in</a>`);
    const user = await userByEmail(email);
    expect(user).toMatchObject({ email, name: 'Grace Hopper', email_verified: false, locale: 'en', disabled: false });
    expect(await auditSince(before)).toEqual([
      { actor: `person:${user!.id}`, action: 'user.signup', target: `user:${user!.id}`, details: expect.objectContaining({ locale: 'en', after: expect.objectContaining({ email, email_verified: false }) }) },
    ]);

    const mail = await mailTo(email, 'Confirm your email address');
    expect(mail.text).toContain('Hello Grace Hopper,');
    expect(mail.text).toContain(`Please confirm that ${email} is the address of your Acme account.`);
    expect(mail.html).toContain('Confirm my address');
    const link = linkOf(mail, '/verify-email');
    expect(link.startsWith(`${t.config.issuer}/verify-email?token=`)).toBe(true);

    // "Continue to sign in" goes back to the same authorization, and the new password ends it at the app.
    const back = await signIn(agent, { url: `/interaction/${uid}`, email, password: PASSWORD });
    expect(back.redirect.origin + back.redirect.pathname).toBe(REDIRECT_URI);
    expect(back.redirect.searchParams.get('code')).toBeTruthy();
    recordSecret(back.redirect.searchParams.get('code'));

    // Signed in before the link is used: the new password works, email_verified is false.
    const unverified = await idTokenClaims(email, PASSWORD);
    expect(unverified.id).toMatchObject({ sub: user!.id, email, email_verified: false });
    expect(unverified.userinfo).toMatchObject({ sub: user!.id, email, email_verified: false });

    // The GET changes nothing (mail scanners fetch links): it shows one button.
    const shown = await openLink(link);
    expect(shown.response.status).toBe(200);
    expect(shown.html).toContain(`Confirm that ${email} is your address.`);
    expect(shown.response.headers.get('cache-control')).toBe('no-store');
    expect(shown.response.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect((await userById(user!.id)).email_verified).toBe(false);

    const seq = await lastSeq();
    const used = await shown.agent.postForm('/verify-email', { csrf: shown.csrf ?? '', token: shown.token ?? '' });
    const done = await used.text();
    expect(used.status).toBe(200);
    expect(done).toContain('Email address confirmed');
    expect((await userById(user!.id)).email_verified).toBe(true);
    expect(await auditSince(seq)).toEqual([
      {
        actor: `person:${user!.id}`,
        action: 'user.email_verify',
        target: `user:${user!.id}`,
        details: { before: expect.objectContaining({ email_verified: false }), after: expect.objectContaining({ email_verified: true }) },
      },
    ]);

    const verified = await idTokenClaims(email, PASSWORD);
    expect(verified.id).toMatchObject({ sub: user!.id, email, email_verified: true });
    expect(verified.userinfo).toMatchObject({ sub: user!.id, email, email_verified: true });

    // Used once: again is refused, nothing written.
    const again = await openLink(link);
    expect(again.response.status).toBe(410);
    expect(again.html).toContain('This link was already used');
    const seq2 = await lastSeq();
    const replay = await shown.agent.postForm('/verify-email', { csrf: shown.csrf ?? '', token: shown.token ?? '' });
    expect(replay.status).toBe(410);
    expect(await auditSince(seq2)).toEqual([]);
  });

  it('sign-up of an address that exists answers the same page, creates nothing, and tells the owner by mail', async () => {
    const owner = await t.build.person({ email: `owner-${randomUUID()}@example.test`, name: 'Owner' });
    const rowBefore = await userById(owner.id);
    const fresh = `fresh-${randomUUID()}@example.test`;
    const a = await signUp({ email: fresh, password: PASSWORD });
    const seq = await lastSeq();
    const b = await signUp({ email: owner.email.toUpperCase(), password: 'another long password 0815' });
    // Only a security event, with no address in it: no account, no link.
    expect(await auditSince(seq)).toEqual([{ actor: 'anonymous', action: 'signup.address_taken', target: null, details: {} }]);
    expect(b.response.status).toBe(a.response.status);
    // The same page but for the address typed and the interaction's uid.
    const normalise = (html: string, email: string, uid: string) => html.replaceAll(email, 'EMAIL').replaceAll(uid, 'UID');
    expect(normalise(b.html, owner.email.toUpperCase(), b.uid)).toBe(normalise(a.html, fresh, a.uid));
    expect(await userById(owner.id)).toEqual(rowBefore);
    const count = await db().selectFrom('users').select((eb) => eb.fn.countAll<string>().as('n')).where('email', '=', owner.email).executeTakeFirstOrThrow();
    expect(Number(count.n)).toBe(1);
    const notice = await mailTo(owner.email, 'Someone tried to create an account with your address');
    expect(notice.text).toContain('Hello Owner,');
    expect(notice.text).toContain('sign in with your password, or reset it');
    expect(notice.links.filter((url) => url.includes('token='))).toEqual([]);
    // The fresh address got its link; the owner no link at all.
    await mailTo(fresh, 'Confirm your email address');
    expect(sink.messages.filter((mail) => mail.to.includes(owner.email) && mail.subject === 'Confirm your email address')).toEqual([]);
  });

  it('refuses a weak password, a name of 10,000 characters and an address that is none, creating nothing; what was typed comes back escaped', async () => {
    const email = `weak-${randomUUID()}@example.test`;
    const short = await signUp({ email, password: 'short' });
    expect(short.response.status).toBe(400);
    expect(short.html).toContain('The password must be at least 12 characters.');
    const common = await signUp({ email, password: 'FinalFantasy' });
    expect(common.response.status).toBe(400);
    expect(common.html).toContain('This password is too common');
    const long = await signUp({ email, password: PASSWORD, name: `<b>${'x'.repeat(10_000)}` });
    expect(long.response.status).toBe(400);
    expect(long.html).toContain('The name may have at most 200 characters.');
    expect(long.html).not.toContain('<b>x');
    expect(long.html).toContain('value="&lt;b&gt;xxx');
    expect(await userByEmail(email)).toBeUndefined();
    const hostile = await signUp({ email: '"><script>alert(1)</script>', password: PASSWORD });
    expect(hostile.response.status).toBe(400);
    expect(hostile.html).toContain('Enter an email address');
    expect(hostile.html).not.toContain('<script>alert(1)');
    expect(hostile.html).toContain('&quot;&gt;&lt;script&gt;');
    // The form's CSRF token is required.
    const { agent, uid } = await loginPage();
    const forged = await agent.postForm(`/interaction/${uid}/signup`, { email, password: PASSWORD });
    expect(forged.status).toBe(403);
    expect(await userByEmail(email)).toBeUndefined();
  });

  it('keeps an HTML name as text: escaped in the mail, never markup', async () => {
    const email = `html-${randomUUID()}@example.test`;
    const name = '<img src=x onerror=alert(1)> & Co';
    const { response } = await signUp({ email, password: PASSWORD, name });
    expect(response.status).toBe(200);
    expect((await userByEmail(email))?.name).toBe(name);
    const mail = await mailTo(email, 'Confirm your email address');
    expect(mail.text).toContain(`Hello ${name},`);
    expect(mail.html).not.toContain('<img src=x');
    expect(mail.html).toContain('&lt;img src=x onerror=alert(1)&gt; &amp; Co');
  });

  it('writes to a person in the language of the page they signed up on (German)', async () => {
    const email = `de-${randomUUID()}@example.test`;
    const { response, html } = await signUp({ email, password: PASSWORD }, { headers: { 'accept-language': 'de-DE,de;q=0.9,en;q=0.5' } });
    expect(response.status).toBe(200);
    expect(html).toContain('<html lang="de">');
    expect(html).toContain('Sehen Sie in Ihr Postfach');
    expect((await userByEmail(email))?.locale).toBe('de');
    const mail = await mailTo(email, 'Bestätigen Sie Ihre E-Mail-Adresse');
    expect(mail.text).toContain('Hallo,');
    expect(mail.text).toContain('Adresse bestätigen');
    expect(mail.html).toContain('<html lang="de">');
    // ui_locales of the authorization request wins over Accept-Language.
    const other = `ui-${randomUUID()}@example.test`;
    await signUp({ email: other, password: PASSWORD }, { params: { ui_locales: 'de' }, headers: { 'accept-language': 'en' } });
    expect((await userByEmail(other))?.locale).toBe('de');
  });

  it('refuses garbage, unknown, expired and used links with a clear page and a way to a new one, changing nothing', async () => {
    for (const token of ['', 'garbage', '<script>alert(1)</script>', 'A'.repeat(43)]) {
      const { response, html } = await openLink(`/verify-email?token=${encodeURIComponent(token)}`);
      expect(response.status).toBe(404);
      expect(html).toContain('This link does not work');
      expect(html).toContain('Send the verification link again');
      expect(html).toContain('href="/account"');
      expect(html).not.toContain('<script>alert');
    }
    const person = await t.build.person();
    const { sendVerificationLink } = await import('../../src/services/email-verification.service.js');
    const deps = { ...t.services, mail: { mailer: { available: true, send: () => undefined, close: async () => undefined }, compose: () => ({}) as never, issuer: t.config.issuer, brandName: 'Acme' } };
    // A link whose value the test knows: issued through the service with a mailer that keeps it.
    let sent: string | undefined;
    deps.mail.compose = ((content: { action?: { url: string } }) => {
      sent = content.action?.url;
      return {} as never;
    }) as never;
    await sendVerificationLink(deps, TEST_ACTOR, person.id);
    expect(sent).toBeTruthy();
    recordSecret(new URL(sent!).searchParams.get('token'));
    await db().updateTable('email_links').set({ expires_at: new Date(Date.now() - 1000) }).where('user_id', '=', person.id).execute();
    const expired = await openLink(sent!);
    expect(expired.response.status).toBe(410);
    expect(expired.html).toContain('This link has expired');
    expect(expired.html).toContain('Links to confirm an address work for 3 days.');
    // A POST of it (a form opened before it expired) is refused too.
    const seq = await lastSeq();
    const { createCsrf } = await import('../../src/interactions/csrf.js');
    const token = new URL(sent!).searchParams.get('token')!;
    const csrf = createCsrf(t.config.cookieKeys).token(`email-link:email_verification:${token}`);
    const posted = await expired.agent.postForm('/verify-email', { csrf, token });
    expect(posted.status).toBe(410);
    // Without the form's CSRF token: 403.
    const forged = await expired.agent.postForm('/verify-email', { token });
    expect(forged.status).toBe(403);
    expect((await userById(person.id)).email_verified).toBe(false);
    expect(await auditSince(seq)).toEqual([]);
  });

  it("refuses a disabled person's link (GET and POST), changing nothing, the link still unused", async () => {
    const person = await t.build.person({ email: `disabled-${randomUUID()}@example.test` });
    const account = await accountSession(person.email, person.password);
    const asked = await account.agent.postForm('/account/email/verification', { csrf: account.csrf });
    expect(asked.status).toBe(303);
    expect(asked.headers.get('location')).toBe('/account?email=sent_verification#email-address');
    const link = linkOf(await mailTo(person.email, 'Confirm your email address'), '/verify-email');
    const shown = await openLink(link);
    expect(shown.response.status).toBe(200);
    await disableUser(t.services, TEST_ACTOR, person.id);
    const seq = await lastSeq();
    const posted = await shown.agent.postForm('/verify-email', { csrf: shown.csrf ?? '', token: shown.token ?? '' });
    expect(posted.status).toBe(403);
    expect(await posted.text()).toContain('This account is disabled');
    const again = await openLink(link);
    expect(again.response.status).toBe(403);
    expect((await userById(person.id)).email_verified).toBe(false);
    expect(await auditSince(seq)).toEqual([]);
    const links = await db().selectFrom('email_links').select(['used_at']).where('user_id', '=', person.id).execute();
    expect(links).toEqual([{ used_at: null }]);
  });

  it('shows the address and its state on /account, and sends the verification link again (CSRF required)', async () => {
    const person = await t.build.person({ email: `profile-${randomUUID()}@example.test` });
    const { agent, html, csrf } = await accountSession(person.email, person.password);
    // The profile shows the address and its state; the email part (views/account-email.eta) sits in it.
    expect(html).toContain(`<strong>${person.email}</strong> <span class="tag" id="email-status">Not verified yet</span>`);
    expect(html).toContain('<div id="email-address" class="email-address">');
    expect(html.indexOf('id="email-address"')).toBeGreaterThan(html.indexOf('id="profile"'));
    expect(html).toContain('id="resend-verification"');
    const forged = await agent.postForm('/account/email/verification', { csrf: 'nope' });
    expect(forged.status).toBe(403);
    const asked = await agent.postForm('/account/email/verification', { csrf });
    expect(asked.status).toBe(303);
    const page = await (await agent.request(asked.headers.get('location')!)).text();
    expect(page).toContain(`We sent a new link to ${person.email}.`);
    const link = linkOf(await mailTo(person.email, 'Confirm your email address'), '/verify-email');
    const { response } = await useLink(link);
    expect(response.status).toBe(200);
    const after = await (await agent.request('/account')).text();
    expect(after).toContain('<span class="tag" id="email-status">Verified</span>');
    expect(after).not.toContain('id="resend-verification"');
  });

  it('changes the address only through a link sent to the new one, after a fresh sign-in, telling the old one twice', async () => {
    const person = await t.build.person({ email: `old-${randomUUID()}@example.test`, name: 'Mover' });
    const newEmail = `New-${randomUUID()}@Example.TEST`;
    const normalised = newEmail.toLowerCase();
    const { agent, csrf } = await accountSession(person.email, person.password);

    // Without the CSRF token: 403, nothing sent.
    const forged = await agent.postForm('/account/email/change', { email: newEmail });
    expect(forged.status).toBe(403);
    // A sign-in older than ACCOUNT_REAUTH_SECONDS: to re-authentication, nothing sent.
    await ageSession(agent, 3600);
    // The account CSRF token is bound to the sign-in's time: the aged session's page has its own.
    const aged = hiddenInput(await (await agent.request('/account')).text(), 'csrf') ?? '';
    expect(aged).not.toBe(csrf);
    const stale = await agent.postForm('/account/email/change', { csrf: aged, email: newEmail });
    expect(stale.status).toBe(303);
    expect(stale.headers.get('location')).toBe(`/account/reauth?next=${encodeURIComponent('/account#email-address')}`);
    expect(await db().selectFrom('email_links').select('id').where('user_id', '=', person.id).execute()).toEqual([]);

    const fresh = await accountSession(person.email, person.password);
    const seq = await lastSeq();
    const asked = await fresh.agent.postForm('/account/email/change', { csrf: fresh.csrf, email: newEmail });
    expect(asked.status).toBe(303);
    expect(asked.headers.get('location')).toBe('/account?email=sent_change#email-address');
    expect(await auditSince(seq)).toEqual([
      { actor: `person:${person.id}`, action: 'user.email_change_requested', target: `user:${person.id}`, details: expect.objectContaining({ from: person.email, to: normalised }) },
    ]);
    const confirm = await mailTo(normalised, 'Confirm your new email address');
    const link = linkOf(confirm, '/confirm-email');
    const notice = await mailTo(person.email, 'Your email address is being changed');
    expect(notice.text).toContain(`from ${person.email} to ${normalised}`);
    expect(notice.links.filter((url) => url.includes('token='))).toEqual([]);
    const page = await (await fresh.agent.request('/account')).text();
    expect(page).toContain(`A link to confirm ${normalised} was sent.`);

    // Until the link is used: the address is unchanged and still signs in.
    expect((await userById(person.id)).email).toBe(person.email);
    expect((await idTokenClaims(person.email, person.password)).id).toMatchObject({ email: person.email });

    const seq2 = await lastSeq();
    const { response, html } = await useLink(link);
    expect(response.status).toBe(200);
    expect(html).toContain(`Your account’s address is now ${normalised}.`);
    const row = await userById(person.id);
    expect(row).toMatchObject({ email: normalised, email_verified: true });
    expect(await auditSince(seq2)).toEqual([
      {
        actor: `person:${person.id}`,
        action: 'user.email_change',
        target: `user:${person.id}`,
        details: { before: expect.objectContaining({ email: person.email }), after: expect.objectContaining({ email: normalised, email_verified: true }) },
      },
    ]);
    const changed = await mailTo(person.email, 'Your email address was changed');
    expect(changed.text).toContain(`from ${person.email} to ${normalised}`);
    expect((await idTokenClaims(normalised, person.password)).id).toMatchObject({ sub: person.id, email: normalised, email_verified: true });
    await expect(idTokenClaims(person.email, person.password)).rejects.toThrow(/sign-in refused/);
  });

  it('never reveals a taken address when asked, and refuses the link when the address was taken meanwhile, changing nothing', async () => {
    const person = await t.build.person({ email: `mover-${randomUUID()}@example.test` });
    const other = await t.build.person({ email: `taken-${randomUUID()}@example.test` });
    const { agent, csrf } = await accountSession(person.email, person.password);
    const asked = await agent.postForm('/account/email/change', { csrf, email: other.email });
    expect(asked.headers.get('location')).toBe('/account?email=sent_change#email-address');
    // The old address is told as always; no link is made, none goes to the taken address.
    await mailTo(person.email, 'Your email address is being changed');
    expect(sink.messages.filter((mail) => mail.to.includes(other.email))).toEqual([]);
    expect(await db().selectFrom('email_links').select('id').where('user_id', '=', person.id).execute()).toEqual([]);

    const later = `later-${randomUUID()}@example.test`;
    const again = await accountSession(person.email, person.password);
    await again.agent.postForm('/account/email/change', { csrf: again.csrf, email: later });
    const link = linkOf(await mailTo(later, 'Confirm your new email address'), '/confirm-email');
    const shown = await openLink(link);
    expect(shown.response.status).toBe(200);
    // Someone else takes it before the link is used.
    await t.build.person({ email: later });
    const seq = await lastSeq();
    const posted = await shown.agent.postForm('/confirm-email', { csrf: shown.csrf ?? '', token: shown.token ?? '' });
    expect(posted.status).toBe(409);
    expect(await posted.text()).toContain('Another account uses this address now. Nothing was changed');
    expect((await userById(person.id)).email).toBe(person.email);
    expect(await auditSince(seq)).toEqual([]);
    // Invalid and same addresses: said, nothing sent.
    const invalid = await again.agent.postForm('/account/email/change', { csrf: again.csrf, email: 'not an address' });
    expect(invalid.headers.get('location')).toBe('/account?email=invalid#email-address');
    const same = await again.agent.postForm('/account/email/change', { csrf: again.csrf, email: person.email.toUpperCase() });
    expect(same.headers.get('location')).toBe('/account?email=same#email-address');
    const hostile = await (await again.agent.request('/account?email=%3Cscript%3E')).text();
    expect(hostile).not.toContain('<script>');
    expect(hostile).not.toContain('id="email-error"');
  });

  it('users create --send-verification mails the link from the CLI (no server needed) and the link verifies', async () => {
    const email = `cli-${randomUUID()}@example.test`;
    const { runCliCapture, expectJsonResult } = await import('../fixtures/cli.js');
    const result = await runCliCapture(['users', 'create', '--email', email, '--password-stdin', '--send-verification', '--json'], t.env, { stdin: `${PASSWORD}\n` });
    const created = expectJsonResult<Record<string, unknown>>(result, 'users create --send-verification');
    expect(created).toMatchObject({ email, email_verified: false, verification_sent: true });
    const link = linkOf(await mailTo(email, 'Confirm your email address'), '/verify-email');
    const { response } = await useLink(link);
    expect(response.status).toBe(200);
    expect((await userByEmail(email))?.email_verified).toBe(true);
  });

  it('POST /admin/v1/users with send_verification mails the link; without it, none', async () => {
    const admin = await t.build.client({ client_name: `admin ${randomUUID()}`, admin: true });
    await t.server.cache.refresh();
    const { body: tokens } = await tokenRequest(t.server.url, { grant_type: 'client_credentials', scope: 'admin' }, admin, t.fetch);
    const token = String(tokens.access_token);
    recordSecret(token);
    const create = (body: Record<string, unknown>) =>
      t.fetch('/admin/v1/users', { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const email = `api-${randomUUID()}@example.test`;
    const created = await create({ email, password: PASSWORD, send_verification: true });
    expect(created.status).toBe(201);
    expect(await created.json()).toMatchObject({ email, email_verified: false });
    const link = linkOf(await mailTo(email, 'Confirm your email address'), '/verify-email');
    expect((await useLink(link)).response.status).toBe(200);
    expect((await userByEmail(email))?.email_verified).toBe(true);
    const quiet = `api-quiet-${randomUUID()}@example.test`;
    expect((await create({ email: quiet, password: PASSWORD })).status).toBe(201);
    const other = `api-marker-${randomUUID()}@example.test`;
    expect((await create({ email: other, password: PASSWORD, send_verification: true })).status).toBe(201);
    // The queue is in order: once the later mail is here, an earlier one would be too.
    await mailTo(other, 'Confirm your email address');
    expect(sink.messages.filter((mail) => mail.to.includes(quiet))).toEqual([]);
    const wrong = await create({ email: `api-bad-${randomUUID()}@example.test`, password: PASSWORD, send_verification: 'yes' });
    expect(wrong.status).toBe(400);
  });

  it('users create --send-verification fails clearly in production without SMTP_URL, creating nothing', async () => {
    const email = `cli-prod-${randomUUID()}@example.test`;
    const { runCliCapture, expectOneLineError } = await import('../fixtures/cli.js');
    const env: Record<string, string | undefined> = { ...t.env, NODE_ENV: 'production', ISSUER: 'https://gatehouse.example.test', SMTP_URL: undefined, SIGNUP_ENABLED: undefined };
    const result = await runCliCapture(['users', 'create', '--email', email, '--password-stdin', '--send-verification'], env, { stdin: `${PASSWORD}\n` });
    expectOneLineError(result, /--send-verification: no mail can be sent \(SMTP_URL is not set/, 1);
    expect(await userByEmail(email)).toBeUndefined();
  });
});

describe('sign-up when SIGNUP_ENABLED is not set', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ name: 'email-signup-off', listen: false });
  });
  afterAll(() => t?.close());

  it('has no link on the login page and no sign-up routes (404)', async () => {
    const client = await t.build.client({ redirect_uris: [REDIRECT_URI] });
    const agent = new Agent(t.server.url, t.fetch);
    const { challenge } = pkce();
    const first = await agent.request(authorizeUrl({ client_id: client.clientId, redirect_uri: REDIRECT_URI, code_challenge: challenge, code_challenge_method: 'S256' }));
    const location = first.headers.get('location')!;
    const html = await (await agent.request(location)).text();
    expect(html).toContain('<input id="email" name="email"');
    expect(html).not.toContain('signup');
    expect(html).not.toContain('Create an account');
    const uid = /\/interaction\/([^/?#]+)/.exec(location)![1];
    expect((await agent.request(`/interaction/${uid}/signup`)).status).toBe(404);
    expect((await agent.postForm(`/interaction/${uid}/signup`, { email: 'x@example.test', password: PASSWORD })).status).toBe(404);
  });
});

describe('sign-ups per IP', () => {
  let t: TestServer;
  let sink: SmtpSink;
  beforeAll(async () => {
    sink = await startSmtpSink();
    // The in-process store: the count starts at zero whatever other test servers did.
    t = await startTestServer({ name: 'email-signup-limit', listen: false, store: 'memory', env: { SMTP_URL: sink.url, SIGNUP_ENABLED: 'true', SIGNUP_MAX_PER_IP: '2' } });
  });
  afterAll(async () => {
    await t?.close();
    await sink?.close();
  });

  it('refuses the attempt past SIGNUP_MAX_PER_IP with 429 and Retry-After, creating nothing', async () => {
    const client = await t.build.client({ redirect_uris: [REDIRECT_URI] });
    const attempt = async (email: string) => {
      const agent = new Agent(t.server.url, t.fetch);
      const { challenge } = pkce();
      const first = await agent.request(authorizeUrl({ client_id: client.clientId, redirect_uri: REDIRECT_URI, code_challenge: challenge, code_challenge_method: 'S256' }));
      const uid = /\/interaction\/([^/?#]+)/.exec(first.headers.get('location')!)![1];
      await agent.request(first.headers.get('location')!);
      const form = await (await agent.request(`/interaction/${uid}/signup`)).text();
      return agent.postForm(`/interaction/${uid}/signup`, { csrf: hiddenInput(form, 'csrf') ?? '', email, password: PASSWORD });
    };
    const emails = [0, 1, 2].map((i) => `limit-${i}-${randomUUID()}@example.test`);
    expect((await attempt(emails[0]!)).status).toBe(200);
    expect((await attempt(emails[1]!)).status).toBe(200);
    const refused = await attempt(emails[2]!);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await refused.text()).toContain('Too many accounts were created from your network.');
    expect(await (await t.fetch('/metrics')).text()).toContain('gatehouse_rate_limited_total{limiter="signup_ip"} 1');
    const user = await t.server.registry.db.selectFrom('users').select('id').where('email', '=', emails[2]!).executeTakeFirst();
    expect(user).toBeUndefined();
  });
});
