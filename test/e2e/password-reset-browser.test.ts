import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordSecret } from '../fixtures/log-capture.js';
import { NO_PASSKEY_AUTOFILL } from '../fixtures/passkey-autofill.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';
import { startSmtpSink, type SmtpSink } from '../fixtures/smtp-sink.js';
import { expectAccessibleOnPhone, launchChromium, phoneContext } from '../fixtures/chromium.js';

/**
 * "Forgot password?" as a person goes through it, in Debian's chromium (playwright-core) at 375 px:
 * from the login page's #forgot-password, the address typed and sent with the keyboard, the mail
 * read from a real SMTP server on loopback, its link opened, a too-short password refused (focus
 * back on the field), a good one set, and a sign-in with it. axe-core (WCAG 2.1 AA) on every page
 * in light and dark mode; screenshots into build/screenshots/ (or SCREENSHOTS_DIR, e.g. docs/images).
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
const IMAGES = path.resolve(ROOT, process.env.SCREENSHOTS_DIR ?? 'build/screenshots');
const EMAIL = 'lin@example.test';
const NEW_PASSWORD = 'a fresh password chosen in the browser 1618';

describe('password reset in a real browser (chromium, 375 px)', () => {
  let sink: SmtpSink;
  let t: TestServer | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let issuer: string;

  beforeAll(async () => {
    sink = await startSmtpSink();
    t = await startTestServer({ name: 'password-reset-browser', env: { SMTP_URL: sink.url, RESET_MAX_PER_IP: '100000' } });
    issuer = t.config.issuer;
    await t.build.person({ email: EMAIL, name: 'Lin' });
    browser = await launchChromium();
    const context = await phoneContext(browser);
    page = await context.newPage();
    await page.addInitScript(NO_PASSKEY_AUTOFILL);
    await mkdir(IMAGES, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await t?.close();
    await sink?.close();
  }, 60_000);

  const checkPage = (name: string) => expectAccessibleOnPhone(page, name);

  const focused = () => page.evaluate('document.activeElement && document.activeElement.id');

  it('#forgot-password → the address by keyboard → the mail → its link → a new password → signed in with it; axe passes on every page', async () => {
    await page.goto(`${issuer}/account`);
    await page.waitForURL((url) => url.origin === issuer && url.pathname.startsWith('/interaction/'));
    const login = page.url();
    await page.locator('#forgot-password').click();
    await page.waitForURL((url) => url.pathname === '/reset');
    await expect.poll(() => page.title()).toBe('Reset your password · Gatehouse');
    expect(await focused()).toBe('email');
    await checkPage('the request form');
    await page.emulateMedia({ colorScheme: 'light' });
    await page.screenshot({ path: path.join(IMAGES, 'reset-request.png'), fullPage: true });

    await page.keyboard.type(EMAIL);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Check your email' }).waitFor();
    await checkPage('the neutral answer');
    // "Back to sign in" leads to the sign-in it came from.
    expect(new URL(await page.getByRole('link', { name: 'Back to sign in' }).getAttribute('href') ?? '', issuer).toString()).toBe(login);

    const mail = await sink.waitFor((m) => m.to.includes(EMAIL));
    const link = [...new Set(mail.links)].find((l) => l.startsWith(`${issuer}/reset/password?token=`));
    expect(link).toBeDefined();
    recordSecret(new URL(link!).searchParams.get('token'));
    await page.goto(link!);
    await expect.poll(() => page.title()).toBe('Choose a new password · Gatehouse');
    expect(await focused()).toBe('password');
    await checkPage('the new-password form');

    // Too short: the form again, the field invalid, described by the error, and focused.
    await page.keyboard.type('too short');
    await page.locator('#confirm').fill('too short');
    await page.locator('#confirm').press('Enter');
    await page.getByRole('alert').waitFor();
    expect(await page.getByRole('alert').textContent()).toContain('at least 12 characters');
    expect(await focused()).toBe('password');
    expect(await page.locator('#password').getAttribute('aria-invalid')).toBe('true');
    await checkPage('the new-password form with an error');

    recordSecret(NEW_PASSWORD);
    await page.locator('#password').fill(NEW_PASSWORD);
    await page.locator('#confirm').fill(NEW_PASSWORD);
    await page.locator('#confirm').press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Your password has been changed' }).waitFor();
    await checkPage('the end');
    await page.emulateMedia({ colorScheme: 'light' });
    await page.screenshot({ path: path.join(IMAGES, 'reset-done.png'), fullPage: true });

    await page.locator('#reset-sign-in').click();
    await page.waitForURL((url) => url.origin === issuer && url.pathname.startsWith('/interaction/'));
    await page.getByLabel('Email').fill(EMAIL);
    await page.getByLabel('Password').fill(NEW_PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL(`${issuer}/account`);
  }, 120_000);
});
