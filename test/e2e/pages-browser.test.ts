import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contrastRatio } from '../../src/ui/brand.js';
import { accessibilityViolations } from '../fixtures/axe.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { NO_PASSKEY_AUTOFILL } from '../fixtures/passkey-autofill.js';
import { pkce } from '../fixtures/flow.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';
import { totpCode } from '../fixtures/totp.js';

/**
 * Every page in Chromium, in English and in German (issue 17 §§ 6–7): axe-core (WCAG 2.1 AA, so no
 * serious or critical violation) in light and dark mode on /, an unknown path, the login page
 * (and after a wrong password, with the focus on the first invalid field), consent, the
 * authenticator set-up at sign-in (and after a wrong code), the app set up, the second-factor page
 * (and after a wrong code), the account page, sign-out and signed-out, and the provider's error
 * page; the login form is used by keyboard only. Then a branded server: its title, logo and alt
 * text, support link, and button colours at ≥ 4.5:1 in light and dark. Screenshots (German login,
 * branded login, the error page of an unregistered redirect_uri) go to build/screenshots/ (git-ignored), or docs/images/ with SCREENSHOTS_DIR.
 */

const CHROMIUM = '/usr/bin/chromium';
const ROOT = path.resolve(import.meta.dirname, '../..');
const IMAGES = path.resolve(ROOT, process.env.SCREENSHOTS_DIR ?? 'build/screenshots');
const VIEWPORT = { width: 420, height: 800 };
const PASSWORD = 'correct horse battery staple 42';
/** Registered, never visited: the tests stop before the browser would go back to the app. */
const REDIRECT_URI = 'http://127.0.0.1:9/callback';

const LANGUAGES = [
  { lang: 'en', locale: 'en-US', login: 'Sign in', consent: 'Allow access?', enrol: 'A second factor is required', mfa: "Confirm it's you", logout: 'Sign out', home: 'There is no page at this address', wrong: 'Wrong email or password.' },
  { lang: 'de', locale: 'de-DE', login: 'Anmelden', consent: 'Zugriff erlauben?', enrol: 'Ein zweiter Faktor ist erforderlich', mfa: 'Bestätigen Sie, dass Sie es sind', logout: 'Abmelden', home: 'Unter dieser Adresse gibt es keine Seite', wrong: 'E-Mail-Adresse oder Passwort ist falsch.' },
] as const;

function launch(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; .ci/run does it)`);
  return chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'], timeout: 60_000 });
}

/** An authorization request of the client, with PKCE. */
function authorize(issuer: string, clientId: string, extra: Record<string, string> = {}): string {
  const { challenge } = pkce();
  const query = new URLSearchParams({ response_type: 'code', scope: 'openid', client_id: clientId, redirect_uri: REDIRECT_URI, code_challenge: challenge, code_challenge_method: 'S256', state: 's', ...extra });
  return `${issuer}/auth?${query}`;
}

/** The page's language and no WCAG 2.1 AA violation by axe-core in dark and light mode. */
async function checkPage(page: Page, name: string, lang: string) {
  expect(await page.getAttribute('html', 'lang'), name).toBe(lang);
  for (const colorScheme of ['dark', 'light'] as const) {
    await page.emulateMedia({ colorScheme });
    expect(await accessibilityViolations(page), `${name} in ${colorScheme} mode (axe-core, WCAG 2.1 AA)`).toEqual([]);
  }
}

/** The id and aria-invalid of the focused element. */
async function focused(page: Page): Promise<{ id: string; invalid: string | null }> {
  return (await page.evaluate('({ id: document.activeElement?.id ?? "", invalid: document.activeElement?.getAttribute("aria-invalid") ?? null })')) as { id: string; invalid: string | null };
}

const rgbToHex = (rgb: string) => {
  const [r, g, b] = (rgb.match(/\d+(\.\d+)?/g) ?? []).map(Number);
  return `#${[r, g, b].map((value) => Math.round(value ?? 0).toString(16).padStart(2, '0')).join('')}`;
};

