import { randomUUID } from 'node:crypto';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDataKeyring } from '../../src/keys/data-key.js';
import { keyState, loadKeys } from '../../src/keys/key-store.js';
import { createProvider } from '../../src/services/upstream-providers.service.js';
import { createUser, updateUserFields } from '../../src/services/users.service.js';
import { consolePerson, consoleSession } from '../fixtures/console.js';
import { TEST_ACTOR } from '../fixtures/services.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';

type Json = Record<string, unknown>;
type Entry = { seq: number; at: string; actor: string; action: string; target: string | null };

/**
 * GET /admin/v1/overview, GET /admin/v1/audit with its filters, GET /admin/v1/audit/verification:
 * in this process (no socket), every answer checked against its declaration in test mode and against
 * the OpenAPI document here; figures compared with the registry as the list endpoints and the keys
 * directory give it.
 */
describe('admin API: overview and audit log', () => {
  let t: TestServer;
  let base: string;
  let token: string;
  let adminActor: string;
  let validate: (path: string, method: string, status: number, body: unknown) => void;

  async function call(path: string, options: { token?: string | null } = {}) {
    const bearer = options.token === undefined ? token : options.token;
    const response = await t.fetch(`${base}/admin/v1${path}`, { headers: bearer ? { authorization: `Bearer ${bearer}` } : {} });
    const text = await response.text();
    return { status: response.status, type: response.headers.get('content-type') ?? '', headers: response.headers, body: (text ? JSON.parse(text) : undefined) as Json };
  }

  /** Every entry the filter gives, page by page. */
  async function all(query: string, limit = 200): Promise<Entry[]> {
    const entries: Entry[] = [];
    let cursor: string | null = null;
    do {
      const page = await call(`/audit?limit=${limit}${query ? `&${query}` : ''}${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status, query).toBe(200);
      validate('/audit', 'get', 200, page.body);
      entries.push(...(page.body.data as Entry[]));
      cursor = page.body.next_cursor as string | null;
    } while (cursor);
    return entries;
  }

  /** How many entries a list endpoint holds, read page by page. */
  async function listed(path: string): Promise<number> {
    let count = 0;
    let cursor: string | null = null;
    do {
      const page = await call(`${path}?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(page.status).toBe(200);
      count += (page.body.data as unknown[]).length;
      cursor = (page.body.next_cursor as string | null | undefined) ?? null;
    } while (cursor);
    return count;
  }

  async function adminClientToken(scope?: string) {
    const admin = await t.build.client({ client_name: `admin ${randomUUID()}`, admin: true });
    await t.server.cache.refresh();
    const answer = await tokenRequest(base, { grant_type: 'client_credentials', ...(scope ? { scope } : {}) }, admin, t.fetch);
    expect(answer.status).toBe(200);
    return { token: String(answer.body.access_token), clientId: admin.clientId };
  }

  beforeAll(async () => {
    t = await startTestServer({ name: 'admin-overview-audit', listen: false });
    base = t.config.issuer;
    const admin = await adminClientToken('admin');
    token = admin.token;
    adminActor = `admin:${admin.clientId}`;
    const openapi = (await (await t.fetch(`${base}/admin/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: { $ref: string } }> }> }>> };
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats.default(ajv);
    ajv.addSchema(openapi as unknown as object, 'openapi.json');
    validate = (path, method, status, body) => {
      const content = openapi.paths[path]?.[method]?.responses[String(status)]?.content;
      expect(content, `${method} ${path} documents ${status}`).toBeDefined();
      const check = ajv.getSchema(`openapi.json${Object.values(content ?? {})[0]?.schema.$ref ?? ''}`);
      expect(check!(body), `${method} ${path} ${status}: ${JSON.stringify(check!.errors)}`).toBe(true);
    };
  });
  afterAll(() => t?.close());

  describe('overview', () => {
    it('counts what the registry holds, as its lists give it', async () => {
      await t.build.resource();
      await t.build.client({ client_name: 'counted' });
      const person = await t.build.person();
      await updateUserFields(t.services, TEST_ACTOR, person.id, { disabled: true });
      const dataKeys = await loadDataKeyring(t.config.keysDir, { generateIfMissing: false });
      await createProvider({ ...t.services, dataKeys, production: false, checkIssuer: () => Promise.resolve() }, TEST_ACTOR, {
        id: `corp-${randomUUID().slice(0, 8)}`,
        name: 'Corp',
        issuer: 'https://idp.example.test',
        client_id: 'gatehouse',
      });

      const overview = await call('/overview');
      expect(overview.status).toBe(200);
      validate('/overview', 'get', 200, overview.body);
      const disabled = await t.server.registry.db.selectFrom('users').select((eb) => eb.fn.countAll<string>().as('n')).where('disabled', '=', true).executeTakeFirstOrThrow();
      expect(overview.body.counts).toEqual({
        clients: await listed('/clients'),
        apis: await listed('/resources'),
        people: await listed('/users'),
        people_disabled: Number(disabled.n),
        upstream_providers: await listed('/providers'),
      });
      expect((overview.body.counts as Json).people_disabled).toBeGreaterThanOrEqual(1);
      expect((overview.body.counts as Json).upstream_providers).toBeGreaterThanOrEqual(1);
    });

    it('gives the signing keys by state and the age of the one that signs', async () => {
      const { body } = await call('/overview');
      const keys = await loadKeys(t.config.keysDir);
      const now = Date.now();
      const active = keys.filter((key) => keyState(key, now) === 'active');
      const signer = active.filter((key) => !key.profile).sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt))[0]!;
      const figures = body.signing_keys as { newest_active: { kid: string; age_seconds: number }; active: number; pending: number; retired: number };
      expect(figures).toMatchObject({ active: active.length, pending: keys.filter((key) => keyState(key, now) === 'pending').length, retired: keys.filter((key) => keyState(key, now) === 'retired').length });
      expect(figures.newest_active.kid).toBe(signer.kid);
      const age = Math.floor((now - Date.parse(signer.createdAt)) / 1000);
      expect(Math.abs(figures.newest_active.age_seconds - age)).toBeLessThanOrEqual(2);
    });

    it('counts the tokens this node issued in the last hour, from its metrics: successes only', async () => {
      const before = (await call('/overview')).body.tokens_last_hour as { count: number; window_seconds: number; node: string };
      expect(before.node).toBe('this');
      expect(before.window_seconds).toBeLessThanOrEqual(3600);
      const service = await t.serviceClient();
      for (let i = 0; i < 3; i += 1) {
        const issued = await tokenRequest(base, { grant_type: 'client_credentials', resource: service.resource }, service, t.fetch);
        expect(issued.status).toBe(200);
      }
      const refused = await tokenRequest(base, { grant_type: 'client_credentials', resource: service.resource }, { ...service, clientSecret: 'wrong' }, t.fetch);
      expect(refused.status).toBe(401);
      const after = (await call('/overview')).body.tokens_last_hour as { count: number };
      expect(after.count - before.count).toBe(3);
      // The same counter as /metrics' gatehouse_tokens_issued_total, summed over its series.
      const metrics = await (await t.fetch(`${base}/metrics`)).text();
      const total = metrics
        .split('\n')
        .filter((line) => line.startsWith('gatehouse_tokens_issued_total{'))
        .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
      expect(after.count).toBe(total);
    });

    it('gives the audit chain\'s status, the same as GET /audit/verification', async () => {
      const overview = await call('/overview');
      const verification = await call('/audit/verification');
      expect(verification.status).toBe(200);
      validate('/audit/verification', 'get', 200, verification.body);
      // Within the minute a result is reused: the same check.
      expect(overview.body.audit_chain).toEqual(verification.body);
      expect(verification.body).toMatchObject({ ok: true, broken_at: null, reason: null, node: 'this' });
      const head = verification.body.head as { seq: number };
      const rows = await t.server.registry.db.selectFrom('audit_log').select((eb) => eb.fn.max('seq').as('max')).executeTakeFirstOrThrow();
      expect(head.seq).toBeLessThanOrEqual(Number(rows.max));
      expect(verification.body.rows).toBe(head.seq);
    });
  });

  describe('audit log filters', () => {
    let clientA: string;
    let clientB: string;
    let personId: string;
    let marks: { afterA: string; afterB: string };

    beforeAll(async () => {
      const create = async (name: string) => {
        const answer = await t.fetch(`${base}/admin/v1/clients`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ client_name: name, grant_types: ['client_credentials'] }),
        });
        expect(answer.status).toBe(201);
        return String(((await answer.json()) as Json).client_id);
      };
      const patch = async (id: string) => {
        const answer = await t.fetch(`${base}/admin/v1/clients/${id}`, {
          method: 'PATCH',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ client_name: `${id} renamed` }),
        });
        expect(answer.status).toBe(200);
      };
      clientA = await create('filtered A');
      await patch(clientA);
      const aRows = await all(`entity_type=client&entity_id=${clientA}`);
      // Rows are timed by the database to the millisecond: wait for the clock to move on past A's.
      await new Promise((resolve) => setTimeout(resolve, 20));
      clientB = await create('filtered B');
      await new Promise((resolve) => setTimeout(resolve, 20));
      const person = await createUser(t.services, TEST_ACTOR, { email: `filtered-${randomUUID()}@example.test`, password: 'a filtered person 4711' });
      personId = person.id;
      const bRows = await all(`entity_type=client&entity_id=${clientB}`);
      marks = { afterA: new Date(Date.parse(aRows.at(-1)!.at) + 1).toISOString(), afterB: new Date(Date.parse(bRows.at(-1)!.at) + 1).toISOString() };
    });

    it('by entity type and id: only that entity\'s rows, oldest first', async () => {
      const rows = await all(`entity_type=client&entity_id=${clientA}`);
      expect(rows.map((row) => [row.action, row.target])).toEqual([
        ['client.create', `client:${clientA}`],
        ['client.update', `client:${clientA}`],
      ]);
      // The id alone finds the same rows.
      expect(await all(`entity_id=${clientA}`)).toEqual(rows);
      const users = await all('entity_type=user');
      expect(users.length).toBeGreaterThan(0);
      for (const row of users) expect(row.target).toMatch(/^user:/);
      expect(users.map((row) => row.target)).toContain(`user:${personId}`);
    });

    it('by actor, exact or of a kind', async () => {
      const mine = await all(`actor=${encodeURIComponent(adminActor)}`);
      expect(mine.length).toBeGreaterThanOrEqual(3);
      for (const row of mine) expect(row.actor).toBe(adminActor);
      expect(mine.map((row) => row.target)).toEqual(expect.arrayContaining([`client:${clientA}`, `client:${clientB}`]));
      const admins = await all('actor=admin:*');
      for (const row of admins) expect(row.actor).toMatch(/^admin:/);
      expect(admins.length).toBeGreaterThanOrEqual(mine.length);
      const others = await all(`actor=${encodeURIComponent(TEST_ACTOR.actor)}`);
      expect(others.map((row) => row.target)).toContain(`user:${personId}`);
      for (const row of others) expect(row.actor).toBe(TEST_ACTOR.actor);
    });

    it('by action, exact or a family', async () => {
      const creates = await all('action=client.create');
      for (const row of creates) expect(row.action).toBe('client.create');
      expect(creates.map((row) => row.target)).toEqual(expect.arrayContaining([`client:${clientA}`, `client:${clientB}`]));
      const family = await all('action=client.*');
      for (const row of family) expect(row.action).toMatch(/^client\./);
      expect(family.map((row) => row.action)).toEqual(expect.arrayContaining(['client.create', 'client.update']));
      // Filters combine: every one given must match.
      const combined = await all(`action=client.update&actor=${encodeURIComponent(adminActor)}&entity_type=client`);
      expect(combined.map((row) => row.target)).toEqual([`client:${clientA}`]);
    });

    it('takes LIKE wildcards in a filter literally', async () => {
      expect(await all('entity_type=c_ient')).toEqual([]);
      expect(await all('action=client_create')).toEqual([]);
      expect(await all('entity_id=%25')).toEqual([]);
    });

    it('by time: since (inclusive) and until (exclusive)', async () => {
      const between = await all(`action=client.create&since=${marks.afterA}&until=${marks.afterB}`);
      expect(between.map((row) => row.target)).toEqual([`client:${clientB}`]);
      const beforeB = await all(`entity_type=client&until=${marks.afterA}`);
      expect(beforeB.map((row) => row.target)).toContain(`client:${clientA}`);
      expect(beforeB.map((row) => row.target)).not.toContain(`client:${clientB}`);
      // At the very millisecond of B's row: since takes it, until leaves it out.
      const bCreate = (await all(`entity_type=client&entity_id=${clientB}`))[0]!;
      expect((await all(`entity_type=client&entity_id=${clientB}&since=${bCreate.at}`)).map((row) => row.seq)).toEqual([bCreate.seq]);
      expect(await all(`entity_type=client&entity_id=${clientB}&until=${bCreate.at}`)).toEqual([]);
      const afterA = await all(`since=${marks.afterA}`);
      for (const row of afterA) expect(Date.parse(row.at)).toBeGreaterThanOrEqual(Date.parse(marks.afterA));
      expect(afterA.map((row) => row.target)).toEqual(expect.arrayContaining([`client:${clientB}`, `user:${personId}`]));
    });

    it('pages through a filter in either order without losing or repeating a row', async () => {
      const whole = await all('action=client.*');
      expect(whole.length).toBeGreaterThanOrEqual(3);
      const paged = await all('action=client.*', 2);
      expect(paged).toEqual(whole);
      const newestFirst = await all('action=client.*&order=desc', 2);
      expect(newestFirst).toEqual([...whole].reverse());
      const first = await call('/audit?action=client.*&order=desc&limit=1');
      expect((first.body.data as Entry[])[0]?.seq).toBe(whole.at(-1)?.seq);
      expect(first.body.next_cursor).toBe(String(whole.at(-1)?.seq));
    });

    it('refuses a bad filter value with a problem naming the parameter, and changes nothing', async () => {
      const seqBefore = await t.server.registry.db.selectFrom('audit_log').select((eb) => eb.fn.max('seq').as('max')).executeTakeFirstOrThrow();
      const cases: Array<[string, string]> = [
        ['actor=*', 'actor'],
        ['actor=person:a*b', 'actor'],
        ['actor=person%3Aa%20b', 'actor'],
        ['actor=Person:x', 'actor'],
        ['actor=person:%01', 'actor'],
        ['action=Client.Create', 'action'],
        ['action=client.', 'action'],
        ['action=client.*.update', 'action'],
        ['action=*', 'action'],
        ['entity_type=Client', 'entity_type'],
        ['entity_type=client:x', 'entity_type'],
        [`entity_type=${'a'.repeat(65)}`, 'entity_type'],
        ['entity_id=a%20b', 'entity_id'],
        ['entity_id=a%00b', 'entity_id'],
        ['since=yesterday', 'since'],
        ['until=2026-13-01', 'until'],
        ['since=2026-02-01&until=2026-01-01', 'until'],
        ['since=2026-01-01&until=2026-01-01', 'until'],
        ['order=sideways', 'order'],
        ['order=desc&cursor=x', 'cursor'],
        ['action=a&action=b', 'action'],
      ];
      for (const [query, field] of cases) {
        const answer = await call(`/audit?${query}`);
        expect(answer.status, query).toBe(400);
        expect(answer.type, query).toMatch(/^application\/problem\+json/);
        expect((answer.body.errors as Array<{ field: string }>).map((error) => error.field), query).toEqual([field]);
        expect(answer.body.type).toBe('urn:gatehouse:problem:validation_failed');
        validate('/audit', 'get', 400, answer.body);
      }
      const seqAfter = await t.server.registry.db.selectFrom('audit_log').select((eb) => eb.fn.max('seq').as('max')).executeTakeFirstOrThrow();
      expect(seqAfter.max).toBe(seqBefore.max);
    });
  });

  describe('refusals', () => {
    it('answers a console person only while they hold the admin role (403 forbidden without it)', async () => {
      const admin = await consolePerson(t);
      const person = await consolePerson(t, { roles: [] });
      const allowed = await consoleSession(t, admin);
      const refused = await consoleSession(t, person);
      for (const path of ['/overview', '/audit?actor=person:*', '/audit/verification']) {
        expect((await allowed.call('GET', path)).status, path).toBe(200);
        const answer = await refused.call('GET', path);
        expect(answer.status, path).toBe(403);
        const body = (await answer.json()) as Json;
        expect(body.type).toBe('urn:gatehouse:problem:forbidden');
        expect(JSON.stringify(body)).not.toContain('"data"');
      }
    });

    it('refuses every one of these routes without an admin token (401), or one without the admin scope (403)', async () => {
      const service = await t.serviceClient();
      const other = await tokenRequest(base, { grant_type: 'client_credentials', resource: service.resource }, service, t.fetch);
      const noScope = await adminClientToken();
      for (const path of ['/overview', '/audit', '/audit?actor=admin:*', '/audit/verification']) {
        for (const bearer of [null, 'not-a-token', String(other.body.access_token)]) {
          const answer = await call(path, { token: bearer });
          expect(answer.status, `${path} ${bearer}`).toBe(401);
          expect(answer.type).toMatch(/^application\/problem\+json/);
          expect(answer.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
          expect(JSON.stringify(answer.body)).not.toContain('"data"');
        }
        const answer = await call(path, { token: noScope.token });
        expect(answer.status, path).toBe(403);
        expect(answer.headers.get('www-authenticate')).toMatch(/error="insufficient_scope"/);
      }
    });
  });
});

describe('admin API: the audit chain status reports a break', () => {
  let t: TestServer;
  afterAll(() => t?.close());

  it('names the first row that does not verify', async () => {
    t = await startTestServer({ name: 'admin-audit-broken', listen: false });
    const admin = await t.build.client({ client_name: 'admin', admin: true });
    await t.server.cache.refresh();
    const { body } = await tokenRequest(t.config.issuer, { grant_type: 'client_credentials', scope: 'admin' }, admin, t.fetch);
    const first = await t.server.registry.db.selectFrom('audit_log').select('seq').orderBy('seq', 'asc').limit(1).executeTakeFirstOrThrow();
    // Someone with SQL access alone rewrites a row (its hash left as it was): before this node has checked the chain.
    await sql`update audit_log set actor = 'cli:mallory' where seq = ${first.seq}`.execute(t.server.registry.db);
    const answer = await t.fetch(`${t.config.issuer}/admin/v1/audit/verification`, { headers: { authorization: `Bearer ${String(body.access_token)}` } });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toMatchObject({ ok: false, broken_at: Number(first.seq), rows: 0, head: null, mode: 'full' });
    const overview = await t.fetch(`${t.config.issuer}/admin/v1/overview`, { headers: { authorization: `Bearer ${String(body.access_token)}` } });
    expect(((await overview.json()) as Json).audit_chain).toMatchObject({ ok: false, broken_at: Number(first.seq) });
  });
});
