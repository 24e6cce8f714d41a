import { existsSync } from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { calculateJwkThumbprint, createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { createHash } from 'node:crypto';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createResourceServer } from '../../../examples/resource-server/resource-server.js';
import { createSpaServer } from '../../../examples/spa/serve.js';
import { recordSecret } from '../../fixtures/log-capture.js';
import { freePort, listenOnFreePort } from '../../fixtures/ports.js';
import { REPO_ROOT, spawnNode, type Spawned } from '../../fixtures/process.js';
import { startTestServer, tokenRequest, type TestServer } from '../../fixtures/server.js';
import { listen, tokensIssued } from './helpers.js';

/**
 * examples/spa in Debian's chromium: oidc-client-ts signs in with the code flow and PKCE (a public,
 * first-party client), the app calls examples/resource-server with its access token, refreshes with
 * the rotating refresh token, renews from the Gatehouse session in a hidden iframe, and signs out.
 * Every token is DPoP-bound to a non-extractable WebCrypto key of the app's (RFC 9449).
 */

const CHROMIUM = '/usr/bin/chromium';
const PASSWORD = 'orders for the single page 7';
const EMAIL = 'grace@example.test';
const NAME = 'Grace Hopper';

interface StoredUser {
  access_token: string;
  token_type?: string;
  refresh_token?: string | null;
  id_token?: string;
  scope?: string;
}

