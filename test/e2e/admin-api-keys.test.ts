import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';

type Json = Record<string, unknown>;

const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const API_KEY_TYPE = 'urn:gatehouse:params:oauth:token-type:api-key';

/** /admin/v1/users/{id}/api-keys: list, create (shown once), revoke; problem documents for bad input; in process. */
describe('admin API: personal API keys', () => {
  let t: TestServer;
  let token: string;
  let api: string;
  let person: { id: string };

  async function call(method: string, path: string, body?: unknown) {
    const response = await t.fetch(`/admin/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    const json = (text ? JSON.parse(text) : undefined) as Json;
    if (json && typeof json.api_key === 'string') recordSecret(json.api_key);
    return { status: response.status, headers: response.headers, body: json };
  }

  const exchange = async (apiKey: string) =>
    (await t.fetch('/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: GRANT, subject_token: apiKey, subject_token_type: API_KEY_TYPE, resource: api }) })).status;

  beforeAll(async () => {
    t = await startTestServer({ name: 'admin-api-keys', listen: false });
    const admin = await t.build.client({ client_name: `admin ${randomUUID()}`, admin: true });
    await t.server.cache.refresh();
    const answer = await tokenRequest(t.server.url, { grant_type: 'client_credentials', scope: 'admin' }, admin, t.fetch);
    token = String(answer.body.access_token);
    api = (await t.build.resource({ scope: 'read write' })).identifier;
    person = await t.build.person();
  });
  afterAll(() => t.close());

  it('creates a key shown once (201, Location), lists it without the key, and revokes it: the token endpoint refuses it at once', async () => {
    const created = await call('POST', `/users/${person.id}/api-keys`, { label: 'CI deploys', resource: api, scope: 'write', expires_in: 3600 });
    expect(created.status).toBe(201);
    const apiKey = String(created.body.api_key);
    expect(apiKey).toMatch(/^gk_/);
    expect(created.body).toMatchObject({ label: 'CI deploys', resource: api, scope: 'write', prefix: apiKey.slice(0, 11), user_id: person.id });
    expect(created.headers.get('location')).toBe(`/admin/v1/users/${person.id}/api-keys/${String(created.body.id)}`);
    expect(await exchange(apiKey)).toBe(200);

    const listed = await call('GET', `/users/${person.id}/api-keys`);
    expect(listed.status).toBe(200);
    const data = listed.body.data as Json[];
    expect(data).toHaveLength(1);
    expect(data[0]).toMatchObject({ id: created.body.id, prefix: apiKey.slice(0, 11) });
    expect(data[0]!.last_used_at).not.toBeNull();
    expect(JSON.stringify(listed.body)).not.toContain(apiKey.slice(11));

    const revoked = await call('DELETE', String(created.headers.get('location')).replace('/admin/v1', ''));
    expect(revoked.status).toBe(204);
    expect(await exchange(apiKey)).toBe(400);
    expect((await call('GET', `/users/${person.id}/api-keys`)).body.data).toEqual([]);
    expect((await call('DELETE', `/users/${person.id}/api-keys/${String(created.body.id)}`)).status).toBe(404);
  });

  it('answers bad input with a problem document naming the field, and makes nothing', async () => {
    const cases: Array<[unknown, string]> = [
      [{ label: 'x'.repeat(10_000), resource: api }, 'label'],
      [{ label: '<img src=x onerror=alert(1)>', resource: 'https://nobody.example.test' }, 'resource'],
      [{ label: 'admin', resource: 'urn:gatehouse:admin-api', scope: 'admin' }, 'resource'],
      [{ label: 'x', resource: api, scope: 'delete' }, 'scope'],
      [{ label: 'x', resource: api, expires_in: 'forever' }, 'expires_in'],
      [{ resource: api }, 'label'],
    ];
    for (const [body, field] of cases) {
      const answer = await call('POST', `/users/${person.id}/api-keys`, body);
      expect(answer.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect((answer.body.errors as Array<{ field: string }>).map((error) => error.field)).toContain(field);
    }
    expect((await call('GET', `/users/${person.id}/api-keys`)).body.data).toEqual([]);
  });

  it('answers 404 for an unknown person, and for another person’s key', async () => {
    expect((await call('GET', `/users/${randomUUID()}/api-keys`)).status).toBe(404);
    expect((await call('POST', `/users/${randomUUID()}/api-keys`, { label: 'x', resource: api })).status).toBe(404);
    const mine = await call('POST', `/users/${person.id}/api-keys`, { label: 'mine', resource: api });
    const someone = await t.build.person();
    expect((await call('DELETE', `/users/${someone.id}/api-keys/${String(mine.body.id)}`)).status).toBe(404);
    expect(await exchange(String(mine.body.api_key))).toBe(200);
  });

  it('is in the OpenAPI document', async () => {
    const document = (await (await t.fetch('/admin/v1/openapi.json')).json()) as { paths: Record<string, Record<string, { operationId: string }>> };
    expect(document.paths['/users/{id}/api-keys']?.get?.operationId).toBe('listApiKeys');
    expect(document.paths['/users/{id}/api-keys']?.post?.operationId).toBe('createApiKey');
    expect(document.paths['/users/{id}/api-keys/{keyId}']?.delete?.operationId).toBe('revokeApiKey');
  });
});