describe('every page in English and German in Chromium: axe-core, focus, keyboard', () => {
  let t: TestServer | undefined;
  let browser: Browser | undefined;
  let issuer: string;
  let thirdParty: string;
  let strict: string;

  beforeAll(async () => {
    t = await startTestServer({ name: 'pages-browser' });
    issuer = t.config.issuer;
    thirdParty = (await t.build.client({ client_name: 'Photo Book', redirect_uris: [REDIRECT_URI], post_logout_redirect_uris: [REDIRECT_URI] })).clientId;
    strict = (await t.build.client({ client_name: 'Payroll', redirect_uris: [REDIRECT_URI], first_party: true, require_mfa: true })).clientId;
    browser = await launch();
    await mkdir(IMAGES, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await t?.close();
  }, 60_000);

  it.each(LANGUAGES)('$lang: every page passes axe-core; the focus lands on the first invalid field; the login form works by keyboard', async (language) => {
    const { lang } = language;
    const email = `ada-${lang}@example.test`;
    await t!.build.person({ email, password: PASSWORD, name: 'Ada Lovelace' });
    const context = await browser!.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1, colorScheme: 'light', locale: language.locale });
    context.setDefaultTimeout(20_000);
    try {
      const page = await context.newPage();
      await page.addInitScript(NO_PASSKEY_AUTOFILL);

      expect((await page.goto(`${issuer}/`))?.status()).toBe(200);
      expect(await page.locator('#discovery-link').getAttribute('href')).toBe(`${issuer}/.well-known/openid-configuration`);
      await checkPage(page, '/', lang);
      expect((await page.goto(`${issuer}/no-such-page`))?.status()).toBe(404);
      expect(await page.locator('h1').textContent()).toBe(language.home);
      await checkPage(page, 'an unknown path', lang);

      // The login page, used by keyboard only: the email field has the focus, Tab, Enter.
      await page.goto(authorize(issuer, thirdParty));
      await page.waitForURL((url) => url.pathname.startsWith('/interaction/'));
      expect(await page.locator('h1').textContent()).toBe(language.login);
      await checkPage(page, 'login', lang);
      expect((await focused(page)).id).toBe('email');
      await page.keyboard.type(email);
      await page.keyboard.press('Tab');
      expect((await focused(page)).id).toBe('password');
      await page.keyboard.type('not the password');
      await page.keyboard.press('Enter');
      await page.locator('#login-error').waitFor();
      expect(await page.locator('#login-error').textContent()).toBe(language.wrong);
      // After the error the focus is on the first invalid field, tied to the message.
      expect(await focused(page)).toEqual({ id: 'email', invalid: 'true' });
      expect(await page.locator('#email').getAttribute('aria-describedby')).toBe('login-error');
      await checkPage(page, 'login with an error', lang);
      await page.keyboard.press('Tab');
      recordSecret(PASSWORD);
      await page.keyboard.type(PASSWORD);
      await page.keyboard.press('Enter');

      await page.getByRole('heading', { level: 1, name: language.consent }).waitFor();
      await checkPage(page, 'consent', lang);

      // A client that needs a second factor, for a person without one: the set-up at sign-in.
      await page.goto(authorize(issuer, strict));
      await page.getByRole('heading', { level: 1, name: language.enrol }).waitFor();
      await checkPage(page, 'authenticator set-up at sign-in', lang);
      const uri = (await page.locator('#totp-uri').textContent()) ?? '';
      recordSecret(uri);
      const secret = new URL(uri).searchParams.get('secret') ?? '';
      recordSecret(secret);
      await page.locator('#code').fill('000000');
      await page.keyboard.press('Enter');
      await page.locator('#mfa-error').waitFor();
      expect(await focused(page)).toEqual({ id: 'code', invalid: 'true' });
      await checkPage(page, 'authenticator set-up with a wrong code', lang);
      await page.locator('#code').fill(await totpCode(secret));
      await page.keyboard.press('Enter');
      await page.locator('#recovery-codes li').first().waitFor();
      for (const code of await page.locator('#recovery-codes li').allTextContents()) recordSecret(code.trim());
      await checkPage(page, 'authenticator app set up', lang);

      // The same client again: now the second-factor page (a step-up of this session).
      await page.goto(authorize(issuer, strict));
      await page.getByRole('heading', { level: 1, name: language.mfa }).waitFor();
      await checkPage(page, 'second factor', lang);
      await page.locator('#code').fill('12345');
      await page.keyboard.press('Enter');
      await page.locator('#mfa-error').waitFor();
      expect(await focused(page)).toEqual({ id: 'code', invalid: 'true' });
      expect(await page.locator('#code').getAttribute('aria-describedby')).toBe('mfa-error code-help');
      await checkPage(page, 'second factor with a wrong code', lang);

      await page.goto(`${issuer}/account`);
      await page.locator('#two-step').waitFor();
      await checkPage(page, 'account', lang);

      // The provider's own pages: sign-out, signed out, and its error page.
      await page.goto(`${issuer}/session/end?client_id=${thirdParty}`);
      await page.getByRole('heading', { level: 1, name: language.logout }).waitFor();
      await checkPage(page, 'sign out', lang);
      await page.locator('button[name="logout"]').click();
      await page.waitForURL((url) => url.pathname.startsWith('/session/end/success'));
      await checkPage(page, 'signed out', lang);

      expect((await page.goto(authorize(issuer, thirdParty, { redirect_uri: 'https://elsewhere.example/cb' })))?.status()).toBe(400);
      expect(await page.locator('#technical code').first().textContent()).toBe('invalid_redirect_uri');
      expect(await page.locator('.lead').textContent()).toContain('Photo Book');
      await checkPage(page, 'error', lang);
      if (lang === 'en') {
        await page.emulateMedia({ colorScheme: 'light' });
        await page.screenshot({ path: path.join(IMAGES, 'error-redirect-uri.png'), fullPage: true });
      }

      if (lang === 'de') {
        await page.goto(authorize(issuer, thirdParty, { ui_locales: 'de' }));
        await page.waitForURL((url) => url.pathname.startsWith('/interaction/'));
        await page.emulateMedia({ colorScheme: 'light' });
        await page.screenshot({ path: path.join(IMAGES, 'login-de.png'), fullPage: true });
      }
    } finally {
      await context.close().catch(() => undefined);
    }
  }, 240_000);
});

