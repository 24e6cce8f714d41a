import { readdir } from 'node:fs/promises';
import { decodeJwt, decodeProtectedHeader, type JSONWebKeySet } from 'jose';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tailAudit } from '../../src/audit/audit-log.js';
import { checkConsolePage, consolePerson, signInToConsole, startConsole, type ConsoleHarness, type ConsolePerson } from '../fixtures/console.js';
import { startFakeOp, type FakeOp } from '../fixtures/fake-op.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { tokenRequest } from '../fixtures/server.js';

const PROVIDER_SECRET = 'console-provider-secret-4411';
const HOSTILE = '<img src=x onerror="window.__pwned=1">';

/**
 * The console's APIs, Upstream providers and Signing keys pages in Chromium, each action end to end
 * through the admin API: register an API and change its scopes and token lifetime (the next token
 * lives that long), see and take away the grants clients hold there; create an upstream provider
 * with its client secret (never shown again) and delete it; rotate the signing keys with an
 * activation delay (the JWKS gains the new key at once, tokens are signed with it after the delay).
 * Errors from the API appear beside their field and change nothing. axe at 375 px, light and dark.
 */
describe('console: APIs, upstream providers and signing keys (chromium)', () => {
  let h: ConsoleHarness;
  let admin: ConsolePerson;
  let page: Page;
  let op: FakeOp;

  const nav = async (name: string) => {
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name, exact: true }).click();
    await expect.poll(() => page.getByRole('heading', { level: 1, name, exact: true }).isVisible(), { message: name }).toBe(true);
  };
  const inDialog = (name: string) => page.getByRole('dialog').getByRole('button', { name, exact: true });
  const status = () => page.getByRole('status');

  beforeAll(async () => {
    recordSecret(PROVIDER_SECRET);
    h = await startConsole({ name: 'console-apis-keys' });
    op = await startFakeOp('gatehouse', PROVIDER_SECRET);
    admin = await consolePerson(h.t);
    page = await (await h.newContext()).newPage();
  });
  afterAll(async () => {
    await op?.close();
    await h?.close();
  });

  it('an administrator signs in at the APIs page', async () => {
    await signInToConsole(page, h.t, admin, '/apis', 'APIs');
  });

  describe('APIs', () => {
    const identifier = 'https://orders.console.example.test';

    it('registers an API from the form; a bad field is refused beside it, and nothing is made', async () => {
      await page.getByLabel('Identifier', { exact: true }).fill('not a url');
      await page.getByLabel('Scopes').fill('read:orders');
      await page.getByRole('button', { name: 'Create', exact: true }).click();
      await expect.poll(() => page.getByLabel('Identifier', { exact: true }).getAttribute('aria-invalid')).toBe('true');
      const describedBy = (await page.getByLabel('Identifier', { exact: true }).getAttribute('aria-describedby')) ?? '';
      expect(await page.locator(`[id="${describedBy.split(' ').at(-1)}"]`).textContent()).toBeTruthy();
      expect((await h.t.cli<Array<{ identifier: string }>>('resources', 'list')).map((r) => r.identifier)).not.toContain('not a url');

      await page.getByLabel('Identifier', { exact: true }).fill(identifier);
      await page.getByLabel('Name (optional)').fill('Orders');
      await page.getByLabel('Scopes').fill('read:orders write:orders');
      await page.getByLabel('Access token lifetime (seconds)').fill('900');
      await page.getByRole('button', { name: 'Create', exact: true }).click();
      await expect.poll(() => page.getByRole('heading', { level: 1, name: 'Orders' }).isVisible()).toBe(true);
      expect(await status().filter({ hasText: 'The API was created.' }).isVisible()).toBe(true);
      const stored = await h.t.cli<{ identifier: string; scope: string; access_token_ttl: number }>('resources', 'get', identifier);
      expect(stored).toMatchObject({ identifier, scope: 'read:orders write:orders', access_token_ttl: 900 });
      const rows = await tailAudit(h.t.server.registry.db, { limit: 1000 });
      expect(rows.filter((row) => row.action === 'resource.create').at(-1)?.actor).toBe(`person:${admin.id}`);
      await checkConsolePage(page, 'api');
    });

    it('changes the token lifetime and scopes (the next token lives that long); a bad lifetime is refused beside its field, nothing saved', async () => {
      const client = await h.t.build.client({ client_name: HOSTILE, grant_types: ['client_credentials'] });
      await h.t.build.grant(client.clientId, identifier, 'read:orders write:orders');
      await h.t.server.cache.refresh();
      const token = async (scope: string) => {
        await h.t.server.cache.refresh();
        const answer = await tokenRequest(h.t.server.url, { grant_type: 'client_credentials', resource: identifier, scope }, client);
        expect(answer.status, JSON.stringify(answer.body)).toBe(200);
        const claims = decodeJwt(String(answer.body.access_token));
        return { lifetime: Number(claims.exp) - Number(claims.iat), scope: claims.scope };
      };
      expect((await token('read:orders')).lifetime).toBe(900);

      await page.getByLabel('Access token lifetime (seconds)').fill('100000');
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await expect.poll(() => page.getByLabel('Access token lifetime (seconds)').getAttribute('aria-invalid')).toBe('true');
      expect(await page.getByText('must be at most 86400 seconds').isVisible()).toBe(true);
      expect((await h.t.cli<{ access_token_ttl: number }>('resources', 'get', identifier)).access_token_ttl).toBe(900);

      await page.getByLabel('Access token lifetime (seconds)').fill('120');
      await page.getByLabel('Scopes').fill('read:orders write:orders admin:orders');
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await expect.poll(() => status().filter({ hasText: 'Saved.' }).isVisible()).toBe(true);
      expect(await h.t.cli<{ scope: string; access_token_ttl: number }>('resources', 'get', identifier)).toMatchObject({ scope: 'read:orders write:orders admin:orders', access_token_ttl: 120 });
      expect(await token('read:orders')).toEqual({ lifetime: 120, scope: 'read:orders' });
    });

    it('shows the grants clients hold there (names escaped), and takes one away after confirmation', async () => {
      await page.reload();
      await expect.poll(() => page.getByRole('heading', { level: 1, name: 'Orders' }).isVisible()).toBe(true);
      const row = page.getByRole('row').filter({ hasText: HOSTILE });
      await expect.poll(() => row.isVisible()).toBe(true);
      expect(await row.textContent()).toContain('read:orders write:orders');
      expect(await page.evaluate('window.__pwned')).toBeUndefined();
      await checkConsolePage(page, 'api-grants');

      await row.getByRole('button', { name: `Remove the grant of ${HOSTILE}` }).click();
      await inDialog('Remove').click();
      await expect.poll(() => page.getByText('No client holds a grant at this API.').isVisible()).toBe(true);
      const [client] = (await h.t.server.registry.db.selectFrom('clients').select('client_id').where('client_name', '=', HOSTILE).execute());
      const grants = await h.t.server.registry.db.selectFrom('client_grants').selectAll().where('client_id', '=', client!.client_id).execute();
      expect(grants).toEqual([]);
    });

    it('lists and searches APIs, and opens one', async () => {
      await nav('APIs');
      await page.getByLabel('Search by identifier or name').fill('orders.console');
      await page.getByRole('button', { name: 'Search', exact: true }).click();
      // The admin API is listed too until the search answers: then only the header row and Orders.
      await expect.poll(() => page.getByRole('table').getByRole('row').count()).toBe(2);
      expect(await page.getByRole('link', { name: 'Orders' }).isVisible()).toBe(true);
      await checkConsolePage(page, 'apis');
      await page.getByRole('link', { name: 'Orders' }).click();
      await expect.poll(() => page.getByRole('heading', { level: 1, name: 'Orders' }).isVisible()).toBe(true);
    });
  });

  describe('Upstream providers', () => {
    it('creates a provider with its client secret (never shown again); a bad issuer is refused beside its field, nothing made', async () => {
      await nav('Upstream providers');
      await expect.poll(() => page.getByText('No upstream provider yet.').isVisible()).toBe(true);
      await page.getByLabel('Name', { exact: true }).fill('Corp SSO');
      await page.getByLabel('Issuer').fill('http://sso.example.test');
      await page.getByLabel('Client ID').fill('gatehouse');
      await page.getByLabel('Client secret').fill(PROVIDER_SECRET);
      await page.getByRole('button', { name: 'Create', exact: true }).click();
      await expect.poll(() => page.getByLabel('Issuer').getAttribute('aria-invalid')).toBe('true');
      expect(await h.t.server.registry.db.selectFrom('upstream_providers').selectAll().execute()).toEqual([]);

      await page.getByLabel('Issuer').fill(op.issuer);
      await page.getByRole('button', { name: 'Create', exact: true }).click();
      await expect.poll(() => status().filter({ hasText: 'Provider Corp SSO (corp-sso) was created.' }).isVisible()).toBe(true);
      const entry = page.getByRole('list', { name: 'Upstream providers' }).getByRole('listitem').filter({ hasText: 'Corp SSO' });
      expect(await entry.textContent()).toMatch(/Client secretStored/);
      expect(await page.getByLabel('Client secret').inputValue()).toBe('');
      expect(await page.content()).not.toContain(PROVIDER_SECRET);
      const [stored] = await h.t.server.registry.db.selectFrom('upstream_providers').selectAll().execute();
      expect(stored).toMatchObject({ id: 'corp-sso', issuer: op.issuer, client_id: 'gatehouse' });
      expect(JSON.stringify(stored)).not.toContain(PROVIDER_SECRET);
      await checkConsolePage(page, 'providers');
    });

    it('deletes a provider after confirmation (Cancel keeps it)', async () => {
      await page.getByRole('button', { name: 'Delete Corp SSO' }).click();
      await inDialog('Cancel').click();
      expect(await h.t.server.registry.db.selectFrom('upstream_providers').selectAll().execute()).toHaveLength(1);
      await page.getByRole('button', { name: 'Delete Corp SSO' }).click();
      await inDialog('Delete').click();
      await expect.poll(() => page.getByText('No upstream provider yet.').isVisible()).toBe(true);
      expect(await h.t.server.registry.db.selectFrom('upstream_providers').selectAll().execute()).toEqual([]);
      const rows = await tailAudit(h.t.server.registry.db, { limit: 1000 });
      expect(rows.filter((r) => r.target === 'provider:corp-sso').map((r) => [r.action, r.actor])).toEqual([
        ['provider.create', `person:${admin.id}`],
        ['provider.delete', `person:${admin.id}`],
      ]);
      expect(h.t.logs.text()).not.toContain(PROVIDER_SECRET);
    });
  });

  describe('Signing keys', () => {
    const jwks = async () => (await (await fetch(`${h.t.server.url}/jwks`)).json()) as JSONWebKeySet;
    const keyFiles = async () => (await readdir(h.t.config.keysDir)).filter((name) => name.endsWith('.json')).sort();

    it('lists the keys with their state and age; a bad delay is refused beside its field, nothing changed', async () => {
      await nav('Signing keys');
      const entries = page.getByRole('list', { name: 'Signing keys' }).getByRole('listitem');
      await expect.poll(() => entries.count()).toBe(2);
      expect(await page.getByText('2 keys').isVisible()).toBe(true);
      for (const { kid } of (await jwks()).keys) expect(await page.locator(`li[data-kid="${kid}"]`).textContent()).toMatch(/Active, signing now/);
      await checkConsolePage(page, 'keys');

      const before = await keyFiles();
      await page.getByLabel('Activation delay (seconds)').fill('-5');
      await page.getByRole('button', { name: 'Rotate', exact: true }).click();
      await inDialog('Rotate').click();
      await expect.poll(() => page.getByLabel('Activation delay (seconds)').getAttribute('aria-invalid')).toBe('true');
      expect(await page.getByText('must be 0 (at once, as after a leak) or more seconds').isVisible()).toBe(true);
      expect(await keyFiles()).toEqual(before);
    });

    it('rotates with an activation delay: the JWKS gains the new key at once, tokens are signed with it after the delay', async () => {
      const service = await h.t.build.serviceClient();
      await h.t.server.cache.refresh();
      const kidOfToken = async () => {
        const answer = await tokenRequest(h.t.server.url, { grant_type: 'client_credentials', scope: 'read' }, service);
        expect(answer.status).toBe(200);
        return decodeProtectedHeader(String(answer.body.access_token)).kid;
      };
      const oldKid = await kidOfToken();
      const before = new Set((await jwks()).keys.map((key) => key.kid));

      await page.getByLabel('Activation delay (seconds)').fill('4');
      await page.getByRole('button', { name: 'Rotate', exact: true }).click();
      await inDialog('Rotate').click();
      const notice = status().filter({ hasText: 'is published now' });
      await expect.poll(() => notice.isVisible()).toBe(true);
      const asked = Date.now();
      const newKid = /New signing key (\S+) is published/.exec((await notice.textContent()) ?? '')?.[1];
      expect(newKid).toBeTruthy();
      expect(before.has(newKid!)).toBe(false);
      // Published at once (this node reloaded before answering); the page lists it as pending, not signing.
      expect((await jwks()).keys.map((key) => key.kid)).toContain(newKid);
      await expect.poll(() => page.locator(`li[data-kid="${newKid}"]`).textContent()).toMatch(/Pending/);
      expect(await page.locator(`li[data-kid="${newKid}"]`).textContent()).not.toMatch(/signing now/);
      if (Date.now() < asked + 3000) expect(await kidOfToken()).toBe(oldKid);

      await expect.poll(kidOfToken, { timeout: 15_000, interval: 200 }).toBe(newKid);
      const audit = (await tailAudit(h.t.server.registry.db, { limit: 1000 })).filter((row) => row.action === 'keys.rotate');
      expect(audit.at(-1)).toMatchObject({ actor: `person:${admin.id}`, target: `key:${newKid}` });
      await page.reload();
      await expect.poll(() => page.locator(`li[data-kid="${newKid}"]`).textContent()).toMatch(/Active, signing now/);
      expect(await page.locator(`li[data-kid="${oldKid}"]`).textContent()).toMatch(/Retired/);
      await checkConsolePage(page, 'keys-rotated');
    });
  });
});
