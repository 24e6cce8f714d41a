import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';
import { expectAccessibleOnPhone, launchChromium, phoneContext } from '../fixtures/chromium.js';

/**
 * The "API keys" section of /account in Debian's chromium at 375 px: create a key with the keyboard
 * (label, API, "Create API key"), read it once from #new-api-key, see it listed by label and prefix,
 * delete it; axe-core (WCAG 2.1 AA) in light and dark mode on each state, and no sideways scrolling.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
const IMAGES = path.resolve(ROOT, process.env.SCREENSHOTS_DIR ?? 'build/screenshots');
const PASSWORD = 'correct horse battery staple 42';
const EMAIL = 'grace@example.test';

describe('API keys on the account page in a real browser (chromium, 375 px)', () => {
  let t: TestServer | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let issuer: string;

  beforeAll(async () => {
    t = await startTestServer({ name: 'account-api-keys-browser' });
    issuer = t.config.issuer;
    await t.build.person({ email: EMAIL, password: PASSWORD, name: 'Grace Hopper' });
    await t.build.resource({ identifier: 'https://reports.example.test', name: 'Reports', scope: 'read write' });
    browser = await launchChromium();
    const context = await phoneContext(browser);
    page = await context.newPage();
    await mkdir(IMAGES, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await t?.close();
  }, 60_000);

  const checkPage = (name: string) => expectAccessibleOnPhone(page, name);

  it('creates a key shown once in #new-api-key, lists it by label and prefix, deletes it; axe passes', async () => {
    await page.goto(`${issuer}/account`);
    await page.waitForURL((url) => url.origin === issuer && url.pathname.startsWith('/interaction/'));
    await page.getByLabel('Email').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL(`${issuer}/account`);
    expect(await page.getByRole('heading', { level: 2, name: 'API keys' }).isVisible()).toBe(true);
    await checkPage('account page with no API keys');

    await page.locator('input[name="label"]').fill('Nightly <export>');
    await page.getByLabel('API', { exact: true }).selectOption('https://reports.example.test');
    await page.getByLabel('Scopes (optional, separated by spaces)').fill('read');
    await page.getByRole('button', { name: 'Create API key' }).click();
    const shown = (await page.locator('#new-api-key').textContent())?.trim() ?? '';
    recordSecret(shown);
    expect(shown).toMatch(/^gk_[A-Za-z0-9_-]{43}$/);
    expect(await page.getByRole('heading', { level: 3, name: 'Your new API key “Nightly <export>”' }).isVisible()).toBe(true);
    await checkPage('account page with a new API key');
    await page.emulateMedia({ colorScheme: 'light' });
    await page.locator('#new-api-key').scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(IMAGES, 'account-api-keys.png'), fullPage: true });

    await page.goto(`${issuer}/account`);
    expect(await page.locator('#new-api-key').count()).toBe(0);
    const item = page.locator('#api-key-list li');
    expect(await item.count()).toBe(1);
    expect(await item.first().textContent()).toContain(`Starts with ${shown.slice(0, 11)}…`);
    expect(await page.content()).not.toContain(shown.slice(11));

    await page.getByRole('button', { name: 'Delete Nightly <export>' }).click();
    expect(await page.locator('#api-keys-status').textContent()).toContain('API key deleted.');
    expect(await page.locator('#api-key-list li').count()).toBe(0);
    await checkPage('account page after deleting the API key');
  }, 120_000);
});
