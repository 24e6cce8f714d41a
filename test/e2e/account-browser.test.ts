import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { type Browser, type BrowserContext, type CDPSession, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_PASSKEY_AUTOFILL } from '../fixtures/passkey-autofill.js';
import { accessibilityViolations } from '../fixtures/axe.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';
import { totpCode } from '../fixtures/totp.js';
import { expectAccessibleOnPhone, launchChromium, phoneContext } from '../fixtures/chromium.js';

/**
 * The account page as a person sees it, in Debian's chromium (playwright-core) at 375 px: sign in
 * from /account, set up an authenticator app (#enable-totp, the key read from #totp-uri, a code
 * from otplib), see the ten recovery codes, with axe-core (WCAG 2.1 AA) on each page in light and
 * dark mode; and with a CDP virtual authenticator, add a passkey (#add-passkey), sign in with it and
 * no password (#passkey-signin), remove it, and see it refused. The screenshot goes where browser-flow.test.ts writes its own: build/screenshots/
 * (git-ignored), or docs/images/ through `npm run docs:screenshots`.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
const IMAGES = path.resolve(ROOT, process.env.SCREENSHOTS_DIR ?? 'build/screenshots');
const VIEWPORT = { width: 375, height: 812 };
const PASSWORD = 'correct horse battery staple 42';
const EMAIL = 'ada@example.test';

describe('the account page in a real browser (chromium, 375 px)', () => {
  let t: TestServer | undefined;
  let browser: Browser | undefined;
  let context: BrowserContext;
  let page: Page;
  let issuer: string;

  beforeAll(async () => {
    t = await startTestServer({ name: 'account-browser' });
    issuer = t.config.issuer;
    await t.build.person({ email: EMAIL, password: PASSWORD, name: 'Ada Lovelace' });
    browser = await launchChromium();
    context = await phoneContext(browser);
    page = await context.newPage();
    await mkdir(IMAGES, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await t?.close();
  }, 60_000);

  const checkPage = (name: string) => expectAccessibleOnPhone(page, name);

  it('signs in from /account, sets up an authenticator app from #totp-uri, shows ten recovery codes; axe passes at 375 px', async () => {
    await page.goto(`${issuer}/account`);
    await page.waitForURL((url) => url.origin === issuer && url.pathname.startsWith('/interaction/'));
    await page.getByLabel('Email').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();

    // Back on the account page (no consent page for the built-in client).
    await page.waitForURL(`${issuer}/account`);
    await expect.poll(() => page.title()).toBe('Your account · Gatehouse');
    expect(await page.getByRole('heading', { level: 2, name: 'Two-step verification' }).isVisible()).toBe(true);
    expect(await page.getByRole('heading', { level: 2, name: 'Recent sign-ins' }).isVisible()).toBe(true);
    expect(await page.locator('#sign-ins tbody tr').count()).toBe(1);
    expect(await page.locator('#sign-ins tbody tr td').nth(4).textContent()).toBe('Your account page');
    await checkPage('account page');

    await page.locator('#enable-totp').click();
    const uriText = await page.locator('#totp-uri').textContent();
    expect(uriText).toMatch(/^otpauth:\/\/totp\/Gatehouse:ada%40example\.test\?/);
    const secret = new URL(uriText!).searchParams.get('secret')!;
    recordSecret(secret);
    recordSecret(uriText);
    expect(await page.getByRole('img', { name: 'QR code for your authenticator app' }).isVisible()).toBe(true);
    await checkPage('authenticator setup');

    await page.locator('input[name="code"]').fill(await totpCode(secret));
    await page.getByRole('button', { name: 'Turn on' }).click();
    await page.locator('#recovery-codes li').first().waitFor();
    expect(await page.locator('#recovery-codes li').count()).toBe(10);
    for (const code of await page.locator('#recovery-codes li').allTextContents()) {
      expect(code.trim()).toMatch(/^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/);
      recordSecret(code.trim());
    }
    expect(await page.getByRole('status').textContent()).toContain('Your authenticator app is on.');
    await checkPage('recovery codes');
    await page.emulateMedia({ colorScheme: 'light' });
    await page.screenshot({ path: path.join(IMAGES, 'account.png'), fullPage: true });

    // The CSP allows the page's own scripts by this response's nonce (for #add-passkey), nothing inline.
    const response = await page.goto(`${issuer}/account`);
    expect(response?.headers()['content-security-policy']).toMatch(/script-src 'nonce-[^']+'/);
    expect(response?.headers()['content-security-policy']).not.toMatch(/unsafe-inline/);
    expect(await page.locator('#regenerate-recovery-codes').isVisible()).toBe(true);
  }, 120_000);

  it('adds a passkey on /account (#add-passkey), signs out, signs in with #passkey-signin and no password, removes it; then it is refused; axe passes with passkeys listed', async () => {
    const email = 'grace@example.test';
    await t!.build.person({ email, password: PASSWORD, name: 'Grace Hopper' });
    const own = await browser!.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1, colorScheme: 'light', locale: 'en-US' });
    own.setDefaultTimeout(20_000);
    try {
      const tab = await own.newPage();
      const cdp: CDPSession = await own.newCDPSession(tab);
      await cdp.send('WebAuthn.enable', { enableUI: false });
      const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
        options: { protocol: 'ctap2', ctap2Version: 'ctap2_1', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
      });
      const presence = (enabled: boolean) => cdp.send('WebAuthn.setAutomaticPresenceSimulation', { authenticatorId, enabled });
      /**
       * To the login page of a browser without passkey autofill (conditional mediation reported
       * unavailable, by an init script), so no conditional request starts, then #passkey-signin.
       */
      const signInWithPasskey = async () => {
        await tab.addInitScript(NO_PASSKEY_AUTOFILL);
        await tab.goto(`${issuer}/account`);
        await tab.waitForURL((url) => url.origin === issuer && url.pathname.startsWith('/interaction/'));
        const asked = tab.waitForResponse((response) => response.url().endsWith('/passkey/options'));
        await tab.locator('#passkey-signin').click();
        await asked;
      };
      const signOut = async () => {
        await tab.locator('#sign-out').click();
        await tab.getByRole('button', { name: 'Sign out', exact: true }).click();
        await tab.waitForLoadState();
      };

      // A password sign-in, then a passkey from the account page.
      await presence(false);
      await tab.goto(`${issuer}/account`);
      await tab.waitForURL((url) => url.origin === issuer && url.pathname.startsWith('/interaction/'));
      await tab.getByLabel('Email').fill(email);
      await tab.getByLabel('Password').fill(PASSWORD);
      await tab.getByRole('button', { name: 'Sign in', exact: true }).click();
      await tab.waitForURL(`${issuer}/account`);
      await presence(true);
      expect(await tab.locator('#passkeys-empty').isVisible()).toBe(true);
      await tab.getByLabel('Name of the new passkey (optional)').fill('Work laptop');
      await tab.locator('#add-passkey').click();
      await tab.waitForURL(`${issuer}/account#passkeys`);
      await tab.locator('#passkey-list li').first().waitFor();
      expect(await tab.locator('#passkey-list li').count()).toBe(1);
      expect(await tab.locator('#passkey-name-0').textContent()).toBe('Work laptop');
      expect((await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials).toHaveLength(1);
      await signOut();

      // Back with the passkey alone: the account page, with the passkey sign-in in its history.
      await signInWithPasskey();
      await tab.waitForURL(`${issuer}/account`);
      expect(await tab.locator('#sign-ins tbody tr td').nth(1).textContent()).toBe('Passkey');
      expect(await tab.locator('#passkey-list li .hint time').count()).toBe(2);
      for (const colorScheme of ['dark', 'light'] as const) {
        await tab.emulateMedia({ colorScheme });
        expect(await accessibilityViolations(tab), `account page with a passkey in ${colorScheme} mode`).toEqual([]);
      }
      expect(await tab.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(VIEWPORT.width);
      await tab.screenshot({ path: path.join(IMAGES, 'account-passkeys.png'), fullPage: true });

      // Remove it (the passkey sign-in is recent and has acr mfa): the list is empty again.
      await tab.getByRole('button', { name: 'Remove' }).click();
      await tab.locator('#passkeys-empty').waitFor();
      expect(await tab.getByRole('status').textContent()).toContain('Passkey removed.');
      await signOut();

      // The credential is still in the authenticator, and refused as not registered.
      await signInWithPasskey();
      await tab.locator('#login-error').waitFor();
      expect(await tab.locator('#login-error').textContent()).toContain('This passkey is not registered here.');
      expect((await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials).toHaveLength(1);
    } finally {
      await own.close().catch(() => undefined);
    }
  }, 180_000);
});
