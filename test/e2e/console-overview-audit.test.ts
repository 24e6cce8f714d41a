import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findAudit, type AuditRecord } from '../../src/audit/audit-log.js';
import { keyState, loadKeys } from '../../src/keys/key-store.js';
import { checkConsolePage, consolePerson, consoleSession, signInToConsole, startConsole, type ConsoleHarness, type ConsolePerson, type ConsoleSession } from '../fixtures/console.js';
import { tokenRequest } from '../fixtures/server.js';

/**
 * The console's Overview and Audit log pages in Chromium (issue 19, part 4): the overview's figures
 * are the registry's, the audit log filters by actor, action, entity and time and pages, a bad filter
 * value is named beside its field; both pages pass axe at 375 px in light and dark mode.
 */
describe('console: Overview and Audit log', () => {
  let h: ConsoleHarness;
  /** Signed in in the browser. */
  let admin: ConsolePerson;
  /** Another administrator, whose changes through the admin API (no browser) the audit log shows as person:<id>. */
  let author: ConsolePerson;
  let session: ConsoleSession;
  let context: BrowserContext;
  let page: Page;

  const nav = async (name: string) => {
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name, exact: true }).click();
    await expect.poll(() => page.getByRole('heading', { level: 1, name, exact: true }).isVisible()).toBe(true);
  };
  /** The figure of one card in a list of cards. */
  const figure = async (list: string, label: string) => Number((await page.getByRole('list', { name: list }).getByRole('listitem').filter({ hasText: label }).locator('.figure').textContent())?.replace(/,/g, ''));
  const count = async (table: 'clients' | 'resource_servers' | 'users' | 'upstream_providers') =>
    Number((await h.t.server.registry.db.selectFrom(table).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);

  /** Waits until the rows shown answer the page's URL (or the API refused the filter). */
  async function settled(): Promise<void> {
    await expect
      .poll(async () => {
        const query = new URLSearchParams(new URL(page.url()).search).toString();
        const results = page.locator('.results');
        return ((await results.getAttribute('data-for')) === query && (await results.getAttribute('aria-busy')) === 'false') || (await page.locator('input[aria-invalid="true"]').count()) > 0;
      })
      .toBe(true);
  }

  /** The audit table's rows as shown: seq, actor, action, entity. */
  async function shownRows(): Promise<Array<{ seq: number; actor: string; action: string; target: string }>> {
    await settled();
    return page.locator('table.audit tbody tr').evaluateAll((rows) =>
      rows.map((row) => {
        const text = (selector: string) => row.querySelector(selector)?.textContent?.trim() ?? '';
        return { seq: Number(text('.seq')), actor: text('.actor'), action: text('.action'), target: text('td.target') };
      }),
    );
  }

  /** Fills the filter form (every field: empty ones cleared) and submits it; waits for the table or "No entries". */
  async function filter(values: Partial<Record<'Actor' | 'Action' | 'Entity type' | 'Entity id' | 'Since' | 'Until', string>>) {
    const form = page.getByRole('form', { name: 'Filter the audit log' });
    for (const label of ['Actor', 'Action', 'Entity type', 'Entity id', 'Since', 'Until'] as const) await form.getByLabel(label, { exact: true }).fill(values[label] ?? '');
    await form.getByRole('button', { name: 'Filter', exact: true }).click();
    await page.waitForURL((url) => url.pathname === '/console/audit');
    await settled();
  }

  const rowsOf = (records: AuditRecord[]) => records.map((r) => ({ seq: r.seq, actor: r.actor, action: r.action, target: r.target ?? '–' }));

  beforeAll(async () => {
    h = await startConsole({ name: 'console-overview-audit' });
    admin = await consolePerson(h.t);
    // A person of their own: a TOTP code is used once, and the browser's sign-in needs one in the same 30 s.
    author = await consolePerson(h.t);
    session = await consoleSession(h.t, author);
    context = await h.newContext();
    page = await context.newPage();
  });
  afterAll(async () => {
    await context?.close();
    await h?.close();
  });

  it('shows the registry\'s counts, the key that signs, the tokens issued in the last hour and the audit chain verified', async () => {
    await signInToConsole(page, h.t, admin);
    await h.t.build.resource();
    await h.t.build.client({ client_name: 'overview counted' });
    await nav('Clients');
    await nav('Overview');
    await expect.poll(() => page.getByRole('list', { name: 'Registry' }).isVisible()).toBe(true);
    expect(await figure('Registry', 'Clients')).toBe(await count('clients'));
    expect(await figure('Registry', 'APIs')).toBe(await count('resource_servers'));
    expect(await figure('Registry', 'People')).toBe(await count('users'));
    expect(await figure('Registry', 'Upstream providers')).toBe(await count('upstream_providers'));

    const keys = await loadKeys(h.t.config.keysDir);
    const signer = keys.filter((key) => keyState(key) === 'active' && !key.profile).sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt))[0]!;
    expect(await page.locator('dl.facts').first().textContent()).toContain(signer.kid);

    // Two tokens by client credentials, and a refused request: the figure grows by two.
    const before = await figure('Tokens issued', 'Counted by the server');
    const service = await h.t.serviceClient();
    for (let i = 0; i < 2; i += 1) expect((await tokenRequest(h.t.server.url, { grant_type: 'client_credentials', resource: service.resource }, service)).status).toBe(200);
    expect((await tokenRequest(h.t.server.url, { grant_type: 'client_credentials', resource: service.resource }, { ...service, clientSecret: 'wrong' })).status).toBe(401);
    await nav('Clients');
    await nav('Overview');
    await expect.poll(() => figure('Tokens issued', 'Counted by the server')).toBe(before + 2);

    const verification = (await (await session.call('GET', '/audit/verification')).json()) as { ok: boolean; rows: number };
    expect(verification.ok).toBe(true);
    const chain = page.getByRole('status').filter({ hasText: 'Audit chain verified' });
    expect(await chain.isVisible()).toBe(true);
    expect(await chain.textContent()).toContain(`All ${verification.rows.toLocaleString('en-US')} entries check out`);
    await checkConsolePage(page, 'overview');
  });

  describe('audit log', () => {
    let clientA: string;
    let clientB: string;

    beforeAll(async () => {
      // Changes by the signed-in person (person:<id>) through the admin API, and by the test set-up (test:fixture).
      const created = await session.call('POST', '/clients', { client_name: 'audit A <img src=x onerror=alert(1)>', grant_types: ['client_credentials'] });
      expect(created.status).toBe(201);
      clientA = String(((await created.json()) as { client_id: string }).client_id);
      expect((await session.call('PATCH', `/clients/${clientA}`, { client_name: 'audit A renamed' })).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 20));
      const second = await session.call('POST', '/clients', { client_name: 'audit B', grant_types: ['client_credentials'] });
      clientB = String(((await second.json()) as { client_id: string }).client_id);
      // More than a page (50) of client.create rows by the set-up, for paging.
      for (let i = 0; i < 52; i += 1) await h.t.build.client({ client_name: `paged ${i}` });
    });

    it('shows the chain\'s verification and the newest entries first', async () => {
      await nav('Audit log');
      await expect.poll(() => page.getByRole('status').filter({ hasText: 'Audit chain verified' }).isVisible(), { timeout: 15_000 }).toBe(true);
      const rows = await shownRows();
      expect(rows).toHaveLength(50);
      const newest = await findAudit(h.t.server.registry.db, {}, { order: 'desc', limit: 50 });
      expect(rows).toEqual(rowsOf(newest));
    });

    it('filters by actor, action and entity, and shows only matching rows', async () => {
      const person = `person:${author.id}`;
      await filter({ Actor: person });
      let rows = await shownRows();
      expect(rows.length).toBeGreaterThanOrEqual(3);
      for (const row of rows) expect(row.actor).toBe(person);
      expect(rows).toEqual(rowsOf(await findAudit(h.t.server.registry.db, { actor: person }, { order: 'desc', limit: 50 })));
      expect(new URL(page.url()).searchParams.get('actor')).toBe(person);

      await filter({ Action: 'client.*', Actor: person });
      rows = await shownRows();
      expect(rows.map((row) => [row.action, row.target])).toEqual([
        ['client.create', `client:${clientB}`],
        ['client.update', `client:${clientA}`],
        ['client.create', `client:${clientA}`],
      ]);

      await filter({ 'Entity type': 'client', 'Entity id': clientA });
      rows = await shownRows();
      expect(rows.map((row) => row.action)).toEqual(['client.update', 'client.create']);
      // The hostile name is shown as text in the entry's details, never as markup.
      await page.locator('table.audit tbody tr').last().getByText('Details').click();
      expect(await page.locator('table.audit pre.json').last().textContent()).toContain('<img src=x onerror=alert(1)>');
      expect(await page.locator('table.audit img').count()).toBe(0);

      // An entity's link filters to that entity; an actor's link to that actor.
      await page.getByRole('link', { name: `client:${clientA}` }).first().click();
      await expect.poll(() => new URL(page.url()).searchParams.get('entity_id')).toBe(clientA);
      expect(await page.getByLabel('Entity type', { exact: true }).inputValue()).toBe('client');
    });

    it('filters by time: since (inclusive) and until (exclusive)', async () => {
      const [aCreate, , bCreate] = await findAudit(h.t.server.registry.db, { actor: `person:${author.id}`, action: 'client.*' }, { order: 'asc', limit: 3 });
      await filter({ Action: 'client.*', Actor: `person:${author.id}`, Since: bCreate!.at.toISOString() });
      expect((await shownRows()).map((row) => row.target)).toEqual([`client:${clientB}`]);
      await filter({ Action: 'client.*', Actor: `person:${author.id}`, Since: aCreate!.at.toISOString(), Until: bCreate!.at.toISOString() });
      expect((await shownRows()).map((row) => row.action)).toEqual(['client.update', 'client.create']);
    });

    it('pages through a filter: every row once, then back to the first page', async () => {
      await filter({ Actor: 'test:fixture', Action: 'client.create' });
      const all = rowsOf(await findAudit(h.t.server.registry.db, { actor: 'test:fixture', action: 'client.create' }, { order: 'desc', limit: 1000 }));
      expect(all.length).toBeGreaterThan(50);
      const first = await shownRows();
      expect(first).toEqual(all.slice(0, 50));
      const pager = page.getByRole('navigation', { name: 'Audit log pages' });
      await pager.getByRole('button', { name: 'Next page' }).click();
      await expect.poll(async () => (await shownRows())[0]?.seq).toBe(all[50]?.seq);
      expect(await shownRows()).toEqual(all.slice(50, 100));
      await checkConsolePage(page, 'audit');
      await pager.getByRole('button', { name: 'First page' }).click();
      await expect.poll(async () => (await shownRows())[0]?.seq).toBe(all[0]?.seq);
      // Oldest first: the same rows the other way round.
      await page.getByRole('button', { name: 'Oldest first' }).click();
      await expect.poll(async () => (await shownRows())[0]?.seq).toBe(all.at(-1)?.seq);
    });

    it('names a bad filter value beside its field, and shows no rows for it', async () => {
      await filter({ Actor: 'not an actor', Since: 'yesterday' });
      const actor = page.getByLabel('Actor', { exact: true });
      await expect.poll(() => actor.getAttribute('aria-invalid')).toBe('true');
      const errorId = (await actor.getAttribute('aria-describedby'))?.split(' ').find((id) => id.endsWith('-error'));
      expect(await page.locator(`#${errorId}`).textContent()).toMatch(/must be an actor/);
      expect(await page.getByLabel('Since', { exact: true }).getAttribute('aria-invalid')).toBe('true');
      expect(await page.locator('table.audit').count()).toBe(0);
      await checkConsolePage(page, 'audit-invalid-filter');
    });
  });
});
