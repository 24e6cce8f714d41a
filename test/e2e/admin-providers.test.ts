import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOp, type FakeOp } from '../fixtures/fake-op.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';

type Json = Record<string, unknown>;

const SECRET = 'admin-api-provider-secret-7788';

/**
 * /admin/v1/providers (in this process, no socket; answers checked against their declarations in
 * test mode): CRUD, the refusals as problem documents naming the field, and the secret never in an
 * answer, the audit log or the logs.
 */
describe('admin API: upstream providers', () => {
  let t: TestServer;
  let base: string;
  let token: string;
  let op: FakeOp;

  async function call(method: string, path: string, body?: unknown) {
    const response = await t.fetch(`${base}/admin/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    return { status: response.status, type: response.headers.get('content-type') ?? '', text, body: (text ? JSON.parse(text) : undefined) as Json };
  }

  beforeAll(async () => {
    recordSecret(SECRET);
    t = await startTestServer({ name: 'admin-providers', listen: false });
    base = t.config.issuer;
    op = await startFakeOp('gatehouse', SECRET);
    const admin = await t.build.client({ client_name: `admin ${randomUUID()}`, admin: true });
    await t.server.cache.refresh();
    const answer = await tokenRequest(base, { grant_type: 'client_credentials', scope: 'admin' }, admin, t.fetch);
    expect(answer.status).toBe(200);
    token = String(answer.body.access_token);
  });
  afterAll(async () => {
    await op?.close();
    await t?.close();
  });

  it('creates, lists, reads, updates and deletes a provider; the secret goes in and never comes out', async () => {
    const created = await call('POST', '/providers', { id: 'corp', name: 'Corp SSO', issuer: op.issuer, client_id: 'gatehouse', client_secret: SECRET, allow_signup: true });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ id: 'corp', name: 'Corp SSO', client_secret_set: true, scope: 'openid email profile', allow_signup: true, enabled: true });
    const answers = [
      created,
      await call('GET', '/providers'),
      await call('GET', '/providers/corp'),
      await call('PATCH', '/providers/corp', { client_secret: `${SECRET}-new`, enabled: false }),
    ];
    for (const answer of answers) expect(answer.text).not.toContain(SECRET);
    expect(answers[1]?.body).toMatchObject({ data: [{ id: 'corp' }] });
    expect(answers[3]?.body).toMatchObject({ enabled: false, client_secret_set: true });
    const audit = await t.server.registry.db.selectFrom('audit_log').selectAll().where('target', '=', 'provider:corp').execute();
    expect(audit.map((row) => row.action)).toEqual(['provider.create', 'provider.update']);
    expect(audit[0]?.actor).toMatch(/^admin:/);
    expect(JSON.stringify(audit)).not.toContain(SECRET);
    expect((await call('DELETE', '/providers/corp')).status).toBe(204);
    expect((await call('GET', '/providers/corp')).status).toBe(404);
    expect(t.logs.text()).not.toContain(SECRET);
  });

  it.each([
    ['an http issuer off loopback', { issuer: 'http://sso.example.test' }, 'issuer'],
    ['scopes without openid', { scope: 'email' }, 'scope'],
    ['a bad id', { id: 'UPPER case' }, 'id'],
    ['an unknown member', { client_secret_jwe: 'x' }, 'body'],
  ])('refuses %s with a 400 problem naming the field, storing nothing', async (_label, change, field) => {
    const answer = await call('POST', '/providers', { name: 'Bad', issuer: op.issuer, client_id: 'gatehouse', ...change });
    expect(answer.status).toBe(400);
    expect(answer.type).toMatch(/application\/problem\+json/);
    expect((answer.body.errors as Array<{ field: string }>).map((e) => e.field)).toContain(field);
    expect(await t.server.registry.db.selectFrom('upstream_providers').selectAll().execute()).toEqual([]);
  });

  it('refuses a duplicate id with 409, and an unreachable issuer with 400 naming it', async () => {
    expect((await call('POST', '/providers', { id: 'dup', name: 'Dup', issuer: op.issuer, client_id: 'gatehouse' })).status).toBe(201);
    const again = await call('POST', '/providers', { id: 'dup', name: 'Dup', issuer: op.issuer, client_id: 'gatehouse' });
    expect(again.status).toBe(409);
    const gone = await startFakeOp('gatehouse', SECRET);
    await gone.close();
    const down = await call('POST', '/providers', { id: 'down', name: 'Down', issuer: gone.issuer, client_id: 'gatehouse' });
    expect(down.status).toBe(400);
    expect(JSON.stringify(down.body.errors)).toContain('issuer_unreachable');
    expect((await call('DELETE', '/providers/dup')).status).toBe(204);
  });

  it('is in the OpenAPI document, whose schemas have no place for a secret in an answer', async () => {
    const document = (await (await t.fetch(`${base}/admin/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>>; components: { schemas: Record<string, { properties?: Record<string, unknown> }> } };
    expect(Object.keys(document.paths['/providers'] ?? {}).sort()).toEqual(['get', 'post']);
    expect(Object.keys(document.paths['/providers/{id}'] ?? {}).sort()).toEqual(['delete', 'get', 'patch']);
    expect(Object.keys(document.components.schemas.Provider?.properties ?? {})).not.toContain('client_secret');
    expect(Object.keys(document.components.schemas.ProviderCreate?.properties ?? {})).toContain('client_secret');
  });
});
