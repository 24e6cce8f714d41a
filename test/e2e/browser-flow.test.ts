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
import { createUser } from '../../src/services/users.service.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';

/**
 * The whole sign-in as a person sees it: Debian's chromium (driven by playwright-core) signs in on
 * the login page, allows access on the consent page and signs out again, while a relying party on
 * 127.0.0.1 uses openid-client for discovery, PKCE, the code exchange, refresh and end-session.
 * Each run also refreshes the screenshots of the three pages in docs/images/.
 */

const CHROMIUM = '/usr/bin/chromium';
const IMAGES = path.resolve(import.meta.dirname, '../../docs/images');
// One viewport for every screenshot: phone-ish, light colour scheme, so the images stay comparable.
const VIEWPORT = { width: 420, height: 800 };
const PASSWORD = 'correct horse battery staple 42';
const EMAIL = 'ada@example.test';
const NAME = 'Ada Lovelace';
const CLIENT_NAME = 'Photo Book';
const SCOPE = 'openid profile email offline_access';
const API = 'https://photos-api.example.test';
const API_SCOPE = 'photos:read';

/** A tiny relying party: /callback and /bye answer with a plain page and remember what they saw. */
async function startRelyingParty() {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    hits.push(url.pathname);
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

    await t.cli('resources', 'create', '--identifier', API, '--scope', API_SCOPE, '--name', 'Photos API');
    recordSecret(PASSWORD);
    userId = (await createUser(t.server.registry.db, { email: EMAIL, password: PASSWORD, name: NAME })).id;
    const created = await t.cli<{ client_id: string; client_secret: string }>(
      'clients', 'create',
      '--name', CLIENT_NAME,
      '--redirect-uri', redirectUri,
      '--post-logout-redirect-uri', postLogoutRedirectUri,
      '--grant-type', 'authorization_code',
      '--grant-type', 'refresh_token',
      '--auth-method', 'client_secret_basic',
      '--scope', SCOPE,
    );
    recordSecret(created.client_secret);
    clientId = created.client_id;
    // The API's scope is a grant at that API (no default resource: the app names it with resource=).
    await t.cli('clients', 'grant', clientId, '--resource', API, '--scope', API_SCOPE);
    config = await discovery(new URL(issuer), clientId, created.client_secret, ClientSecretBasic(created.client_secret), {
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

  async function authorizationUrl() {
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
    await page.getByLabel('Email').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();

    // Consent page.
    await page.getByRole('button', { name: 'Allow' }).waitFor();
    const consentText = await page.locator('main').textContent();
    expect(consentText).toContain(CLIENT_NAME);
    expect(consentText).toContain(EMAIL);
    await page.screenshot({ path: path.join(IMAGES, 'consent.png') });
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
    expect(idClaims).toMatchObject({ sub: userId, email: EMAIL, name: NAME, nonce: request.nonce });
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
    await Promise.all([page.waitForURL((url) => url.href.startsWith(postLogoutRedirectUri)), signOut.click()]);
    expect(new URL(page.url()).origin + new URL(page.url()).pathname).toBe(postLogoutRedirectUri);
    expect(rp!.hits).toContain('/bye');

    // The session cookie is gone, and a new authorization request asks to sign in again.
    expect((await sessionCookies()).map((cookie) => cookie.name)).not.toContain('_session');
    const again = await authorizationUrl();
    await page.goto(again.url.href);
    await page.waitForURL((url) => url.origin === issuer && url.pathname.startsWith('/interaction/'));
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    await expect.poll(() => page.title()).toBe('Sign in · Gatehouse');
    expect(await page.getByLabel('Password').isVisible()).toBe(true);
  }, 120_000);
});
