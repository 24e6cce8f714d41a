import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyPassword } from '../../src/accounts/passwords.js';
import { tailAudit } from '../../src/audit/audit-log.js';
import { recordChange } from '../../src/services/changes.js';
import { setUserPassword } from '../../src/services/users.service.js';
import { accountSessionsIndex } from '../../src/oidc/adapters/session-index.js';
import { Agent, codeFlow, hiddenInput } from '../fixtures/flow.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';
import type { BuiltClient, BuiltPerson } from '../fixtures/builders.js';

/*
 * The account page's own sections (docs/design/self-service.md §3), in process (t.fetch): Profile
 * (display name), Password, Connected apps ("Remove access"), Sessions ("Sign out everywhere
 * else") and Recent security events. Every POST needs the account CSRF token; every refusal
 * changes nothing (database, audit log, sessions).
 */

const REDIRECT = 'https://photos.example.test/cb';
const HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(2)> & "Co"';

/** A password of at least 12 characters from the breached list the server refuses. */
function breachedPassword(): string {
  const require = createRequire(import.meta.url);
  const { dictionary } = require('@zxcvbn-ts/language-common') as { dictionary: Record<string, string[]> };
  const found = dictionary['passwords-common']!.find((word) => [...word].length >= 12);
  expect(found).toBeTruthy();
  return found!;
}

