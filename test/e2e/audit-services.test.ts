import { randomBytes, randomUUID } from 'node:crypto';
import os from 'node:os';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliJson, runCliCapture, type CliResult } from '../fixtures/cli.js';
import { createCliEnv } from '../fixtures/cli-env.js';
import { TEST_DATABASE_URL } from '../fixtures/env.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';

// Every change to the registry is recorded by the service that makes it, in the change's own
// transaction, as the actor its entry point names: the CLI (cli:<os user>), the admin API
// (admin:<admin client id>) and dynamic registration (registration:<client id>). One test per
// entity shows the rows from each entry point it has; the last ones show that a row that cannot be
// written fails the change and leaves the registry as it was.

type Json = Record<string, unknown>;

interface AuditRow {
  actor: string;
  action: string;
  target: string;
  request_id: string | null;
  ip: string | null;
  details: Json;
}

const CLI = `cli:${os.userInfo().username}`;

/** A password the strength check takes, recorded for the log audit. */
function newPassword(): string {
  const password = `amber-meridian-${randomBytes(8).toString('hex')}`;
  recordSecret(password);
  return password;
}

/** Makes every insert into audit_log fail, as a database refusing the row would, until `allow()`. */
async function refuseAuditRows(db: pg.Client): Promise<{ allow(): Promise<void> }> {
  await db.query(`create function refuse_audit_row() returns trigger language plpgsql as $$
    begin raise exception 'audit_log refuses rows (test)'; end $$`);
  await db.query('create trigger refuse_audit_row before insert on audit_log for each row execute function refuse_audit_row()');
  return {
    async allow() {
      await db.query('drop trigger refuse_audit_row on audit_log');
      await db.query('drop function refuse_audit_row()');
    },
  };
}

/** Everything a registry change could touch, as JSON: equal before and after means nothing changed. */
async function registrySnapshot(db: pg.Client): Promise<Json> {
  const { rows } = await db.query<Json>(`select
    (select coalesce(json_agg(c order by c.client_id), '[]') from clients c) as clients,
    (select coalesce(json_agg(g order by g.client_id, g.resource_id), '[]') from client_grants g) as client_grants,
    (select coalesce(json_agg(r order by r.id), '[]') from resource_servers r) as resource_servers,
    (select coalesce(json_agg(u order by u.id), '[]') from users u) as users,
    (select coalesce(json_agg(d order by d.model, d.id), '[]') from oidc_durable d) as oidc_durable,
    (select count(*)::int from audit_log) as audit_rows`);
  return rows[0]!;
}

