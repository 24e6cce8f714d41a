import { existsSync } from 'node:fs';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { chromium, type APIResponse, type Browser, type BrowserContext, type CDPSession, type Page, type Request } from 'playwright-core';
import type { PublicKeyCredentialCreationOptionsJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACR_MFA } from '../../src/accounts/authentication-context.js';
import { relyingPartyOf } from '../../src/accounts/passkeys.js';
import { tailAudit } from '../../src/audit/audit-log.js';
import { passkeyRegistrationOptions, registerPasskey, type PasskeyDeps } from '../../src/services/passkeys.service.js';
import { NO_PASSKEY_AUTOFILL } from '../fixtures/passkey-autofill.js';
import { accessibilityViolations } from '../fixtures/axe.js';
import { authorizeUrl, pkce } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';

/*
 * Passkeys in Chromium (docs/design/sign-in-methods.md §4.4): Debian's chromium through
 * playwright-core, a CDP virtual authenticator (WebAuthn domain) per browser context, the issuer on
 * http://localhost:<port> (a secure context; an IP address cannot be an RP ID). Here a passkey is
 * created by the browser's own navigator.credentials.create (through @simplewebauthn/browser, on
 * the login page) with options from the passkeys service, and stored by the same service, as the
 * /account routes do; test/e2e/account-browser.test.ts goes through /account's #add-passkey itself.
 */

const CHROMIUM = '/usr/bin/chromium';
const REDIRECT_URI = 'http://127.0.0.1:8765/callback';

interface Tab {
  context: BrowserContext;
  page: Page;
  cdp: CDPSession;
  authenticatorId: string;
}

