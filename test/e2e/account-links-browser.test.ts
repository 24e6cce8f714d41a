import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertUpstreamLink, insertUpstreamProvider } from '../../src/registry/upstream.repository.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';
import { expectAccessibleOnPhone, launchChromium, phoneContext } from '../fixtures/chromium.js';

/**
 * "Linked accounts" on the account page in Debian's chromium at 375 px (as account-browser.test.ts):
 * a person with two links sees them, unlinks one with the keyboard-reachable "Unlink" button, and
 * reads the outcome; axe-core (WCAG 2.1 AA) passes in light and dark mode before and after.
 */

/** Screenshots go where account-browser.test.ts writes its own (git-ignored build/screenshots/ unless SCREENSHOTS_DIR). */
const IMAGES = path.resolve(import.meta.dirname, '../..', process.env.SCREENSHOTS_DIR ?? 'build/screenshots');
const VIEWPORT = { width: 375, height: 812 };
const PASSWORD = 'correct horse battery staple 42';
const EMAIL = 'grace@example.test';
const LONG_NAME = 'A provider with a rather long name, to see it wrap at 375 px';

describe('linked accounts in a real browser (chromium, 375 px)', () => {
  let t: TestServer | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let issuer: string;

  beforeAll(async () => {
    t = await startTestServer({ name: 'account-links-browser' });
    issuer = t.config.issuer;
    const person = await t.build.person({ email: EMAIL, password: PASSWORD, name: 'Grace Hopper' });
    const db = t.server.registry.db;
    const now = new Date();
    for (const [id, name] of [
      ['corp', 'Corp SSO'],
      ['lab', LONG_NAME],
    ] as const) {
      // Turned off: no button on the login page, no discovery from this test.
      await insertUpstreamProvider(db, { id, name, issuer: `https://${id}.example.test`, client_id: 'gatehouse', client_secret_jwe: null, key_id: null, scopes: ['openid'], enabled: false, created_at: now, updated_at: now });
      await insertUpstreamLink(db, { providerId: id, issuer: `https://${id}.example.test`, subject: `grace-at-${id}`, userId: person.id, emailAtLink: 'grace.hopper.with.a.long.address@corp.example.test', at: now });
    }
    browser = await launchChromium();
    const context = await phoneContext(browser);
    page = await context.newPage();
  }, 120_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await t?.close();
  }, 60_000);

  const checkPage = (name: string) => expectAccessibleOnPhone(page, name);

  it('lists the links, unlinks one from its button (keyboard), says so; axe passes at 375 px; the section with the link left is account-links.png', async () => {
    await page.goto(`${issuer}/account`);
    await page.waitForURL((url) => url.origin === issuer && url.pathname.startsWith('/interaction/'));
    await page.getByLabel('Email').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL(`${issuer}/account`);
    expect(await page.getByRole('heading', { level: 2, name: 'Linked accounts' }).isVisible()).toBe(true);
    expect(await page.locator('#links li').count()).toBe(2);
    await checkPage('account page with linked accounts');

    const unlink = page.getByRole('button', { name: `Unlink ${LONG_NAME}` });
    await unlink.focus();
    await page.keyboard.press('Enter');
    await page.waitForURL(`${issuer}/account?links=unlinked&provider=lab#linked-accounts`);
    expect(await page.locator('#links-status').textContent()).toBe(`${LONG_NAME} is no longer linked to your account.`);
    expect(await page.locator('#links li').count()).toBe(1);
    expect(await page.locator('#links li').textContent()).toContain('Corp SSO');
    await checkPage('account page after an unlink');
    // The README's image: the page again (without the outcome), cut to the section with the one link left.
    await page.goto(`${issuer}/account`);
    await page.emulateMedia({ colorScheme: 'light' });
    const section = await page.locator('section[aria-labelledby="linked-accounts"]').boundingBox();
    expect(section).not.toBeNull();
    await mkdir(IMAGES, { recursive: true });
    await page.screenshot({ path: path.join(IMAGES, 'account-links.png'), fullPage: true, clip: { x: 0, y: Math.max(0, section!.y - 24), width: VIEWPORT.width, height: section!.height + 48 } });
  }, 120_000);
});
