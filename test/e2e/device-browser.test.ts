import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import * as client from 'openid-client';
import { type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEVICE_GRANT } from '../fixtures/device.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { NO_PASSKEY_AUTOFILL } from '../fixtures/passkey-autofill.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';
import { expectAccessibleOnPhone, launchChromium, phoneContext, SCREENSHOTS } from '../fixtures/chromium.js';

/**
 * The person's side of the device flow in Debian's chromium (playwright-core) at 375 px, the device's
 * side with openid-client v6 (initiateDeviceAuthorization, pollDeviceAuthorizationGrant): the code
 * typed with the keyboard on /device, Continue on the confirm page, the sign-in, the consent, the
 * success page; the device then holds tokens. axe-core (WCAG 2.1 AA, no violation at all) on every
 * device page in light and dark mode; the German page under Accept-Language de; screenshots into
 * build/screenshots/ (or SCREENSHOTS_DIR).
 */
describe('the device flow in a real browser (chromium, 375 px)', () => {
  let t: TestServer;
  let browser: Browser | undefined;
  let context: BrowserContext;
  let page: Page;
  let issuer: string;
  let config: client.Configuration;
  let person: { id: string; email: string; password: string };

  beforeAll(async () => {
    t = await startTestServer({ name: 'device-browser', env: { DEVICE_CODE_POLL_INTERVAL_SECONDS: '1' } });
    issuer = t.config.issuer;
    const tv = await t.build.client({ client_name: 'Living-room TV', grant_types: [DEVICE_GRANT], token_endpoint_auth_method: 'none', scope: 'openid email' });
    person = await t.build.person({ name: 'Ada' });
    config = await client.discovery(new URL(issuer), tv.clientId, undefined, client.None(), { execute: [client.allowInsecureRequests] });
    browser = await launchChromium();
    context = await phoneContext(browser);
    page = await context.newPage();
    await page.addInitScript(NO_PASSKEY_AUTOFILL);
    await mkdir(SCREENSHOTS, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await t?.close();
  }, 60_000);

  const focused = () => page.evaluate('document.activeElement && document.activeElement.id');

  it('types the code with the keyboard, confirms, signs in, consents and sees the success page; the device gets its tokens', async () => {
    const started = await client.initiateDeviceAuthorization(config, { scope: 'openid email' });
    recordSecret(started.device_code);
    const polling = client.pollDeviceAuthorizationGrant(config, started);

    await page.goto(started.verification_uri);
    await expect.poll(() => page.title()).toBe('Connect a device · Gatehouse');
    expect(await focused()).toBe('user_code');
    await expectAccessibleOnPhone(page, 'the code form');
    await page.emulateMedia({ colorScheme: 'light' });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'device-code.png'), fullPage: true });

    // A wrong code first: the form again, saying so, the field marked invalid.
    await page.keyboard.type('bcdf ghjk');
    await page.keyboard.press('Enter');
    await page.getByRole('alert').waitFor();
    expect(await page.getByRole('alert').textContent()).toContain('That code is not known');
    expect(await page.locator('#user_code').getAttribute('aria-invalid')).toBe('true');
    await expectAccessibleOnPhone(page, 'the code form with an error');

    // The code as a person might type it: lower case, without the dash.
    await page.locator('#user_code').fill('');
    await page.locator('#user_code').focus();
    await page.keyboard.type(started.user_code.replace('-', '').toLowerCase());
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Confirm the device' }).waitFor();
    expect(await page.locator('#user-code').textContent()).toBe(started.user_code);
    expect(await page.locator('.lead strong').textContent()).toBe('Living-room TV');
    await expectAccessibleOnPhone(page, 'the confirm page');
    await page.emulateMedia({ colorScheme: 'light' });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'device-confirm.png'), fullPage: true });
    // Continue has the focus: Enter confirms.
    await page.keyboard.press('Enter');

    await page.waitForURL((url) => url.pathname.startsWith('/interaction/'));
    await page.locator('#email').fill(person.email);
    recordSecret(person.password);
    await page.locator('#password').fill(person.password);
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Allow' }).click();

    await page.getByRole('heading', { level: 1, name: 'Device connected' }).waitFor();
    expect(new URL(page.url()).pathname).toMatch(/^\/device\/[\w-]+$/);
    expect(await page.getByRole('status').textContent()).toBe('Your device is signed in to Living-room TV.');
    expect(await page.locator('main').textContent()).toContain('You can go back to your device now');
    await expectAccessibleOnPhone(page, 'the success page');
    await page.emulateMedia({ colorScheme: 'light' });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'device-success.png'), fullPage: true });

    const tokens = await polling;
    recordSecret(tokens.access_token);
    recordSecret(tokens.id_token);
    expect(tokens.claims()?.sub).toBe(person.id);
  }, 60_000);

  it('opens verification_uri_complete with the code filled in; Cancel shows the cancelled page and the device hears access_denied', async () => {
    const started = await client.initiateDeviceAuthorization(config, { scope: 'openid' });
    recordSecret(started.device_code);
    const polling = client.pollDeviceAuthorizationGrant(config, started).then(
      () => 'tokens',
      (error: unknown) => (error as { error?: string }).error,
    );
    await page.goto(started.verification_uri_complete!);
    expect(await page.locator('#user_code').inputValue()).toBe(started.user_code);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('button', { name: 'Cancel' }).click();
    await page.getByRole('heading', { level: 1, name: 'Sign-in cancelled' }).waitFor();
    await expectAccessibleOnPhone(page, 'the cancelled page');
    expect(await polling).toBe('access_denied');
  }, 60_000);

  it('speaks German under Accept-Language de, and the German pages pass axe too', async () => {
    const german = await browser!.newContext({ viewport: { width: 375, height: 812 }, locale: 'de-DE', extraHTTPHeaders: { 'accept-language': 'de' } });
    try {
      const dePage = await german.newPage();
      await dePage.goto(`${issuer}/device`);
      expect(await dePage.getAttribute('html', 'lang')).toBe('de');
      await dePage.getByRole('heading', { level: 1, name: 'Gerät verbinden' }).waitFor();
      expect(await dePage.getByRole('button', { name: 'Weiter' }).count()).toBe(1);
      await expectAccessibleOnPhone(dePage, 'the German code form');
      const started = await client.initiateDeviceAuthorization(config, { scope: 'openid' });
      recordSecret(started.device_code);
      await dePage.locator('#user_code').fill(started.user_code);
      await dePage.keyboard.press('Enter');
      await dePage.getByRole('heading', { level: 1, name: 'Gerät bestätigen' }).waitFor();
      await expectAccessibleOnPhone(dePage, 'the German confirm page');
    } finally {
      await german.close();
    }
  }, 60_000);
});