describe('examples/spa: oidc-client-ts in a real browser', () => {
  let t: TestServer | undefined;
  let api: Awaited<ReturnType<typeof listen>> | undefined;
  let spa: Awaited<ReturnType<typeof listen>> | undefined;
  let browser: Browser | undefined;
  let context: BrowserContext;
  let page: Page;
  let issuer: string;
  let audience: string;
  let spaOrigin: string;
  let clientId: string;
  let userId: string;
  const authorizationRequests: URL[] = [];
  const revocations: string[] = [];
  const apiAuthorizations: string[] = [];
  const apiProofs: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; .ci/run does it)`);
    t = await startTestServer({ name: 'example-spa' });
    issuer = t.config.issuer;
    audience = `https://orders-${t.config.port}.example.test`;
    // localhost like Gatehouse: the same site, so the hidden iframe of a silent renew carries Gatehouse's
    // SameSite=Lax session cookie (another site's iframe never would, and prompt=none would always fail).
    // Its port is bound now (at 0), before the client names the origin in its redirect URIs; the app answers on it below.
    const spaListener = await listenOnFreePort();
    spaOrigin = `http://localhost:${spaListener.port}`;

    await t.build.resource({ identifier: audience, scope: 'read:orders write:orders', name: 'Orders API' });
    // Through the CLI, as the example's README registers it: what it prints for a public client is checked here.
    const created = await t.cli<{ client_id: string; client_secret?: string; token_endpoint_auth_method: string }>(
      'clients', 'create',
      '--name', 'Orders SPA',
      '--auth-method', 'none',
      '--first-party',
      '--redirect-uri', `${spaOrigin}/callback`,
      '--redirect-uri', `${spaOrigin}/silent-callback`,
      '--post-logout-redirect-uri', `${spaOrigin}/signed-out`,
      '--grant-type', 'authorization_code',
      '--grant-type', 'refresh_token',
      '--resource', audience,
      '--scope', 'openid profile read:orders',
    );
    expect(created.token_endpoint_auth_method).toBe('none');
    expect(created.client_secret).toBeUndefined();
    clientId = created.client_id;
    userId = (await t.build.person({ email: EMAIL, password: PASSWORD, name: NAME })).id;

    api = await listen(createResourceServer({ issuer, audience, allowedOrigins: [spaOrigin] }));
    const spaApp = createSpaServer({ issuer, clientId, apiUrl: api.url });
    spaListener.server.on('request', (request: http.IncomingMessage, response: http.ServerResponse) => spaApp.emit('request', request, response));
    spa = {
      url: `http://127.0.0.1:${spaListener.port}`,
      port: spaListener.port,
      close: () =>
        new Promise<void>((resolve) => {
          spaListener.server.closeAllConnections();
          spaListener.server.close(() => resolve());
        }),
    };

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
      timeout: 60_000,
    });
    context = await browser.newContext({ viewport: { width: 900, height: 800 }, locale: 'en-US' });
    context.setDefaultTimeout(20_000);
    page = await context.newPage();
    // Requests from the page and its frames, as the network sees them.
    context.on('request', (request) => {
      const url = new URL(request.url());
      if (url.origin === issuer && url.pathname === '/auth') authorizationRequests.push(url);
      if (url.origin === issuer && url.pathname === '/token/revocation' && request.method() === 'POST') revocations.push(request.postData() ?? '');
      if (url.origin === api!.url && url.pathname === '/orders' && request.method() === 'GET') {
        apiAuthorizations.push(request.headers().authorization ?? '');
        apiProofs.push(request.headers().dpop ?? '');
      }
      // What else passes through the browser, for the log audit: codes, PKCE verifiers, refresh tokens.
      if (url.origin === spaOrigin) recordSecret(url.searchParams.get('code'));
      if (url.origin === issuer && url.pathname === '/token' && request.method() === 'POST') {
        const form = new URLSearchParams(request.postData() ?? '');
        for (const name of ['code', 'code_verifier', 'refresh_token']) recordSecret(form.get(name));
      }
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await spa?.close();
    await api?.close();
    await t?.close();
  }, 60_000);

  const storedUser = async (): Promise<StoredUser | null> => {
    const raw = await page.evaluate((key) => sessionStorage.getItem(key), `oidc.user:${issuer}:${clientId}`);
    const user = raw ? (JSON.parse(raw) as StoredUser) : null;
    recordSecret(user?.access_token);
    recordSecret(user?.refresh_token);
    recordSecret(user?.id_token);
    return user;
  };

  /** Clicks a button and returns the activity line it adds (the n-th for that action). */
  async function press(button: string, action: string) {
    const before = await page.locator(`#log li[data-action="${action}"]`).count();
    await page.locator(`#${button}`).click();
    const line = page.locator(`#log li[data-action="${action}"]`).nth(before);
    await line.waitFor();
    return {
      outcome: await line.getAttribute('data-outcome'),
      status: await line.getAttribute('data-status'),
      error: await line.getAttribute('data-error'),
      text: (await line.textContent()) ?? '',
    };
  }

  /** The app's DPoP key pair as oidc-client-ts keeps it (IndexedDB "oidc", store "dpop", under the client id): what a script can learn of it. */
  const dpopKey = () =>
    // Run in the page (a string: this file is typed without the DOM library).
    page.evaluate<{ privateExtractable: boolean; algorithm: string } | null>(`new Promise((resolve, reject) => {
      const open = indexedDB.open('oidc');
      open.onerror = () => reject(open.error);
      open.onsuccess = () => {
        const db = open.result;
        if (!db.objectStoreNames.contains('dpop')) return resolve(null);
        const get = db.transaction('dpop', 'readonly').objectStore('dpop').get(${JSON.stringify(clientId)});
        get.onerror = () => reject(get.error);
        get.onsuccess = () => resolve(get.result ? { privateExtractable: get.result.keys.privateKey.extractable, algorithm: get.result.keys.privateKey.algorithm.namedCurve } : null);
      };
    })`);

  const sessionCookies = async () => (await context.cookies(issuer)).filter((cookie) => cookie.name.startsWith('_session'));

  it('signs in with PKCE, calls the API, refreshes (rotating the refresh token), renews from the session and signs out', async () => {
    const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));
    const verifyAccessToken = (token: string) => jwtVerify(token, jwks, { issuer, audience, typ: 'at+jwt', algorithms: ['RS256'] });

    await page.goto(`${spaOrigin}/`);
    await expect.poll(() => page.locator('#who').textContent()).toBe('Signed out');
    expect(await storedUser()).toBeNull();

    // Without a token the API answers 401 (CORS lets the app read the status).
    const anonymous = await press('call-api', 'call-api');
    expect(anonymous.status).toBe('401');

    // Sign in: Gatehouse's login page, no consent page (first-party), back at the app.
    await page.locator('#sign-in').click();
    await page.waitForURL((url) => url.origin === issuer && url.pathname.startsWith('/interaction/'));
    await page.locator('input[name=email]').fill(EMAIL);
    await page.locator('input[name=password]').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL((url) => url.origin === spaOrigin);
    const signIn = page.locator('#log li[data-action="sign-in"]').first();
    await signIn.waitFor();
    expect(await signIn.getAttribute('data-outcome')).toBe('ok');
    expect(new URL(page.url()).pathname).toBe('/'); // the spent code is out of the address bar
    await expect.poll(() => page.locator('#who').getAttribute('data-sub')).toBe(userId);

    const [authorize] = authorizationRequests;
    expect(authorize?.searchParams.get('client_id')).toBe(clientId);
    expect(authorize?.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize?.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(authorize?.searchParams.get('redirect_uri')).toBe(`${spaOrigin}/callback`);

    const first = await storedUser();
    expect(first?.refresh_token).toBeTruthy(); // first-party: a refresh token without offline_access
    const { payload: firstClaims } = await verifyAccessToken(first!.access_token);
    expect(firstClaims).toMatchObject({ sub: userId, client_id: clientId, scope: 'read:orders' });
    // DPoP: the token is bound to the app's key (cnf.jkt), which the authorization request named
    // (dpop_jkt) and which no script can export.
    expect(first?.token_type).toBe('DPoP');
    const jkt = (firstClaims.cnf as { jkt?: string } | undefined)?.jkt;
    expect(jkt).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(authorize?.searchParams.get('dpop_jkt')).toBe(jkt);
    expect(await dpopKey()).toEqual({ privateExtractable: false, algorithm: 'P-256' });
    expect(tokensIssued(t!.logs, clientId, 'authorization_code')).toBe(1);

    // The API with the access token: reading is allowed, placing an order needs write:orders.
    const listed = await press('call-api', 'call-api');
    expect(listed.status).toBe('200');
    expect(listed.text).toContain(`"sub":"${userId}"`);
    expect(apiAuthorizations.at(-1)).toBe(`DPoP ${first!.access_token}`);
    // The proof that went with it: this request, this token, the bound key.
    const apiProof = apiProofs.at(-1)!;
    const proofHeader = decodeProtectedHeader(apiProof);
    expect(proofHeader.typ).toBe('dpop+jwt');
    expect(await calculateJwkThumbprint(proofHeader.jwk!)).toBe(jkt);
    expect(decodeJwt(apiProof)).toMatchObject({ htm: 'GET', htu: `${api!.url}/orders`, ath: createHash('sha256').update(first!.access_token).digest('base64url') });
    // Taken out of the browser, the token is refused without the key (as Bearer).
    const stolen = await fetch(`${api!.url}/orders`, { headers: { authorization: `Bearer ${first!.access_token}` } });
    expect(stolen.status).toBe(401);
    expect(stolen.headers.get('www-authenticate')).toMatch(/^DPoP /);
    const placed = await press('place-order', 'place-order');
    expect(placed.status).toBe('403');
    expect(placed.error).toBe('insufficient_scope');
    expect(placed.text).toContain('error="insufficient_scope"');
    expect(placed.text).toContain('scope="write:orders"');

    // Refresh: signinSilent uses the refresh token; both tokens are new, and the new access token is the one the app sends.
    const refreshed = await press('refresh', 'refresh');
    expect(refreshed.outcome, refreshed.text).toBe('ok');
    const second = await storedUser();
    expect(second?.access_token).not.toBe(first!.access_token);
    expect(second?.refresh_token).toBeTruthy();
    expect(second?.refresh_token).not.toBe(first!.refresh_token);
    expect((await verifyAccessToken(second!.access_token)).payload).toMatchObject({ sub: userId, client_id: clientId, scope: 'read:orders', cnf: { jkt } });
    expect(second?.token_type).toBe('DPoP');
    expect(tokensIssued(t!.logs, clientId, 'refresh_token')).toBe(1);
    expect((await press('call-api', 'call-api')).status).toBe('200');
    expect(apiAuthorizations.at(-1)).toBe(`DPoP ${second!.access_token}`);

    // Renewal from the Gatehouse session alone (hidden iframe, prompt=none) works while signed in.
    const renewed = await press('renew-session', 'renew-session');
    expect(renewed.outcome, renewed.text).toBe('ok');
    expect(renewed.text).toContain(userId);
    expect(authorizationRequests.at(-1)?.searchParams.get('prompt')).toBe('none');
    expect(tokensIssued(t!.logs, clientId, 'authorization_code')).toBe(2);
    const third = await storedUser();
    expect(third?.access_token).not.toBe(second!.access_token);
    expect(third?.refresh_token).toBeTruthy();
    expect(decodeJwt(third!.access_token).cnf).toEqual({ jkt });
    // The refresh token is bound to the key too (a public client's): taken out of the browser, it is refused without a proof.
    const stolenRefresh = await tokenRequest(issuer, { grant_type: 'refresh_token', refresh_token: third!.refresh_token!, client_id: clientId });
    expect(stolenRefresh.status).toBe(400);
    expect(stolenRefresh.body.error).toBe('invalid_grant');
    for (const cookie of await sessionCookies()) recordSecret(cookie.value);
    expect((await sessionCookies()).map((cookie) => cookie.name)).toContain('_session');

    // Sign out: the app revokes its refresh token, Gatehouse asks to confirm, and sends the browser back.
    await page.locator('#sign-out').click();
    await page.waitForURL((url) => url.origin === issuer && url.pathname.startsWith('/session/end'));
    const confirm = page.getByRole('button', { name: 'Sign out', exact: true });
    await confirm.waitFor();
    await Promise.all([page.waitForURL((url) => url.origin === spaOrigin), confirm.click()]);
    const signOut = page.locator('#log li[data-action="sign-out"]').first();
    await signOut.waitFor();
    expect(await signOut.getAttribute('data-outcome')).toBe('ok');
    expect(new URL(page.url()).pathname).toBe('/');
    await expect.poll(() => page.locator('#who').textContent()).toBe('Signed out');
    expect(await storedUser()).toBeNull();
    expect(await dpopKey()).toBeNull(); // the key is forgotten with the user
    expect((await sessionCookies()).map((cookie) => cookie.name)).not.toContain('_session');

    // Gatehouse keeps refresh tokens across its own logout; this one is dead because the app revoked it.
    expect(revocations).toHaveLength(1);
    expect(new URLSearchParams(revocations[0]).get('token_type_hint')).toBe('refresh_token');
    const replay = await tokenRequest(issuer, { grant_type: 'refresh_token', refresh_token: third!.refresh_token!, client_id: clientId });
    expect(replay.status).toBe(400);
    expect(replay.body.error).toBe('invalid_grant');

    // Nothing silent brings the person back: no refresh token, and the session is gone (login_required).
    const refreshAfter = await press('refresh', 'refresh');
    expect(refreshAfter.outcome).toBe('error');
    expect(refreshAfter.error).toBe('login_required');
    const renewAfter = await press('renew-session', 'renew-session');
    expect(renewAfter.outcome).toBe('error');
    expect(renewAfter.error).toBe('login_required');
    expect((await press('call-api', 'call-api')).status).toBe('401');
    expect(tokensIssued(t!.logs, clientId, 'authorization_code')).toBe(2);
  }, 120_000);

  describe('serve.ts as a program', () => {
    let spawned: Spawned | undefined;
    afterAll(async () => {
      spawned?.child.kill('SIGTERM');
      await spawned?.exited;
    });

    it('serves the app with a strict Content-Security-Policy and the settings from its environment', async () => {
      const port = await freePort();
      spawned = spawnNode([path.join(REPO_ROOT, 'examples/spa/serve.ts')], {
        cwd: REPO_ROOT,
        env: { ISSUER: issuer, CLIENT_ID: clientId, API_URL: 'http://127.0.0.1:4999', PORT: String(port) },
      });
      await expect.poll(() => spawned!.output(), { timeout: 15_000 }).toContain(`single-page app on http://localhost:${port}`);
      const base = `http://localhost:${port}`;
      const index = await fetch(`${base}/callback`);
      expect(index.status).toBe(200);
      expect(await index.text()).toContain('<script type="module" src="/app.js"></script>');
      const csp = index.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain(`connect-src 'self' ${issuer} http://127.0.0.1:4999`);
      expect(await (await fetch(`${base}/config.json`)).json()).toEqual({
        issuer,
        clientId,
        apiUrl: 'http://127.0.0.1:4999',
        scope: 'openid profile read:orders',
      });
      const library = await fetch(`${base}/vendor/oidc-client-ts.min.js`);
      expect(library.status).toBe(200);
      expect(await library.text()).toContain('UserManager');
      expect((await fetch(`${base}/serve.ts`)).status).toBe(404); // only the app's own files are served
    }, 30_000);
  });
});
