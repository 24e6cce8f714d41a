import { setTimeout as sleep } from 'node:timers/promises';
import * as oauth from 'oauth4webapi';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tailAudit } from '../../src/audit/audit-log.js';
import { CONSOLE_CLIENT_ID } from '../../src/services/built-in-clients.js';
import { checkConsolePage, consolePerson, consoleSession, signInToConsole, startConsole, type ConsoleHarness } from '../fixtures/console.js';
import { createUser } from '../../src/services/users.service.js';
import { DEFAULT_PASSWORD } from '../fixtures/builders.js';
import { runCliCapture } from '../fixtures/cli.js';
import { TEST_ACTOR } from '../fixtures/services.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';
import { totpCode } from '../fixtures/totp.js';
import { Agent, authorizeUrl, pkce } from '../fixtures/flow.js';

/**
 * The console's foundation (issue 19): who may use it and how it signs in. A person's console token
 * (code + PKCE + DPoP, with a second factor) opens the admin API only while they hold the admin role
 * and only with its DPoP proof; everything else is refused, and changes are audited as the person.
 */
describe('the admin API and console tokens (no browser)', () => {
  let t: TestServer;

  beforeAll(async () => {
    t = await startTestServer({ name: 'console-api', listen: false });
  });
  afterAll(() => t.close());

  const problem = async (response: Response) => ({ status: response.status, body: (await response.json()) as { code?: string; title?: string; detail?: string; errors?: Array<{ field: string }> } });

  it('an administrator signs in with a second factor and calls the admin API as themselves; their changes are audited as the person', async () => {
    const admin = await consolePerson(t);
    const session = await consoleSession(t, admin);
    const claims = JSON.parse(Buffer.from(session.accessToken.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>;
    expect(claims).toMatchObject({ client_id: CONSOLE_CLIENT_ID, sub: admin.id, aud: `${t.config.issuer}/admin/v1`, scope: 'admin' });
    expect((claims.cnf as { jkt?: string }).jkt).toMatch(/^[\w-]{43}$/);

    const me = await session.call('GET', '/me');
    expect(me.status).toBe(200);
    expect(await me.json()).toEqual({ client_id: CONSOLE_CLIENT_ID, person: { id: admin.id, email: admin.email, name: expect.any(String), roles: ['admin'] } });

    const created = await session.call('POST', '/resources', { identifier: 'https://console-audited.example.test', scope: 'read' });
    expect(created.status).toBe(201);
    const rows = await tailAudit(t.server.registry.db, { limit: 1000 });
    expect(rows.filter((row) => row.action === 'resource.create').at(-1)?.actor).toBe(`person:${admin.id}`);
  });

  it('a person without the admin role is refused (403 forbidden) however they signed in, and nothing changes', async () => {
    const person = await consolePerson(t, { roles: [] });
    const session = await consoleSession(t, person);
    for (const [method, apiPath, body] of [
      ['GET', '/me', undefined],
      ['GET', '/clients', undefined],
      ['POST', '/resources', { identifier: 'https://never-made.example.test', scope: 'read' }],
    ] as const) {
      const answer = await problem(await session.call(method, apiPath, body));
      expect(answer.status, `${method} ${apiPath}`).toBe(403);
      expect(answer.body.detail).toMatch(/admin role/);
    }
    const resources = await t.cli<Array<{ identifier: string }>>('resources', 'list');
    expect(resources.map((r) => r.identifier)).not.toContain('https://never-made.example.test');
  });

  it('a role taken away (CLI set-roles) or a person disabled stops their console token at the next call', async () => {
    const admin = await consolePerson(t);
    const session = await consoleSession(t, admin);
    expect((await session.call('GET', '/clients')).status).toBe(200);
    await t.cli('users', 'set-roles', admin.id);
    expect((await problem(await session.call('GET', '/clients'))).status).toBe(403);
    await t.cli('users', 'set-roles', admin.id, '--role', 'admin');
    expect((await session.call('GET', '/clients')).status).toBe(200);
    await t.cli('users', 'disable', admin.id);
    expect((await problem(await session.call('GET', '/clients'))).status).toBe(401);
  });

  it('signing a person out everywhere (another administrator) or changing their password ends their console token at once', async () => {
    const admin = await consolePerson(t);
    const other = await consoleSession(t, await consolePerson(t));
    const session = await consoleSession(t, admin);
    expect((await session.call('GET', '/me')).status).toBe(200);
    await sleep(1_100);
    expect((await other.call('DELETE', `/users/${admin.id}/sessions`)).status).toBe(200);
    const ended = await problem(await session.call('GET', '/me'));
    expect(ended).toMatchObject({ status: 401, body: { detail: expect.stringMatching(/session has ended/) } });

    // Another administrator (a TOTP code is taken once, so not the same person again within its 30 s step).
    const second = await consolePerson(t);
    const again = await consoleSession(t, second);
    expect((await again.call('GET', '/me')).status).toBe(200);
    await sleep(1_100);
    expect((await other.call('PATCH', `/users/${second.id}`, { password: 'a brand new password for the admin 4711' })).status).toBe(200);
    expect((await problem(await again.call('GET', '/me'))).status).toBe(401);
  });

  it('a console token is refused without its DPoP proof, as a Bearer token, with a replayed proof, or a proof for another URL, method or key', async () => {
    const admin = await consolePerson(t);
    const session = await consoleSession(t, admin);
    const url = new URL('/admin/v1/clients', t.config.issuer);
    const send = (headers: Record<string, string>) => t.fetch(url.toString(), { headers });
    const proof = async (overrides: { htm?: string; htu?: string; key?: Awaited<ReturnType<typeof oauth.generateKeyPair>>; token?: string } = {}) => {
      // A proof made by oauth4webapi's DPoP handle (never by hand): captured from a request it would send.
      const handle = overrides.key ? oauth.DPoP(session.client, overrides.key) : session.dpop;
      let captured = '';
      await oauth.protectedResourceRequest(overrides.token ?? session.accessToken, overrides.htm ?? 'GET', new URL(overrides.htu ?? url.toString()), new Headers(), undefined, {
        DPoP: handle,
        [oauth.allowInsecureRequests]: true,
        [oauth.customFetch]: async (_input: unknown, init?: RequestInit) => {
          captured = new Headers(init?.headers).get('dpop') ?? '';
          return new Response('{}', { status: 200 });
        },
      });
      return captured;
    };
    // With its proof: accepted.
    const good = await proof();
    expect((await send({ authorization: `DPoP ${session.accessToken}`, dpop: good })).status).toBe(200);
    // The same proof again: a replay.
    const replay = await problem(await send({ authorization: `DPoP ${session.accessToken}`, dpop: good }));
    expect(replay).toMatchObject({ status: 401, body: { detail: expect.stringMatching(/used before/) } });
    // No proof; as a Bearer token.
    expect((await problem(await send({ authorization: `DPoP ${session.accessToken}` }))).status).toBe(401);
    expect((await problem(await send({ authorization: `Bearer ${session.accessToken}`, dpop: await proof() }))).status).toBe(401);
    expect((await problem(await send({ authorization: `Bearer ${session.accessToken}` }))).status).toBe(401);
    // A proof for another method, another URL, another key, another token.
    expect((await problem(await send({ authorization: `DPoP ${session.accessToken}`, dpop: await proof({ htm: 'POST' }) }))).body.detail).toMatch(/htm/);
    expect((await problem(await send({ authorization: `DPoP ${session.accessToken}`, dpop: await proof({ htu: `${t.config.issuer}/admin/v1/users` }) }))).body.detail).toMatch(/htu/);
    expect((await problem(await send({ authorization: `DPoP ${session.accessToken}`, dpop: await proof({ key: await oauth.generateKeyPair('ES256') }) }))).body.detail).toMatch(/bound to/);
    expect((await problem(await send({ authorization: `DPoP ${session.accessToken}`, dpop: await proof({ token: 'another-token' }) }))).body.detail).toMatch(/ath/);
    // A proof dated 30 s ahead of the server's clock (more than the 5 s it allows): refused, so no proof outlives its replay record.
    let ahead = '';
    await oauth.protectedResourceRequest(session.accessToken, 'GET', url, new Headers(), undefined, {
      DPoP: oauth.DPoP({ ...session.client, [oauth.clockSkew]: 30 }, session.keyPair),
      [oauth.allowInsecureRequests]: true,
      [oauth.customFetch]: async (_input: unknown, init?: RequestInit) => {
        ahead = new Headers(init?.headers).get('dpop') ?? '';
        return new Response('{}', { status: 200 });
      },
    });
    expect((await problem(await send({ authorization: `DPoP ${session.accessToken}`, dpop: ahead }))).status).toBe(401);
    // Two proofs in one header.
    expect((await problem(await send({ authorization: `DPoP ${session.accessToken}`, dpop: `${await proof()}, ${await proof()}` }))).status).toBe(401);
    // An admin client's ordinary Bearer token is not DPoP: presented as DPoP, refused.
    const service = await t.cli<{ client_id: string; client_secret: string }>('clients', 'create', '--name', 'admin svc', '--admin');
    const cc = await t.fetch('/token', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${service.client_id}:${service.client_secret}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'admin' }),
    });
    const adminToken = String(((await cc.json()) as { access_token: string }).access_token);
    expect((await send({ authorization: `Bearer ${adminToken}` })).status).toBe(200);
    expect((await problem(await send({ authorization: `DPoP ${adminToken}` }))).status).toBe(401);
  });

  it('an administrator cannot take their own admin role away, disable or delete themselves through the console (409); another can', async () => {
    const admin = await consolePerson(t);
    const session = await consoleSession(t, admin);
    const roles = await problem(await session.call('PATCH', `/users/${admin.id}`, { roles: [] }));
    expect(roles).toMatchObject({ status: 409, body: { errors: [{ field: 'roles' }] } });
    expect((await problem(await session.call('PATCH', `/users/${admin.id}`, { disabled: true }))).status).toBe(409);
    expect((await problem(await session.call('DELETE', `/users/${admin.id}`))).status).toBe(409);
    const stored = await t.cli<{ roles: string[]; disabled: boolean }>('users', 'get', admin.id);
    expect(stored).toMatchObject({ roles: ['admin'], disabled: false });

    const other = await consolePerson(t);
    const otherSession = await consoleSession(t, other);
    const changed = await otherSession.call('PATCH', `/users/${admin.id}`, { roles: [] });
    expect(changed.status).toBe(200);
    expect(((await changed.json()) as { roles: string[] }).roles).toEqual([]);
  });

  it('roles through the admin API and the CLI: known names only, each once; a bad one is refused naming the field and nothing is made', async () => {
    const admin = await consolePerson(t);
    const session = await consoleSession(t, admin);
    const bad = await problem(await session.call('POST', '/users', { email: 'bad-role@example.test', password: 'a long enough password 4711', roles: ['root'] }));
    expect(bad).toMatchObject({ status: 400, body: { errors: [{ field: 'roles.0' }] } });
    expect((await problem(await session.call('GET', '/users?email=bad-role@example.test'))).body).toMatchObject({ data: [] });
    const made = await session.call('POST', '/users', { email: 'two-roles@example.test', password: 'a long enough password 4711', roles: ['admin', 'admin'] });
    expect(made.status).toBe(201);
    expect(((await made.json()) as { roles: string[] }).roles).toEqual(['admin']);

    const stdin = { stdin: 'a long enough password 4711\n' };
    const cliMade = await runCliCapture(['users', 'create', '--email', 'cli-admin@example.test', '--password-stdin', '--role', 'admin', '--json'], t.env, stdin);
    expect(cliMade.code, cliMade.stderr).toBe(0);
    expect(JSON.parse(cliMade.stdout)).toMatchObject({ email: 'cli-admin@example.test', roles: ['admin'] });
    const cliBad = await runCliCapture(['users', 'create', '--email', 'cli-root@example.test', '--password-stdin', '--role', 'root', '--json'], t.env, stdin);
    expect(cliBad.code).not.toBe(0);
    expect((await t.cli<Array<{ email: string }>>('users', 'list')).map((u) => u.email)).not.toContain('cli-root@example.test');
  });
});