describe('a branded server in Chromium (BRAND_NAME, BRAND_LOGO_URL, BRAND_COLOR, SUPPORT_URL)', () => {
  let t: TestServer | undefined;
  let browser: Browser | undefined;

  beforeAll(async () => {
    t = await startTestServer({
      name: 'pages-browser-brand',
      env: { BRAND_NAME: 'Acme ID', BRAND_LOGO_URL: 'https://cdn.acme.example/logo.svg', BRAND_LOGO_ALT: 'Acme Corporation', BRAND_COLOR: '#ffcc00', SUPPORT_URL: 'https://help.acme.example/' },
    });
    browser = await launch();
    await mkdir(IMAGES, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await t?.close();
  }, 60_000);

  it('shows the brand: title, logo with its alt text, support link, a pale colour made readable (≥ 4.5:1) in light and dark; the TOTP issuer is the brand', async () => {
    const issuer = t!.config.issuer;
    const clientId = (await t!.build.client({ client_name: 'Photo Book', redirect_uris: [REDIRECT_URI], first_party: true, require_mfa: true })).clientId;
    const { email } = await t!.build.person({ password: PASSWORD });
    const context = await browser!.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1, colorScheme: 'light', locale: 'en-US' });
    context.setDefaultTimeout(20_000);
    try {
      const page = await context.newPage();
      await page.addInitScript(NO_PASSKEY_AUTOFILL);
      // The logo's host is not reachable from a test: the browser gets an SVG from here instead.
      await page.route('https://cdn.acme.example/logo.svg', (route) =>
        route.fulfill({ contentType: 'image/svg+xml', body: '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="32"><rect width="120" height="32" rx="6" fill="#ffcc00"/><text x="12" y="22" font-family="sans-serif" font-size="16" fill="#222">ACME</text></svg>' }),
      );
      await page.goto(authorize(issuer, clientId));
      await page.waitForURL((url) => url.pathname.startsWith('/interaction/'));
      await expect.poll(() => page.title()).toBe('Sign in · Acme ID');
      expect(await page.getByRole('img', { name: 'Acme Corporation' }).getAttribute('src')).toBe('https://cdn.acme.example/logo.svg');
      expect(await page.locator('#support-link').getAttribute('href')).toBe('https://help.acme.example/');
      expect(await page.locator('.reason').first().textContent()).toContain('Use your Acme ID account');
      for (const colorScheme of ['light', 'dark'] as const) {
        await page.emulateMedia({ colorScheme });
        // Computed in the page (a string: this file is not compiled with the DOM's types).
        const colours = (await page.evaluate(`(() => {
          const style = (selector) => getComputedStyle(document.querySelector(selector));
          const button = style('main form:not(.passkey) button[type="submit"]');
          return { fg: button.color, bg: button.backgroundColor, card: style('main').backgroundColor, link: style('#support-link').color };
        })()`)) as { fg: string; bg: string; card: string; link: string };
        expect(contrastRatio(rgbToHex(colours.fg), rgbToHex(colours.bg)), `button text on the accent, ${colorScheme}`).toBeGreaterThanOrEqual(4.5);
        expect(contrastRatio(rgbToHex(colours.link), rgbToHex(colours.card)), `the support link on the card, ${colorScheme}`).toBeGreaterThanOrEqual(4.5);
        expect(await accessibilityViolations(page), `branded login in ${colorScheme} mode`).toEqual([]);
      }
      await page.emulateMedia({ colorScheme: 'light' });
      await page.screenshot({ path: path.join(IMAGES, 'login-branded.png'), fullPage: true });

      // The authenticator app names the brand: the otpauth URI's label and issuer.
      await page.getByLabel('Email').fill(email);
      await page.getByLabel('Password').fill(PASSWORD);
      recordSecret(PASSWORD);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      const uri = (await page.locator('#totp-uri').textContent()) ?? '';
      recordSecret(uri);
      recordSecret(new URL(uri).searchParams.get('secret'));
      expect(uri).toMatch(/^otpauth:\/\/totp\/Acme%20ID:/);
      expect(new URL(uri).searchParams.get('issuer')).toBe('Acme ID');
    } finally {
      await context.close().catch(() => undefined);
    }
  }, 120_000);
});