describe('the account page: profile, password, connected apps, sessions, security events', () => {
  let t: TestServer;
  let api: string;
  let photos: BuiltClient;

  beforeAll(async () => {
    t = await startTestServer({ name: 'account-self', listen: false });
    api = (await t.build.resource({ scope: 'read write', name: 'Photo API' })).identifier;
    photos = await t.build.client({ client_name: `Photo <b>App</b>`, redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'] });
    await t.build.grant(photos.clientId, api, 'read write');
  });
  afterAll(() => t.close());

  const db = () => t.server.registry.db;
  const newPerson = (input: { name?: string } = {}): Promise<BuiltPerson> => t.build.person({ email: `self-${randomUUID()}@example.test`, ...input });
  const lastSeq = async () => (await tailAudit(db(), { limit: 1 })).at(-1)?.seq ?? 0;
  const auditSince = async (seq: number) => (await tailAudit(db(), { afterSeq: seq })).map((row) => ({ actor: row.actor, action: row.action, target: row.target, details: row.details }));
  const userRow = (id: string) => db().selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const sectionOf = (html: string, id: string) => new RegExp(`<section aria-labelledby="${id}">([\\s\\S]*?)</section>`).exec(html)?.[1] ?? '';

  /** Signs in at /account with the password on a new browser; answers the agent and the page. */
  async function signedIn(person: { email: string; password: string }, userAgent?: string) {
    const withUserAgent: typeof t.fetch = (input, init) => {
      const headers = new Headers(init?.headers);
      if (userAgent) headers.set('user-agent', userAgent);
      return t.fetch(input, { ...init, headers });
    };
    const agent = new Agent(t.server.url, withUserAgent);
    let { response } = await agent.follow('/account');
    let html = await response.text();
    const login = /<form method="post" action="([^"]+\/login)"/.exec(html)?.[1];
    expect(login, html.slice(0, 300)).toBeTruthy();
    const posted = await agent.postForm(login!, { csrf: hiddenInput(html, 'csrf') ?? '', email: person.email, password: person.password });
    expect(posted.status).toBe(303);
    const end = await agent.follow(posted.headers.get('location')!);
    expect(end.url).toBe(`${t.server.url}/account`);
    response = end.response;
    html = await response.text();
    expect(response.status).toBe(200);
    return { agent, html, csrf: hiddenInput(html, 'csrf') ?? '' };
  }

  /** Whether a password signs the person in (at the login page of /account, on a new browser). */
  async function passwordWorks(email: string, password: string): Promise<boolean> {
    const agent = new Agent(t.server.url, t.fetch);
    const { response } = await agent.follow('/account');
    const html = await response.text();
    const login = /<form method="post" action="([^"]+\/login)"/.exec(html)?.[1];
    const posted = await agent.postForm(login!, { csrf: hiddenInput(html, 'csrf') ?? '', email, password });
    return posted.status === 303;
  }

  /** Moves the browser session's sign-in time back by `seconds`. */
  async function ageSession(agent: Agent, seconds: number) {
    const session = await t.server.host.provider.Session.find(agent.cookies.get('_session')!);
    expect(session?.accountId).toBeTruthy();
    session!.loginTs = (session!.loginTs ?? 0) - seconds;
    await session!.save(3600);
  }

  const page = async (agent: Agent, path = '/account') => {
    const response = await agent.request(path);
    expect(response.status).toBe(200);
    return response.text();
  };

  /** The app signs the person in (consent, offline_access, the API's read scope) and gets a refresh token. */
  async function connect(person: BuiltPerson, client: BuiltClient = photos): Promise<string> {
    const { status, body } = await codeFlow(new Agent(t.server.url, t.fetch), {
      client,
      redirectUri: REDIRECT,
      email: person.email,
      password: person.password,
      params: { scope: 'openid offline_access read', resource: api, prompt: 'consent' },
      tokenParams: { resource: api },
    });
    expect(status, JSON.stringify(body)).toBe(200);
    expect(typeof body.refresh_token).toBe('string');
    return String(body.refresh_token);
  }
  const refresh = (refreshToken: string, client: BuiltClient = photos) =>
    tokenRequest(t.server.url, { grant_type: 'refresh_token', refresh_token: refreshToken, resource: api }, client, t.fetch);
  /** The person's grants and refresh tokens at apps (the account page's own client's grant aside). */
  const grantsOf = (userId: string) =>
    db()
      .selectFrom('oidc_durable')
      .select(['model', 'client_id'])
      .where('account_id', '=', userId)
      .where('model', 'in', ['Grant', 'RefreshToken'])
      .where('client_id', '!=', 'gatehouse-account')
      .orderBy('model')
      .orderBy('client_id')
      .execute();

  describe('profile', () => {
    it('shows the email and whether it is verified, saves a display name (escaped on output) and audits it', async () => {
      const person = await newPerson({ name: 'Old Name' });
      const { agent, html, csrf } = await signedIn(person);
      const profile = sectionOf(html, 'profile');
      expect(profile).toContain('<h2 id="profile">Profile</h2>');
      expect(profile).toContain(`<strong>${person.email}</strong>`);
      expect(profile).toContain('<span class="tag" id="email-status">Not verified yet</span>');
      expect(profile).toContain('value="Old Name"');
      // Profile and password come first, before two-step verification.
      expect(html.indexOf('id="profile"')).toBeLessThan(html.indexOf('id="password"'));
      expect(html.indexOf('id="password"')).toBeLessThan(html.indexOf('id="two-step"'));

      const seq = await lastSeq();
      const answer = await agent.postForm('/account/profile', { csrf, name: `  ${HOSTILE}  ` });
      expect(answer.status).toBe(303);
      expect(answer.headers.get('location')).toBe('/account?self=name_saved#profile');
      expect((await userRow(person.id)).name).toBe(HOSTILE);
      expect(await auditSince(seq)).toEqual([
        { actor: `person:${person.id}`, action: 'account.name_change', target: `user:${person.id}`, details: { from: 'Old Name', to: HOSTILE } },
      ]);
      const after = await page(agent, answer.headers.get('location')!);
      expect(sectionOf(after, 'profile')).toContain('<p class="notice" role="status" id="profile-outcome">Your display name was saved.</p>');
      expect(after).toContain('value="&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt; &amp; &quot;Co&quot;"');
      expect(after).not.toContain('<script>alert(1)');
      expect(after).not.toContain('<img src=x');

      // Verified is said so; an empty name clears it.
      await db().updateTable('users').set({ email_verified: true }).where('id', '=', person.id).execute();
      expect(sectionOf(await page(agent), 'profile')).toContain('<span class="tag" id="email-status">Verified</span>');
      expect((await agent.postForm('/account/profile', { csrf, name: '   ' })).status).toBe(303);
      expect((await userRow(person.id)).name).toBeNull();
    });

    it('refuses a name of 10,000 characters or of more than one line: focus on the field, nothing changed, nothing audited', async () => {
      const person = await newPerson({ name: 'Kept' });
      const { agent, csrf } = await signedIn(person);
      const seq = await lastSeq();
      for (const [name, outcome] of [
        ['x'.repeat(10_000), 'name_too_long'],
        ['y'.repeat(201), 'name_too_long'],
        ['two\nlines', 'name_not_one_line'],
        ['a\u2028b', 'name_not_one_line'],
        ['tab\there', 'name_not_one_line'],
      ] as const) {
        const answer = await agent.postForm('/account/profile', { csrf, name });
        expect(answer.status, outcome).toBe(303);
        expect(answer.headers.get('location')).toBe(`/account?self=${outcome}`);
        const html = await page(agent, answer.headers.get('location')!);
        const profile = sectionOf(html, 'profile');
        expect(profile).toContain('<p class="error" role="alert" id="profile-outcome">');
        if (outcome === 'name_too_long') expect(profile).toContain('A display name has at most 200 characters. Nothing was changed.');
        expect(profile).toMatch(/<input id="display-name"[^>]*aria-describedby="profile-outcome display-name-help" aria-invalid="true" autofocus>/);
        // The only autofocus of the page.
        expect(html.match(/autofocus/g)).toHaveLength(1);
      }
      expect((await userRow(person.id)).name).toBe('Kept');
      expect(await auditSince(seq)).toEqual([]);
    });

    it('a missing or wrong CSRF token: 403 and nothing changed; not signed in: to sign-in', async () => {
      const person = await newPerson({ name: 'Kept' });
      const { agent } = await signedIn(person);
      const seq = await lastSeq();
      for (const form of [{ name: 'New' }, { csrf: 'forged', name: 'New' }] as Array<Record<string, string>>) {
        const answer = await agent.postForm('/account/profile', form);
        expect(answer.status).toBe(403);
        expect(await answer.text()).toContain('csrf_token_invalid');
      }
      // The outcome in the query chooses among known sentences, never supplies text.
      const forged = await page(agent, `/account?self=${encodeURIComponent('<script>alert(1)</script>')}`);
      expect(forged).not.toContain('<script>alert(1)');
      expect(forged).not.toContain('id="profile-outcome"');
      expect(forged).not.toContain('autofocus');
      const anonymous = await new Agent(t.server.url, t.fetch).postForm('/account/profile', { name: 'New' });
      expect(anonymous.status).toBe(303);
      expect(anonymous.headers.get('location')).toBe('/account/sign-in');
      expect((await userRow(person.id)).name).toBe('Kept');
      expect(await auditSince(seq)).toEqual([]);
    });
  });

  describe('password', () => {
    const NEW_PASSWORD = 'a brand new passphrase for the test 0815';

    it('a wrong current password is refused (focus on it), and nothing changes', async () => {
      const person = await newPerson();
      const { agent, csrf } = await signedIn(person);
      const before = await userRow(person.id);
      const seq = await lastSeq();
      const answer = await agent.postForm('/account/password', { csrf, current_password: 'not the password at all', new_password: NEW_PASSWORD });
      expect(answer.status).toBe(303);
      expect(answer.headers.get('location')).toBe('/account?self=current_wrong');
      const html = await page(agent, answer.headers.get('location')!);
      expect(sectionOf(html, 'password')).toMatch(/<input id="current-password"[^>]*aria-invalid="true" autofocus>/);
      expect(sectionOf(html, 'password')).toContain('Your current password is not right. Nothing was changed.');
      const after = await userRow(person.id);
      expect(after.password_hash).toBe(before.password_hash);
      expect(after.sessions_valid_after).toEqual(before.sessions_valid_after);
      expect(await auditSince(seq)).toEqual([]);
      expect(await passwordWorks(person.email, person.password)).toBe(true);
      expect(await passwordWorks(person.email, NEW_PASSWORD)).toBe(false);
    });

    it('a weak or breached new password is refused with the current password right (focus on the new one), and nothing changes', async () => {
      const person = await newPerson();
      const { agent, csrf } = await signedIn(person);
      const before = await userRow(person.id);
      const seq = await lastSeq();
      for (const [next, outcome] of [
        ['short', 'new_too_short'],
        ['', 'new_too_short'],
        [breachedPassword(), 'new_breached'],
        ['z'.repeat(1025), 'new_too_long'],
      ] as const) {
        const answer = await agent.postForm('/account/password', { csrf, current_password: person.password, new_password: next });
        expect(answer.headers.get('location'), outcome).toBe(`/account?self=${outcome}`);
        const html = await page(agent, answer.headers.get('location')!);
        expect(sectionOf(html, 'password')).toMatch(/<input id="new-password"[^>]*aria-describedby="password-outcome new-password-help" aria-invalid="true" autofocus>/);
        if (outcome === 'new_too_short') expect(sectionOf(html, 'password')).toContain('use at least 12 characters');
        if (outcome === 'new_too_long') expect(sectionOf(html, 'password')).toContain('use at most 1024 characters');
      }
      expect((await userRow(person.id)).password_hash).toBe(before.password_hash);
      expect(await auditSince(seq)).toEqual([]);
    });

    it('a missing CSRF token: 403 and nothing changes', async () => {
      const person = await newPerson();
      const { agent } = await signedIn(person);
      const before = await userRow(person.id);
      const answer = await agent.postForm('/account/password', { current_password: person.password, new_password: NEW_PASSWORD });
      expect(answer.status).toBe(403);
      expect((await userRow(person.id)).password_hash).toBe(before.password_hash);
      expect(await passwordWorks(person.email, person.password)).toBe(true);
    });

    it('with the current password: the new one works, the old one no longer; the other browser is signed out, this one stays; refresh tokens revoked; audited', async () => {
      const person = await newPerson();
      const refreshToken = await connect(person);
      const other = await signedIn(person);
      const mine = await signedIn(person);
      // The sign-in is not recent: the current password is what counts.
      await ageSession(mine.agent, t.config.accountReauthSeconds + 60);
      const csrf = hiddenInput(await page(mine.agent), 'csrf') ?? '';
      const seq = await lastSeq();
      const answer = await mine.agent.postForm('/account/password', { csrf, current_password: person.password, new_password: NEW_PASSWORD });
      expect(answer.headers.get('location')).toBe('/account?self=password_changed#password');
      // This browser stays signed in; the other one is sent to sign in.
      expect(sectionOf(await page(mine.agent, answer.headers.get('location')!), 'password')).toContain('Your password was changed.');
      const otherAnswer = await other.agent.request('/account');
      expect(otherAnswer.status).toBe(303);
      expect(otherAnswer.headers.get('location')).toBe('/account/sign-in');
      expect(await passwordWorks(person.email, NEW_PASSWORD)).toBe(true);
      expect(await passwordWorks(person.email, person.password)).toBe(false);
      const row = await userRow(person.id);
      expect(await verifyPassword(row.password_hash!, NEW_PASSWORD)).toBe(true);
      // The app's refresh token is revoked; its consent stays (no consent again, a sign-in again).
      const refused = await refresh(refreshToken);
      expect(refused.status).toBe(400);
      expect(refused.body.error).toBe('invalid_grant');
      expect((await grantsOf(person.id)).map((grant) => grant.model)).toEqual(['Grant']);
      const rows = (await auditSince(seq)).filter((entry) => entry.action === 'account.password_change');
      expect(rows).toEqual([
        {
          actor: `person:${person.id}`,
          action: 'account.password_change',
          target: `user:${person.id}`,
          details: { kind: 'change', refresh_tokens_revoked: 1, other_sessions_ended: true },
        },
      ]);
      // No password, hash or token in the record.
      expect(JSON.stringify(rows)).not.toContain(NEW_PASSWORD);
    });

    it('without the current password: allowed after a recent sign-in, refused (focus on it) after an old one', async () => {
      const person = await newPerson();
      const { agent, csrf } = await signedIn(person);
      const answer = await agent.postForm('/account/password', { csrf, current_password: '', new_password: NEW_PASSWORD });
      expect(answer.headers.get('location')).toBe('/account?self=password_changed#password');
      expect(await passwordWorks(person.email, NEW_PASSWORD)).toBe(true);

      const aged = await newPerson();
      const session = await signedIn(aged);
      await ageSession(session.agent, t.config.accountReauthSeconds + 60);
      const agedCsrf = hiddenInput(await page(session.agent), 'csrf') ?? '';
      const before = await userRow(aged.id);
      const refused = await session.agent.postForm('/account/password', { csrf: agedCsrf, new_password: NEW_PASSWORD });
      expect(refused.headers.get('location')).toBe('/account?self=current_required');
      const html = await page(session.agent, refused.headers.get('location')!);
      expect(sectionOf(html, 'password')).toMatch(/<input id="current-password"[^>]*aria-invalid="true" autofocus>/);
      expect(sectionOf(html, 'password')).toContain('href="/account/reauth?next=%2Faccount%23password"');
      expect((await userRow(aged.id)).password_hash).toBe(before.password_hash);
    });

    it('someone without a password sets one after a recent sign-in (not after an old one), and signs in with it', async () => {
      const person = await newPerson();
      const { agent, csrf } = await signedIn(person);
      await sql`update users set password_hash = null where id = ${person.id}`.execute(db());
      const html = await page(agent);
      expect(sectionOf(html, 'password')).not.toContain('current-password');
      expect(sectionOf(html, 'password')).toContain('>Set password</button>');
      await ageSession(agent, t.config.accountReauthSeconds + 60);
      const agedCsrf = hiddenInput(await page(agent), 'csrf') ?? '';
      const notRecent = await agent.postForm('/account/password', { csrf: agedCsrf, new_password: NEW_PASSWORD });
      expect(notRecent.headers.get('location')).toBe(`/account/reauth?next=${encodeURIComponent('/account#password')}`);
      expect((await userRow(person.id)).password_hash).toBeNull();
      expect(csrf).not.toBe(agedCsrf);

      const fresh = await newPerson();
      const session = await signedIn(fresh);
      await sql`update users set password_hash = null where id = ${fresh.id}`.execute(db());
      const seq = await lastSeq();
      const answer = await session.agent.postForm('/account/password', { csrf: session.csrf, new_password: NEW_PASSWORD });
      expect(answer.headers.get('location')).toBe('/account?self=password_set#password');
      expect(await passwordWorks(fresh.email, NEW_PASSWORD)).toBe(true);
      expect((await auditSince(seq)).find((row) => row.action === 'account.password_change')?.details).toEqual({ kind: 'set', refresh_tokens_revoked: 0, other_sessions_ended: true });
    });
  });

  describe('connected apps', () => {
    it('lists each app holding a grant with its scopes per API (name escaped), not the account page itself', async () => {
      const person = await newPerson();
      await connect(person);
      const { html } = await signedIn(person);
      const apps = sectionOf(html, 'connected-apps');
      expect(apps).toContain('<h2 id="connected-apps">Connected apps</h2>');
      expect(apps).toContain(`data-client="${photos.clientId}"`);
      expect(apps).toContain('<strong id="app-name-0">Photo &lt;b&gt;App&lt;/b&gt;</strong>');
      expect(apps).toContain('Sign-in: <code>openid</code> <code>offline_access</code>');
      expect(apps).toContain(`<li data-api="${api}">At Photo API: <code>read</code> </li>`);
      expect(apps).toContain(`<form method="post" action="/account/apps/${encodeURIComponent(photos.clientId)}/delete" class="inline">`);
      expect(apps).toContain('aria-label="Remove access for Photo &lt;b&gt;App&lt;/b&gt;">Remove access</button>');
      expect(apps).not.toContain('gatehouse-account');
      expect(apps.match(/<li class="app-item"/g)).toHaveLength(1);

      const { html: bare } = await signedIn(await newPerson());
      expect(sectionOf(bare, 'connected-apps')).toContain('id="apps-empty"');
    });

    it('Remove access revokes the grant and its refresh tokens (refresh: invalid_grant), leaves another person\'s, is audited, and the app must ask consent again', async () => {
      const person = await newPerson();
      const someoneElse = await newPerson();
      const token = await connect(person);
      const othersToken = await connect(someoneElse);
      const { agent, csrf } = await signedIn(person);
      const seq = await lastSeq();
      const answer = await agent.postForm(`/account/apps/${encodeURIComponent(photos.clientId)}/delete`, { csrf });
      expect(answer.status).toBe(303);
      expect(answer.headers.get('location')).toBe('/account?self=app_removed#connected-apps');
      expect(await grantsOf(person.id)).toEqual([]);
      const refused = await refresh(token);
      expect(refused.status).toBe(400);
      expect(refused.body.error).toBe('invalid_grant');
      // The other person's grant and token still work.
      expect((await grantsOf(someoneElse.id)).map((row) => row.model)).toEqual(['Grant', 'RefreshToken']);
      expect((await refresh(othersToken)).status).toBe(200);
      expect(await auditSince(seq)).toEqual([
        {
          actor: `person:${person.id}`,
          action: 'account.app_remove',
          target: `user:${person.id}`,
          details: { client_id: photos.clientId, client_name: 'Photo <b>App</b>', grants_revoked: 1, refresh_tokens_revoked: 1 },
        },
      ]);
      const html = await page(agent, answer.headers.get('location')!);
      expect(sectionOf(html, 'connected-apps')).toContain('Access removed. The app has to ask for your permission again.');
      expect(sectionOf(html, 'connected-apps')).toContain('id="apps-empty"');
      // The next sign-in at the app asks for consent again.
      const { signIn: signInAgain, authorizeUrl, pkce } = await import('../fixtures/flow.js');
      const { challenge } = pkce();
      const again = await signInAgain(new Agent(t.server.url, t.fetch), {
        url: authorizeUrl({ client_id: photos.clientId, redirect_uri: REDIRECT, code_challenge: challenge, code_challenge_method: 'S256', scope: 'openid read', resource: api }),
        email: person.email,
        password: person.password,
      });
      expect(again.sawConsent).toBe(true);
    });

    it('a missing CSRF token, an app of someone else\'s, an unknown or the account page\'s client: nothing changes', async () => {
      const person = await newPerson();
      const someoneElse = await newPerson();
      const other = await t.build.client({ client_name: 'Other App', redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'] });
      await t.build.grant(other.clientId, api, 'read');
      await connect(person);
      await connect(someoneElse, other);
      const { agent, csrf } = await signedIn(person);
      const mine = await grantsOf(person.id);
      const theirs = await grantsOf(someoneElse.id);
      const seq = await lastSeq();
      const noCsrf = await agent.postForm(`/account/apps/${encodeURIComponent(photos.clientId)}/delete`, {});
      expect(noCsrf.status).toBe(403);
      for (const clientId of [other.clientId, 'no-such-client', 'gatehouse-account', 'x'.repeat(300)]) {
        const answer = await agent.postForm(`/account/apps/${encodeURIComponent(clientId)}/delete`, { csrf });
        expect(answer.status, clientId).toBe(404);
        expect(await answer.text()).toContain('not_found');
      }
      expect(await grantsOf(person.id)).toEqual(mine);
      expect(await grantsOf(someoneElse.id)).toEqual(theirs);
      expect(await auditSince(seq)).toEqual([]);
    });
  });

  describe('sessions', () => {
    it('lists this browser and the others (browser, IP, sign-in time); Sign out everywhere else ends the others and keeps this one; audited', async () => {
      const person = await newPerson();
      const firefox = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0';
      const chrome = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
      const other = await signedIn(person, firefox);
      const third = await signedIn(person, firefox);
      const mine = await signedIn(person, chrome);
      const html = await page(mine.agent);
      const sessions = sectionOf(html, 'sessions');
      expect(sessions).toContain('<h2 id="sessions">Sessions</h2>');
      expect(sessions.match(/<li class="session-item"/g)).toHaveLength(3);
      // This browser first, marked.
      expect(sessions).toMatch(/<li class="session-item" data-session="[\w-]+" data-current="true">\s*<p><strong id="session-browser-0" title="[^"]*Chrome[^"]*">Chrome on Windows<\/strong> <span class="tag" id="this-browser">This browser<\/span>/);
      expect(sessions.match(/>Firefox on Linux</g)).toHaveLength(2);
      expect(sessions).toMatch(/Signed in <time datetime="[^"]+">\d{4}-\d\d-\d\d \d\d:\d\d UTC<\/time>/);
      expect(sessions.match(/>Sign out<\/button>/g)).toHaveLength(2);
      expect(sessions).toContain('<button type="submit" class="secondary" id="sign-out-others" aria-describedby="sign-out-others-help">Sign out everywhere else</button>');

      // One other session, by its own button.
      const thirdUid = (await t.server.host.provider.Session.find(third.agent.cookies.get('_session')!))!.uid;
      const one = await mine.agent.postForm(`/account/sessions/${thirdUid}/delete`, { csrf: mine.csrf });
      expect(one.headers.get('location')).toBe('/account?self=one_ended#sessions');
      expect((await third.agent.request('/account')).status).toBe(303);
      expect((await other.agent.request('/account')).status).toBe(200);

      // A session that signed in after this one: the cutoff (this sign-in's time) does not end it, the index does.
      const later = await signedIn(person, firefox);
      // A session the index does not know (one from before it existed) that signed in before this one
      // (login times are whole seconds: a minute before): the cutoff ends it.
      await ageSession(other.agent, 60);
      await t.server.store.indexRemove(accountSessionsIndex(person.id), [other.agent.cookies.get('_session')!]);
      const seq = await lastSeq();
      const answer = await mine.agent.postForm('/account/sessions/others/delete', { csrf: mine.csrf });
      expect(answer.status).toBe(303);
      expect(answer.headers.get('location')).toBe('/account?self=others_ended#sessions');
      const otherAnswer = await other.agent.request('/account');
      expect(otherAnswer.status).toBe(303);
      expect(otherAnswer.headers.get('location')).toBe('/account/sign-in');
      expect((await later.agent.request('/account')).status).toBe(303);
      expect(await t.server.host.provider.Session.find(later.agent.cookies.get('_session')!)).toBeUndefined();
      const after = await page(mine.agent, answer.headers.get('location')!);
      expect(sectionOf(after, 'sessions')).toContain('You are signed out everywhere else.');
      expect(sectionOf(after, 'sessions').match(/<li class="session-item"/g)).toHaveLength(1);
      expect(sectionOf(after, 'sessions')).toContain('id="sessions-only-this"');
      expect(await auditSince(seq)).toEqual([
        { actor: `person:${person.id}`, action: 'account.sessions_end', target: `user:${person.id}`, details: { scope: 'others', ended: 1 } },
      ]);
      // The session cookie value (a credential) never reaches the page.
      expect(after).not.toContain(mine.agent.cookies.get('_session')!);
      expect(html).not.toContain(other.agent.cookies.get('_session')!);
    });

    it('a missing CSRF token, this browser\'s own session, or a session of someone else: nothing ends', async () => {
      const person = await newPerson();
      const other = await signedIn(person);
      const mine = await signedIn(person);
      const stranger = await signedIn(await newPerson());
      const seq = await lastSeq();
      expect((await mine.agent.postForm('/account/sessions/others/delete', {})).status).toBe(403);
      const otherUid = (await t.server.host.provider.Session.find(other.agent.cookies.get('_session')!))!.uid;
      expect((await mine.agent.postForm(`/account/sessions/${otherUid}/delete`, { csrf: 'forged' })).status).toBe(403);
      expect((await other.agent.postForm(`/account/sessions/${otherUid}/delete`, { csrf: mine.csrf })).status).toBe(403);
      const myUid = (await t.server.host.provider.Session.find(mine.agent.cookies.get('_session')!))!.uid;
      const strangerUid = (await t.server.host.provider.Session.find(stranger.agent.cookies.get('_session')!))!.uid;
      for (const uid of [myUid, strangerUid, 'unknown-uid', '%3Cscript%3E']) {
        expect((await mine.agent.postForm(`/account/sessions/${uid}/delete`, { csrf: mine.csrf })).status, uid).toBe(404);
      }
      for (const agent of [other.agent, mine.agent, stranger.agent]) expect((await agent.request('/account')).status).toBe(200);
      expect(await auditSince(seq)).toEqual([]);
      // The index holds the person's sessions by their cookie value, the page shows only uids.
      const index = await t.server.store.indexList(accountSessionsIndex(person.id));
      expect(index.has(mine.agent.cookies.get('_session')!)).toBe(true);
    });
    it('a session ended by signing out at the provider leaves its account\'s index at once', async () => {
      const person = await newPerson();
      const leaving = await signedIn(person);
      const staying = await signedIn(person);
      const index = () => t.server.store.indexList(accountSessionsIndex(person.id));
      const id = leaving.agent.cookies.get('_session')!;
      expect([...(await index()).keys()].sort()).toEqual([id, staying.agent.cookies.get('_session')!].sort());
      // #sign-out: the provider's end-session page, then its confirmation form.
      const { response } = await leaving.agent.follow('/session/end?client_id=gatehouse-account');
      const html = await response.text();
      const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
      expect(action, html.slice(0, 300)).toBeTruthy();
      const done = await leaving.agent.postForm(action!, { xsrf: hiddenInput(html, 'xsrf') ?? '', logout: 'yes' });
      expect([200, 303]).toContain(done.status);
      expect((await leaving.agent.request('/account')).status).toBe(303);
      expect([...(await index()).keys()]).toEqual([staying.agent.cookies.get('_session')!]);
    });
  });

  describe('recent security events', () => {
    it('lists the person\'s own security events, newest first, in words; not other people\'s', async () => {
      const person = await newPerson();
      const { agent, csrf } = await signedIn(person);
      const empty = sectionOf(await page(agent), 'security-events');
      expect(empty).toContain('<h2 id="security-events">Recent security events</h2>');
      expect(empty).toContain('id="events-empty"');
      await connect(person);
      await agent.postForm('/account/profile', { csrf, name: 'Events' });
      await agent.postForm(`/account/apps/${encodeURIComponent(photos.clientId)}/delete`, { csrf });
      await agent.postForm('/account/sessions/others/delete', { csrf });
      await agent.postForm('/account/password', { csrf, current_password: person.password, new_password: 'yet another long passphrase 2026' });
      // Someone else's change is not listed here.
      const stranger = await signedIn(await newPerson());
      await stranger.agent.postForm('/account/profile', { csrf: stranger.csrf, name: 'Stranger' });
      const events = sectionOf(await page(agent), 'security-events');
      const sentences = [...events.matchAll(/<tr><td><time datetime="[^"]+">[^<]+<\/time><\/td><td>([^<]+)<\/td>/g)].map((match) => match[1]);
      expect(sentences).toEqual([
        'Your password was changed.',
        'Sessions in other browsers were ended.',
        'Access for Photo &lt;b&gt;App&lt;/b&gt; was removed.',
        'Your display name was changed.',
      ]);
    });

    it('lists a passkey event (about the person through details.user_id) and marks an administrator\'s change', async () => {
      const person = await newPerson();
      const { agent } = await signedIn(person);
      await t.services.db.transaction().execute((trx) =>
        recordChange(t.services.audit, trx, { actor: 'person:' + person.id }, { action: 'passkey.remove', target: `passkey:${randomUUID()}`, details: { user_id: person.id, name: 'Work <laptop>' } }),
      );
      // Someone else's passkey is not theirs.
      await t.services.db.transaction().execute((trx) =>
        recordChange(t.services.audit, trx, { actor: 'person:someone' }, { action: 'passkey.remove', target: `passkey:${randomUUID()}`, details: { user_id: randomUUID(), name: 'Not mine' } }),
      );
      await setUserPassword(t.services, { actor: 'admin:console-client' }, person.id, 'an administrator chose this passphrase 77', { keepSessions: true });
      const events = sectionOf(await page(agent), 'security-events');
      const sentences = [...events.matchAll(/<tr><td><time datetime="[^"]+">[^<]+<\/time><\/td><td>([^<]+)<\/td>/g)].map((match) => match[1]);
      expect(sentences).toEqual(['Your password was set. (by an administrator)', 'A passkey was removed: Work &lt;laptop&gt;.']);
    });

    it('lists the events of the other self-service parts: API keys, a password reset, an address verified or changed', async () => {
      const person = await newPerson();
      const { agent } = await signedIn(person);
      const record = (action: string, target: string, details: Record<string, unknown>) =>
        t.services.db.transaction().execute((trx) => recordChange(t.services.audit, trx, { actor: 'person:' + person.id }, { action, target, details }));
      const keyId = randomUUID();
      await record('api_key.create', `api_key:${keyId}`, { user_id: person.id, label: 'CI <deploy>' });
      await record('api_key.regenerate', `api_key:${keyId}`, { user_id: person.id, label: 'CI <deploy>' });
      await record('api_key.revoke', `api_key:${keyId}`, { user_id: person.id, label: 'CI <deploy>' });
      await record('user.password_reset', `user:${person.id}`, {});
      await record('user.email_change_requested', `user:${person.id}`, { to: 'new<x>@example.test' });
      await record('user.email_change', `user:${person.id}`, {});
      await record('user.email_verify', `user:${person.id}`, {});
      // Another person's key is not theirs.
      await record('api_key.create', `api_key:${randomUUID()}`, { user_id: randomUUID(), label: 'Not mine' });
      const events = sectionOf(await page(agent), 'security-events');
      const sentences = [...events.matchAll(/<tr><td><time datetime="[^"]+">[^<]+<\/time><\/td><td>([^<]+)<\/td>/g)].map((match) => match[1]);
      expect(sentences).toEqual([
        'Your email address was verified.',
        'Your email address was changed.',
        'A change of your email address to new&lt;x&gt;@example.test was asked for.',
        'Your password was reset with a link sent by mail.',
        'An API key was revoked: CI &lt;deploy&gt;.',
        'An API key was regenerated: CI &lt;deploy&gt;.',
        'An API key was created: CI &lt;deploy&gt;.',
      ]);
    });

    it('says the events in German for a German browser', async () => {
      const person = await newPerson();
      const { agent, csrf } = await signedIn(person);
      await agent.postForm('/account/profile', { csrf, name: 'Deutsch' });
      const response = await agent.request('/account', { headers: { 'accept-language': 'de' } });
      const html = await response.text();
      expect(sectionOf(html, 'security-events')).toContain('Ihr Anzeigename wurde geändert.');
      expect(html).toContain('<h2 id="connected-apps">Verbundene Apps</h2>');
      expect(html).toContain('>Überall sonst abmelden</button>');
    });
  });
});

describe('sessions on the embedded in-process store (no REDIS_URL)', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ name: 'account-self-memory', listen: false, store: 'memory' });
  });
  afterAll(() => t.close());

  async function signedIn(person: { email: string; password: string }) {
    const agent = new Agent(t.server.url, t.fetch);
    const { response } = await agent.follow('/account');
    const html = await response.text();
    const login = /<form method="post" action="([^"]+\/login)"/.exec(html)?.[1];
    const posted = await agent.postForm(login!, { csrf: hiddenInput(html, 'csrf') ?? '', email: person.email, password: person.password });
    const end = await agent.follow(posted.headers.get('location')!);
    expect(end.url).toBe(`${t.server.url}/account`);
    return { agent, csrf: hiddenInput(await end.response.text(), 'csrf') ?? '' };
  }

  it('lists both sessions and Sign out everywhere else ends the other one', async () => {
    expect(t.server.store.kind).toBe('memory');
    const person = await t.build.person({ email: `memory-${randomUUID()}@example.test` });
    const other = await signedIn(person);
    const mine = await signedIn(person);
    const html = await (await mine.agent.request('/account')).text();
    expect(html.match(/<li class="session-item"/g)).toHaveLength(2);
    const answer = await mine.agent.postForm('/account/sessions/others/delete', { csrf: mine.csrf });
    expect(answer.headers.get('location')).toBe('/account?self=others_ended#sessions');
    expect((await other.agent.request('/account')).status).toBe(303);
    expect((await mine.agent.request('/account')).status).toBe(200);
  });
});