describe('console sessions end: refresh tokens die after CONSOLE_IDLE_TIMEOUT_SECONDS unused', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ name: 'console-idle-api', listen: false, env: { CONSOLE_IDLE_TIMEOUT_SECONDS: '3' } });
  });
  afterAll(() => t.close());

  it('a refresh within the timeout works (and rotates); one after it is refused', async () => {
    const admin = await consolePerson(t);
    const session = await consoleSession(t, admin);
    expect(session.refreshToken).toBeTruthy();
    const options = { DPoP: session.dpop, [oauth.allowInsecureRequests]: true, [oauth.customFetch]: (input: string | URL | Request, init?: RequestInit) => t.fetch(String(input instanceof Request ? input.url : input), init) } as const;
    const refreshed = await oauth.processRefreshTokenResponse(session.as, session.client, await oauth.refreshTokenGrantRequest(session.as, session.client, oauth.None(), session.refreshToken ?? '', options));
    expect(refreshed.refresh_token).toBeTruthy();
    expect(refreshed.refresh_token).not.toBe(session.refreshToken);
    await sleep(4_000);
    await expect(
      oauth.processRefreshTokenResponse(session.as, session.client, await oauth.refreshTokenGrantRequest(session.as, session.client, oauth.None(), refreshed.refresh_token ?? '', options)),
    ).rejects.toMatchObject({ error: 'invalid_grant' });
  });
});