describe('passkeys in Chromium (virtual authenticator)', () => {
  let t: TestServer;
  let browser: Browser;
  let deps: PasskeyDeps;
  let app: { clientId: string; clientSecret: string };
  let issuer: string;
  const tabs: Tab[] = [];
  /** The client of each authorization code the provider saved: a refusal must add none. */
  const codesFor: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; .ci/run does it)`);
    t = await startTestServer({ name: 'passkeys-chromium' });
    issuer = t.config.issuer;
    (t.server.host.provider as unknown as NodeJS.EventEmitter).on('authorization_code.saved', (code: { clientId: string }) => codesFor.push(code.clientId));
    expect(new URL(issuer).hostname).toBe('localhost');
    deps = { ...t.services, store: t.server.store, relyingParty: relyingPartyOf(issuer) };
    app = await t.build.client({ client_name: 'Passkey App', redirect_uris: [REDIRECT_URI], first_party: true });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
      timeout: 60_000,
    });
  }, 120_000);

  afterAll(async () => {
    for (const tab of tabs) await tab.context.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await t?.close();
  }, 60_000);

  /** A browser context with one virtual authenticator (internal, resident keys, user verification). */
  async function newTab(options: { isUserVerified?: boolean; backupEligible?: boolean } = {}): Promise<Tab> {
    const context = await browser.newContext({ viewport: { width: 420, height: 800 }, locale: 'en-US' });
    context.setDefaultTimeout(20_000);
    const page = await context.newPage();
    await page.addInitScript(MARK_CONDITIONAL_REQUEST);
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        ctap2Version: 'ctap2_1',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: options.isUserVerified ?? true,
        automaticPresenceSimulation: true,
        defaultBackupEligibility: options.backupEligible ?? false,
        defaultBackupState: options.backupEligible ?? false,
      },
    });
    const tab = { context, page, cdp, authenticatorId };
    tabs.push(tab);
    return tab;
  }

  /** Starts a new authorization request (on to the login page); returns the PKCE verifier. */
  async function startAuthorization(page: Page): Promise<string> {
    const { verifier, challenge } = pkce();
    await page.goto(new URL(authorizeUrl({ client_id: app.clientId, redirect_uri: REDIRECT_URI, code_challenge: challenge, code_challenge_method: 'S256', state: randomUUID() }), issuer).href);
    return verifier;
  }

  /**
   * An init script that marks, in the page, when its conditional WebAuthn request (the email field's
   * passkey autofill) has been made: navigator.credentials.get is called as before, and noted.
   */
  const MARK_CONDITIONAL_REQUEST =
    "(() => { const container = navigator.credentials; const get = container.get.bind(container); container.get = (options) => { if (options && options.mediation === 'conditional') globalThis.__conditionalRequestStarted = true; return get(options); }; })();";

  /** Goes to a new authorization request's login page, its passkey button shown; returns the PKCE verifier. */
  async function toLogin(page: Page): Promise<string> {
    const verifier = await startAuthorization(page);
    await page.waitForURL((url) => url.origin === issuer && url.pathname.startsWith('/interaction/'));
    await page.getByRole('button', { name: 'Sign in with a passkey' }).waitFor();
    return verifier;
  }

  /**
   * A passkey for `personId` made by this tab's authenticator: options from the service, the
   * browser's own create() on a page of the issuer's origin, the answer verified and stored by the
   * service (as /account's route will).
   */
  async function registerIn(tab: Tab, personId: string) {
    await toLogin(tab.page);
    // The login page starts its conditional (autofill) request once its options come back; started
    // after the registration below, it would abort it (SimpleWebAuthn runs one ceremony at a time),
    // as a loaded machine's timing once made happen. Started first, it is the one the registration ends.
    await tab.page.waitForFunction('globalThis.__conditionalRequestStarted === true');
    const binding = randomUUID();
    const options = await passkeyRegistrationOptions(deps, personId, binding);
    const response = (await tab.page.evaluate(
      (optionsJSON: PublicKeyCredentialCreationOptionsJSON) =>
        (globalThis as unknown as { SimpleWebAuthnBrowser: { startRegistration(o: { optionsJSON: unknown }): Promise<unknown> } }).SimpleWebAuthnBrowser.startRegistration({ optionsJSON }),
      options,
    )) as RegistrationResponseJSON;
    return registerPasskey(deps, { actor: `person:${personId}` }, personId, JSON.stringify(response), 'Chromium', binding);
  }

  async function credentialsOf(tab: Tab) {
    return (await tab.cdp.send('WebAuthn.getCredentials', { authenticatorId: tab.authenticatorId })).credentials;
  }

  async function idTokenOf(redirect: string, verifier: string) {
    const code = new URL(redirect).searchParams.get('code');
    expect(code, redirect).toBeTruthy();
    recordSecret(code);
    const { status, body } = await tokenRequest(issuer, { grant_type: 'authorization_code', code: code!, redirect_uri: REDIRECT_URI, code_verifier: verifier }, app);
    expect(status).toBe(200);
    recordSecret(String(body.id_token));
    recordSecret(String(body.access_token));
    return (await jwtVerify(String(body.id_token), createRemoteJWKSet(new URL(`${issuer}/jwks`)), { issuer, audience: app.clientId })).payload;
  }

  const lastSeq = async () => (await tailAudit(t.server.registry.db, { limit: 1 })).at(-1)?.seq ?? 0;
  const actionsSince = async (seq: number) => (await tailAudit(t.server.registry.db, { afterSeq: seq })).map((row) => [row.action, row.details.reason ?? row.details.method]);
  const auditSince = async (seq: number) => (await tailAudit(t.server.registry.db, { afterSeq: seq })).map((row) => ({ actor: row.actor, action: row.action, target: row.target, details: row.details }));

  /**
   * To a new login page and clicks #passkey-signin; returns the PKCE verifier once the button's
   * options were answered (the browser then signs and posts the form). The tab is made a browser
   * without passkey autofill (NO_PASSKEY_AUTOFILL: conditional mediation reported unavailable, by an
   * init script; page scripts and CSP unchanged), so the page starts no conditional request and only
   * the button's ceremony can answer. Silencing the authenticator while the page loaded instead raced
   * on a loaded machine: the pending conditional request finished as soon as presence came back.
   */
  async function pressPasskeyButton(tab: Tab): Promise<string> {
    await tab.page.addInitScript(NO_PASSKEY_AUTOFILL);
    const verifier = await toLogin(tab.page);
    // The button's own ceremony: new options, asked for by the click.
    const buttonOptions = tab.page.waitForResponse((response) => response.url().endsWith('/passkey/options'));
    await tab.page.locator('#passkey-signin').click();
    await buttonOptions;
    return verifier;
  }

  /** Clicks #passkey-signin (pressPasskeyButton) and waits until the app's redirect_uri is reached; the ID token's payload. */
  async function signInByButton(tab: Tab) {
    const redirected = tab.page.waitForRequest((request) => request.url().startsWith(REDIRECT_URI));
    const verifier = await pressPasskeyButton(tab);
    const request = await redirected;
    return idTokenOf(request.url(), verifier);
  }

  /** The login page's passkey form post (POST /interaction/:uid/passkey), not its options request nor the second factor's. */
  const PASSKEY_POST_PATH = /^\/interaction\/[^/]+\/passkey$/;
  const isPasskeyPost = (request: Request) => request.method() === 'POST' && PASSKEY_POST_PATH.test(new URL(request.url()).pathname);

  const passkeyRow = async (id: string) =>
    (await sql<Record<string, unknown>>`select counter::text as counter, backup_state, last_used_at from passkeys where id = ${id}`.execute(t.server.registry.db)).rows;

  it('a passkey made in the browser signs in with no password, by the email field\'s autofill (conditional UI) and by #passkey-signin: a code at the app, amr hwk, mfa; the signature counter goes up each time', async () => {
    const person = await t.build.person({ email: `chromium-${randomUUID()}@example.test` });
    const tab = await newTab();
    const passkey = await registerIn(tab, person.id);
    const [made] = await credentialsOf(tab);
    expect(made).toMatchObject({ rpId: 'localhost', isResidentCredential: true });
    expect(Buffer.from(made!.userHandle!, 'base64').toString('utf8')).toBe(person.id);

    // design §13.2: headless Chromium's virtual authenticator answers the page's conditional request
    // (mediation 'conditional', from the email field's `username webauthn`) by itself: loading the
    // login page signs in, with no click, as picking the passkey from the autofill list would.
    const before = await lastSeq();
    const redirected = tab.page.waitForRequest((request) => request.url().startsWith(REDIRECT_URI));
    const conditionalVerifier = await startAuthorization(tab.page);
    const payload = await idTokenOf((await redirected).url(), conditionalVerifier);
    expect(payload).toMatchObject({ sub: person.id, acr: ACR_MFA, amr: ['hwk', 'mfa'] });
    expect(await actionsSince(before)).toEqual([['signin.success', 'passkey']]);

    // design §13.3: the virtual authenticator's counter goes up on each assertion, and the row follows it.
    const [used] = await credentialsOf(tab);
    expect(used!.signCount).toBeGreaterThan(made!.signCount);
    const row = (await sql<{ counter: string }>`select counter::text as counter from passkeys where id = ${passkey.id}`.execute(t.server.registry.db)).rows[0];
    expect(Number(row!.counter)).toBe(used!.signCount);

    // The button (modal ceremony), in a new sign-in: a second assertion, a higher counter.
    await tab.context.clearCookies();
    const byButton = await lastSeq();
    expect(await signInByButton(tab)).toMatchObject({ sub: person.id, acr: ACR_MFA, amr: ['hwk', 'mfa'] });
    expect(await actionsSince(byButton)).toEqual([['signin.success', 'passkey']]);
    const [again] = await credentialsOf(tab);
    expect(again!.signCount).toBeGreaterThan(used!.signCount);
  });

  it('the login page with the passkey button passes axe (WCAG 2.1 AA); its CSP has a script nonce, and conditional mediation is reported available', async () => {
    const tab = await newTab();
    const answer = tab.page.waitForResponse((response) => new URL(response.url()).pathname.startsWith('/interaction/') && response.request().method() === 'GET');
    await toLogin(tab.page);
    const csp = (await answer).headers()['content-security-policy'] ?? '';
    expect(csp).toMatch(/script-src 'nonce-[A-Za-z0-9+/=]+'/);
    expect(csp).not.toContain('unsafe-inline');
    expect(await tab.page.getByRole('button', { name: 'Sign in with a passkey' }).isEnabled()).toBe(true);
    expect(await tab.page.getByLabel('Email').getAttribute('autocomplete')).toBe('username webauthn');
    expect(await accessibilityViolations(tab.page), 'login page with passkeys (axe-core, WCAG 2.1 AA)').toEqual([]);
    // The library loaded under the nonce, and the browser offers conditional UI (the autofill path).
    expect(await tab.page.evaluate('typeof window.SimpleWebAuthnBrowser')).toBe('object');
    expect(await tab.page.evaluate('PublicKeyCredential.isConditionalMediationAvailable()')).toBe(true);
  });

  it('a credential of another RP ID (example.org) is not offered: the ceremony fails in the browser, the page says so, nothing is posted', async () => {
    const person = await t.build.person({ email: `other-rp-${randomUUID()}@example.test` });
    const tab = await newTab();
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await tab.cdp.send('WebAuthn.addCredential', {
      authenticatorId: tab.authenticatorId,
      credential: {
        credentialId: randomBytes(32).toString('base64'),
        isResidentCredential: true,
        rpId: 'example.org',
        privateKey: privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
        userHandle: Buffer.from(person.id).toString('base64'),
        signCount: 0,
      },
    });
    await toLogin(tab.page);
    const before = await lastSeq();
    const posts: string[] = [];
    tab.page.on('request', (request) => {
      if (request.method() === 'POST' && new URL(request.url()).pathname.endsWith('/passkey')) posts.push(request.url());
    });
    await tab.page.locator('#passkey-signin').click();
    await expect.poll(() => tab.page.locator('#passkey-status').textContent()).toMatch(/passkey prompt was closed|could not be used/);
    expect(new URL(tab.page.url()).pathname).toMatch(/^\/interaction\//);
    expect(posts).toEqual([]);
    expect(await actionsSince(before)).toEqual([]);
    expect((await credentialsOf(tab))[0]).toMatchObject({ rpId: 'example.org', signCount: 0 });
  });

  it('an authenticator that cannot verify the user (isUserVerified false) does not sign in: the browser refuses, nothing is posted, the row unchanged', async () => {
    const person = await t.build.person({ email: `no-uv-${randomUUID()}@example.test` });
    const tab = await newTab();
    const passkey = await registerIn(tab, person.id);
    await tab.cdp.send('WebAuthn.setUserVerified', { authenticatorId: tab.authenticatorId, isUserVerified: false });
    const rowBefore = (await sql`select counter, last_used_at from passkeys where id = ${passkey.id}`.execute(t.server.registry.db)).rows;
    await tab.context.clearCookies();
    await toLogin(tab.page);
    const before = await lastSeq();
    const posts: string[] = [];
    tab.page.on('request', (request) => {
      if (request.method() === 'POST' && new URL(request.url()).pathname.endsWith('/passkey')) posts.push(request.url());
    });
    await tab.page.locator('#passkey-signin').click();
    // Chromium itself refuses: the options require user verification, which this authenticator
    // cannot give, so the ceremony ends with NotAllowedError and nothing is posted. (The server's own
    // refusal of an answer without the UV flag is in passkeys-in-process.test.ts.)
    await expect.poll(() => tab.page.locator('#passkey-status').textContent()).toBe('The passkey prompt was closed. Try again, or sign in another way.');
    expect(new URL(tab.page.url()).pathname).toMatch(/^\/interaction\//);
    expect(posts).toEqual([]);
    expect(await actionsSince(before)).toEqual([]);
    expect((await sql`select counter, last_used_at from passkeys where id = ${passkey.id}`.execute(t.server.registry.db)).rows).toEqual(rowBefore);
  });

  it('after a password, the second-factor page offers the passkey (axe passes); "Use your passkey" finishes with amr pwd, hwk, mfa', async () => {
    const person = await t.build.person({ email: `pwd-then-passkey-${randomUUID()}@example.test` });
    const tab = await newTab();
    await registerIn(tab, person.id);
    await tab.context.clearCookies();
    // The person types a password rather than picking the passkey the email field offers.
    await tab.cdp.send('WebAuthn.setAutomaticPresenceSimulation', { authenticatorId: tab.authenticatorId, enabled: false });
    const verifier = await toLogin(tab.page);
    await tab.page.getByLabel('Email').fill(person.email);
    await tab.page.getByLabel('Password').fill(person.password);
    await tab.page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await tab.page.getByRole('button', { name: 'Use your passkey' }).waitFor();
    expect(await tab.page.getByLabel('Code').count()).toBe(0);
    expect(await accessibilityViolations(tab.page), 'second-factor page with a passkey (axe-core, WCAG 2.1 AA)').toEqual([]);
    await tab.cdp.send('WebAuthn.setAutomaticPresenceSimulation', { authenticatorId: tab.authenticatorId, enabled: true });
    const before = await lastSeq();
    const redirected = tab.page.waitForRequest((request) => request.url().startsWith(REDIRECT_URI));
    await tab.page.getByRole('button', { name: 'Use your passkey' }).click();
    expect(await idTokenOf((await redirected).url(), verifier)).toMatchObject({ sub: person.id, acr: ACR_MFA, amr: ['pwd', 'hwk', 'mfa'] });
    expect(await actionsSince(before)).toEqual([
      ['mfa.success', 'passkey'],
      ['signin.success', 'password'],
    ]);
  });

  it('the browser\'s passkey answer posted again with the same cookies (replayed): 401, the page says the prompt expired, no code, the row unchanged, signin.failure replayed_challenge; the browser\'s own sign-in then finishes with one code', async () => {
    const person = await t.build.person({ email: `replay-${randomUUID()}@example.test` });
    const tab = await newTab();
    const passkey = await registerIn(tab, person.id);
    await tab.context.clearCookies();
    // The interaction ends when the browser resumes the authorization (GET /auth/:uid after the
    // 303), and Playwright does not intercept a redirect's next request: so the browser's own post
    // is sent on by the route (route.fetch: its body, headers and the context's cookies) and its 303
    // is held back from the browser until the replay has been tried. The replay then meets the same
    // interaction, cookies and CSRF token, and only the spent challenge can refuse it.
    let caught!: (sent: { request: Request; accepted: APIResponse }) => void;
    const sent = new Promise<{ request: Request; accepted: APIResponse }>((resolve) => {
      caught = resolve;
    });
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    await tab.page.route(
      (url) => url.origin === issuer && PASSKEY_POST_PATH.test(url.pathname),
      async (route) => {
        if (route.request().method() !== 'POST') return route.continue();
        const accepted = await route.fetch({ maxRedirects: 0 });
        caught({ request: route.request(), accepted });
        await released;
        return route.fulfill({ response: accepted });
      },
    );
    const redirected = tab.page.waitForRequest((request) => request.url().startsWith(REDIRECT_URI));
    const before = await lastSeq();
    const codes = codesFor.length;
    // The click waits for the navigation it starts, which the route holds: it ends after release().
    const pressed = pressPasskeyButton(tab);
    pressed.catch(() => undefined);

    // The browser's own post: the form's csrf and the authenticator's answer, accepted (303 on to resume).
    const { request: original, accepted } = await sent;
    const body = original.postData() ?? '';
    const form = new URLSearchParams(body);
    expect(JSON.parse(form.get('response') ?? '{}')).toMatchObject({ type: 'public-key', id: expect.any(String) });
    expect(form.get('csrf')).toBeTruthy();
    expect(accepted.status()).toBe(303);
    expect(new URL(accepted.headers()['location'] ?? '', issuer).pathname).toMatch(/^\/auth\//);
    expect(await actionsSince(before)).toEqual([['signin.success', 'passkey']]);
    const rowAfterSignIn = await passkeyRow(passkey.id);

    // The same body again, with the browser context's own cookies (its interaction cookie included).
    const replayedAt = await lastSeq();
    const replay = await tab.context.request.post(original.url(), {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      data: body,
      maxRedirects: 0,
    });
    expect(replay.status()).toBe(401);
    expect(replay.headers()['location']).toBeUndefined();
    expect(await replay.text()).toContain('<p class="error" role="alert" id="login-error">That passkey prompt has expired. Try again.</p>');
    expect(codesFor.length).toBe(codes);
    expect(await passkeyRow(passkey.id)).toEqual(rowAfterSignIn);
    expect(await auditSince(replayedAt)).toEqual([
      { actor: 'anonymous', action: 'signin.failure', target: null, details: { method: 'passkey', reason: 'replayed_challenge', client_id: app.clientId } },
    ]);

    // The browser's sign-in goes on: one code, for this person.
    release();
    const verifier = await pressed;
    expect(await idTokenOf((await redirected).url(), verifier)).toMatchObject({ sub: person.id, amr: ['hwk', 'mfa'] });
    expect(codesFor.length).toBe(codes + 1);
  });

  it('a stored counter above the authenticator\'s (a cloned authenticator): the next Chromium sign-in is refused with the page (401), no code, the row unchanged, signin.failure counter_regression', async () => {
    const person = await t.build.person({ email: `counter-${randomUUID()}@example.test` });
    const tab = await newTab();
    const passkey = await registerIn(tab, person.id);
    await tab.context.clearCookies();
    expect(await signInByButton(tab)).toMatchObject({ sub: person.id, amr: ['hwk', 'mfa'] });
    const [used] = await credentialsOf(tab);
    expect(Number((await passkeyRow(passkey.id))[0]!.counter)).toBe(used!.signCount);

    // Another copy of this key was used meanwhile, further than this one: the stored counter is ahead.
    const raised = used!.signCount + 100;
    await sql`update passkeys set counter = ${raised} where id = ${passkey.id}`.execute(t.server.registry.db);
    const rowBefore = await passkeyRow(passkey.id);
    await tab.context.clearCookies();
    // The refused answer brings the login page back, whose conditional request the authenticator
    // would answer again: presence is turned off before the post reaches the server, so one answer is sent.
    let posts = 0;
    await tab.page.route(
      (url) => url.origin === issuer && PASSKEY_POST_PATH.test(url.pathname),
      async (route) => {
        if (route.request().method() === 'POST') {
          posts += 1;
          await tab.cdp.send('WebAuthn.setAutomaticPresenceSimulation', { authenticatorId: tab.authenticatorId, enabled: false });
        }
        await route.continue();
      },
    );
    const answered = tab.page.waitForResponse((response) => isPasskeyPost(response.request()));
    const codes = codesFor.length;
    const before = await lastSeq();
    await pressPasskeyButton(tab);
    expect((await answered).status()).toBe(401);
    await tab.page.locator('#login-error').waitFor();
    expect(await tab.page.locator('#login-error').textContent()).toBe('This passkey could not be used to sign in. Try again, or sign in another way.');
    expect(new URL(tab.page.url()).pathname).toMatch(/^\/interaction\/[^/]+\/passkey$/);
    expect(posts).toBe(1);
    expect(codesFor.length).toBe(codes);
    expect(await passkeyRow(passkey.id)).toEqual(rowBefore);
    expect(await auditSince(before)).toEqual([
      { actor: 'anonymous', action: 'signin.failure', target: `passkey:${passkey.id}`, details: { method: 'passkey', reason: 'counter_regression', client_id: app.clientId } },
    ]);
    // The browser did sign: its counter went up, and not past the stored one.
    const [after] = await credentialsOf(tab);
    expect(after!.signCount).toBeGreaterThan(used!.signCount);
    expect(after!.signCount).toBeLessThanOrEqual(raised);
  });
});
