import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCliCapture } from '../fixtures/cli.js';
import { Agent, authorizeUrl, pkce, signIn } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, tokenRequest as tokenRequestVia, type TestServer } from '../fixtures/server.js';

type Json = Record<string, unknown>;
type ClientJson = { client_id: string; client_secret: string; scope: string; admin: boolean; grants: Array<{ resource: string; scope: string }> };

const claimsOf = (token: unknown) => JSON.parse(Buffer.from(String(token).split('.')[1] ?? '', 'base64url').toString()) as Json;

/**
 * The authorization model: a client gets tokens only for the APIs it holds a grant for, with only
 * that grant's scopes; scope names are per API. Through client credentials, refresh and code, the
 * CLI, the admin API, and across the registry cache of a running server.
 *
 * The server listens on no port: every request goes to the app's handler in this process (t.fetch);
 * the CLI's own cases run the CLI as a child process on the server's registry.
 */
describe('per-client API grants', () => {
  let t: TestServer;
  let base: string;
  let adminToken: string;
  let orders: string;
  let billing: string;
  const tokenRequest = (url: string, form: Record<string, string>, auth?: { clientId: string; clientSecret: string }) => tokenRequestVia(url, form, auth, t.fetch);

  /** Retries a token request while the registry cache has not seen a change yet (100 ms poll here). */
  async function tokenEventually(form: Record<string, string>, auth: { clientId: string; clientSecret: string }, until: (status: number) => boolean) {
    const deadline = Date.now() + 5_000;
    let answer = await tokenRequest(base, form, auth);
    while (!until(answer.status) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      answer = await tokenRequest(base, form, auth);
    }
    return answer;
  }

  async function admin(method: string, path: string, body?: unknown) {
    const response = await t.fetch(`${base}/admin/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    const json = (text ? JSON.parse(text) : {}) as Json;
    if (typeof json.client_secret === 'string') recordSecret(json.client_secret);
    return { status: response.status, body: json };
  }

  /** A client_credentials client holding these grants, set up through the services (the CLI's own cases are below). */
  async function service(grants: Array<[string, string]>): Promise<{ clientId: string; clientSecret: string }> {
    const created = await t.build.client();
    for (const [resource, scope] of grants) await t.build.grant(created.clientId, resource, scope);
    await t.server.cache.refresh();
    return created;
  }

  beforeAll(async () => {
    // Nothing in this file may go over a socket: a request that did would fail here.
    vi.stubGlobal('fetch', () => Promise.reject(new Error('fetch over a socket in an in-process test: use t.fetch')));
    t = await startTestServer({ name: 'client-grants', listen: false });
    base = t.config.issuer;
    orders = `https://orders-${randomUUID().slice(0, 8)}.example.test`;
    billing = `https://billing-${randomUUID().slice(0, 8)}.example.test`;
    // Both APIs define `read`: the name means nothing across them.
    await t.build.resource({ identifier: orders, scope: 'read write' });
    await t.build.resource({ identifier: billing, scope: 'read pay' });
    const created = await t.build.client({ client_name: 'grants admin', admin: true });
    await t.server.cache.refresh();
    const token = await tokenRequest(base, { grant_type: 'client_credentials', scope: 'admin' }, created);
    expect(token.status).toBe(200);
    adminToken = String(token.body.access_token);
  }, 60_000);
  afterAll(async () => {
    vi.unstubAllGlobals();
    await t?.close();
  });

  describe('client credentials', () => {
    it('refuses an API the client holds no grant for with invalid_target, even with a scope name it holds elsewhere', async () => {
      const auth = await service([[orders, 'read']]);
      const own = await tokenRequest(base, { grant_type: 'client_credentials', resource: orders, scope: 'read' }, auth);
      expect(own.status).toBe(200);
      expect(claimsOf(own.body.access_token)).toMatchObject({ aud: orders, scope: 'read' });
      const forms: Array<Record<string, string>> = [{ resource: billing, scope: 'read' }, { resource: billing }];
      for (const form of forms) {
        const other = await tokenRequest(base, { grant_type: 'client_credentials', ...form }, auth);
        expect(other.status, JSON.stringify(form)).toBe(400);
        expect(other.body.error).toBe('invalid_target');
        expect(other.body).not.toHaveProperty('access_token');
      }
      // An API that is not registered answers the same: a client learns nothing of the registry.
      const unknown = await tokenRequest(base, { grant_type: 'client_credentials', resource: 'https://nowhere.example.test' }, auth);
      expect(unknown.body).toEqual({ error: 'invalid_target', error_description: 'this client holds no grant for https://nowhere.example.test' });
    });

    it('refuses a scope not granted at that API with invalid_scope, whatever other APIs the client holds it at', async () => {
      const auth = await service([[orders, 'read write'], [billing, 'pay']]);
      const notHere = await tokenRequest(base, { grant_type: 'client_credentials', resource: billing, scope: 'read' }, auth);
      expect(notHere.status).toBe(400);
      expect(notHere.body.error).toBe('invalid_scope');
      expect(String(notHere.body.error_description)).toContain('not granted');
      // Not offered there at all: the same words, so a client learns nothing of the registry.
      const notOffered = await tokenRequest(base, { grant_type: 'client_credentials', resource: billing, scope: 'write' }, auth);
      expect(notOffered.body).toMatchObject({ error: 'invalid_scope', error_description: notHere.body.error_description?.toString().replace('"read"', '"write"') });
      const elsewhere = await tokenRequest(base, { grant_type: 'client_credentials', resource: orders, scope: 'pay' }, auth);
      expect(elsewhere.status).toBe(400);
      expect(elsewhere.body.error).toBe('invalid_scope');
      const both = await tokenRequest(base, { grant_type: 'client_credentials', resource: billing, scope: 'pay' }, auth);
      expect(both.status).toBe(200);
      expect(claimsOf(both.body.access_token)).toMatchObject({ aud: billing, scope: 'pay' });
    });

    it('a token carries only scopes of its aud', async () => {
      const auth = await service([[orders, 'read write'], [billing, 'read pay']]);
      const token = await tokenRequest(base, { grant_type: 'client_credentials', resource: orders, scope: 'read write' }, auth);
      expect(token.status).toBe(200);
      expect(String(claimsOf(token.body.access_token).scope).split(' ').sort()).toEqual(['read', 'write']);
      const mixed = await tokenRequest(base, { grant_type: 'client_credentials', resource: orders, scope: 'read pay' }, auth);
      expect(mixed.body.error).toBe('invalid_scope');
    });
  });

  describe('CLI', () => {
    it('create --resource --scope makes exactly that grant; grant, revoke-grant and get manage and show them', async () => {
      const created = await t.cli<ClientJson>('clients', 'create', '--name', 'cli grants', '--resource', orders, '--scope', 'read');
      recordSecret(created.client_secret);
      expect(created.grants).toEqual([{ resource: orders, scope: 'read' }]);
      expect(created.scope).toBe('read');
      const granted = await t.cli<ClientJson>('clients', 'grant', created.client_id, '--resource', billing, '--scope', 'pay');
      expect(granted.grants).toEqual(expect.arrayContaining([{ resource: orders, scope: 'read' }, { resource: billing, scope: 'pay' }]));
      expect((await t.cli<ClientJson>('clients', 'get', created.client_id)).grants).toHaveLength(2);
      const revoked = await t.cli<ClientJson>('clients', 'revoke-grant', created.client_id, '--resource', billing);
      expect(revoked.grants).toEqual([{ resource: orders, scope: 'read' }]);
    });

    it('refuses bad grants with one line naming the flag, and changes nothing', async () => {
      const created = await t.cli<ClientJson>('clients', 'create', '--name', 'cli refusals', '--resource', orders, '--scope', 'read');
      recordSecret(created.client_secret);
      const cases: Array<[string[], RegExp]> = [
        [['clients', 'grant', created.client_id, '--resource', billing, '--scope', 'write'], /not offered by/],
        [['clients', 'grant', created.client_id, '--resource', 'https://nowhere.example.test', '--scope', 'read'], /not a registered resource server/],
        [['clients', 'grant', created.client_id, '--scope', 'read'], /needs --resource/],
        [['clients', 'revoke-grant', created.client_id, '--resource', orders], /default resource/],
        [['clients', 'revoke-grant', created.client_id, '--resource', billing], /not found/],
        [['clients', 'create', '--name', 'flat', '--scope', 'read'], /granted per API/],
      ];
      for (const [args, message] of cases) {
        const result = await t.cliRaw(...args);
        expect(result.code, args.join(' ')).not.toBe(0);
        expect(result.stderr, args.join(' ')).toMatch(message);
        expect(result.stderr.trim().split('\n')).toHaveLength(1);
      }
      expect((await t.cli<ClientJson>('clients', 'get', created.client_id)).grants).toEqual([{ resource: orders, scope: 'read' }]);
    });

    it('a revoked grant reaches the running server through its cache like any registry change', async () => {
      const auth = await service([[orders, 'read'], [billing, 'read']]);
      const form = { grant_type: 'client_credentials', resource: billing, scope: 'read' };
      expect((await tokenRequest(base, form, auth)).status).toBe(200);
      await t.cli('clients', 'revoke-grant', auth.clientId, '--resource', billing);
      const refused = await tokenEventually(form, auth, (status) => status !== 200);
      expect(refused.status).toBe(400);
      expect(refused.body.error).toBe('invalid_target');
      expect((await tokenRequest(base, { grant_type: 'client_credentials', resource: orders, scope: 'read' }, auth)).status).toBe(200);
    });

    it('deleting an API deletes its grants', async () => {
      const temporary = `https://temporary-${randomUUID().slice(0, 8)}.example.test`;
      await t.cli('resources', 'create', '--identifier', temporary, '--scope', 'read');
      const auth = await service([[orders, 'read'], [temporary, 'read']]);
      expect((await tokenRequest(base, { grant_type: 'client_credentials', resource: temporary }, auth)).status).toBe(200);
      await t.cli('resources', 'delete', temporary);
      expect((await t.cli<ClientJson>('clients', 'get', auth.clientId)).grants).toEqual([{ resource: orders, scope: 'read' }]);
      // Created again under the same identifier, it is a new API: the old grant does not come back.
      await t.cli('resources', 'create', '--identifier', temporary, '--scope', 'read');
      const refused = await tokenEventually({ grant_type: 'client_credentials', resource: temporary }, auth, (status) => status !== 200);
      expect(refused.body.error).toBe('invalid_target');
    });
  });

  describe('admin API', () => {
    it('creates with grants, PUTs and DELETEs a grant, and PATCH replaces them; each answer lists them', async () => {
      const created = await admin('POST', '/clients', { client_name: 'api grants', grants: [{ resource: orders, scope: 'read' }] });
      expect(created.status).toBe(201);
      expect(created.body.grants).toEqual([{ resource: orders, scope: 'read' }]);
      const id = String(created.body.client_id);
      const auth = { clientId: id, clientSecret: String(created.body.client_secret) };
      const put = await admin('PUT', `/clients/${id}/grants/${encodeURIComponent(billing)}`, { scope: 'pay' });
      expect(put.status).toBe(200);
      expect(put.body.grants).toEqual(expect.arrayContaining([{ resource: billing, scope: 'pay' }]));
      expect((await tokenEventually({ grant_type: 'client_credentials', resource: billing, scope: 'pay' }, auth, (s) => s === 200)).status).toBe(200);

      const badScope = await admin('PUT', `/clients/${id}/grants/${encodeURIComponent(billing)}`, { scope: 'write' });
      expect(badScope.status).toBe(400);
      expect(badScope.body.errors).toEqual([expect.objectContaining({ field: 'scope' })]);
      const unknown = await admin('PUT', `/clients/${id}/grants/${encodeURIComponent('https://nowhere.example.test')}`, {});
      expect(unknown.status).toBe(400);
      expect((await admin('GET', `/clients/${id}`)).body.grants).toEqual(expect.arrayContaining([{ resource: billing, scope: 'pay' }, { resource: orders, scope: 'read' }]));

      const deleted = await admin('DELETE', `/clients/${id}/grants/${encodeURIComponent(billing)}`);
      expect(deleted.status).toBe(200);
      expect(deleted.body.grants).toEqual([{ resource: orders, scope: 'read' }]);
      expect((await admin('DELETE', `/clients/${id}/grants/${encodeURIComponent(billing)}`)).status).toBe(404);

      const patched = await admin('PATCH', `/clients/${id}`, { grants: [{ resource: billing, scope: 'read' }] });
      expect(patched.status).toBe(200);
      expect(patched.body.grants).toEqual([{ resource: billing, scope: 'read' }]);
      const refused = await tokenEventually({ grant_type: 'client_credentials', resource: orders }, auth, (s) => s !== 200);
      expect(refused.body.error).toBe('invalid_target');

      const duplicate = await admin('PATCH', `/clients/${id}`, { grants: [{ resource: billing }, { resource: billing }] });
      expect(duplicate.status).toBe(400);
      expect(duplicate.body.errors).toEqual([expect.objectContaining({ field: 'grants.1.resource' })]);
      expect((await admin('GET', `/clients/${id}`)).body.grants).toEqual([{ resource: billing, scope: 'read' }]);
    });

    it('applies concurrent grant changes one after the other: no 5xx, and the default resource keeps its grant', async () => {
      const created = await admin('POST', '/clients', { client_name: 'racing grants', default_resource: orders, scope: 'read' });
      const id = String(created.body.client_id);
      for (let round = 0; round < 5; round += 1) {
        const answers = await Promise.all([
          admin('PUT', `/clients/${id}/grants/${encodeURIComponent(billing)}`, { scope: 'pay' }),
          admin('PATCH', `/clients/${id}`, { grants: [{ resource: orders, scope: 'read' }, { resource: billing, scope: 'read' }] }),
          admin('DELETE', `/clients/${id}/grants/${encodeURIComponent(billing)}`),
          admin('PATCH', `/clients/${id}`, { default_resource: round % 2 === 0 ? billing : orders, scope: 'read' }),
          admin('DELETE', `/clients/${id}/grants/${encodeURIComponent(orders)}`),
        ]);
        for (const answer of answers) expect([200, 400, 404], JSON.stringify(answer.body)).toContain(answer.status);
        const now = await admin('GET', `/clients/${id}`);
        const grants = now.body.grants as Array<{ resource: string }>;
        expect(grants.map((grant) => grant.resource), `round ${round}`).toContain(now.body.default_resource);
      }
    });

    it('narrowing an API takes the scopes it no longer offers out of every grant, for good', async () => {
      const api = `https://narrowing-${randomUUID().slice(0, 8)}.example.test`;
      await t.build.resource({ identifier: api, scope: 'read write' });
      const auth = await service([[api, 'read write']]);
      await t.cli('resources', 'update', api, '--scope', 'read');
      expect((await t.cli<ClientJson>('clients', 'get', auth.clientId)).grants).toEqual([{ resource: api, scope: 'read' }]);
      // Offered again, the scope is not granted again by itself.
      await t.cli('resources', 'update', api, '--scope', 'read write');
      expect((await t.cli<ClientJson>('clients', 'get', auth.clientId)).grants).toEqual([{ resource: api, scope: 'read' }]);
      const refused = await tokenEventually({ grant_type: 'client_credentials', resource: api, scope: 'write' }, auth, (s) => s !== 200);
      expect(refused.body.error).toBe('invalid_scope');
    });

    it('shows the secret issued by a switch from none to a secret method, once', async () => {
      const created = await admin('POST', '/clients', {
        client_name: 'spa turned web app',
        token_endpoint_auth_method: 'none',
        redirect_uris: ['https://app.example.test/cb'],
        grant_types: ['authorization_code'],
      });
      expect(created.status).toBe(201);
      expect(created.body).not.toHaveProperty('client_secret');
      const id = String(created.body.client_id);
      const switched = await admin('PATCH', `/clients/${id}`, { token_endpoint_auth_method: 'client_secret_basic' });
      expect(switched.status).toBe(200);
      expect(typeof switched.body.client_secret).toBe('string');
      const secret = String(switched.body.client_secret);
      expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
      // Never again: a read and a further update do not show it.
      expect((await admin('GET', `/clients/${id}`)).body).not.toHaveProperty('client_secret');
      expect((await admin('PATCH', `/clients/${id}`, { client_name: 'renamed' })).body).not.toHaveProperty('client_secret');
      // And it is the client's secret: the introspection endpoint authenticates it.
      const basic = Buffer.from(`${id}:${secret}`).toString('base64');
      const introspected = await t.fetch(`${base}/token/introspection`, {
        method: 'POST',
        headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: 'nothing' }),
      });
      expect(introspected.status).toBe(200);
    });
  });

  describe('the admin API as a grant', () => {
    it('an admin client made by a CLI that does not know the server port or issuer works on the server', async () => {
      // The CLI computes ISSUER from PORT, 3000 unless said: nothing it stores may depend on that.
      const env = Object.fromEntries(Object.entries(t.env).filter(([key]) => key !== 'ISSUER' && key !== 'PORT'));
      const result = await runCliCapture(['clients', 'create', '--name', 'portless admin', '--admin', '--json'], env);
      expect(result.code, result.stderr).toBe(0);
      const created = JSON.parse(result.stdout) as ClientJson;
      recordSecret(created.client_secret);
      expect(created.admin).toBe(true);
      expect(created.grants).toEqual([{ resource: 'urn:gatehouse:admin-api', scope: 'admin' }]);
      const auth = { clientId: created.client_id, clientSecret: created.client_secret };
      const token = await tokenEventually({ grant_type: 'client_credentials', scope: 'admin' }, auth, (s) => s === 200);
      expect(token.status).toBe(200);
      expect(claimsOf(token.body.access_token).aud).toBe(`${base}/admin/v1`);
      const listed = await t.fetch(`${base}/admin/v1/clients`, { headers: { authorization: `Bearer ${String(token.body.access_token)}` } });
      expect(listed.status).toBe(200);
    });

    it('a client without the admin grant gets no admin API token; taking the grant away locks an admin client out', async () => {
      const plain = await service([[orders, 'read']]);
      const refused = await tokenRequest(base, { grant_type: 'client_credentials', resource: `${base}/admin/v1`, scope: 'admin' }, plain);
      expect(refused.status).toBe(400);
      expect(refused.body.error).toBe('invalid_target');
      // The stored identifier is no audience: asking for it is refused too.
      const byUrn = await tokenRequest(base, { grant_type: 'client_credentials', resource: 'urn:gatehouse:admin-api' }, plain);
      expect(byUrn.body.error).toBe('invalid_target');

      const auth = await t.build.client({ client_name: 'short-lived admin', admin: true });
      const token = await tokenEventually({ grant_type: 'client_credentials', scope: 'admin' }, auth, (s) => s === 200);
      expect(token.status).toBe(200);
      const bearer = { authorization: `Bearer ${String(token.body.access_token)}` };
      expect((await t.fetch(`${base}/admin/v1/clients`, { headers: bearer })).status).toBe(200);
      // The default resource goes first, then the grant: the token in hand stops working at once.
      await t.cli('clients', 'update', auth.clientId, '--resource', orders, '--scope', 'read');
      await t.cli('clients', 'revoke-grant', auth.clientId, '--resource', `${t.config.issuer}/admin/v1`);
      expect((await t.cli<ClientJson>('clients', 'get', auth.clientId)).admin).toBe(false);
      await t.server.cache.refresh();
      expect((await t.fetch(`${base}/admin/v1/clients`, { headers: bearer })).status).toBe(401);
      const again = await tokenRequest(base, { grant_type: 'client_credentials', resource: `${base}/admin/v1`, scope: 'admin' }, auth);
      expect(again.body.error).toBe('invalid_target');
    });

    it('the admin API resource cannot be deleted or given other scopes', async () => {
      const deleted = await t.cliRaw('resources', 'delete', 'urn:gatehouse:admin-api');
      expect(deleted.code).not.toBe(0);
      expect(deleted.stderr).toMatch(/admin API cannot be deleted/);
      const rescoped = await t.cliRaw('resources', 'update', 'urn:gatehouse:admin-api', '--scope', 'admin everything');
      expect(rescoped.code).not.toBe(0);
      expect((await t.cli<{ scope: string }>('resources', 'get', 'urn:gatehouse:admin-api')).scope).toBe('admin');
    });
  });

  describe('people: authorization code and refresh', () => {
    const password = 'grants are per api, people too';
    let email: string;
    let app: { clientId: string; clientSecret: string };
    const redirectUri = 'http://127.0.0.1:8771/cb';

    beforeAll(async () => {
      ({ email } = await t.build.person({ password }));
      app = await t.build.client({
        client_name: 'Grants App',
        redirect_uris: [redirectUri],
        grant_types: ['authorization_code', 'refresh_token'],
        scope: 'openid offline_access',
      });
      await t.build.grant(app.clientId, orders, 'read');
      await t.server.cache.refresh();
    });

    function authorize(params: Record<string, string>) {
      const { verifier, challenge } = pkce();
      return { verifier, url: authorizeUrl({ client_id: app.clientId, redirect_uri: redirectUri, code_challenge: challenge, code_challenge_method: 'S256', ...params }) };
    }

    it('issues a token for a granted API with only its consented scopes, and refuses the refresh once the grant is gone', async () => {
      const { url, verifier } = authorize({ scope: 'openid offline_access read', resource: orders, prompt: 'consent' });
      const { redirect, sawConsent } = await signIn(new Agent(base, t.fetch), { url, email, password });
      expect(sawConsent).toBe(true);
      const code = redirect.searchParams.get('code');
      expect(code, redirect.toString()).toBeTruthy();
      const exchanged = await tokenRequest(base, { grant_type: 'authorization_code', code: code ?? '', redirect_uri: redirectUri, code_verifier: verifier, resource: orders }, app);
      expect(exchanged.status).toBe(200);
      expect(claimsOf(exchanged.body.access_token)).toMatchObject({ aud: orders, scope: 'read' });
      const refreshToken = String(exchanged.body.refresh_token);
      recordSecret(refreshToken);

      // The same person's token for an API the app holds no grant for: refused at the refresh.
      const other = await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: refreshToken, resource: billing }, app);
      expect(other.status).toBe(400);
      expect(['invalid_target', 'invalid_grant']).toContain(other.body.error);

      const refreshed = await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: refreshToken, resource: orders }, app);
      expect(refreshed.status).toBe(200);
      expect(claimsOf(refreshed.body.access_token)).toMatchObject({ aud: orders, scope: 'read' });
      const next = String(refreshed.body.refresh_token);
      recordSecret(next);

      await t.cli('clients', 'revoke-grant', app.clientId, '--resource', orders);
      await t.server.cache.refresh();
      const revoked = await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: next, resource: orders }, app);
      expect(revoked.status).toBe(400);
      expect(revoked.body.error).toBe('invalid_target');
      await t.build.grant(app.clientId, orders, 'read');
      await t.server.cache.refresh();
    });

    it('refuses an authorization request for an API the client holds no grant for, or a scope not granted there', async () => {
      const agent = new Agent(base, t.fetch);
      const cases: Array<[Record<string, string>, string]> = [
        [{ scope: 'openid read', resource: billing }, 'invalid_target'],
        [{ scope: 'openid write', resource: orders }, 'invalid_scope'],
        [{ scope: 'openid pay', resource: orders }, 'invalid_scope'],
        // An API scope that names no API would be dropped silently: refused instead.
        [{ scope: 'openid read' }, 'invalid_target'],
      ];
      for (const [params, error] of cases) {
        const { response } = await agent.follow(authorize(params).url);
        const location = response.headers.get('location');
        expect(location, JSON.stringify(params)).toBeTruthy();
        const back = new URL(location ?? '', base);
        expect(back.origin + back.pathname).toBe(redirectUri);
        expect(back.searchParams.get('error'), JSON.stringify(params)).toBe(error);
        expect(back.searchParams.has('code')).toBe(false);
      }
    });
  });
});
