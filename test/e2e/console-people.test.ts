import { randomUUID } from 'node:crypto';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDataKeyring } from '../../src/keys/data-key.js';
import { beginTotpEnrolment, confirmTotpEnrolment, secondFactorStatus } from '../../src/services/second-factors.service.js';
import type { BuiltClient, BuiltPerson } from '../fixtures/builders.js';
import { checkConsolePage, consolePerson, signInToConsole, startConsole, type ConsoleHarness, type ConsolePerson } from '../fixtures/console.js';
import { Agent, codeFlow } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { tokenRequest } from '../fixtures/server.js';
import { totpCode } from '../fixtures/totp.js';

/*
 * The console's People pages in Chromium (console/src/pages/people.tsx, person.tsx), end to end on
 * a real Gatehouse: list with search and paging, create (errors beside their field), and on a
 * person's page every action, each checked where it matters (the token endpoint, the registry):
 * disable (their refresh token refused), roles, reset second factor, sign out everywhere, remove a
 * connected app, API keys. axe-core at 375 px in light and dark on each page, and a screenshot.
 */

const REDIRECT = 'http://127.0.0.1:8799/cb';
/** What the page shows after a call, waited for: the machine is shared, so longer than expect.poll's default second. */
const poll = <T,>(read: () => Promise<T> | T) => expect.poll(read, { timeout: 15_000 });
const HOSTILE = '<img src=x onerror=alert(1)>';

