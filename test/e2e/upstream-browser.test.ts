import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import {
  allowInsecureRequests,
  authorizationCodeGrant,
  buildAuthorizationUrl,
  calculatePKCECodeChallenge,
  ClientSecretBasic,
  discovery,
  randomPKCECodeVerifier,
  randomState,
  type Configuration,
} from 'openid-client';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessibilityViolations } from '../fixtures/axe.js';
import { runCliCapture } from '../fixtures/cli.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';
import { startUpstreamOp, type UpstreamAccounts } from '../fixtures/upstream-op.js';

/**
 * "Continue with <provider>" in Chromium, against a real second OpenID provider (oidc-provider 9
 * with its development login form, test/fixtures/upstream-op.ts) on another loopback port: the
 * provider registered with the CLI (its secret on standard input), sign-up on first arrival, the
 * same person on the second, linking an existing person only after their password, no link for an
 * unverified email; axe-core on the login page with the provider's button and on the error page.
 * The provider listens on 127.0.0.1 and Gatehouse on localhost: two sites, so their cookies (both
 * oidc-provider's names) stay apart, as they would in real life.
 */

const CHROMIUM = '/usr/bin/chromium';
/** Screenshots go where browser-flow.test.ts writes its own (git-ignored build/screenshots/ unless SCREENSHOTS_DIR). */
const IMAGES = path.resolve(import.meta.dirname, '../..', process.env.SCREENSHOTS_DIR ?? 'build/screenshots');
const OP_CLIENT_ID = 'gatehouse';
const OP_SECRET = 'upstream-op-secret-for-gatehouse-42';

