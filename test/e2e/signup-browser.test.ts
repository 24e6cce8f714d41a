import { randomUUID } from 'node:crypto';
import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';
import { startSmtpSink, type SmtpSink } from '../fixtures/smtp-sink.js';
import { expectAccessibleOnPhone, launchChromium, phoneContext } from '../fixtures/chromium.js';

/*
 * Sign-up as a person does it, in Debian's chromium at 375 px, with the keyboard only: from the
 * login page's "Create an account" to the form (refused once for a short password, then accepted),
 * "Check your email", and the link from the mail (read from a real SMTP server on loopback) to
 * "Email address confirmed"; axe-core (WCAG 2.1 AA) on every page in light and dark mode.
 */

const PASSWORD = 'a long sign-up password 4711';

describe('sign-up in a real browser (chromium, 375 px, keyboard only)', () => {
  let t: TestServer | undefined;
  let sink: SmtpSink | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let issuer: string;

  beforeAll(async () => {
    sink = await startSmtpSink();
    t = await startTestServer({ name: 'signup-browser', env: { SMTP_URL: sink.url, SIGNUP_ENABLED: 'true', SIGNUP_MAX_PER_IP: '100000' } });
    issuer = t.config.issuer;
    browser = await launchChromium();
    const context = await phoneContext(browser);
    page = await context.newPage();
  }, 120_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await t?.close();
    await sink?.close();
  }, 60_000);

  const checkPage = (name: string) => expectAccessibleOnPhone(page, name);

  const focused = () => page.evaluate('document.activeElement ? document.activeElement.id : ""') as Promise<string>;

  /** Presses Tab until the element with this id has the focus (at most 30 times). */
  async function tabTo(id: string) {
    for (let i = 0; i < 30 && (await focused()) !== id; i += 1) await page.keyboard.press('Tab');
    expect(await focused()).toBe(id);
  }

  it('creates an account from the login page, confirms the address from the mail; axe passes on every page', async () => {
    const email = `browser-${randomUUID()}@example.test`;
    await page.goto(`${issuer}/account`);
    await page.waitForURL((url) => url.origin === issuer && url.pathname.startsWith('/interaction/'));
    await checkPage('login page with the sign-up link');
    await tabTo('signup-link');
    await page.keyboard.press('Enter');
    await page.waitForURL((url) => url.pathname.endsWith('/signup'));
    expect(await page.title()).toBe('Create an account · Gatehouse');
    await checkPage('sign-up form');

    // The email field has the focus on arrival; a short password first.
    expect(await focused()).toBe('email');
    await page.keyboard.type(email);
    await page.keyboard.press('Tab');
    expect(await focused()).toBe('password');
    await page.keyboard.type('short');
    await tabTo('signup-submit');
    await page.keyboard.press('Enter');
    await page.waitForLoadState();
    await expect.poll(() => page.locator('#signup-errors').textContent()).toContain('The password must be at least 12 characters.');
    expect(await page.inputValue('#email')).toBe(email);
    await checkPage('sign-up form with an error');

    recordSecret(PASSWORD);
    await tabTo('password');
    await page.keyboard.type(PASSWORD);
    await tabTo('name');
    await page.keyboard.type('Grace Hopper');
    await tabTo('signup-submit');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('h1').textContent()).toBe('Check your email');
    await checkPage('check your email');

    const mail = await sink!.waitFor((m) => m.to.includes(email));
    const link = mail.links.find((url) => new URL(url).pathname === '/verify-email');
    expect(link).toBeTruthy();
    recordSecret(new URL(link!).searchParams.get('token'));
    await page.goto(link!);
    expect(await page.locator('h1').textContent()).toBe('Confirm your email address');
    await checkPage('confirm your address');
    await tabTo('email-link-submit');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('h1').textContent()).toBe('Email address confirmed');
    await checkPage('address confirmed');
    const row = await t!.server.registry.db.selectFrom('users').select(['email_verified', 'name']).where('email', '=', email).executeTakeFirstOrThrow();
    expect(row).toEqual({ email_verified: true, name: 'Grace Hopper' });
  }, 120_000);
});
