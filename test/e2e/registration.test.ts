import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCliCapture } from '../fixtures/cli.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

/** A JSON call to the registration endpoints; records every secret and token it sees for the log audit. */
async function call(method: string, url: string, token?: string, body?: unknown): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  const json = response.headers.get('content-type')?.startsWith('application/json') ?? false;
  const parsed = (json ? JSON.parse(text) : {}) as Record<string, unknown>;
  for (const key of ['client_secret', 'registration_access_token']) {
    if (typeof parsed[key] === 'string') recordSecret(parsed[key]);
  }
  return { status: response.status, body: parsed, headers: response.headers };
}

async function discovery(base: string): Promise<Record<string, unknown>> {
  return (await (await fetch(`${base}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
}

describe('dynamic client registration, off by default', () => {
  let t: TestServer;

  beforeAll(async () => {
    t = await startTestServer({ name: 'registration-off', listen: false });
    // In this process without a socket: every fetch of the file goes to the app's handler.
    vi.stubGlobal('fetch', t.fetch);
  });
  afterAll(async () => {
    vi.unstubAllGlobals();
    await t.close();
  });

  it('has no registration endpoint', async () => {
    expect(await discovery(t.server.url)).not.toHaveProperty('registration_endpoint');
    const response = await call('POST', `${t.server.url}/reg`, undefined, { client_name: 'x', redirect_uris: ['https://x.example.test/cb'] });
    expect(response.status).toBe(404);
    expect((await call('GET', `${t.server.url}/reg/anything`, 'token')).status).toBe(404);
  });
});

describe('dynamic client registration (RFC 7591/7592)', () => {
  let t: TestServer;
  let base: string;
  let endpoint: string;
  let resource: string;
  let db: pg.Client;

  async function initialAccessToken(...args: string[]): Promise<string> {
    const out = await t.cli<{ initial_access_token: string; expires_at: string }>('registration', 'token', 'create', ...args);
    recordSecret(out.initial_access_token);
    return out.initial_access_token;
  }

  /** The client_credentials token request, retried while a CLI change is still reaching this node's cache. */
  async function tokenEventually(form: Record<string, string>, auth: { clientId: string; clientSecret: string }, status: number) {
    let answer = await tokenRequest(base, form, auth);
    for (let i = 0; i < 40 && answer.status !== status; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      answer = await tokenRequest(base, form, auth);
    }
    return answer;
  }

  const serviceMetadata = (name = `service ${randomUUID()}`) => ({
    client_name: name,
    grant_types: ['client_credentials'],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
  });

  beforeAll(async () => {
    t = await startTestServer({ name: 'registration', env: { REGISTRATION_ENABLED: 'true' }, listen: false });
    // In this process without a socket: every fetch of the file goes to the app's handler.
    vi.stubGlobal('fetch', t.fetch);
    base = t.server.url;
    endpoint = String((await discovery(base)).registration_endpoint);
    resource = `https://orders-${randomUUID()}.example.test`;
    await t.build.resource({ identifier: resource, scope: 'read:orders write:orders' });
    db = new pg.Client({ connectionString: t.database.url });
    await db.connect();
  });
  afterAll(async () => {
    vi.unstubAllGlobals();
    await db?.end();
    await t.close();
  });

  it('advertises its registration endpoint', () => {
    expect(endpoint).toBe(`${base}/reg`);
  });

  it('refuses to register without an initial access token, or with an unknown one, with 401 invalid_token', async () => {
    const without = await call('POST', endpoint, undefined, serviceMetadata());
    expect(without.status).toBe(401);
    expect(without.body.error).toBe('invalid_token');
    expect(without.headers.get('www-authenticate')).toMatch(/^Bearer /);
    const unknown = await call('POST', endpoint, 'not-a-token-we-issued', serviceMetadata());
    expect(unknown.status).toBe(401);
    expect(unknown.body.error).toBe('invalid_token');
  });

  it('registers, serves, updates and deletes a client with its registration access token', async () => {
    const iat = await initialAccessToken('--expires-in', '600');
    const name = `billing ${randomUUID()}`;
    const created = await call('POST', endpoint, iat, serviceMetadata(name));
    expect(created.status).toBe(201);
    const clientId = String(created.body.client_id);
    const clientSecret = String(created.body.client_secret);
    const rat = String(created.body.registration_access_token);
    const clientUri = String(created.body.registration_client_uri);
    expect(clientId).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/);
    expect(clientSecret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(clientUri).toBe(`${endpoint}/${clientId}`);
    expect(created.body).toMatchObject({ client_name: name, grant_types: ['client_credentials'], response_types: [], client_secret_expires_at: 0 });
    const auth = { clientId, clientSecret };

    // It works at once on this node, but holds no grant at any API: an administrator grants those.
    const ungranted = await tokenRequest(base, { grant_type: 'client_credentials', resource }, auth);
    expect(ungranted.status).toBe(400);
    expect(ungranted.body.error).toBe('invalid_target');
    await t.build.grant(clientId, resource, 'read:orders');
    const token = await tokenEventually({ grant_type: 'client_credentials', resource }, auth, 200);
    expect(token.status).toBe(200);
    const claims = JSON.parse(Buffer.from(String(token.body.access_token).split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    expect(claims).toMatchObject({ aud: resource, client_id: clientId });
    expect(claims.scope).toBeUndefined();
    const granted = await tokenEventually({ grant_type: 'client_credentials', resource, scope: 'read:orders' }, auth, 200);
    expect(granted.status).toBe(200);

    // In the registry like any client, the secret only as a digest.
    const listed = await t.cli<Array<{ client_id: string; client_name: string }>>('clients', 'list');
    expect(listed).toContainEqual(expect.objectContaining({ client_id: clientId, client_name: name }));
    const row = (await db.query<{ secret_digest: string }>('select secret_digest from clients where client_id = $1', [clientId])).rows[0];
    expect(row?.secret_digest).toMatch(/^hs256\$/);
    expect(row?.secret_digest).not.toContain(clientSecret);

    // RFC 7592 read: the metadata, never the secret or its digest.
    const read = await call('GET', clientUri, rat);
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ client_id: clientId, client_name: name, grant_types: ['client_credentials'], registration_client_uri: clientUri });
    expect(read.body).not.toHaveProperty('client_secret');
    expect(JSON.stringify(read.body)).not.toContain(row!.secret_digest.slice('hs256$'.length));
    expect(JSON.stringify(read.body)).not.toContain('hs256$');

    // A wrong registration access token reads, changes and deletes nothing.
    for (const method of ['GET', 'DELETE']) {
      const wrong = await call(method, clientUri, 'not-the-registration-access-token');
      expect(wrong.status).toBe(401);
      expect(wrong.body.error).toBe('invalid_token');
    }

    // RFC 7592 update: a refused redirect URI changes nothing.
    const update = {
      client_id: clientId,
      client_name: name,
      grant_types: ['authorization_code', 'client_credentials'],
      response_types: ['code'],
      redirect_uris: ['https://billing.example.test/callback'],
      token_endpoint_auth_method: 'client_secret_basic',
    };
    const badRedirects: Array<[string, RegExp]> = [
      ['http://billing.example.test/callback', /^redirect_uris\.0: must use https/],
      ['https://billing.example.test/callback#x', /^redirect_uris must not contain fragments/],
      ['https://*.example.test/callback', /^redirect_uris\.0: must not contain a wildcard/],
    ];
    for (const [bad, description] of badRedirects) {
      const refused = await call('PUT', clientUri, rat, { ...update, redirect_uris: [bad] });
      expect(refused.status, bad).toBe(400);
      expect(refused.body, bad).toMatchObject({ error: 'invalid_redirect_uri', error_description: expect.stringMatching(description) });
    }
    const withSecret = await call('PUT', clientUri, rat, { ...update, client_secret: clientSecret });
    expect(withSecret.status).toBe(400);
    expect(withSecret.body).toMatchObject({ error: 'invalid_request', error_description: expect.stringMatching(/^client_secret is not taken in an update/) });
    expect((await call('GET', clientUri, rat)).body.redirect_uris).toEqual([]);

    const updated = await call('PUT', clientUri, rat, update);
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ client_id: clientId, redirect_uris: update.redirect_uris, grant_types: update.grant_types });
    expect(updated.body).not.toHaveProperty('client_secret');
    const rotated = String(updated.body.registration_access_token);
    expect(rotated).not.toBe(rat);
    expect((await call('GET', clientUri, rat)).status).toBe(401);
    // The secret still works, and the scope an administrator granted survives the client's own update.
    expect((await tokenRequest(base, { grant_type: 'client_credentials', resource, scope: 'read:orders' }, auth)).status).toBe(200);
    const stored = await t.cli<{ redirect_uris: string[]; scope: string; grants: unknown[] }>('clients', 'get', clientId);
    expect(stored.redirect_uris).toEqual(update.redirect_uris);
    expect(stored.scope.split(' ')).toContain('openid');
    expect(stored.grants).toEqual([{ resource, scope: 'read:orders' }]);

    // RFC 7592 delete: gone at once.
    const deleted = await fetch(clientUri, { method: 'DELETE', headers: { authorization: `Bearer ${rotated}` } });
    expect(deleted.status).toBe(204);
    const after = await tokenRequest(base, { grant_type: 'client_credentials', resource }, auth);
    expect(after.status).toBe(401);
    expect(after.body.error).toBe('invalid_client');
    expect((await call('GET', clientUri, rotated)).status).toBe(401);
    const gone = await db.query('select 1 from clients where client_id = $1', [clientId]);
    expect(gone.rowCount).toBe(0);
  });

  it('keeps initial and registration access tokens only as digests: a value read from the database is refused at /reg', async () => {
    type Row = { id: string; payload: Record<string, unknown> };
    /** What a reader of the table holds: each row's id and the strings of its payload. */
    const storedValues = (rows: Row[]) => rows.flatMap((row) => [row.id, ...Object.values(row.payload).filter((value): value is string => typeof value === 'string')]);

    const iat = await initialAccessToken('--expires-in', '600');
    const iatRows = (await db.query<Row>("select id, payload from oidc_durable where model = 'InitialAccessToken'")).rows;
    expect(iatRows.length).toBeGreaterThan(0);
    for (const value of storedValues(iatRows)) {
      const refused = await call('POST', endpoint, value, serviceMetadata());
      expect(refused.status, value).toBe(401);
      expect(refused.body.error, value).toBe('invalid_token');
    }
    expect(JSON.stringify(iatRows)).not.toContain(iat);

    const created = await call('POST', endpoint, iat, serviceMetadata());
    expect(created.status).toBe(201);
    const rat = String(created.body.registration_access_token);
    const clientUri = String(created.body.registration_client_uri);
    const ratRows = (await db.query<Row>("select id, payload from oidc_durable where model = 'RegistrationAccessToken' and client_id = $1", [created.body.client_id])).rows;
    expect(ratRows).toHaveLength(1);
    for (const value of storedValues(ratRows)) {
      for (const method of ['GET', 'DELETE']) {
        const refused = await call(method, clientUri, value);
        expect(refused.status, `${method} ${value}`).toBe(401);
        expect(refused.body.error, `${method} ${value}`).toBe('invalid_token');
      }
    }
    expect(JSON.stringify(ratRows)).not.toContain(rat);
    // The tokens themselves still work.
    expect((await call('GET', clientUri, rat)).status).toBe(200);
    expect((await call('POST', endpoint, iat, serviceMetadata())).status).toBe(201);
  });

  it('records the client\'s own create, update and delete in the audit log as registration:<client id>, and nothing for a refused change', async () => {
    const iat = await initialAccessToken('--expires-in', '600');
    const name = `audited ${randomUUID()}`;
    const created = await call('POST', endpoint, iat, serviceMetadata(name));
    expect(created.status).toBe(201);
    const clientId = String(created.body.client_id);
    const clientUri = String(created.body.registration_client_uri);
    const refused = await call('PUT', clientUri, String(created.body.registration_access_token), {
      ...serviceMetadata(name),
      client_id: clientId,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: ['http://audited.example.test/callback'],
    });
    expect(refused.status).toBe(400);
    const updated = await call('PUT', clientUri, String(created.body.registration_access_token), { ...serviceMetadata(`${name}, renamed`), client_id: clientId });
    expect(updated.status).toBe(200);
    const deleted = await fetch(clientUri, { method: 'DELETE', headers: { authorization: `Bearer ${String(updated.body.registration_access_token)}` } });
    expect(deleted.status).toBe(204);

    const rows = (
      await db.query<{ actor: string; action: string; target: string; request_id: string | null; ip: string | null; details: Record<string, unknown> }>(
        'select actor, action, target, request_id, ip, details from audit_log where target = $1 order by seq',
        [`client:${clientId}`],
      )
    ).rows;
    expect(rows.map((row) => [row.actor, row.action])).toEqual([
      [`registration:${clientId}`, 'client.create'],
      [`registration:${clientId}`, 'client.update'],
      [`registration:${clientId}`, 'client.delete'],
    ]);
    expect(rows.map((row) => row.request_id)).toEqual([created.headers.get('x-request-id'), updated.headers.get('x-request-id'), deleted.headers.get('x-request-id')]);
    for (const row of rows) expect(row.ip).toMatch(/127\.0\.0\.1/);
    expect(rows[0]!.details).toMatchObject({ after: { client_id: clientId, client_name: name } });
    expect(rows[1]!.details).toMatchObject({ before: { client_name: name }, after: { client_name: `${name}, renamed` } });
    expect(rows[2]!.details).toMatchObject({ before: { client_id: clientId, client_name: `${name}, renamed` } });
    expect(JSON.stringify(rows)).not.toContain(String(created.body.client_secret));
    expect(JSON.stringify(rows)).not.toContain('hs256$');
    expect(await t.cli('audit', 'verify')).toMatchObject({ ok: true });
  });

  it('registers a public sign-in client (PKCE is always required) without a secret', async () => {
    const iat = await initialAccessToken();
    const created = await call('POST', endpoint, iat, {
      client_name: 'spa',
      redirect_uris: ['http://127.0.0.1:8080/callback'],
      token_endpoint_auth_method: 'none',
      client_uri: 'https://spa.example.test',
    });
    expect(created.status).toBe(201);
    expect(created.body).not.toHaveProperty('client_secret');
    expect(created.body).toMatchObject({ token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], scope: 'openid profile email' });
    // Not kept, so not promised: the answer is what a read will show.
    expect(created.body).not.toHaveProperty('client_uri');
    const read = await call('GET', String(created.body.registration_client_uri), String(created.body.registration_access_token));
    const { registration_access_token: _a, ...readRest } = read.body;
    const { registration_access_token: _b, ...createdRest } = created.body;
    expect(readRest).toEqual(createdRest);

    // Becoming confidential issues a secret, once, and it works at once.
    // RFC 7592 §2.2: the update sends the client's metadata without the server's own fields.
    const { client_id_issued_at: _c, registration_client_uri: _d, ...metadata } = createdRest;
    const update = { ...metadata, token_endpoint_auth_method: 'client_secret_basic', grant_types: ['authorization_code', 'client_credentials'] };
    const updated = await call('PUT', String(created.body.registration_client_uri), String(read.body.registration_access_token), update);
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ token_endpoint_auth_method: 'client_secret_basic', client_secret_expires_at: 0 });
    const clientSecret = String(updated.body.client_secret);
    expect(clientSecret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const auth = { clientId: String(created.body.client_id), clientSecret };
    await t.build.grant(auth.clientId, resource);
    expect((await tokenEventually({ grant_type: 'client_credentials', resource }, auth, 200)).status).toBe(200);
    const reread = await call('GET', String(created.body.registration_client_uri), String(updated.body.registration_access_token));
    expect(reread.body).not.toHaveProperty('client_secret');
    expect(reread.body.client_secret_expires_at).toBe(0);
  });

  it.each([
    ['client_secret_jwt', { token_endpoint_auth_method: 'client_secret_jwt' }, /^token_endpoint_auth_method must be/],
    ['an implicit response type', { response_types: ['code id_token'], grant_types: ['authorization_code', 'implicit'], redirect_uris: ['https://a.example.test/cb'] }, /^grant_types can only contain/],
    ['a native application', { application_type: 'native', redirect_uris: ['https://a.example.test/cb'], grant_types: ['authorization_code'], response_types: ['code'] }, /^application_type must be "web"/],
    ['a jwks_uri', { token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'https://a.example.test/jwks' }, /^jwks_uri is not supported/],
    ['an API scope', { scope: 'read:orders' }, /^scope must only contain/],
    ['a refresh_token grant without authorization_code', { grant_types: ['client_credentials', 'refresh_token'] }, /^grant_types: refresh_token is only issued with the authorization_code or device_code grant/],
    ['no name', { client_name: undefined }, /^client_name: is required/],
  ])('refuses %s with invalid_client_metadata', async (_what, change, description) => {
    const iat = await initialAccessToken();
    const refused = await call('POST', endpoint, iat, { ...serviceMetadata(), ...change });
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('invalid_client_metadata');
    expect(refused.body.error_description).toMatch(description);
  });

  it('never lets a client set require_mfa on itself (dropped, as metadata the server does not take from clients), and keeps the one an administrator set across its own updates', async () => {
    const iat = await initialAccessToken();
    const created = await call('POST', endpoint, iat, { ...serviceMetadata(), require_mfa: true });
    expect(created.status).toBe(201);
    expect(created.body).not.toHaveProperty('require_mfa');
    const clientId = String(created.body.client_id);
    const stored = async () => (await db.query<{ require_mfa: boolean }>('select require_mfa from clients where client_id = $1', [clientId])).rows[0]?.require_mfa;
    expect(await stored()).toBe(false);

    // An administrator requires it; the client's own update (saying false, or nothing) leaves it so.
    await t.build.update(clientId, { require_mfa: true });
    const { client_id_issued_at: _a, registration_client_uri: _b, registration_access_token: rat, client_secret: _c, client_secret_expires_at: _d, ...metadata } = created.body;
    const updated = await call('PUT', String(created.body.registration_client_uri), String(rat), { ...metadata, client_name: 'renamed by itself', require_mfa: false });
    expect(updated.status).toBe(200);
    expect(updated.body).not.toHaveProperty('require_mfa');
    expect(await stored()).toBe(true);
    const row = await db.query<{ client_name: string }>('select client_name from clients where client_id = $1', [clientId]);
    expect(row.rows[0]?.client_name).toBe('renamed by itself');
  });

  it('stops taking an initial access token when it expires', async () => {
    const iat = await initialAccessToken('--expires-in', '1');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const refused = await call('POST', endpoint, iat, serviceMetadata());
    expect(refused.status).toBe(401);
    expect(refused.body.error).toBe('invalid_token');
  });

  it('prints the token for people too, saying it is shown once', async () => {
    const out = await t.cliRaw('registration', 'token', 'create', '--expires-in', '60');
    const token = /^initial_access_token\s+(\S+)$/m.exec(out.stdout)?.[1];
    recordSecret(token);
    expect(out.code).toBe(0);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(out.stdout).toMatch(/^expires_at\s+\d{4}-\d\d-\d\dT/m);
    expect(out.stderr).toContain('shown this once');
    expect((await call('POST', endpoint, token, serviceMetadata())).status).toBe(201);
  });

  interface ListedToken {
    id: string;
    created_at: string;
    expires_at: string | null;
    expired: boolean;
  }

  it('lists initial access tokens by an id that is not the token, with their expiry and never a value', async () => {
    const first = await t.cli<{ id: string; initial_access_token: string; expires_at: string }>('registration', 'token', 'create', '--expires-in', '600');
    const second = await t.cli<{ id: string; initial_access_token: string; expires_at: string }>('registration', 'token', 'create');
    recordSecret(first.initial_access_token);
    recordSecret(second.initial_access_token);
    expect(first.id).toMatch(/^[0-9a-f]{32}$/);
    expect(first.id).not.toBe(second.id);
    const listed = await t.cli<ListedToken[]>('registration', 'token', 'list');
    expect(listed.find((token) => token.id === first.id)).toEqual({ id: first.id, created_at: expect.any(String), expires_at: first.expires_at, expired: false });
    expect(listed.find((token) => token.id === second.id)).toMatchObject({ expires_at: second.expires_at, expired: false });
    // One day unless said.
    expect(Date.parse(second.expires_at) - Date.parse(listed.find((token) => token.id === second.id)!.created_at)).toBeGreaterThan(86_000_000);
    for (const token of [first.initial_access_token, second.initial_access_token]) {
      expect(JSON.stringify(listed)).not.toContain(token);
      expect(listed.map((entry) => entry.id)).not.toContain(token);
      for (const entry of listed) expect(token).not.toContain(entry.id);
    }
    const people = await t.cliRaw('registration', 'token', 'list');
    expect(people.code).toBe(0);
    expect(people.stdout).toContain(first.id);
    expect(people.stdout).not.toContain(first.initial_access_token);
  });

  it('revokes an initial access token by its listed id: /reg answers 401 at once, other tokens keep working', async () => {
    const doomed = await t.cli<{ id: string; initial_access_token: string }>('registration', 'token', 'create', '--expires-in', '600');
    const other = await t.cli<{ id: string; initial_access_token: string }>('registration', 'token', 'create', '--expires-in', '600');
    recordSecret(doomed.initial_access_token);
    recordSecret(other.initial_access_token);
    expect((await call('POST', endpoint, doomed.initial_access_token, serviceMetadata())).status).toBe(201);
    // The token value is not an id: refused, and it still works. (After `--`: a base64url value
    // starts with "-" one time in 64, which the parser would take for an option.)
    const byValue = await t.cliRaw('registration', 'token', 'revoke', '--', doomed.initial_access_token);
    expect(byValue.code).toBe(1);
    expect(byValue.stderr).toMatch(/not found/);
    expect(byValue.stderr).not.toContain(doomed.initial_access_token);
    expect((await call('POST', endpoint, doomed.initial_access_token, serviceMetadata())).status).toBe(201);

    expect(await t.cli('registration', 'token', 'revoke', doomed.id)).toEqual({ id: doomed.id, revoked: true });
    const refused = await call('POST', endpoint, doomed.initial_access_token, serviceMetadata());
    expect(refused.status).toBe(401);
    expect(refused.body.error).toBe('invalid_token');
    expect((await t.cli<ListedToken[]>('registration', 'token', 'list')).map((token) => token.id)).not.toContain(doomed.id);
    expect((await call('POST', endpoint, other.initial_access_token, serviceMetadata())).status).toBe(201);
    const again = await t.cliRaw('registration', 'token', 'revoke', doomed.id, '--json');
    expect(again.code).toBe(1);
    expect(again.stdout).toBe('');
    expect(again.stderr).toMatch(/initial access token [0-9a-f]{32} .*not found/);
    const audit = await db.query<{ action: string; target: string }>(`select action, target from audit_log where action = 'registration.token_revoke'`);
    expect(audit.rows).toContainEqual({ action: 'registration.token_revoke', target: `initial_access_token:${doomed.id}` });
  });

  it('refuses a lifetime above REGISTRATION_TOKEN_MAX_TTL_SECONDS (30 days unless configured) and stores nothing', async () => {
    const count = async () => (await t.cli<ListedToken[]>('registration', 'token', 'list')).length;
    const before = await count();
    const over = await t.cliRaw('registration', 'token', 'create', '--expires-in', String(30 * 86_400 + 1));
    expect(over.code).toBe(1);
    expect(over.stdout).toBe('');
    expect(over.stderr).toMatch(/--expires-in: 2592001 seconds is longer than an initial access token may live here: at most 2592000 \(30 days, REGISTRATION_TOKEN_MAX_TTL_SECONDS\)/);
    const yearLong = await t.cliRaw('registration', 'token', 'create', '--expires-in', String(365 * 86_400));
    expect(yearLong.code).toBe(1);
    const atCap = await t.cli<{ initial_access_token: string; expires_at: string }>('registration', 'token', 'create', '--expires-in', String(30 * 86_400));
    recordSecret(atCap.initial_access_token);
    expect(await count()).toBe(before + 1);

    const capped = { ...t.env, REGISTRATION_TOKEN_MAX_TTL_SECONDS: '600' };
    const overConfigured = await runCliCapture(['registration', 'token', 'create', '--expires-in', '601', '--json'], capped);
    expect(overConfigured.code).toBe(1);
    expect(overConfigured.stderr).toMatch(/at most 600 \(600 seconds, REGISTRATION_TOKEN_MAX_TTL_SECONDS\)/);
    // Without --expires-in, the default (1 day) gives way to a shorter cap.
    const byDefault = await runCliCapture(['registration', 'token', 'create', '--json'], capped);
    expect(byDefault.code).toBe(0);
    const issued = JSON.parse(byDefault.stdout) as { id: string; initial_access_token: string; expires_at: string };
    recordSecret(issued.initial_access_token);
    const listed = (await t.cli<ListedToken[]>('registration', 'token', 'list')).find((token) => token.id === issued.id);
    expect(Date.parse(issued.expires_at) - Date.parse(listed!.created_at)).toBeLessThanOrEqual(601_000);
    expect(await count()).toBe(before + 2);
  });

  it('says how to call the token command', async () => {
    const bad = await t.cliRaw('registration', 'token', 'create', '--expires-in', 'soon');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--expires-in');
    const unknown = await t.cliRaw('registration', 'tokens');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('registration token create');
    expect(unknown.stderr).toContain('registration token list');
    const noId = await t.cliRaw('registration', 'token', 'revoke');
    expect(noId.code).toBe(2);
    expect(noId.stderr).toContain('expected one ID');
  });
});