describe('the console in a real browser (chromium)', () => {
  let h: ConsoleHarness;
  let context: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    h = await startConsole({ name: 'console-browser' });
  });
  afterAll(() => h.close());

  it('is served with a strict CSP (script-src self, no inline script or style) and never cached', async () => {
    const response = await fetch(`${h.t.server.url}/console/clients`);
    expect(response.status).toBe(200);
    const csp = response.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
    expect(response.headers.get('cache-control')).toBe('no-store');
    const html = await response.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/\sstyle=|<style/);
    const script = /<script type="module" src="([^"]+)"/.exec(html)?.[1] ?? '';
    const asset = await fetch(`${h.t.server.url}${script}`, { headers: { 'accept-encoding': 'br' } });
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-encoding')).toBe('br');
    expect(asset.headers.get('cache-control')).toContain('immutable');
    expect((await fetch(`${h.t.server.url}/console/assets/nothing-here.js`)).status).toBe(404);
  });

  it('signs an administrator in with a password and a second factor; the tokens stay in memory (no storage holds them); landmarks, skip link and navigation', async () => {
    const admin = await consolePerson(h.t, { email: 'grace@example.test', name: 'Grace Hopper' });
    context = await h.newContext();
    page = await context.newPage();
    await signInToConsole(page, h.t, admin);
    expect(await page.getByText('Signed in as grace@example.test').isVisible()).toBe(true);
    expect(await page.getByRole('navigation', { name: 'Console' }).isVisible()).toBe(true);
    expect(await page.getByRole('main').count()).toBe(1);
    expect(await page.getByRole('banner').count()).toBe(1);
    for (const name of ['Overview', 'Clients', 'APIs', 'People', 'Upstream providers', 'Signing keys', 'Audit log']) {
      await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name, exact: true }).click();
      await expect.poll(() => page.getByRole('heading', { level: 1, name, exact: true }).isVisible(), { message: name }).toBe(true);
      expect(await page.getByRole('link', { name, exact: true }).getAttribute('aria-current')).toBe('page');
    }
    const storage = (await page.evaluate('JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage } })')) as string;
    expect(JSON.parse(storage).local).toEqual({});
    expect(Object.keys(JSON.parse(storage).session)).toEqual(['gatehouse-console:active-at']);
    expect(storage).not.toMatch(/eyJ/);
    // Keyboard: the first Tab from the top of the document reaches the skip link, which moves to the
    // main content. (A page's h1 takes the focus when it opens: the Tab starts from the top here, as
    // on a first visit, rather than from the h1 of a page with fields after it.)
    await page.evaluate("document.body.setAttribute('tabindex', '-1'); document.body.focus(); document.body.removeAttribute('tabindex')");
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement?.textContent')).toBe('Skip to content');
    await checkConsolePage(page, 'overview-shell');
  });

  it('works with the keyboard alone: the navigation, a form filled and sent with Enter, a confirmation dialog closed with Escape', async () => {
    /** Presses Tab until the focused element satisfies `is` (at most 60 times): what a keyboard user does. */
    const tabTo = async (what: string, is: string) => {
      for (let presses = 0; presses < 60; presses += 1) {
        await page.keyboard.press('Tab');
        if ((await page.evaluate(is)) === true) return;
      }
      throw new Error(`Tab never reached ${what}`);
    };
    await page.evaluate("document.body.setAttribute('tabindex', '-1'); document.body.focus(); document.body.removeAttribute('tabindex')");
    await tabTo('the APIs link', "document.activeElement?.textContent === 'APIs' && document.activeElement?.tagName === 'A'");
    await page.keyboard.press('Enter');
    await expect.poll(() => page.evaluate("document.activeElement?.tagName === 'H1' && document.activeElement?.textContent === 'APIs'"), { timeout: 15_000 }).toBe(true);
    await tabTo('the identifier field', "document.activeElement?.getAttribute('name') === 'identifier'");
    await page.keyboard.type('https://keyboard-only.example.test');
    await tabTo('the scopes field', "document.activeElement?.getAttribute('name') === 'scope'");
    await page.keyboard.type('read write');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'The API was created.' }).isVisible(), { timeout: 15_000 }).toBe(true);
    expect((await h.t.cli<Array<{ identifier: string; scopes: string[] }>>('resources', 'list')).find((r) => r.identifier === 'https://keyboard-only.example.test')).toBeTruthy();
    // Delete asks first, in a modal dialog; Escape closes it and nothing is deleted.
    await tabTo('the Delete button', "document.activeElement?.textContent === 'Delete'");
    await page.keyboard.press('Enter');
    await expect.poll(() => page.getByRole('dialog').isVisible()).toBe(true);
    await page.keyboard.press('Escape');
    await expect.poll(() => page.getByRole('dialog').isVisible()).toBe(false);
    expect((await h.t.cli<Array<{ identifier: string }>>('resources', 'list')).find((r) => r.identifier === 'https://keyboard-only.example.test')).toBeTruthy();
  });

  it('an API outage shows a banner with Retry (never a blank page); Retry loads again once the API is back', async () => {
    await page.route('**/admin/v1/**', (route) => route.abort('connectionrefused'));
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Overview', exact: true }).click();
    await page.reload();
    // After a reload the console signs in again (silently: the Gatehouse session is there), then calls /me.
    await expect.poll(() => page.getByRole('alert').filter({ hasText: 'cannot be reached' }).isVisible()).toBe(true);
    expect(await page.getByRole('button', { name: 'Retry' }).isVisible()).toBe(true);
    await page.unroute('**/admin/v1/**');
    await page.getByRole('button', { name: 'Retry' }).click();
    await expect.poll(() => page.getByRole('alert').filter({ hasText: 'cannot be reached' }).count()).toBe(0);
    await expect.poll(() => page.getByText('Signed in as grace@example.test').isVisible()).toBe(true);
  });

  it('a person whose role is taken away while signed in gets the 403 page at the next load; a person without it never sees the console', async () => {
    const admin = await consolePerson(h.t);
    const tab = await context.browser()!.newContext({ viewport: { width: 1280, height: 900 } }).then((c) => c.newPage());
    await signInToConsole(tab, h.t, admin);
    await h.t.cli('users', 'set-roles', admin.id);
    await tab.reload();
    await expect.poll(() => tab.getByRole('heading', { level: 1, name: 'No access to the console' }).isVisible()).toBe(true);
    await checkConsolePage(tab, 'forbidden');
    await tab.context().close();

    const plain = await consolePerson(h.t, { roles: [] });
    const other = await (await h.newContext()).newPage();
    await other.goto(`${h.t.server.url}/console/`);
    await other.locator('input[name="email"]').fill(plain.email);
    await other.locator('input[name="password"]').fill(plain.password);
    await other.getByRole('button', { name: 'Sign in', exact: true }).click();
    await other.locator('input[name="code"]').fill(await totpCode(plain.secret));
    await other.locator('input[name="code"]').press('Enter');
    await expect.poll(() => other.getByRole('heading', { level: 1, name: 'No access to the console' }).isVisible()).toBe(true);
    expect(await other.getByRole('navigation', { name: 'Console' }).count()).toBe(0);
    await other.context().close();
  });

  it('Sign out ends the Gatehouse session too: the signed-out page, and opening the console asks for the password again', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    // Gatehouse's own sign-out confirmation (RP-initiated logout).
    await page.getByRole('button', { name: /sign out/i }).first().click();
    await page.waitForURL((url) => url.pathname === '/console/signed-out');
    await expect.poll(() => page.getByRole('heading', { level: 1, name: 'Signed out' }).isVisible()).toBe(true);
    await checkConsolePage(page, 'signed-out');
    await page.getByRole('button', { name: 'Sign in again' }).click();
    await expect.poll(() => page.locator('input[name="password"]').isVisible()).toBe(true);
    await context.close();
  });
});

