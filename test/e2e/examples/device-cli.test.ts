import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, phoneContext } from '../../fixtures/chromium.js';
import { confirmDevice, DEVICE_GRANT, openDevicePage, submitUserCode } from '../../fixtures/device.js';
import { Agent } from '../../fixtures/flow.js';
import { recordSecret } from '../../fixtures/log-capture.js';
import { NO_PASSKEY_AUTOFILL } from '../../fixtures/passkey-autofill.js';
import { REPO_ROOT, spawnNode, type Spawned } from '../../fixtures/process.js';
import { startTestServer, type TestServer } from '../../fixtures/server.js';

const PROGRAM = path.join(REPO_ROOT, 'examples/device-cli/device-cli.ts');

/** The instructions the program prints: where to go and the code, once they are there. */
async function instructions(program: Spawned, timeoutMs = 20_000): Promise<{ uri: string; code: string; complete: string }> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const found = /To sign in, open (\S+) and enter the code (\S+)\n\(or open (\S+)\)/.exec(program.output());
    if (found) return { uri: found[1]!, code: found[2]!, complete: found[3]! };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the program printed no code: ${program.output()}`);
}

/**
 * examples/device-cli run as a program, as its README shows, against a live Gatehouse: it prints
 * where to sign in and the code, a person does so in Chromium (the code's link, Continue, the
 * sign-in, the consent), and the program prints the ID token's claims and the access token's
 * lifetime. When the person cancels instead, it says access_denied and exits 1.
 */
describe('examples/device-cli: the device flow from a command line', () => {
  let t: TestServer;
  let browser: Browser | undefined;
  let clientId: string;
  let person: { id: string; email: string; password: string };

  beforeAll(async () => {
    t = await startTestServer({ name: 'example-device-cli', env: { DEVICE_CODE_POLL_INTERVAL_SECONDS: '1' } });
    ({ clientId } = await t.build.client({ client_name: 'Gatehouse CLI example', grant_types: [DEVICE_GRANT], token_endpoint_auth_method: 'none', scope: 'openid email' }));
    person = await t.build.person();
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await t?.close();
  }, 60_000);

  const run = (env: Record<string, string> = {}) => spawnNode([PROGRAM], { cwd: REPO_ROOT, env: { ISSUER: t.config.issuer, CLIENT_ID: clientId, SCOPE: 'openid email', ...env } });

  it('prints the code, waits while a person signs in with Chromium, then prints the ID token claims and the access token lifetime', async () => {
    const program = run();
    try {
      const shown = await instructions(program);
      expect(shown.uri).toBe(`${t.config.issuer}/device`);
      expect(shown.code).toMatch(/^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
      expect(shown.complete).toBe(`${shown.uri}?user_code=${shown.code}`);
      expect(program.output()).toContain('The code is valid for 10 minutes. Waiting…');

      const page = await (await phoneContext(browser!)).newPage();
      await page.addInitScript(NO_PASSKEY_AUTOFILL);
      await page.goto(shown.complete);
      expect(await page.locator('#user_code').inputValue()).toBe(shown.code);
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByRole('button', { name: 'Yes, continue' }).click();
      await page.locator('#email').fill(person.email);
      recordSecret(person.password);
      await page.locator('#password').fill(person.password);
      await page.keyboard.press('Enter');
      await page.getByRole('button', { name: 'Allow' }).click();
      await page.getByRole('heading', { level: 1, name: 'Device connected' }).waitFor();

      const exit = await program.exited;
      expect(exit.code, program.output()).toBe(0);
      const claimsLine = /Signed in\. ID token claims: (.+)\n/.exec(program.output())?.[1];
      const claims = JSON.parse(claimsLine ?? 'null') as Record<string, unknown>;
      expect(claims).toMatchObject({ sub: person.id, email: person.email, aud: clientId, iss: t.config.issuer });
      // 600 s (Gatehouse's access token lifetime), counted by openid-client from the answer's arrival.
      expect(program.output()).toMatch(/\nAccess token expires in (600|59\d) seconds\n/);
      // Nothing but the claims and the lifetime: no token is printed.
      expect(program.output()).not.toMatch(/eyJ[\w-]+\.[\w-]+\./);
    } finally {
      program.child.kill('SIGTERM');
    }
  }, 60_000);

  it('says access_denied and exits 1 when the person cancels on the confirm page', async () => {
    const program = run();
    try {
      const shown = await instructions(program);
      const agent = new Agent(t.config.issuer);
      const confirm = await submitUserCode(agent, await openDevicePage(agent), shown.code);
      const cancelled = await confirmDevice(agent, confirm, { ...person, answer: 'abort' });
      expect(cancelled.html).toContain('Sign-in cancelled');
      const exit = await program.exited;
      expect(exit.code).toBe(1);
      expect(program.output()).toMatch(/access_denied/);
      expect(program.output()).not.toContain('Signed in.');
    } finally {
      program.child.kill('SIGTERM');
    }
  }, 60_000);

  it('refuses to start without ISSUER and CLIENT_ID', async () => {
    const program = spawnNode([PROGRAM], { cwd: REPO_ROOT, env: {} });
    expect((await program.exited).code).toBe(1);
    expect(program.output()).toContain('set ISSUER and CLIENT_ID');
  });
});
