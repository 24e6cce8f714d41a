import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tailAudit } from '../../src/audit/audit-log.js';
import { checkConsolePage, consolePerson, consoleSession, signInToConsole, startConsole, type ConsoleHarness, type ConsoleSession } from '../fixtures/console.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { tokenRequest } from '../fixtures/server.js';

/**
 * The console's Clients pages in Chromium (issue 19): create a client and use its secret at the token
 * endpoint; change its grant and see the next token's scope change; rotate its secret (the old one
 * refused); delete it; hostile names and URIs shown as text; a save over a stale version refused
 * with "changed by someone else" and nothing overwritten; axe-core at 375 px in light and dark mode.
 */

const ORDERS = 'https://orders.example.test';
const HOSTILE_NAME = '<img src=x onerror=alert(1)>';
const HOSTILE_REDIRECT = 'https://app.example.test/cb?next="><script>alert(1)</script>';

const scopeOf = (token: unknown) => (JSON.parse(Buffer.from(String(token).split('.')[1] ?? '', 'base64url').toString()) as { scope?: string }).scope;

describe('the Clients pages of the console (chromium)', () => {
  let h: ConsoleHarness;
  let page: Page;
  let session: ConsoleSession;
  let adminId: string;
  let signIn: () => Promise<void>;
  /** Script dialogs opened by any page: a hostile name or URI run as markup would open one. */
  const dialogs: string[] = [];
  /** The client made in the console, and its secret (as it was shown). */
  const made = { id: '', secret: '' };

  /** A client credentials token for the client's default API with these scopes (its grant's, or refused with invalid_scope). */
  const token = (scope: string, secret = made.secret) =>
    tokenRequest(h.t.server.url, { grant_type: 'client_credentials', scope }, { clientId: made.id, clientSecret: secret }, h.t.fetch);
  const heading = (name: string) => page.getByRole('heading', { level: 1, name, exact: true });
  const api = async (method: string, path: string, body?: unknown) => {
    const response = await session.call(method, path, body);
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: (text ? JSON.parse(text) : undefined) as Record<string, unknown> };
  };

  beforeAll(async () => {
    h = await startConsole({ name: 'console-clients' });
    const admin = await consolePerson(h.t, { email: 'ada@example.test', name: 'Ada Lovelace' });
    adminId = admin.id;
    // Another administrator changes things through the API meanwhile (a TOTP code is good once, so not the same person).
    session = await consoleSession(h.t, await consolePerson(h.t, { email: 'grace@example.test', name: 'Grace Hopper' }));
    await h.t.build.resource({ identifier: ORDERS, name: 'Orders', scope: 'read write' });
    // Clients there before: the list has rows to show.
    await h.t.build.client({ client_name: 'Billing service', grant_types: ['client_credentials'] });
    await h.t.build.client({ client_name: 'Reports web app', redirect_uris: ['https://reports.example.test/callback'], grant_types: ['authorization_code', 'refresh_token'] });
    const context = await h.newContext();
    page = await context.newPage();
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    signIn = () => signInToConsole(page, h.t, admin, '/clients', 'Clients');
  }, 120_000);
  afterAll(async () => {
    await h?.close();
  }, 60_000);

  it('creates a service client from the form, shows its secret once with a copy button, and the secret gets a token with the granted scope', async () => {
    await signIn();
    await expect.poll(() => page.getByRole('link', { name: 'Reports web app', exact: true }).isVisible()).toBe(true);
    expect(await page.locator('main table tbody tr').count()).toBe(2);
    await checkConsolePage(page, 'clients');
    await page.getByRole('button', { name: 'New client' }).click();
    await expect.poll(() => heading('New client').isVisible()).toBe(true);
    await checkConsolePage(page, 'client-new');

    // A public client cannot take client credentials: the form withholds it, and says why.
    await page.getByLabel('Single-page or native app', { exact: true }).check();
    const clientCredentials = page.getByRole('checkbox', { name: 'Client credentials (a service acting for itself)' });
    expect(await clientCredentials.isDisabled()).toBe(true);
    expect(await page.getByText('A public client cannot use client credentials').isVisible()).toBe(true);

    await page.getByLabel('Service', { exact: true }).check();
    expect(await clientCredentials.isChecked()).toBe(true);
    expect(await page.getByRole('group', { name: 'Redirect URIs' }).count()).toBe(0);
    await page.getByLabel('Name', { exact: true }).fill('Orders service');
    await page.getByRole('checkbox', { name: `Orders (${ORDERS})` }).check();
    await page.getByRole('checkbox', { name: 'write', exact: true }).uncheck();
    expect(await page.getByLabel('Default API').inputValue()).toBe(ORDERS);
    await page.getByRole('button', { name: 'Create', exact: true }).click();

    await expect.poll(() => heading('Client created').isVisible()).toBe(true);
    const secret = (await page.getByLabel('Client secret', { exact: true }).textContent())?.trim() ?? '';
    recordSecret(secret);
    expect(secret).toMatch(/^[\w-]{40,}$/);
    await page.getByRole('button', { name: 'Copy client secret' }).click();
    await expect.poll(() => page.getByText('Copied.').isVisible()).toBe(true);
    expect(await page.evaluate('navigator.clipboard.readText()')).toBe(secret);
    const href = (await page.getByRole('link', { name: 'Open the client' }).getAttribute('href')) ?? '';
    made.id = decodeURIComponent(href.replace('/console/clients/', ''));
    made.secret = secret;
    await checkConsolePage(page, 'client-created');

    const issued = await token('read');
    expect(issued.status).toBe(200);
    expect(scopeOf(issued.body.access_token)).toBe('read');
    expect((await token('read write')).body.error).toBe('invalid_scope');
    // Made by the person, and audited as them.
    const rows = await tailAudit(h.t.server.registry.db, { limit: 1000 });
    expect(rows.find((row) => row.action === 'client.create' && row.target === `client:${made.id}`)?.actor).toBe(`person:${adminId}`);

    // The secret is shown this once: the client's page does not have it.
    await page.getByRole('link', { name: 'Open the client' }).click();
    await expect.poll(() => heading('Orders service').isVisible()).toBe(true);
    expect(await page.getByLabel('Client secret', { exact: true }).count()).toBe(0);
    expect(await page.content()).not.toContain(secret);
  }, 120_000);

  it('changes the grant on the client’s page, and the next token carries the new scopes', async () => {
    await checkConsolePage(page, 'client');
    const grant = page.locator('.card').filter({ has: page.getByRole('heading', { level: 3, name: `Orders (${ORDERS})` }) });
    await grant.getByRole('checkbox', { name: 'write', exact: true }).check();
    await page.getByRole('button', { name: `Save scopes at ${ORDERS}` }).click();
    await expect.poll(() => page.getByText(`The grant at ${ORDERS} was saved.`).isVisible()).toBe(true);
    expect(scopeOf((await token('read write')).body.access_token)).toBe('read write');

    await grant.getByRole('checkbox', { name: 'read', exact: true }).uncheck();
    await page.getByRole('button', { name: `Save scopes at ${ORDERS}` }).click();
    await expect.poll(async () => (await api('GET', `/clients/${made.id}`)).body.grants).toEqual([{ resource: ORDERS, scope: 'write' }]);
    expect((await token('read')).body.error).toBe('invalid_scope');
    expect(scopeOf((await token('write')).body.access_token)).toBe('write');

    // Someone else renames the client meanwhile: the next grant change carries that into the form
    // (the person had not touched the name), and a save of another setting does not undo it.
    expect((await api('PATCH', `/clients/${made.id}`, { client_name: 'Orders service (renamed by Grace)' })).status).toBe(200);
    await grant.getByRole('checkbox', { name: 'read', exact: true }).check();
    await page.getByRole('button', { name: `Save scopes at ${ORDERS}` }).click();
    await expect.poll(() => page.getByLabel('Name', { exact: true }).inputValue()).toBe('Orders service (renamed by Grace)');
    await page.getByLabel('Logo URL').fill('https://orders.example.test/logo.png');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await expect.poll(async () => (await api('GET', `/clients/${made.id}`)).body.logo_uri).toBe('https://orders.example.test/logo.png');
    expect((await api('GET', `/clients/${made.id}`)).body).toMatchObject({ client_name: 'Orders service (renamed by Grace)', grants: [{ resource: ORDERS, scope: 'read write' }] });
  }, 120_000);

  it('rotates the secret after a confirmation: the new one is shown once and works, the old one is refused', async () => {
    await page.getByRole('button', { name: 'Rotate secret' }).click();
    const dialog = page.getByRole('dialog', { name: 'Rotate the secret?' });
    await expect.poll(() => dialog.isVisible()).toBe(true);
    await dialog.getByRole('button', { name: 'Rotate secret' }).click();
    await expect.poll(() => page.getByLabel('Client secret', { exact: true }).isVisible()).toBe(true);
    const rotated = (await page.getByLabel('Client secret', { exact: true }).textContent())?.trim() ?? '';
    recordSecret(rotated);
    expect(rotated).toMatch(/^[\w-]{40,}$/);
    expect(rotated).not.toBe(made.secret);
    expect((await token('write', made.secret)).status).toBe(401);
    expect((await token('write', rotated)).status).toBe(200);
    made.secret = rotated;
  }, 120_000);

  it('refuses a save over a version someone else changed meanwhile: "changed by someone else", Reload, nothing overwritten', async () => {
    // The page holds the version after the rotation (its answer's ETag): a save now would be accepted.
    await page.getByLabel('Name', { exact: true }).fill('Renamed in the console');
    const changed = await api('PATCH', `/clients/${made.id}`, { client_name: 'Renamed through the API' });
    expect(changed.status).toBe(200);
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    const stale = page.getByRole('alert').filter({ hasText: 'changed by someone else' });
    await expect.poll(() => stale.isVisible()).toBe(true);
    expect((await api('GET', `/clients/${made.id}`)).body.client_name).toBe('Renamed through the API');
    await checkConsolePage(page, 'client-stale');
    await stale.getByRole('button', { name: 'Reload' }).click();
    await expect.poll(() => heading('Renamed through the API').isVisible()).toBe(true);
    expect(await page.getByLabel('Name', { exact: true }).inputValue()).toBe('Renamed through the API');

    // Saved over the version now read, the change is made.
    await page.getByLabel('Name', { exact: true }).fill('Orders service');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await expect.poll(() => heading('Orders service').isVisible()).toBe(true);
    expect((await api('GET', `/clients/${made.id}`)).body.client_name).toBe('Orders service');
  }, 120_000);

  it('shows hostile names and URIs as text; a javascript: URI is refused beside its field, by the form and by the API', async () => {
    const refused = await api('POST', '/clients', { client_name: 'x', redirect_uris: ['javascript:alert(1)'] });
    expect(refused.status).toBe(400);
    expect(refused.body.errors).toEqual([{ field: 'redirect_uris.0', message: 'must use https (or http on a loopback address)' }]);
    const hostile = await api('POST', '/clients', { client_name: HOSTILE_NAME, redirect_uris: [HOSTILE_REDIRECT], token_endpoint_auth_method: 'none' });
    expect(hostile.status).toBe(201);
    const hostileId = String(hostile.body.client_id);

    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Clients', exact: true }).click();
    await page.getByLabel('Search by name or client ID').fill('onerror');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    const link = page.getByRole('link', { name: HOSTILE_NAME, exact: true });
    await expect.poll(() => page.getByText('Clients matching “onerror”').isVisible()).toBe(true);
    await expect.poll(() => link.isVisible()).toBe(true);
    expect(await page.locator('main table tbody tr').count()).toBe(1);
    expect(await page.locator('main img').count()).toBe(0);
    // The search box finds a client by its whole client ID too.
    await page.getByLabel('Search by name or client ID').fill(made.id);
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await expect.poll(() => page.getByText(`Clients matching “${made.id}”`).isVisible()).toBe(true);
    await expect.poll(() => page.getByRole('link', { name: 'Orders service', exact: true }).isVisible()).toBe(true);
    expect(await page.locator('main table tbody tr').count()).toBe(1);

    await page.goto(`${h.t.server.url}/console/clients/${encodeURIComponent(hostileId)}`);
    await expect.poll(() => heading(HOSTILE_NAME).isVisible()).toBe(true);
    expect(await page.getByRole('textbox', { name: 'Redirect URI 1' }).inputValue()).toBe(HOSTILE_REDIRECT);
    expect(await page.locator('main img, main script').count()).toBe(0);

    await page.getByRole('textbox', { name: 'Redirect URI 1' }).fill('javascript:alert(1)');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    const field = page.getByRole('textbox', { name: 'Redirect URI 1' });
    await expect.poll(() => field.getAttribute('aria-invalid')).toBe('true');
    const describedBy = (await field.getAttribute('aria-describedby')) ?? '';
    expect(await page.locator(`[id="${describedBy}"]`).textContent()).toBe('must use https (or http on a loopback address)');
    expect((await api('GET', `/clients/${hostileId}`)).body.redirect_uris).toEqual([HOSTILE_REDIRECT]);
    await checkConsolePage(page, 'client-field-error');
  }, 120_000);

  it('shows the API’s own field errors beside their field (an API deleted while the form was open)', async () => {
    const gone = 'https://gone.example.test';
    await h.t.build.resource({ identifier: gone, name: 'Gone', scope: 'read' });
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Clients', exact: true }).click();
    await page.getByRole('button', { name: 'New client' }).click();
    await page.getByLabel('Service', { exact: true }).check();
    await page.getByLabel('Name', { exact: true }).fill('Too late');
    const checkbox = page.getByRole('checkbox', { name: `Gone (${gone})` });
    await checkbox.check();
    expect((await api('DELETE', `/resources/${encodeURIComponent(gone)}`)).status).toBe(204);
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await expect.poll(() => checkbox.getAttribute('aria-invalid')).toBe('true');
    const describedBy = (await checkbox.getAttribute('aria-describedby')) ?? '';
    expect(await page.locator(`[id="${describedBy}"]`).textContent()).toContain(`${gone} is not a registered resource server`);
    expect(((await api('GET', '/clients?q=Too%20late')).body.data as unknown[]).length).toBe(0);
  }, 120_000);

  it('names what is missing beside each field before anything is sent; a public app gets no secret', async () => {
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Clients', exact: true }).click();
    await page.getByRole('button', { name: 'New client' }).click();
    await page.getByLabel('Single-page or native app', { exact: true }).check();
    const before = ((await api('GET', '/clients?limit=200')).body.data as unknown[]).length;
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    const name = page.getByLabel('Name', { exact: true });
    await expect.poll(() => name.getAttribute('aria-invalid')).toBe('true');
    // The focus goes to the first field to fix; the missing redirect URI is named beside its group.
    await expect.poll(() => page.evaluate('document.activeElement?.id')).toBe(await name.getAttribute('id'));
    expect(await page.getByRole('group', { name: 'Redirect URIs' }).getByText('authorization code needs at least one redirect URI').isVisible()).toBe(true);
    expect(((await api('GET', '/clients?limit=200')).body.data as unknown[]).length).toBe(before);

    await name.fill('Orders app');
    await page.getByRole('textbox', { name: 'Redirect URI 1' }).fill('http://localhost:5173/callback');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await expect.poll(() => heading('Client created').isVisible()).toBe(true);
    expect(await page.getByText('This client authenticates without a client secret.').isVisible()).toBe(true);
    expect(await page.getByLabel('Client secret', { exact: true }).count()).toBe(0);
    const found = (await api('GET', '/clients?q=Orders%20app')).body.data as Array<Record<string, unknown>>;
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      redirect_uris: ['http://localhost:5173/callback'],
      scope: 'openid profile email',
    });
  }, 120_000);

  it('deletes the client after a confirmation: gone from the API, and its secret gets no token', async () => {
    await page.goto(`${h.t.server.url}/console/clients/${encodeURIComponent(made.id)}`);
    await expect.poll(() => heading('Orders service').isVisible()).toBe(true);
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete this client?' });
    await expect.poll(() => dialog.isVisible()).toBe(true);
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    expect((await api('GET', `/clients/${made.id}`)).status).toBe(200);
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    await dialog.getByRole('button', { name: 'Delete', exact: true }).click();
    await expect.poll(() => heading('Clients').isVisible()).toBe(true);
    expect((await api('GET', `/clients/${made.id}`)).status).toBe(404);
    expect((await token('write')).status).toBe(401);
    // No page opened a script dialog: nothing hostile ran.
    expect(dialogs).toEqual([]);
  }, 120_000);
});
