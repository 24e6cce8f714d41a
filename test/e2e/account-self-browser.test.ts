import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, codeFlow, hiddenInput } from '../fixtures/flow.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';
import { expectAccessibleOnPhone, launchChromium, phoneContext } from '../fixtures/chromium.js';

/**
 * The account page's own sections in Debian's chromium (playwright-core) at 375 px, by keyboard
 * only: Tab to the display name, type, Enter; a refused name puts focus back on the field; Tab to
 * "Remove access" of the connected app, Enter; Tab to "Sign out everywhere else", Enter (the other
 * browser is signed out). axe-core (WCAG 2.1 AA) on /account with every section filled and after
 * each outcome, in light and dark mode.
 */

const PASSWORD = 'correct horse battery staple 42';
const EMAIL = 'lin@example.test';
const REDIRECT = 'https://photos.example.test/cb';

describe('the account page sections by keyboard in a real browser (chromium, 375 px)', () => {
  let t: TestServer | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let issuer: string;
  let otherBrowser: Agent;

  beforeAll(async () => {
    t = await startTestServer({ name: 'account-self-browser' });
    issuer = t.config.issuer;
    await t.build.person({ email: EMAIL, password: PASSWORD, name: 'Lin' });
    const api = (await t.build.resource({ scope: 'read write', name: 'Photo API' })).identifier;
    const photos = await t.build.client({ client_name: 'Photo App', redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'] });
    await t.build.grant(photos.clientId, api, 'read write');
    // A connected app (consent, offline access, the API's read scope), signed in from another browser.
    otherBrowser = new Agent(issuer);
    const { status } = await codeFlow(otherBrowser, {
      client: photos,
      redirectUri: REDIRECT,
      email: EMAIL,
      password: PASSWORD,
      params: { scope: 'openid offline_access read', resource: api, prompt: 'consent' },
      tokenParams: { resource: api },
    });
    expect(status).toBe(200);
    browser = await launchChromium();
    const context = await phoneContext(browser);
    page = await context.newPage();
  }, 120_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await t?.close();
  }, 60_000);

  const checkPage = (name: string) => expectAccessibleOnPhone(page, name);

  const focused = () =>
    page.evaluate(
      "(() => { const e = document.activeElement; return { id: e?.id ?? '', tag: e?.tagName ?? '', text: e?.textContent?.trim() ?? '', label: e?.getAttribute('aria-label') ?? '' }; })()",
    ) as Promise<{ id: string; tag: string; text: string; label: string }>;

  /** Presses Tab from the top of the page until `matches` says the focused element is the one (at most 120 presses). */
  async function tabTo(matches: (element: Awaited<ReturnType<typeof focused>>) => boolean): Promise<void> {
    await page.evaluate('document.activeElement?.blur()');
    for (let presses = 0; presses < 120; presses += 1) {
      await page.keyboard.press('Tab');
      if (matches(await focused())) return;
    }
    throw new Error('never reached by Tab');
  }

  it('walks profile, connected apps and sessions by keyboard; focus lands on a refused field; axe passes throughout', async () => {
    await page.goto(`${issuer}/account`);
    await page.waitForURL((url) => url.origin === issuer && url.pathname.startsWith('/interaction/'));
    await page.getByLabel('Email').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.keyboard.press('Enter');
    await page.waitForURL(`${issuer}/account`);
    for (const heading of ['Profile', 'Password', 'Connected apps', 'Sessions', 'Recent security events']) {
      expect(await page.getByRole('heading', { level: 2, name: heading }).isVisible(), heading).toBe(true);
    }
    expect(await page.getByRole('button', { name: 'Remove access' }).count()).toBe(1);
    expect(await page.getByRole('button', { name: 'Remove access for Photo App' }).isVisible()).toBe(true);
    expect(await page.locator('#session-list li').count()).toBe(2);
    expect(await page.locator('#this-browser').textContent()).toBe('This browser');
    await checkPage('account page with every section');

    // Profile: a refused name puts focus back on the field (server-side autofocus).
    await tabTo((element) => element.id === 'display-name');
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.type('Lin\u2028Two lines');
    await page.keyboard.press('Enter');
    await page.waitForURL(`${issuer}/account?self=name_not_one_line`);
    expect((await focused()).id).toBe('display-name');
    expect(await page.locator('#display-name').getAttribute('aria-invalid')).toBe('true');
    expect(await page.getByRole('alert').first().textContent()).toContain('A display name is one line');
    await checkPage('refused display name');
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.type('Lin Keyboard');
    await page.keyboard.press('Enter');
    await page.waitForURL(`${issuer}/account?self=name_saved#profile`);
    expect(await page.locator('#display-name').inputValue()).toBe('Lin Keyboard');

    // A wrong current password: focus on it.
    await tabTo((element) => element.id === 'current-password');
    await page.keyboard.type('not my password at all');
    // Past the "Sign in again instead" link of the field's help, to the new password.
    await page.keyboard.press('Tab');
    expect((await focused()).id).toBe('password-reauth');
    await page.keyboard.press('Tab');
    expect((await focused()).id).toBe('new-password');
    await page.keyboard.type('a new passphrase that is long enough');
    await page.keyboard.press('Enter');
    await page.waitForURL(`${issuer}/account?self=current_wrong`);
    expect((await focused()).id).toBe('current-password');
    await checkPage('refused current password');

    // Connected apps: Remove access, by keyboard.
    await tabTo((element) => element.tag === 'BUTTON' && element.label === 'Remove access for Photo App');
    expect((await focused()).text).toBe('Remove access');
    await page.keyboard.press('Enter');
    await page.waitForURL(`${issuer}/account?self=app_removed#connected-apps`);
    expect(await page.locator('#apps-empty').isVisible()).toBe(true);
    await checkPage('app removed');

    // Sessions: Sign out everywhere else, by keyboard; the other browser is signed out.
    expect((await otherBrowser.request('/account')).status).toBe(200);
    await tabTo((element) => element.id === 'sign-out-others');
    expect((await focused()).text).toBe('Sign out everywhere else');
    await page.keyboard.press('Enter');
    await page.waitForURL(`${issuer}/account?self=others_ended#sessions`);
    expect(await page.locator('#session-list li').count()).toBe(1);
    const other = await otherBrowser.request('/account');
    expect(other.status).toBe(303);
    expect(other.headers.get('location')).toBe('/account/sign-in');
    expect(hiddenInput(await page.content(), 'csrf')).toBeTruthy();

    // Recent security events: what was just done, newest first.
    const events = await page.locator('#events tbody tr td:nth-child(2)').allTextContents();
    expect(events.slice(0, 3)).toEqual(['Sessions in other browsers were ended.', 'Access for Photo App was removed.', 'Your display name was changed.']);
    await checkPage('sessions ended, events listed');
  }, 120_000);
});