describe('the console: People (chromium)', () => {
  let h: ConsoleHarness;
  let admin: ConsolePerson;
  let context: BrowserContext;
  let page: Page;
  let api: string;
  let app: BuiltClient;

  beforeAll(async () => {
    h = await startConsole({ name: 'console-people' });
    admin = await consolePerson(h.t, { email: `ada-${randomUUID().slice(0, 6)}@example.test`, name: 'Ada Lovelace' });
    api = (await h.t.build.resource({ scope: 'read write', name: 'Photo API' })).identifier;
    app = await h.t.build.client({ client_name: 'Photo App', redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'] });
    await h.t.build.grant(app.clientId, api, 'read write');
    context = await h.newContext();
    page = await context.newPage();
    page.on('dialog', (dialog) => void dialog.dismiss());
  });
  afterAll(async () => {
    await context?.close();
    await h?.close();
  });

  const t = () => h.t;
  const db = () => h.t.server.registry.db;
  const refresh = (refreshToken: string) => tokenRequest(t().server.url, { grant_type: 'refresh_token', refresh_token: refreshToken }, app, fetch);

  /** The app signs the person in through the pages (a browser session of theirs), consenting to the API's read scope: its refresh token. */
  async function connect(person: BuiltPerson): Promise<{ agent: Agent; refreshToken: string }> {
    const agent = new Agent(t().server.url);
    const { status, body } = await codeFlow(agent, {
      client: app,
      redirectUri: REDIRECT,
      email: person.email,
      password: person.password,
      params: { scope: 'openid offline_access read', resource: api, prompt: 'consent' },
      tokenParams: { resource: api },
    });
    expect(status, JSON.stringify(body)).toBe(200);
    return { agent, refreshToken: String(body.refresh_token) };
  }

  /** Opens the person's page in the console and waits for its heading (their email). */
  async function openPerson(person: { id: string; email: string }): Promise<void> {
    await page.goto(`${t().server.url}/console/people/${person.id}`);
    await poll(() => page.getByRole('heading', { level: 1, name: person.email }).isVisible()).toBe(true);
  }

  /** Clicks `button` in a section, confirms in the dialog with `confirm`, and waits for the status message. */
  async function confirmAction(section: string, button: string, confirm: string, message: RegExp): Promise<void> {
    await page.getByRole('region', { name: section }).getByRole('button', { name: button, exact: true }).click();
    const dialog = page.getByRole('dialog');
    await poll(() => dialog.isVisible()).toBe(true);
    await dialog.getByRole('button', { name: confirm, exact: true }).click();
    await poll(() => page.getByRole('status').filter({ hasText: message }).isVisible()).toBe(true);
  }

  it('an administrator signs in (password and a code) straight to People', async () => {
    await signInToConsole(page, h.t, admin, '/people', 'People');
    expect(await page.getByRole('link', { name: 'People', exact: true }).getAttribute('aria-current')).toBe('page');
  });

  it('lists people a page at a time, searches by email, and shows hostile names as text; axe clean', async () => {
    const tag = `pg${randomUUID().slice(0, 6)}`;
    for (let index = 0; index < 21; index += 1) {
      await t().build.person({ email: `${tag}-${String(index).padStart(2, '0')}@example.test`, ...(index === 0 ? { name: HOSTILE } : {}) });
    }
    await page.goto(`${t().server.url}/console/people`);
    await poll(() => page.getByRole('heading', { level: 1, name: 'People' }).isVisible()).toBe(true);
    await page.getByLabel('Search by email').fill(tag);
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    const rows = page.getByRole('table').getByRole('row');
    await poll(() => rows.count()).toBe(21); // 20 people and the header row
    await page.getByRole('button', { name: 'Next page' }).click();
    await poll(() => rows.count()).toBe(2);
    await page.getByRole('button', { name: 'First page' }).click();
    await poll(() => rows.count()).toBe(21);
    expect(page.url()).toContain(`email=${tag}`);
    // A hostile name is text: no image was made of it. (Its person is found by email: lists are
    // ordered by id, so it may be on either page.)
    await page.getByLabel('Search by email').fill(`${tag}-00`);
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await poll(() => rows.count()).toBe(2);
    await poll(() => page.getByRole('cell', { name: HOSTILE, exact: true }).isVisible()).toBe(true);
    expect(await page.locator('main img').count()).toBe(0);
    await page.getByLabel('Search by email').fill(`${tag}-07`);
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await poll(() => rows.count()).toBe(2);
    // At a phone's width the rows stack, and stay a table's rows and cells to a screen reader.
    await page.setViewportSize({ width: 375, height: 812 });
    expect(await page.getByRole('table', { name: /People whose email contains/ }).getByRole('row').count()).toBe(2);
    expect(await page.getByRole('cell', { name: `${tag}-07@example.test` }).count()).toBe(1);
    await page.setViewportSize({ width: 1280, height: 900 });
    await checkConsolePage(page, 'people');
  });

  it('creates a person: a refused password is said beside its field, then the person is made with the admin role', async () => {
    await page.goto(`${t().server.url}/console/people`);
    await page.getByRole('button', { name: 'New person' }).click();
    const email = `grace-${randomUUID().slice(0, 6)}@example.test`;
    await page.getByLabel('Email', { exact: true }).fill(email);
    await page.getByLabel('Name (optional)').fill('Grace Hopper');
    await page.getByLabel('Password').fill('short');
    await page.getByLabel(/^Administrator/).check();
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    const password = page.getByLabel('Password');
    await poll(() => password.getAttribute('aria-invalid')).toBe('true');
    const describedBy = (await password.getAttribute('aria-describedby')) ?? '';
    expect(await page.locator(`#${describedBy.split(' ').at(-1)}`).textContent()).toMatch(/at least 12/);
    expect(await db().selectFrom('users').select('id').where('email', '=', email).executeTakeFirst()).toBeUndefined();
    await checkConsolePage(page, 'people-new');

    const secret = `a first password for Grace ${randomUUID()}`;
    recordSecret(secret);
    await password.fill(secret);
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await poll(() => page.getByRole('heading', { level: 1, name: email }).isVisible()).toBe(true);
    const row = await db().selectFrom('users').select(['id', 'name', 'roles']).where('email', '=', email).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ name: 'Grace Hopper', roles: ['admin'] });
    expect(await page.getByLabel(/^admin: may use this console/).isChecked()).toBe(true);
  });

  it('disabling a person refuses their refresh token at the token endpoint; enabling them again is said; axe clean on the page and its dialog', async () => {
    const person = await t().build.person({ email: `alan-${randomUUID().slice(0, 6)}@example.test`, name: 'Alan Turing' });
    const first = await t().build.refreshToken({ client: app, person });
    const before = await refresh(first);
    expect(before.status, JSON.stringify(before.body)).toBe(200);
    const current = String(before.body.refresh_token);
    recordSecret(current);

    await openPerson(person);
    await checkConsolePage(page, 'person');
    await page.getByRole('region', { name: 'Account' }).getByRole('button', { name: 'Disable', exact: true }).click();
    await poll(() => page.getByRole('dialog').isVisible()).toBe(true);
    await checkConsolePage(page, 'person-disable-dialog');
    await page.getByRole('dialog').getByRole('button', { name: 'Disable', exact: true }).click();
    await poll(() => page.getByRole('status').filter({ hasText: 'is disabled' }).isVisible()).toBe(true);
    await poll(() => page.getByRole('region', { name: 'Account' }).getByText('Disabled', { exact: true }).isVisible()).toBe(true);

    const refused = await refresh(current);
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('invalid_grant');

    await confirmAction('Account', 'Enable', 'Enable', /is enabled/);
    await poll(() => page.getByRole('region', { name: 'Account' }).getByText('Active', { exact: true }).isVisible()).toBe(true);
    expect((await db().selectFrom('users').select('disabled').where('id', '=', person.id).executeTakeFirstOrThrow()).disabled).toBe(false);
    // Enabled again, their app's refresh token (kept with the consent) works again.
    const again = await refresh(current);
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    recordSecret(String(again.body.refresh_token));
  });

  it('gives and takes the admin role; an administrator cannot take their own away (said beside the field, nothing changed)', async () => {
    const person = await t().build.person({ email: `roles-${randomUUID().slice(0, 6)}@example.test` });
    await openPerson(person);
    const roles = page.getByRole('region', { name: 'Roles' });
    await roles.getByLabel(/^admin/).check();
    await roles.getByRole('button', { name: 'Save roles' }).click();
    await poll(() => page.getByRole('status').filter({ hasText: 'holds the admin role' }).isVisible()).toBe(true);
    expect((await db().selectFrom('users').select('roles').where('id', '=', person.id).executeTakeFirstOrThrow()).roles).toEqual(['admin']);

    await openPerson(admin);
    const own = page.getByRole('region', { name: 'Roles' });
    await own.getByLabel(/^admin/).uncheck();
    await own.getByRole('button', { name: 'Save roles' }).click();
    await poll(() => own.getByLabel(/^admin/).getAttribute('aria-invalid')).toBe('true');
    expect(await own.getByText(/cannot take away your own admin role/).isVisible()).toBe(true);
    expect((await db().selectFrom('users').select('roles').where('id', '=', admin.id).executeTakeFirstOrThrow()).roles).toEqual(['admin']);
  });

  it('resets a second factor: the authenticator app and recovery codes go, the passkeys stay unless asked', async () => {
    const person = await t().build.person({ email: `mfa-${randomUUID().slice(0, 6)}@example.test` });
    const deps = { ...t().services, dataKeys: await loadDataKeyring(t().config.keysDir, { generateIfMissing: false }) };
    const enrolment = await beginTotpEnrolment(deps, person.id, { issuer: 'Gatehouse' });
    recordSecret(enrolment.secret);
    await confirmTotpEnrolment(deps, { actor: `person:${person.id}` }, person.id, await totpCode(enrolment.secret, -30_000), { startedAt: enrolment.startedAt });

    await openPerson(person);
    const section = page.getByRole('region', { name: 'Second factor' });
    await poll(() => section.getByText('On', { exact: true }).isVisible()).toBe(true);
    await confirmAction('Second factor', 'Reset second factor', 'Reset second factor', /Removed the authenticator app, 10 recovery codes/);
    await poll(() => section.getByText('None', { exact: true }).first().isVisible()).toBe(true);
    expect(await secondFactorStatus(db(), person.id)).toEqual({ totp: 'none', recoveryCodesLeft: 0 });
  });

  it('lists the sessions and sign-ins; Sign out everywhere ends the browser session and refuses the refresh token', async () => {
    const person = await t().build.person({ email: `sessions-${randomUUID().slice(0, 6)}@example.test` });
    const { agent, refreshToken } = await connect(person);
    await openPerson(person);
    const section = page.getByRole('region', { name: 'Sessions' });
    await poll(() => section.getByRole('table', { name: 'Browser sessions' }).getByRole('cell', { name: app.clientId }).isVisible()).toBe(true);
    await poll(() => section.getByRole('table', { name: /Recent sign-ins/ }).getByRole('cell', { name: 'password (pwd)' }).isVisible()).toBe(true);

    await confirmAction('Sessions', 'Sign out everywhere', 'Sign out everywhere', /is signed out everywhere \(1 refresh tokens revoked\)/);
    await poll(() => section.getByText('No browser is signed in as this person.').isVisible()).toBe(true);
    const refused = await refresh(refreshToken);
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('invalid_grant');
    // The browser is signed out at Gatehouse: its account page asks to sign in.
    const { url } = await agent.follow('/account');
    expect(url).not.toBe(`${t().server.url}/account`);
  });

  it('lists the connected apps; Remove access revokes the app’s refresh token', async () => {
    const person = await t().build.person({ email: `apps-${randomUUID().slice(0, 6)}@example.test` });
    const { refreshToken } = await connect(person);
    await openPerson(person);
    const section = page.getByRole('region', { name: 'Connected apps' });
    await poll(() => section.getByRole('cell', { name: /^Photo App/ }).isVisible()).toBe(true);
    expect(await section.getByText(`${api}: read`).isVisible()).toBe(true);
    await confirmAction('Connected apps', 'Remove access for Photo App', 'Remove access', /Access removed for Photo App/);
    await poll(() => section.getByText('No app holds a consent of this person.').isVisible()).toBe(true);
    const refused = await refresh(refreshToken);
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('invalid_grant');
  });

  it('creates an API key shown once (it gets a token at the token endpoint), a bad scope said beside its field, and revokes it', async () => {
    const person = await t().build.person({ email: `keys-${randomUUID().slice(0, 6)}@example.test` });
    await openPerson(person);
    const section = page.getByRole('region', { name: 'API keys' });
    await section.getByLabel('Label').fill('CI deploys');
    await section.getByLabel('API', { exact: true }).selectOption(api);
    await section.getByLabel(/^Scopes/).fill('delete');
    await section.getByRole('button', { name: 'Create API key' }).click();
    await poll(() => section.getByLabel(/^Scopes/).getAttribute('aria-invalid')).toBe('true');

    await section.getByLabel(/^Scopes/).fill('read');
    await section.getByRole('button', { name: 'Create API key' }).click();
    const shown = section.getByLabel('API key', { exact: true });
    await poll(() => shown.isVisible()).toBe(true);
    const apiKey = (await shown.textContent()) ?? '';
    recordSecret(apiKey);
    expect(apiKey).toMatch(/^gk_/);
    const exchange = () =>
      fetch(`${t().server.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: apiKey, subject_token_type: 'urn:gatehouse:params:oauth:token-type:api-key', resource: api }),
      }).then(async (response) => ({ status: response.status, body: (await response.json()) as Record<string, unknown> }));
    const exchanged = await exchange();
    expect(exchanged.status).toBe(200);
    recordSecret(String(exchanged.body.access_token));
    await poll(() => section.getByRole('cell', { name: 'CI deploys', exact: true }).isVisible()).toBe(true);

    await confirmAction('API keys', 'Revoke CI deploys', 'Revoke', /revoked/);
    await poll(() => section.getByText('This person has no API key.').isVisible()).toBe(true);
    expect((await exchange()).status).toBe(400);
  });

  it('an unknown person is said so', async () => {
    await page.goto(`${t().server.url}/console/people/${randomUUID()}`);
    await poll(() => page.getByRole('heading', { level: 1, name: 'No such person' }).isVisible()).toBe(true);
  });
});