async function startRelyingParty() {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>app</title><h1>Back at the app</h1>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    redirectUri: `http://127.0.0.1:${(server.address() as AddressInfo).port}/cb`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('sign-in with an upstream provider in Chromium (a real second oidc-provider)', () => {
  let t: TestServer;
  let op: Awaited<ReturnType<typeof startUpstreamOp>>;
  let rp: Awaited<ReturnType<typeof startRelyingParty>>;
  let browser: Browser;
  let config: Configuration;
  const accounts: UpstreamAccounts = new Map();

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium`);
    recordSecret(OP_SECRET);
    t = await startTestServer({ name: 'upstream-browser' });
    rp = await startRelyingParty();
    op = await startUpstreamOp({ clientId: OP_CLIENT_ID, clientSecret: OP_SECRET, redirectUri: `${t.config.issuer}/upstream/callback`, accounts, host: '127.0.0.1' });
    const created = await runCliCapture(
      ['providers', 'create', '--id', 'test-op', '--name', 'Test OP', '--issuer', op.issuer, '--client-id', OP_CLIENT_ID, '--client-secret-stdin', '--allow-signup', '--json'],
      t.env,
      { stdin: `${OP_SECRET}\n` },
    );
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(created.stdout).not.toContain(OP_SECRET);
    expect(JSON.parse(created.stdout)).toMatchObject({ id: 'test-op', client_secret_set: true, allow_signup: true });
    const client = await t.build.client({ client_name: 'Upstream App', redirect_uris: [rp.redirectUri], first_party: true, scope: 'openid email' });
    config = await discovery(new URL(t.config.issuer), client.clientId, undefined, ClientSecretBasic(client.clientSecret), { execute: [allowInsecureRequests] });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'], timeout: 60_000 });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await op?.close();
    await rp?.close();
    await t?.close();
  });

  /** A fresh browser (no session here nor at the provider) on Gatehouse's login page. */
  async function loginPage() {
    const context = await browser.newContext({ viewport: { width: 420, height: 800 }, colorScheme: 'light', locale: 'en-US' });
    // The provider's development pages ask for a web font: nothing leaves the machine.
    await context.route((url) => !['localhost', '127.0.0.1'].includes(url.hostname), (route) => route.abort());
    const page = await context.newPage();
    const verifier = randomPKCECodeVerifier();
    const state = randomState();
    const url = buildAuthorizationUrl(config, {
      redirect_uri: rp.redirectUri,
      scope: 'openid email',
      code_challenge: await calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
    });
    await page.goto(url.href);
    await page.waitForURL((u) => u.origin === t.config.issuer && u.pathname.startsWith('/interaction/'));
    return { page, verifier, state, close: () => context.close() };
  }

  /** Clicks "Continue with Test OP" and signs in at the provider as `login`. */
  async function viaProvider(page: Page, login: string) {
    await page.locator('[data-provider="test-op"]').click();
    await page.waitForURL((u) => u.origin === op.issuer);
    await page.locator('input[name="login"]').fill(login);
    await page.locator('input[name="password"]').fill('anything');
    await page.locator('button[type="submit"]').click();
    // The provider's consent page on first use of the client, then back to Gatehouse.
    await page.waitForURL((u) => u.origin !== op.issuer || u.pathname.includes('/interaction/'));
    if (new URL(page.url()).origin === op.issuer && (await page.locator('button[type="submit"]', { hasText: 'Continue' }).count()) > 0) {
      await page.locator('button[type="submit"]', { hasText: 'Continue' }).click();
    }
    await page.waitForURL((u) => u.origin !== op.issuer);
  }

  async function subjectAt(page: Page, verifier: string, state: string): Promise<string> {
    await page.waitForURL((u) => u.href.startsWith(rp.redirectUri));
    const tokens = await authorizationCodeGrant(config, new URL(page.url()), { pkceCodeVerifier: verifier, expectedState: state });
    return String(tokens.claims()?.sub);
  }

  it('shows "Continue with Test OP", passes axe-core, signs up on the first arrival and signs in the same person on the second', async () => {
    accounts.set('alice', { email: 'alice@upstream.test', email_verified: true, name: 'Alice Upstream' });
    const first = await loginPage();
    const button = first.page.locator('[data-provider="test-op"]');
    expect(await button.textContent()).toBe('Continue with Test OP');
    expect(await accessibilityViolations(first.page), 'login page with a provider button (axe-core)').toEqual([]);
    await viaProvider(first.page, 'alice');
    const sub = await subjectAt(first.page, first.verifier, first.state);
    const user = await t.server.registry.db.selectFrom('users').selectAll().where('id', '=', sub).executeTakeFirstOrThrow();
    expect(user).toMatchObject({ email: 'alice@upstream.test', password_hash: null, email_verified: true });
    const link = await t.server.registry.db.selectFrom('upstream_links').selectAll().where('user_id', '=', sub).executeTakeFirstOrThrow();
    expect(link).toMatchObject({ provider_id: 'test-op', issuer: op.issuer, subject: 'alice' });
    await first.close();

    const second = await loginPage();
    await viaProvider(second.page, 'alice');
    expect(await subjectAt(second.page, second.verifier, second.state)).toBe(sub);
    await second.close();
  });

  it('links an existing person by verified email only after their password', async () => {
    const person = await t.build.person({ email: 'bob@example.test' });
    accounts.set('bob-upstream', { email: 'bob@example.test', email_verified: true });
    const { page, verifier, state, close } = await loginPage();
    await viaProvider(page, 'bob-upstream');
    await page.waitForURL((u) => u.origin === t.config.issuer && /^\/interaction\/[^/]+$/.test(u.pathname));
    await expect.poll(() => page.getByRole('status').textContent()).toContain('An account for bob@example.test already exists');
    expect(await page.getByLabel('Email').inputValue()).toBe('bob@example.test');
    expect(await t.server.registry.db.selectFrom('upstream_links').selectAll().where('user_id', '=', person.id).execute()).toEqual([]);
    await page.getByLabel('Password').fill(person.password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    expect(await subjectAt(page, verifier, state)).toBe(person.id);
    const link = await t.server.registry.db.selectFrom('upstream_links').selectAll().where('user_id', '=', person.id).executeTakeFirstOrThrow();
    expect(link).toMatchObject({ provider_id: 'test-op', subject: 'bob-upstream' });
    await close();
  });

  it('does not link on an unverified email: a clear error page that passes axe-core (upstream-error.png)', async () => {
    const person = await t.build.person({ email: 'carol@example.test' });
    accounts.set('carol-upstream', { email: 'carol@example.test', email_verified: false });
    const { page, close } = await loginPage();
    const answer = page.waitForResponse((response) => new URL(response.url()).pathname.endsWith('/upstream') && response.request().method() === 'GET');
    await viaProvider(page, 'carol-upstream');
    expect((await answer).status()).toBe(400);
    expect(await page.locator('h1').textContent()).toBe('You cannot sign in with Test OP here');
    expect(await page.locator('code').first().textContent()).toBe('email_not_verified');
    expect(await accessibilityViolations(page), 'upstream error page (axe-core)').toEqual([]);
    await mkdir(IMAGES, { recursive: true });
    await page.screenshot({ path: path.join(IMAGES, 'upstream-error.png') });
    expect(await t.server.registry.db.selectFrom('upstream_links').selectAll().where('subject', '=', 'carol-upstream').execute()).toEqual([]);
    expect(await t.server.registry.db.selectFrom('users').select('id').where('email', '=', 'carol@example.test').execute()).toEqual([{ id: person.id }]);
    await close();
  });
});