describe('a passkey opens the console without another factor (chromium, virtual authenticator)', () => {
  let h: ConsoleHarness;
  beforeAll(async () => {
    h = await startConsole({ name: 'console-passkey' });
  });
  afterAll(() => h.close());

  it('an administrator with a passkey (and no authenticator app) signs in to the console with it alone: a passkey with user verification is a second factor', async () => {
    const email = 'passkey-admin@example.test';
    await createUser(h.t.services, TEST_ACTOR, { email, password: DEFAULT_PASSWORD, roles: ['admin'] });
    const context = await h.newContext();
    const tab = await context.newPage();
    const cdp = await context.newCDPSession(tab);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', ctap2Version: 'ctap2_1', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: false },
    });
    const issuer = h.t.config.issuer;
    // A passkey added on the account page after a password sign-in.
    await tab.goto(`${issuer}/account`);
    await tab.getByLabel('Email').fill(email);
    await tab.getByLabel('Password').fill(DEFAULT_PASSWORD);
    await tab.getByRole('button', { name: 'Sign in', exact: true }).click();
    await tab.waitForURL(`${issuer}/account`);
    await cdp.send('WebAuthn.setAutomaticPresenceSimulation', { authenticatorId, enabled: true });
    await tab.locator('#add-passkey').click();
    await tab.waitForURL(`${issuer}/account#passkeys`);
    await tab.locator('#passkey-list li').first().waitFor();
    await tab.locator('#sign-out').click();
    await tab.getByRole('button', { name: 'Sign out', exact: true }).click();
    await tab.waitForLoadState();

    // The console with the passkey alone: no password, no code asked.
    await tab.goto(`${issuer}/console/`);
    await tab.waitForURL((url) => url.pathname.startsWith('/interaction/'));
    await tab.locator('#passkey-signin').click();
    await expect.poll(() => tab.getByRole('heading', { level: 1, name: 'Overview' }).isVisible()).toBe(true);
    expect(await tab.getByText(`Signed in as ${email}`).isVisible()).toBe(true);
    await context.close();
  }, 120_000);
});

