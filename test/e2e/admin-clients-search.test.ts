import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';

type Json = Record<string, unknown>;

/**
 * What the console's Clients page needs of the admin API beyond what it had: a search box (`q`: part
 * of the name, or the whole client_id) and the client's new ETag in the answer of a secret rotation
 * (a rotation changes the client's version, so that the page's next save is not refused as stale).
 */
describe('admin API: client search and the ETag of a rotation', () => {
  let t: TestServer;
  let base: string;
  let token: string;

  async function call(method: string, path: string, options: { body?: unknown; token?: string | null; headers?: Record<string, string> } = {}) {
    const headers: Record<string, string> = { ...options.headers };
    const bearer = options.token === undefined ? token : options.token;
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const response = await t.fetch(`${base}/admin/v1${path}`, {
      method,
      headers,
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    });
    const text = await response.text();
    const body = (text ? JSON.parse(text) : undefined) as Json;
    if (body && typeof body.client_secret === 'string') recordSecret(body.client_secret);
    return { status: response.status, headers: response.headers, body };
  }

  const ids = (body: Json) => (body.data as Json[]).map((client) => client.client_id);
  const fields = (body: Json) => (body.errors as Array<{ field: string }>).map((error) => error.field);

  async function tokenWith(scope: string): Promise<string> {
    const admin = await t.build.client({ client_name: `admin ${randomUUID()}`, admin: true });
    await t.server.cache.refresh();
    const { status, body } = await tokenRequest(base, { grant_type: 'client_credentials', scope }, admin, t.fetch);
    expect(status).toBe(200);
    return String(body.access_token);
  }

  beforeAll(async () => {
    t = await startTestServer({ name: 'admin-clients-search', listen: false });
    base = t.server.url;
    token = await tokenWith('admin');
  });
  afterAll(() => t.close());

  describe('q: part of the name, or the whole client_id', () => {
    const tag = randomUUID().slice(0, 8);
    const made: Record<string, string> = {};

    beforeAll(async () => {
      for (const name of [`Orders ${tag}`, `orders-admin ${tag}`, `Billing ${tag}`, `100%_off ${tag}`]) {
        const { status, body } = await call('POST', '/clients', { body: { client_name: name, grant_types: ['client_credentials'] } });
        expect(status).toBe(201);
        made[name] = String(body.client_id);
      }
    });

    it('finds part of the name in any case, with % and _ taken literally', async () => {
      const orders = await call('GET', `/clients?q=${encodeURIComponent(`ORDERS`)}&limit=200`);
      expect(orders.status).toBe(200);
      expect(ids(orders.body)).toEqual(expect.arrayContaining([made[`Orders ${tag}`], made[`orders-admin ${tag}`]]));
      expect(ids(orders.body)).not.toContain(made[`Billing ${tag}`]);
      const literal = await call('GET', `/clients?q=${encodeURIComponent('0%_o')}`);
      expect(ids(literal.body)).toEqual([made[`100%_off ${tag}`]]);
      const wildcard = await call('GET', `/clients?q=${encodeURIComponent(`%${tag}`)}`);
      expect(ids(wildcard.body)).toEqual([]);
    });

    it('finds a client by its whole client_id, not by a part of it', async () => {
      const id = made[`Billing ${tag}`]!;
      const whole = await call('GET', `/clients?q=${encodeURIComponent(id)}`);
      expect(ids(whole.body)).toEqual([id]);
      const part = await call('GET', `/clients?q=${encodeURIComponent(id.slice(0, 10))}`);
      expect(ids(part.body)).not.toContain(id);
    });

    it('pages through what it finds, and combines with name', async () => {
      const first = await call('GET', `/clients?q=${tag}&limit=3`);
      expect(first.status).toBe(200);
      expect(ids(first.body)).toHaveLength(3);
      expect(first.body.next_cursor).toEqual(expect.any(String));
      const second = await call('GET', `/clients?q=${tag}&limit=3&cursor=${encodeURIComponent(String(first.body.next_cursor))}`);
      expect(ids(second.body)).toHaveLength(1);
      expect(second.body.next_cursor).toBeNull();
      expect(new Set([...ids(first.body), ...ids(second.body)])).toEqual(new Set(Object.values(made)));
      const both = await call('GET', `/clients?q=${tag}&name=billing`);
      expect(ids(both.body)).toEqual([made[`Billing ${tag}`]]);
    });

    it('answers a repeated, NUL-carrying or oversized q with a 400 naming q', async () => {
      for (const path of [`/clients?q=a&q=b`, '/clients?q=a%00b', `/clients?q=${'x'.repeat(300)}`]) {
        const { status, headers, body } = await call('GET', path);
        expect(status, path).toBe(400);
        expect(headers.get('content-type'), path).toMatch(/^application\/problem\+json/);
        expect(fields(body), path).toEqual(['q']);
      }
    });

    it('is refused without an admin token (401) or with one lacking the admin scope (403)', async () => {
      const none = await call('GET', `/clients?q=${tag}`, { token: null });
      expect(none.status).toBe(401);
      expect(none.body.data).toBeUndefined();
      const forged = await call('GET', `/clients?q=${tag}`, { token: 'not-a-token' });
      expect(forged.status).toBe(401);
      const narrow = await call('GET', `/clients?q=${tag}`, { token: await tokenWith('') });
      expect(narrow.status).toBe(403);
      expect(narrow.body.data).toBeUndefined();
    });

    it('is described in the OpenAPI document', async () => {
      const document = (await (await t.fetch(`${base}/admin/v1/openapi.json`)).json()) as {
        paths: Record<string, Record<string, { parameters: Array<{ name: string; in: string }> }>>;
      };
      const parameters = document.paths['/clients']!.get!.parameters.filter((parameter) => parameter.in === 'query').map((parameter) => parameter.name);
      expect(parameters).toEqual(expect.arrayContaining(['limit', 'cursor', 'name', 'q']));
    });
  });

  describe('rotating a secret', () => {
    /** A service client holding a grant at an API of its own (so that it gets tokens). */
    async function serviceClient(name: string) {
      const api = await t.build.resource({ scope: 'read' });
      return call('POST', '/clients', { body: { client_name: `${name} ${randomUUID()}`, grant_types: ['client_credentials'], default_resource: api.identifier } });
    }

    it('answers with the client’s new ETag: a save with the one read before is refused (412), with the new one it is made', async () => {
      const created = await serviceClient('rotate');
      const id = String(created.body.client_id);
      const before = created.headers.get('etag');
      expect(before).toMatch(/^W\/"\d+"$/);
      const rotated = await call('POST', `/clients/${id}/secret`);
      expect(rotated.status).toBe(200);
      const after = rotated.headers.get('etag');
      expect(after).toMatch(/^W\/"\d+"$/);
      expect(after).not.toBe(before);
      expect((await call('GET', `/clients/${id}`)).headers.get('etag')).toBe(after);
      const stale = await call('PATCH', `/clients/${id}`, { body: { client_name: 'stale' }, headers: { 'if-match': before! } });
      expect(stale.status).toBe(412);
      expect((await call('GET', `/clients/${id}`)).body.client_name).not.toBe('stale');
      const fresh = await call('PATCH', `/clients/${id}`, { body: { client_name: 'fresh' }, headers: { 'if-match': after! } });
      expect(fresh.status).toBe(200);
      // The new secret works at the token endpoint, the old one does not.
      await t.server.cache.refresh();
      const oldSecret = await tokenRequest(base, { grant_type: 'client_credentials' }, { clientId: id, clientSecret: String(created.body.client_secret) }, t.fetch);
      expect(oldSecret.status).toBe(401);
      const newSecret = await tokenRequest(base, { grant_type: 'client_credentials' }, { clientId: id, clientSecret: String(rotated.body.client_secret) }, t.fetch);
      expect(newSecret.status).toBe(200);
    });

    it('changes nothing without an admin token, or for a client with no secret (400 naming the field, same ETag)', async () => {
      const created = await serviceClient('keep');
      const id = String(created.body.client_id);
      const etag = created.headers.get('etag');
      const refused = await call('POST', `/clients/${id}/secret`, { token: null });
      expect(refused.status).toBe(401);
      expect(refused.headers.get('etag')).toBeNull();
      expect(refused.body.client_secret).toBeUndefined();
      expect((await call('GET', `/clients/${id}`)).headers.get('etag')).toBe(etag);
      await t.server.cache.refresh();
      const stillWorks = await tokenRequest(base, { grant_type: 'client_credentials' }, { clientId: id, clientSecret: String(created.body.client_secret) }, t.fetch);
      expect(stillWorks.status).toBe(200);

      const spa = await call('POST', '/clients', {
        body: { client_name: `public ${randomUUID()}`, grant_types: ['authorization_code'], token_endpoint_auth_method: 'none', redirect_uris: ['https://app.example.test/cb'] },
      });
      const spaId = String(spa.body.client_id);
      const noSecret = await call('POST', `/clients/${spaId}/secret`);
      expect(noSecret.status).toBe(400);
      expect(fields(noSecret.body)).toEqual(['token_endpoint_auth_method']);
      expect(noSecret.headers.get('etag')).toBeNull();
      expect((await call('GET', `/clients/${spaId}`)).headers.get('etag')).toBe(spa.headers.get('etag'));
    });
  });
});
