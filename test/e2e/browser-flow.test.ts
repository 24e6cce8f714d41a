import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import {
  allowInsecureRequests,
  authorizationCodeGrant,
  buildAuthorizationUrl,
  buildEndSessionUrl,
  calculatePKCECodeChallenge,
  ClientSecretBasic,
  discovery,
  fetchUserInfo,
  randomNonce,
  randomPKCECodeVerifier,
  randomState,
  refreshTokenGrant,
  type Configuration,
} from 'openid-client';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACR_BASIC, ACR_MFA } from '../../src/accounts/authentication-context.js';
import { loadDataKeyring } from '../../src/keys/data-key.js';
import { beginTotpEnrolment, confirmTotpEnrolment } from '../../src/services/second-factors.service.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';
import { totpCode } from '../fixtures/totp.js';
import { accessibilityViolations } from '../fixtures/axe.js';

/**
 * The whole sign-in as a person sees it: Debian's chromium (driven by playwright-core) signs in on
 * the login page, allows access on the consent page and signs out again, while a relying party on
 * 127.0.0.1 uses openid-client for discovery, PKCE, the code exchange, refresh and end-session.
 * Each run also takes screenshots of the pages (login, consent, logout, second factor, second factor required, app set up
 * with its recovery codes), into build/screenshots/ (git-ignored): the
 * suite rewrites no tracked file. `npm run docs:screenshots` runs this file with SCREENSHOTS_DIR=docs/images
 * to update the README's images on purpose.
 */

const CHROMIUM = '/usr/bin/chromium';
const ROOT = path.resolve(import.meta.dirname, '../..');
const IMAGES = path.resolve(ROOT, process.env.SCREENSHOTS_DIR ?? 'build/screenshots');
// One viewport for every screenshot: phone-ish, light colour scheme, so the images stay comparable.
const VIEWPORT = { width: 420, height: 800 };
const PASSWORD = 'correct horse battery staple 42';
const EMAIL = 'ada@example.test';
const NAME = 'Ada Lovelace';
const CLIENT_NAME = 'Photo Book';
const SCOPE = 'openid profile email offline_access';
const API = 'https://photos-api.example.test';
const API_SCOPE = 'photos:read';

/**
 * A tiny relying party: /callback and /bye answer with a plain page and remember what they saw,
 * including the form a POST to /callback carried (response_mode=form_post).
 */