describe('the console signs out after CONSOLE_IDLE_TIMEOUT_SECONDS without activity (chromium)', () => {
  let h: ConsoleHarness;
  beforeAll(async () => {
    h = await startConsole({ name: 'console-idle-browser', env: { CONSOLE_IDLE_TIMEOUT_SECONDS: '3' } });
  });
  afterAll(() => h.close());

  it('shows that it signed out for inactivity, and signing in again asks for the password (prompt=login)', async () => {
    const admin = await consolePerson(h.t);
    const page = await (await h.newContext()).newPage();
    await signInToConsole(page, h.t, admin);
    await expect.poll(() => page.getByRole('heading', { level: 1, name: 'Signed out' }).isVisible(), { timeout: 15_000 }).toBe(true);
    expect(await page.getByText('after a while without activity').isVisible()).toBe(true);
    // A new tab on the same browser (the Gatehouse session is still there) is asked for the password too:
    // the server holds the idle timeout, not only the page that counted it.
    const tab = await page.context().newPage();
    await tab.goto(`${h.t.server.url}/console/`);
    await expect.poll(() => tab.locator('input[name="password"]').isVisible(), { timeout: 15_000 }).toBe(true);
    expect(await tab.getByText('The app asked you to sign in again.').isVisible()).toBe(true);
    await page.getByRole('button', { name: 'Sign in again' }).click();
    await expect.poll(() => page.locator('input[name="password"]').isVisible()).toBe(true);
  });

  it('a hand-made authorization request for the console after the idle timeout gets the sign-in page, never a code; within the timeout of a sign-in, a code', async () => {
    const admin = await consolePerson(h.t);
    const agent = new Agent(h.t.server.url, h.t.fetch);
    const { challenge } = pkce();
    const request = () =>
      agent.follow(
        authorizeUrl({
          client_id: CONSOLE_CLIENT_ID,
          redirect_uri: `${h.t.config.issuer}/console/callback`,
          code_challenge: challenge,
          code_challenge_method: 'S256',
          scope: 'openid admin',
          resource: `${h.t.config.issuer}/admin/v1`,
        }),
      );
    // Sign in over HTTP (password, then the code): the browser session exists.
    const started = await request();
    const startedHtml = await started.response.text();
    const login = /<form method="post" action="([^"]+)"/.exec(startedHtml)?.[1] ?? '';
    const csrf = (html: string) => /name="csrf" value="([^"]*)"/.exec(html)?.[1] ?? '';
    const afterPassword = await agent.follow(login, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf: csrf(startedHtml), email: admin.email, password: admin.password }),
    });
    const mfaHtml = await afterPassword.response.text();
    const mfaAction = /<form method="post" action="([^"]+)"/.exec(mfaHtml)?.[1] ?? '';
    const done = await agent.follow(mfaAction, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ csrf: csrf(mfaHtml), code: await totpCode(admin.secret) }) });
    expect(new URL(done.url).searchParams.get('code')).toBeTruthy();
    // At once: the session stands, a code comes back without a page.
    expect(new URL((await request()).url).searchParams.get('code')).toBeTruthy();
    // After the idle timeout with no console call: the sign-in page, no code.
    await sleep(3_500);
    const later = await request();
    expect(new URL(later.url).searchParams.get('code')).toBeNull();
    expect(await later.response.text()).toContain('name="password"');
  });
});