describe('audit rows written by the services, as the entry point names the actor', () => {
  let t: TestServer;
  let base: string;
  let db: pg.Client;
  let token: string;
  let adminClientId: string;
  let ADMIN: string;

  async function admin(method: string, path: string, body?: unknown, requestId?: string): Promise<{ status: number; body: Json }> {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (requestId) headers['x-request-id'] = requestId;
    const response = await fetch(`${base}/admin/v1${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await response.text();
    const parsed = (text ? JSON.parse(text) : {}) as Json;
    for (const key of ['client_secret', 'initial_access_token']) if (typeof parsed[key] === 'string') recordSecret(parsed[key]);
    return { status: response.status, body: parsed };
  }

  /** A call to the registration endpoints (RFC 7591/7592); records the secrets it sees. */
  async function registration(method: string, url: string, bearer: string, body?: unknown): Promise<{ status: number; body: Json; requestId: string | null }> {
    const headers: Record<string, string> = { authorization: `Bearer ${bearer}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(url, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await response.text();
    const parsed = (text && response.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : {}) as Json;
    for (const key of ['client_secret', 'registration_access_token']) if (typeof parsed[key] === 'string') recordSecret(parsed[key]);
    return { status: response.status, body: parsed, requestId: response.headers.get('x-request-id') };
  }

  async function initialAccessToken(): Promise<string> {
    const out = await t.cli<{ initial_access_token: string }>('registration', 'token', 'create', '--expires-in', '600');
    recordSecret(out.initial_access_token);
    return out.initial_access_token;
  }

  const serviceMetadata = (name: string) => ({
    client_name: name,
    grant_types: ['client_credentials'],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
  });

  async function rows(where: string, ...values: unknown[]): Promise<AuditRow[]> {
    return (await db.query<AuditRow>(`select actor, action, target, request_id, ip, details from audit_log where ${where} order by seq`, values)).rows;
  }
  const rowsOf = (target: string) => rows('target = $1', target);

  beforeAll(async () => {
    t = await startTestServer({ name: 'audit-services', env: { REGISTRATION_ENABLED: 'true' } });
    base = t.server.url;
    db = new pg.Client({ connectionString: t.database.url });
    await db.connect();
    const created = await t.cli<{ client_id: string; client_secret: string }>('clients', 'create', '--name', 'auditing admin', '--admin');
    adminClientId = created.client_id;
    ADMIN = `admin:${adminClientId}`;
    await t.server.cache.refresh();
    const answer = await tokenRequest(base, { grant_type: 'client_credentials', scope: 'admin' }, { clientId: created.client_id, clientSecret: created.client_secret });
    expect(answer.status).toBe(200);
    token = String(answer.body.access_token);
  });
  afterAll(async () => {
    await db?.end();
    await t?.close();
  });

  it('clients: CLI, admin API and dynamic registration', async () => {
    const cli = await t.cli<{ client_id: string }>('clients', 'create', '--name', 'cli client');
    await t.cli('clients', 'update', cli.client_id, '--name', 'cli client, renamed', '--require-mfa');
    await t.cli('clients', 'rotate-secret', cli.client_id);
    await t.cli('clients', 'delete', cli.client_id);
    const byCli = await rowsOf(`client:${cli.client_id}`);
    expect(who(byCli)).toEqual([
      [CLI, 'client.create'],
      [CLI, 'client.update'],
      [CLI, 'client.secret_rotate'],
      [CLI, 'client.delete'],
    ]);
    expect(byCli[0]!.details).toMatchObject({ after: { client_id: cli.client_id, client_name: 'cli client' } });
    expect(byCli[1]!.details).toMatchObject({ before: { client_name: 'cli client', require_mfa: false }, after: { client_name: 'cli client, renamed', require_mfa: true } });
    expect(byCli[2]!.details).toEqual({ secret_rotated_at: expect.any(String) });
    expect(byCli[3]!.details).toMatchObject({ before: { client_id: cli.client_id, client_name: 'cli client, renamed' } });
    for (const row of byCli) expect(row.request_id).toBeNull();

    const requestId = `audit-clients-${randomUUID()}`;
    const created = await admin('POST', '/clients', { client_name: 'admin client', grant_types: ['client_credentials'] }, `${requestId}-1`);
    expect(created.status).toBe(201);
    const id = String(created.body.client_id);
    expect((await admin('PATCH', `/clients/${id}`, { client_name: 'admin client, renamed', require_mfa: true }, `${requestId}-2`)).status).toBe(200);
    expect((await admin('POST', `/clients/${id}/secret`, undefined, `${requestId}-3`)).status).toBe(200);
    expect((await admin('DELETE', `/clients/${id}`, undefined, `${requestId}-4`)).status).toBe(204);
    const byAdmin = await rowsOf(`client:${id}`);
    expect(who(byAdmin)).toEqual([
      [ADMIN, 'client.create'],
      [ADMIN, 'client.update'],
      [ADMIN, 'client.secret_rotate'],
      [ADMIN, 'client.delete'],
    ]);
    expect(byAdmin.map((row) => row.request_id)).toEqual([1, 2, 3, 4].map((n) => `${requestId}-${n}`));
    for (const row of byAdmin) expect(row.ip).toMatch(/127\.0\.0\.1/);
    expect(byAdmin[1]!.details).toMatchObject({ before: { client_name: 'admin client', require_mfa: false }, after: { client_name: 'admin client, renamed', require_mfa: true } });
    expect(JSON.stringify(byAdmin)).not.toContain(String(created.body.client_secret));

    const endpoint = `${base}/reg`;
    const registered = await registration('POST', endpoint, await initialAccessToken(), serviceMetadata('registered client'));
    expect(registered.status).toBe(201);
    const clientId = String(registered.body.client_id);
    const clientUri = String(registered.body.registration_client_uri);
    const updated = await registration('PUT', clientUri, String(registered.body.registration_access_token), {
      ...serviceMetadata('registered client, renamed'),
      client_id: clientId,
    });
    expect(updated.status).toBe(200);
    const deleted = await registration('DELETE', clientUri, String(updated.body.registration_access_token));
    expect(deleted.status).toBe(204);
    const byRegistration = await rowsOf(`client:${clientId}`);
    expect(who(byRegistration)).toEqual([
      [`registration:${clientId}`, 'client.create'],
      [`registration:${clientId}`, 'client.update'],
      [`registration:${clientId}`, 'client.delete'],
    ]);
    expect(byRegistration.map((row) => row.request_id)).toEqual([registered.requestId, updated.requestId, deleted.requestId]);
    expect(byRegistration[1]!.details).toMatchObject({ before: { client_name: 'registered client' }, after: { client_name: 'registered client, renamed' } });
  });

  it('grants: CLI and admin API', async () => {
    const resource = `https://grants-${randomUUID()}.example.test`;
    await t.cli('resources', 'create', '--identifier', resource, '--scope', 'read write');
    const client = await t.cli<{ client_id: string }>('clients', 'create', '--name', 'granted client');
    await t.cli('clients', 'grant', client.client_id, '--resource', resource, '--scope', 'read');
    await t.cli('clients', 'revoke-grant', client.client_id, '--resource', resource);
    const path = `/clients/${client.client_id}/grants/${encodeURIComponent(resource)}`;
    expect((await admin('PUT', path, { scope: 'read write' }, 'audit-grant-put')).status).toBe(200);
    expect((await admin('DELETE', path, undefined, 'audit-grant-delete')).status).toBe(200);

    const grants = await rows(`target = $1 and action in ('client.grant', 'client.revoke_grant')`, `client:${client.client_id}`);
    expect(who(grants)).toEqual([
      [CLI, 'client.grant'],
      [CLI, 'client.revoke_grant'],
      [ADMIN, 'client.grant'],
      [ADMIN, 'client.revoke_grant'],
    ]);
    expect(grants.map((row) => row.details)).toEqual([
      { resource, before: [], after: [{ resource, scope: 'read' }] },
      { resource, before: [{ resource, scope: 'read' }], after: [] },
      { resource, before: [], after: [{ resource, scope: 'read write' }] },
      { resource, before: [{ resource, scope: 'read write' }], after: [] },
    ]);
    expect(grants.slice(2).map((row) => row.request_id)).toEqual(['audit-grant-put', 'audit-grant-delete']);
  });

  it('resources: CLI and admin API', async () => {
    const cli = await t.cli<{ id: string }>('resources', 'create', '--identifier', `https://cli-${randomUUID()}.example.test`, '--scope', 'a b');
    await t.cli('resources', 'update', cli.id, '--name', 'CLI API');
    await t.cli('resources', 'delete', cli.id);
    const byCli = await rowsOf(`resource:${cli.id}`);
    expect(who(byCli)).toEqual([
      [CLI, 'resource.create'],
      [CLI, 'resource.update'],
      [CLI, 'resource.delete'],
    ]);
    expect(byCli[1]!.details).toMatchObject({ before: { name: null }, after: { name: 'CLI API' } });

    const created = await admin('POST', '/resources', { identifier: `https://admin-${randomUUID()}.example.test`, scope: 'a' }, 'audit-resource-1');
    expect(created.status).toBe(201);
    const id = String(created.body.id);
    expect((await admin('PATCH', `/resources/${id}`, { scope: 'a b' }, 'audit-resource-2')).status).toBe(200);
    expect((await admin('DELETE', `/resources/${id}`, undefined, 'audit-resource-3')).status).toBe(204);
    const byAdmin = await rowsOf(`resource:${id}`);
    expect(who(byAdmin)).toEqual([
      [ADMIN, 'resource.create'],
      [ADMIN, 'resource.update'],
      [ADMIN, 'resource.delete'],
    ]);
    expect(byAdmin.map((row) => row.request_id)).toEqual(['audit-resource-1', 'audit-resource-2', 'audit-resource-3']);
    expect(byAdmin[1]!.details).toMatchObject({ before: { scope: 'a' }, after: { scope: 'a b' } });
  });

  it('users: CLI and admin API', async () => {
    const user = await cliJson<{ id: string }>(['users', 'create', '--email', `cli-${randomUUID()}@example.test`, '--password-stdin'], t.env, {
      stdin: `${newPassword()}\n`,
    });
    await t.cli('users', 'disable', user.id);
    await t.cli('users', 'enable', user.id);
    await cliJson(['users', 'set-password', user.id, '--password-stdin'], t.env, { stdin: `${newPassword()}\n` });
    await t.cli('users', 'delete', user.id);
    const byCli = await rowsOf(`user:${user.id}`);
    expect(who(byCli)).toEqual([
      [CLI, 'user.create'],
      [CLI, 'user.disable'],
      [CLI, 'user.enable'],
      [CLI, 'user.password_set'],
      [CLI, 'user.delete'],
    ]);
    expect(byCli[1]!.details).toMatchObject({ before: { disabled: false }, after: { disabled: true } });
    expect(byCli[3]!.details).toMatchObject({ sessions_ended: true });

    const password = newPassword();
    const created = await admin('POST', '/users', { email: `admin-${randomUUID()}@example.test`, password }, 'audit-user-1');
    expect(created.status).toBe(201);
    const id = String(created.body.id);
    expect((await admin('PATCH', `/users/${id}`, { name: 'Audited Person' }, 'audit-user-2')).status).toBe(200);
    expect((await admin('PATCH', `/users/${id}`, { password: newPassword() }, 'audit-user-3')).status).toBe(200);
    expect((await admin('DELETE', `/users/${id}`, undefined, 'audit-user-4')).status).toBe(204);
    const byAdmin = await rowsOf(`user:${id}`);
    expect(who(byAdmin)).toEqual([
      [ADMIN, 'user.create'],
      [ADMIN, 'user.update'],
      [ADMIN, 'user.update'],
      [ADMIN, 'user.delete'],
    ]);
    expect(byAdmin.map((row) => row.request_id)).toEqual(['audit-user-1', 'audit-user-2', 'audit-user-3', 'audit-user-4']);
    expect(byAdmin[1]!.details).toMatchObject({ before: { name: null }, after: { name: 'Audited Person' } });
    expect(byAdmin[1]!.details).not.toHaveProperty('sessions_ended');
    expect(byAdmin[2]!.details).toMatchObject({ sessions_ended: true });
    expect(JSON.stringify([...byCli, ...byAdmin])).not.toMatch(/password_hash|argon2|amber-meridian/);
  });

  it('registration tokens: CLI and admin API', async () => {
    const cli = await t.cli<{ id: string; initial_access_token: string; expires_at: string }>('registration', 'token', 'create', '--expires-in', '600');
    recordSecret(cli.initial_access_token);
    await t.cli('registration', 'token', 'revoke', cli.id);
    const byCli = await rowsOf(`initial_access_token:${cli.id}`);
    expect(who(byCli)).toEqual([
      [CLI, 'registration.token_create'],
      [CLI, 'registration.token_revoke'],
    ]);
    expect(byCli[0]!.details).toEqual({ after: { id: cli.id, expires_at: cli.expires_at } });

    const created = await admin('POST', '/registration-tokens', { expires_in: 600 }, 'audit-token-1');
    expect(created.status).toBe(201);
    const id = String(created.body.id);
    expect((await admin('DELETE', `/registration-tokens/${id}`, undefined, 'audit-token-2')).status).toBe(204);
    const byAdmin = await rowsOf(`initial_access_token:${id}`);
    expect(who(byAdmin)).toEqual([
      [ADMIN, 'registration.token_create'],
      [ADMIN, 'registration.token_revoke'],
    ]);
    expect(byAdmin.map((row) => row.request_id)).toEqual(['audit-token-1', 'audit-token-2']);
    expect(JSON.stringify([...byCli, ...byAdmin])).not.toContain(cli.initial_access_token);
    expect(JSON.stringify(byAdmin)).not.toContain(String(created.body.initial_access_token));
  });

  it('keys: CLI (signing keys and audit keys, recorded right after the key file is written)', async () => {
    const generated = await t.cli<{ kid: string }>('keys', 'generate');
    const rotated = await t.cli<{ kid: string; retired: string[] }>('keys', 'rotate');
    const auditKey = await t.cli<{ kid: string }>('audit', 'rotate-key');
    expect(who(await rowsOf(`key:${generated.kid}`))).toEqual([[CLI, 'keys.generate']]);
    const rotation = await rowsOf(`key:${rotated.kid}`);
    expect(who(rotation)).toEqual([[CLI, 'keys.rotate']]);
    expect(rotation[0]!.details).toMatchObject({ created: { kid: rotated.kid, status: 'pending' }, retired: rotated.retired });
    expect(who(await rowsOf(`audit-key:${auditKey.kid}`))).toEqual([[CLI, 'audit.key_rotate']]);
    // The server's own writer follows the new audit key: its next record is keyed with it, and the chain holds.
    expect((await admin('POST', '/resources', { identifier: `https://after-rotation-${randomUUID()}.example.test` })).status).toBe(201);
    const { rows: last } = await db.query<{ kid: string; action: string }>('select kid, action from audit_log order by seq desc limit 1');
    expect(last[0]).toEqual({ kid: auditKey.kid, action: 'resource.create' });
    expect(await t.cli('audit', 'verify')).toMatchObject({ ok: true });
  });

  describe('a row that cannot be written fails the change and leaves the registry as it was', () => {
    it('on the admin API: every change answers 500 and nothing is written', async () => {
      const resource = `https://refused-${randomUUID()}.example.test`;
      const api = await admin('POST', '/resources', { identifier: resource, scope: 'read write' });
      const client = await admin('POST', '/clients', { client_name: 'kept as it is', grant_types: ['client_credentials'], grants: [{ resource, scope: 'read' }] });
      const user = await admin('POST', '/users', { email: `kept-${randomUUID()}@example.test`, password: newPassword() });
      const iat = await admin('POST', '/registration-tokens', {});
      for (const answer of [api, client, user, iat]) expect(answer.status).toBe(201);
      const clientId = String(client.body.client_id);
      const grantPath = `/clients/${clientId}/grants/${encodeURIComponent(resource)}`;

      const before = await registrySnapshot(db);
      const refusal = await refuseAuditRows(db);
      try {
        const attempts: Array<[string, string, unknown?]> = [
          ['POST', '/clients', { client_name: 'never made', grant_types: ['client_credentials'] }],
          ['PATCH', `/clients/${clientId}`, { client_name: 'never renamed' }],
          ['POST', `/clients/${clientId}/secret`],
          ['PUT', grantPath, { scope: 'read write' }],
          ['DELETE', grantPath],
          ['DELETE', `/clients/${clientId}`],
          ['POST', '/resources', { identifier: `https://never-${randomUUID()}.example.test` }],
          ['PATCH', `/resources/${String(api.body.id)}`, { name: 'never named' }],
          ['DELETE', `/resources/${String(api.body.id)}`],
          ['POST', '/users', { email: `never-${randomUUID()}@example.test`, password: newPassword() }],
          ['PATCH', `/users/${String(user.body.id)}`, { disabled: true }],
          ['DELETE', `/users/${String(user.body.id)}`],
          ['POST', '/registration-tokens', {}],
          ['DELETE', `/registration-tokens/${String(iat.body.id)}`],
        ];
        for (const [method, path, body] of attempts) {
          const answer = await admin(method, path, body);
          expect(answer.status, `${method} ${path}`).toBe(500);
          expect(answer.body.detail, `${method} ${path}`).toBe('internal error');
          expect(answer.body).not.toHaveProperty('client_secret');
          expect(answer.body).not.toHaveProperty('initial_access_token');
        }
      } finally {
        await refusal.allow();
      }
      expect(await registrySnapshot(db)).toEqual(before);
      // The old secret still works: the rotation did not happen.
      await t.server.cache.refresh();
      const stillWorks = await tokenRequest(base, { grant_type: 'client_credentials', resource, scope: 'read' }, { clientId, clientSecret: String(client.body.client_secret) });
      expect(stillWorks.status).toBe(200);
      expect(await t.cli('audit', 'verify')).toMatchObject({ ok: true });
    });

    it('on dynamic registration: register, update and delete answer 500 and nothing is written', async () => {
      const endpoint = `${base}/reg`;
      const iat = await initialAccessToken();
      const registered = await registration('POST', endpoint, iat, serviceMetadata('registered before the refusal'));
      expect(registered.status).toBe(201);
      const clientId = String(registered.body.client_id);
      const clientUri = String(registered.body.registration_client_uri);
      const rat = String(registered.body.registration_access_token);

      const before = await registrySnapshot(db);
      const refusal = await refuseAuditRows(db);
      try {
        const refusedCreate = await registration('POST', endpoint, iat, serviceMetadata('never registered'));
        expect(refusedCreate.status).toBe(500);
        expect(refusedCreate.body).toMatchObject({ error: 'server_error' });
        expect(refusedCreate.body).not.toHaveProperty('client_id');
        const refusedUpdate = await registration('PUT', clientUri, rat, { ...serviceMetadata('never renamed'), client_id: clientId });
        expect(refusedUpdate.status).toBe(500);
        expect(refusedUpdate.body).not.toHaveProperty('registration_access_token');
        const refusedDelete = await registration('DELETE', clientUri, rat);
        expect(refusedDelete.status).toBe(500);
      } finally {
        await refusal.allow();
      }
      expect(await registrySnapshot(db)).toEqual(before);
      // The client is as it was, and its registration access token still reads it.
      const read = await registration('GET', clientUri, rat);
      expect(read.status).toBe(200);
      expect(read.body.client_name).toBe('registered before the refusal');
      expect(await t.cli('audit', 'verify')).toMatchObject({ ok: true });
    });

    it('on the CLI: the command fails on one line and changes nothing; a key file stays, and the command says its record is missing', async () => {
      const before = await registrySnapshot(db);
      const keysBefore = await t.cli<Array<{ kid: string }>>('keys', 'list');
      const refusal = await refuseAuditRows(db);
      let rotation: CliResult | undefined;
      try {
        for (const args of [
          ['clients', 'create', '--name', 'never made'],
          ['resources', 'create', '--identifier', `https://never-${randomUUID()}.example.test`],
          ['registration', 'token', 'create'],
        ]) {
          const result = await runCliCapture([...args, '--json'], t.env);
          expect(result.code, args.join(' ')).toBe(1);
          expect(result.stdout, args.join(' ')).toBe('');
          expect(result.stderr).toMatch(/^gatehouse: .*audit_log refuses rows \(test\)\n$/);
        }
        rotation = await runCliCapture(['keys', 'rotate', '--json'], t.env);
      } finally {
        await refusal.allow();
      }
      expect(await registrySnapshot(db)).toEqual(before);
      expect(rotation?.code).toBe(1);
      expect(rotation?.stdout).toBe('');
      const made = /^gatehouse: keys\.rotate of key:(?<kid>[\w-]+) was done, but its audit record could not be written: .*audit_log refuses rows/.exec(rotation?.stderr ?? '');
      expect(made, rotation?.stderr).not.toBeNull();
      const keysAfter = await t.cli<Array<{ kid: string }>>('keys', 'list');
      expect(keysAfter.map((key) => key.kid)).toEqual(expect.arrayContaining([...keysBefore.map((key) => key.kid), made!.groups!.kid!]));
    });
  });
});

describe('database roles: CLI (db roles), in the transaction that changes them', () => {
  const suffix = randomBytes(4).toString('hex');
  const roles = { owner: `gh_audit_owner_${suffix}`, runtime: `gh_audit_runtime_${suffix}`, refusedOwner: `gh_audit_nope_o_${suffix}`, refusedRuntime: `gh_audit_nope_r_${suffix}` };
  let env: Record<string, string>;
  let dispose: (() => Promise<void>) | undefined;
  let db: pg.Client;

  const rolesNamed = async (names: string[]) =>
    (await db.query<{ rolname: string }>('select rolname from pg_roles where rolname = any($1) order by rolname', [names])).rows.map((row) => row.rolname);

  beforeAll(async () => {
    const created = await createCliEnv('audit-roles');
    env = created.env;
    dispose = created.dispose;
    await cliJson(['migrate'], env);
    db = new pg.Client({ connectionString: env.DATABASE_URL });
    await db.connect();
  });
  afterAll(async () => {
    await db?.end();
    // Dropping the database drops what the roles own and were granted there; then the roles can go.
    await dispose?.();
    const cluster = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await cluster.connect();
    try {
      for (const role of Object.values(roles)) await cluster.query(`drop role if exists ${cluster.escapeIdentifier(role)}`);
    } finally {
      await cluster.end();
    }
  });

  it('records db.roles as cli:<os user>; when the row cannot be written, no role is made', async () => {
    const refusal = await refuseAuditRows(db);
    try {
      const result = await runCliCapture(['db', 'roles', '--owner', roles.refusedOwner, '--runtime', roles.refusedRuntime, '--json'], env);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(/^gatehouse: .*audit_log refuses rows \(test\)\n$/);
    } finally {
      await refusal.allow();
    }
    expect(await rolesNamed([roles.refusedOwner, roles.refusedRuntime])).toEqual([]);
    expect((await db.query(`select 1 from audit_log where action = 'db.roles'`)).rows).toEqual([]);

    await cliJson(['db', 'roles', '--owner', roles.owner, '--runtime', roles.runtime], env);
    expect(await rolesNamed([roles.owner, roles.runtime])).toEqual([roles.owner, roles.runtime].sort());
    const recorded = (await db.query<AuditRow>(`select actor, action, target, details from audit_log where action = 'db.roles' order by seq`)).rows;
    expect(who(recorded)).toEqual([[CLI, 'db.roles']]);
    expect(recorded[0]!.target).toBe(`database:${new URL(env.DATABASE_URL!).pathname.slice(1)}`);
    expect(recorded[0]!.details).toMatchObject({ owner: roles.owner, runtime: roles.runtime, created: [roles.owner, roles.runtime], runtime_password_set: false });
    expect(await cliJson(['audit', 'verify'], env)).toMatchObject({ ok: true });
  });
});

function who(list: Array<Pick<AuditRow, 'actor' | 'action'>>): string[][] {
  return list.map((row) => [row.actor, row.action]);
}