async function startRelyingParty() {
  const hits: string[] = [];
  const posts: URLSearchParams[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    hits.push(url.pathname);
    if (url.pathname === '/callback' && req.method === 'POST') {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        posts.push(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        res.end('<!doctype html><title>callback</title><h1>Signed in (form_post)</h1>');
      });
      return;
    }
    if (url.pathname === '/callback' || url.pathname === '/bye') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(`<!doctype html><title>${url.pathname.slice(1)}</title><h1>${url.pathname === '/bye' ? 'Signed out' : 'Signed in'}</h1>`);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    hits,
    posts,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('sign-in in a real browser (chromium + openid-client)', () => {
  let t: TestServer | undefined;
  let rp: Awaited<ReturnType<typeof startRelyingParty>> | undefined;
  let browser: Browser | undefined;
  let context: BrowserContext;
  let page: Page;
  let issuer: string;
  let userId: string;
  let clientId: string;
  let config: Configuration;
  let redirectUri: string;
  let postLogoutRedirectUri: string;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; .ci/run does it)`);
    t = await startTestServer({ name: 'browser-flow' });
    issuer = t.config.issuer;
    rp = await startRelyingParty();
    redirectUri = `${rp.origin}/callback`;
    postLogoutRedirectUri = `${rp.origin}/bye`;

    await t.build.resource({ identifier: API, scope: API_SCOPE, name: 'Photos API' });
    userId = (await t.build.person({ email: EMAIL, password: PASSWORD, name: NAME })).id;
    const created = await t.build.client({
      client_name: CLIENT_NAME,
      redirect_uris: [redirectUri],
      post_logout_redirect_uris: [postLogoutRedirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: SCOPE,
    });
    clientId = created.clientId;
    // The API's scope is a grant at that API (no default resource: the app names it with resource=).
    await t.build.grant(clientId, API, API_SCOPE);
    config = await discovery(new URL(issuer), clientId, created.clientSecret, ClientSecretBasic(created.clientSecret), {
      execute: [allowInsecureRequests],
    });

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
      timeout: 60_000,
    });
    context = await browser.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1, colorScheme: 'light', locale: 'en-US' });
    context.setDefaultTimeout(20_000);
    page = await context.newPage();
    await mkdir(IMAGES, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await rp?.close();
    await t?.close();
  }, 60_000);

  async function authorizationUrl(extra: Record<string, string> = {}) {
    const verifier = randomPKCECodeVerifier();
    recordSecret(verifier);
    const state = randomState();
    const nonce = randomNonce();
    const url = buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: `${SCOPE} ${API_SCOPE}`,
      resource: API,
      code_challenge: await calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      prompt: 'consent',
      ...extra,
    });
    return { url, verifier, state, nonce };
  }

  async function sessionCookies() {
    return (await context.cookies(issuer)).filter((cookie) => cookie.name === '_session' || cookie.name.startsWith('_session.'));
  }

  it('signs in, consents, exchanges the code, refreshes, reads userinfo and signs out', async () => {
    const request = await authorizationUrl();
    expect(request.url.origin).toBe(issuer);

    // Login page.
    await page.goto(request.url.href);
    await page.waitForURL((url) => url.origin === issuer && url.pathname.startsWith('/interaction/'));
    await expect.poll(() => page.title()).toBe('Sign in · Gatehouse');
    expect(await page.locator('main').textContent()).toContain(CLIENT_NAME);
    await page.screenshot({ path: path.join(IMAGES, 'login.png') });
    expect(await accessibilityViolations(page), 'login page (axe-core, WCAG 2.1 AA)').toEqual([]);
    await page.getByLabel('Email').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();

    // Consent page.
    await page.getByRole('button', { name: 'Allow' }).waitFor();
    const consentText = await page.locator('main').textContent();
    expect(consentText).toContain(CLIENT_NAME);
    expect(consentText).toContain(EMAIL);
    await page.screenshot({ path: path.join(IMAGES, 'consent.png') });
    expect(await accessibilityViolations(page), 'consent page (axe-core, WCAG 2.1 AA)').toEqual([]);
    await Promise.all([
      page.waitForURL((url) => url.href.startsWith(redirectUri)),
      page.getByRole('button', { name: 'Allow' }).click(),
    ]);

    // Back at the relying party with a code.
    const callback = new URL(page.url());
    expect(callback.origin + callback.pathname).toBe(redirectUri);
    expect(callback.searchParams.get('state')).toBe(request.state);
    expect(callback.searchParams.get('iss')).toBe(issuer);
    const code = callback.searchParams.get('code');
    expect(code).toBeTruthy();
    recordSecret(code);
    expect(rp!.hits).toContain('/callback');

    // RFC 8707: naming the API at the token endpoint too gets an access token for it.
    const tokens = await authorizationCodeGrant(
      config,
      callback,
      { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce, idTokenExpected: true },
      { resource: API },
    );
    recordSecret(tokens.access_token);
    recordSecret(tokens.id_token);
    recordSecret(tokens.refresh_token);
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(tokens.scope).toBe(API_SCOPE);

    // The ID token and the access token, verified independently of openid-client against the published JWKS.
    const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));
    const idToken = tokens.id_token!;
    expect(decodeProtectedHeader(idToken).alg).toBe('RS256');
    const { payload: idClaims } = await jwtVerify(idToken, jwks, { issuer, audience: clientId, algorithms: ['RS256'] });
    expect(idClaims).toMatchObject({ sub: userId, email: EMAIL, name: NAME, nonce: request.nonce, acr: ACR_BASIC, amr: ['pwd'] });
    expect(tokens.claims()?.sub).toBe(userId);
    const { payload: atClaims, protectedHeader } = await jwtVerify(tokens.access_token, jwks, { issuer, audience: API, algorithms: ['RS256'], typ: 'at+jwt' });
    expect(protectedHeader.kid).toBeTruthy();
    expect(atClaims).toMatchObject({ sub: userId, client_id: clientId, scope: API_SCOPE });

    // Refresh once: the refresh token rotates and the new access token still works.
    const refreshToken = tokens.refresh_token!;
    expect(refreshToken).toBeTruthy();
    // Without a resource the refreshed access token is the opaque one for userinfo.
    const refreshed = await refreshTokenGrant(config, refreshToken);
    recordSecret(refreshed.access_token);
    recordSecret(refreshed.id_token);
    recordSecret(refreshed.refresh_token);
    expect(refreshed.refresh_token).toBeTruthy();
    expect(refreshed.refresh_token).not.toBe(refreshToken);
    expect(refreshed.access_token).not.toBe(tokens.access_token);
    expect(refreshed.access_token.split('.')).toHaveLength(1);
    if (refreshed.id_token) {
      const { payload } = await jwtVerify(refreshed.id_token, jwks, { issuer, audience: clientId, algorithms: ['RS256'] });
      expect(payload.sub).toBe(userId);
    }
    expect(await fetchUserInfo(config, refreshed.access_token, userId)).toMatchObject({ sub: userId, email: EMAIL, name: NAME, email_verified: false });

    // The browser holds a Gatehouse session now.
    const before = await sessionCookies();
    expect(before.map((cookie) => cookie.name)).toContain('_session');
    for (const cookie of before) recordSecret(cookie.value);

    // Sign out through the end-session endpoint: confirmation page, then back to /bye.
    const endSession = buildEndSessionUrl(config, {
      id_token_hint: idToken,
      post_logout_redirect_uri: postLogoutRedirectUri,
      client_id: clientId,
    });
    expect(endSession.origin + endSession.pathname).toBe(`${issuer}/session/end`);
    await page.goto(endSession.href);
    const signOut = page.getByRole('button', { name: 'Sign out', exact: true });
    await signOut.waitFor();
    expect(await page.locator('main').textContent()).toContain(CLIENT_NAME);
    await page.screenshot({ path: path.join(IMAGES, 'logout.png') });
    expect(await accessibilityViolations(page), 'logout page (axe-core, WCAG 2.1 AA)').toEqual([]);
    // The check finds what it is there for: an image without a text alternative is one violation.
    await page.evaluate("document.querySelector('main').append(Object.assign(document.createElement('img'), { id: 'axe-probe', src: 'data:,' }))");
    expect(await accessibilityViolations(page)).toEqual([expect.stringMatching(/^image-alt .*#axe-probe/)]);
    await page.evaluate("document.getElementById('axe-probe').remove()");
    await Promise.all([page.waitForURL((url) => url.href.startsWith(postLogoutRedirectUri)), signOut.click()]);
    expect(new URL(page.url()).origin + new URL(page.url()).pathname).toBe(postLogoutRedirectUri);
    expect(rp!.hits).toContain('/bye');

    // The session cookie is gone, and a new authorization request asks to sign in again.
    expect((await sessionCookies()).map((cookie) => cookie.name)).not.toContain('_session');
    const again = await authorizationUrl();
    await page.goto(again.url.href);
    await page.waitForURL((url) => url.origin === issuer && url.pathname.startsWith('/interaction/'));
    await page.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
    await expect.poll(() => page.title()).toBe('Sign in · Gatehouse');
    expect(await page.getByLabel('Password').isVisible()).toBe(true);
  }, 120_000);

  it('asked for a second factor (acr_values …:mfa) without one, stops after the password on a page that says so and offers to set up an authenticator app (QR code, key, code); Cancel returns unmet_authentication_requirements to the app', async () => {
    const request = await authorizationUrl({ acr_values: ACR_MFA });
    await page.goto(request.url.href);
    await page.waitForURL((url) => url.origin === issuer && url.pathname.startsWith('/interaction/'));
    await page.getByLabel('Email').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();

    const cancel = page.getByRole('button', { name: `Cancel and go back to ${CLIENT_NAME}` });
    await cancel.waitFor();
    await expect.poll(() => page.title()).toBe('Second factor required · Gatehouse');
    const text = await page.locator('main').textContent();
    expect(text).toContain(`${CLIENT_NAME} asked for a sign-in with a second factor.`);
    expect(text).toContain(EMAIL);
    expect(await page.getByRole('status').textContent()).toContain('has no second factor');
    // The one field is the enrolment's code; the QR code is an image with a name (inline SVG, no script).
    expect(await page.locator('input:not([type=hidden])').count()).toBe(1);
    expect(await page.getByLabel('Code from the app').isVisible()).toBe(true);
    expect(await page.getByRole('img', { name: 'QR code for your authenticator app' }).isVisible()).toBe(true);
    expect(await page.locator('#totp-uri').textContent()).toMatch(/^otpauth:\/\/totp\/Gatehouse:/);
    await page.screenshot({ path: path.join(IMAGES, 'mfa-required.png') });
    expect(await accessibilityViolations(page), 'mfa-required page (axe-core, WCAG 2.1 AA)').toEqual([]);

    await Promise.all([page.waitForURL((url) => url.href.startsWith(redirectUri)), cancel.click()]);
    const callback = new URL(page.url());
    expect(callback.searchParams.get('error')).toBe('unmet_authentication_requirements');
    expect(callback.searchParams.get('state')).toBe(request.state);
    expect(callback.searchParams.get('code')).toBeNull();
  }, 120_000);

  it('a person with an authenticator app: after the password, the second-factor page (a wrong code says so, focus on the field it describes); the code from the app gives acr mfa', async () => {
    const grace = await t!.build.person({ email: 'grace@example.test', password: PASSWORD, name: 'Grace Hopper' });
    const deps = { ...t!.services, dataKeys: await loadDataKeyring(t!.config.keysDir, { generateIfMissing: false }) };
    const { secret } = await beginTotpEnrolment(deps, grace.id, { issuer: 'Gatehouse' });
    recordSecret(secret);
    // Confirmed with the previous step's code: the current one is still unused for the sign-in.
    const { recoveryCodes } = await confirmTotpEnrolment(deps, { actor: `person:${grace.id}` }, grace.id, await totpCode(secret, -30_000));
    for (const code of recoveryCodes) recordSecret(code);

    const fresh = await browser!.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1, colorScheme: 'light', locale: 'en-US' });
    try {
      const tab = await fresh.newPage();
      const request = await authorizationUrl();
      await tab.goto(request.url.href);
      await tab.waitForURL((url) => url.origin === issuer && url.pathname.startsWith('/interaction/'));
      await tab.getByLabel('Email').fill(grace.email);
      await tab.getByLabel('Password').fill(PASSWORD);
      await tab.getByRole('button', { name: 'Sign in', exact: true }).click();

      const field = tab.getByLabel('Code');
      await field.waitFor();
      await expect.poll(() => tab.title()).toBe("Confirm it's you · Gatehouse");
      expect(await tab.locator('main').textContent()).toContain(grace.email);
      expect(await field.getAttribute('autocomplete')).toBe('one-time-code');
      await tab.screenshot({ path: path.join(IMAGES, 'mfa.png') });
    expect(await accessibilityViolations(tab), 'mfa page (axe-core, WCAG 2.1 AA)').toEqual([]);

      const right = await totpCode(secret);
      await field.fill(String((Number(right) + 500_000) % 1_000_000).padStart(6, '0'));
      await tab.getByRole('button', { name: 'Continue' }).click();
      await tab.getByRole('alert').waitFor();
      expect(await tab.getByRole('alert').textContent()).toContain('That code is not right.');
      expect(await tab.evaluate('document.activeElement && document.activeElement.id')).toBe('code');
      expect(await field.getAttribute('aria-invalid')).toBe('true');
      expect(await field.getAttribute('aria-describedby')).toBe('mfa-error code-help');

      await tab.getByLabel('Code').fill(right);
      await tab.getByRole('button', { name: 'Continue' }).click();
      // prompt=consent: the consent page follows the second factor.
      await tab.getByRole('button', { name: 'Allow' }).waitFor();
      await Promise.all([tab.waitForURL((url) => url.href.startsWith(redirectUri)), tab.getByRole('button', { name: 'Allow' }).click()]);
      const tokens = await authorizationCodeGrant(config, new URL(tab.url()), { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce, idTokenExpected: true }, { resource: API });
      recordSecret(tokens.access_token);
      recordSecret(tokens.id_token);
      recordSecret(tokens.refresh_token);
      expect(tokens.claims()).toMatchObject({ sub: grace.id, acr: ACR_MFA, amr: ['pwd', 'otp', 'mfa'] });
    } finally {
      await fresh.close();
    }
  }, 120_000);

  it('asked for a second factor without one, sets up the authenticator app at sign-in: the code from the app shows ten recovery codes once (axe passes), Continue gives acr mfa and amr pwd, otp, mfa', async () => {
    const alan = await t!.build.person({ email: 'alan@example.test', password: PASSWORD, name: 'Alan Turing' });
    const fresh = await browser!.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1, colorScheme: 'light', locale: 'en-US' });
    fresh.setDefaultTimeout(20_000);
    try {
      const tab = await fresh.newPage();
      const request = await authorizationUrl({ acr_values: ACR_MFA });
      await tab.goto(request.url.href);
      await tab.waitForURL((url) => url.origin === issuer && url.pathname.startsWith('/interaction/'));
      await tab.getByLabel('Email').fill(alan.email);
      await tab.getByLabel('Password').fill(PASSWORD);
      await tab.getByRole('button', { name: 'Sign in', exact: true }).click();

      // The enrolment page: the app takes the key from the setup link, and its code turns it on.
      await tab.getByLabel('Code from the app').waitFor();
      const secret = new URL((await tab.locator('#totp-uri').textContent()) ?? '').searchParams.get('secret');
      expect(secret).toMatch(/^[A-Z2-7]+$/);
      recordSecret(secret);
      await tab.getByLabel('Code from the app').fill(await totpCode(secret!));
      await tab.getByRole('button', { name: 'Turn on and continue' }).click();

      await tab.getByRole('heading', { level: 1, name: 'Your authenticator app is set up' }).waitFor();
      await expect.poll(() => tab.title()).toBe('Authenticator app set up · Gatehouse');
      const codes = await tab.locator('#recovery-codes li').allTextContents();
      for (const code of codes) recordSecret(code.trim());
      expect(codes).toHaveLength(10);
      expect(new Set(codes).size).toBe(10);
      expect(await tab.locator('main').textContent()).toContain(alan.email);
      await tab.screenshot({ path: path.join(IMAGES, 'mfa-enrolled.png'), fullPage: true });
      expect(await accessibilityViolations(tab), 'mfa-enrolled page (axe-core, WCAG 2.1 AA)').toEqual([]);

      await tab.getByRole('button', { name: 'Continue' }).click();
      // prompt=consent: the consent page follows.
      await tab.getByRole('button', { name: 'Allow' }).waitFor();
      await Promise.all([tab.waitForURL((url) => url.href.startsWith(redirectUri)), tab.getByRole('button', { name: 'Allow' }).click()]);
      const tokens = await authorizationCodeGrant(config, new URL(tab.url()), { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce, idTokenExpected: true }, { resource: API });
      recordSecret(tokens.access_token);
      recordSecret(tokens.id_token);
      recordSecret(tokens.refresh_token);
      expect(tokens.claims()).toMatchObject({ sub: alan.id, acr: ACR_MFA, amr: ['pwd', 'otp', 'mfa'] });
    } finally {
      await fresh.close();
    }
  }, 120_000);

  /** Every answer from Gatehouse a page gets while `run` runs: its URL, CSP and Set-Cookie headers. */
  async function answersDuring(on: Page, run: () => Promise<unknown>) {
    const seen: Array<{ url: string; status: number; csp: string | undefined; setCookies: string[] }> = [];
    const pending: Array<Promise<void>> = [];
    const record = (response: Awaited<ReturnType<Page['waitForResponse']>>) => {
      if (new URL(response.url()).origin !== issuer) return;
      pending.push(
        response.headersArray().then((headers) => {
          seen.push({
            url: response.url(),
            status: response.status(),
            csp: headers.find((header) => header.name.toLowerCase() === 'content-security-policy')?.value,
            setCookies: headers.filter((header) => header.name.toLowerCase() === 'set-cookie').map((header) => header.value),
          });
        }),
      );
    };
    on.on('response', record);
    try {
      await run();
    } finally {
      on.off('response', record);
    }
    await Promise.all(pending);
    return seen;
  }

  it('signs out at /session/end without a session: the signed-out page or the app, never a blank page, and no session cookie', async () => {
    const fresh = await browser!.newContext({ viewport: VIEWPORT, locale: 'en-US' });
    try {
      const tab = await fresh.newPage();
      // Nothing to end: straight to Gatehouse's signed-out page.
      const plain = await answersDuring(tab, async () => {
        await tab.goto(`${issuer}/session/end`);
        await tab.getByRole('heading', { name: 'Signed out' }).waitFor();
      });
      expect(new URL(tab.url()).pathname).toBe('/session/end/success');
      // An app that names itself and a registered post_logout_redirect_uri gets its browser back, with its state.
      const state = randomState();
      const back = await answersDuring(tab, async () => {
        await tab.goto(`${issuer}/session/end?${new URLSearchParams({ client_id: clientId, post_logout_redirect_uri: postLogoutRedirectUri, state })}`);
        await tab.waitForURL((url) => url.href.startsWith(postLogoutRedirectUri));
      });
      expect(new URL(tab.url()).searchParams.get('state')).toBe(state);
      expect(rp!.hits).toContain('/bye');

      const answers = [...plain, ...back];
      expect(answers.length).toBeGreaterThan(0);
      for (const answer of answers) {
        expect(answer.setCookies.filter((cookie) => cookie.startsWith('_session')), answer.url).toEqual([]);
        expect(answer.csp ?? '', answer.url).not.toContain('unsafe-inline');
      }
      expect((await fresh.cookies(issuer)).map((cookie) => cookie.name).filter((name) => name.startsWith('_session'))).toEqual([]);
    } finally {
      await fresh.close();
    }
  }, 60_000);

  it('answers response_mode=form_post with a page that posts the code to the app under a hash-based CSP', async () => {
    const fresh = await browser!.newContext({ viewport: VIEWPORT, locale: 'en-US' });
    try {
      const tab = await fresh.newPage();
      const request = await authorizationUrl({ response_mode: 'form_post' });
      await tab.goto(request.url.href);
      await tab.getByLabel('Email').fill(EMAIL);
      await tab.getByLabel('Password').fill(PASSWORD);
      await tab.getByRole('button', { name: 'Sign in', exact: true }).click();
      await tab.getByRole('button', { name: 'Allow' }).waitFor();
      const before = rp!.posts.length;
      const answers = await answersDuring(tab, () =>
        Promise.all([tab.waitForURL((url) => url.href.startsWith(redirectUri)), tab.getByRole('button', { name: 'Allow' }).click()]),
      );
      await tab.getByRole('heading', { name: 'Signed in (form_post)' }).waitFor();

      // The app got the code by POST, with its state and the issuer, and can redeem it.
      const posted = rp!.posts.slice(before);
      expect(posted).toHaveLength(1);
      const form = posted[0]!;
      expect(form.get('state')).toBe(request.state);
      expect(form.get('iss')).toBe(issuer);
      const code = form.get('code');
      expect(code).toBeTruthy();
      recordSecret(code);
      const callback = new URL(redirectUri);
      for (const [name, value] of form) callback.searchParams.set(name, value);
      const tokens = await authorizationCodeGrant(config, callback, { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce, idTokenExpected: true });
      recordSecret(tokens.access_token);
      recordSecret(tokens.id_token);
      recordSecret(tokens.refresh_token);
      expect(tokens.claims()?.sub).toBe(userId);

      // The self-submitting page: its script allowed by its hash alone, the app's origin as a form target.
      const page = answers.find((answer) => answer.status === 200 && answer.csp?.includes("'sha256-"));
      expect(page, JSON.stringify(answers)).toBeDefined();
      const directives = Object.fromEntries(page!.csp!.split(';').map((directive) => directive.trim().split(/\s+/)).map(([name, ...values]) => [name, values]));
      expect(directives['script-src']).toEqual([expect.stringMatching(/^'sha256-[A-Za-z0-9+/]+=*'$/)]);
      expect(directives['form-action']).toContain(rp!.origin);
      expect(directives['default-src']).toEqual(["'none'"]);
      for (const answer of answers) expect(answer.csp ?? '', answer.url).not.toContain('unsafe-inline');
    } finally {
      await fresh.close();
    }
  }, 60_000);
});
