import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEVICE_CODE_GRANT_TYPE, TOKEN_EXCHANGE_GRANT_TYPE } from '../../src/config/protocol.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';

/*
 * Issue 18, point 7: discovery, dynamic registration and the admin API know every new client field,
 * and refuse what does not fit in each one's own error format, changing nothing.
 */

type Json = Record<string, unknown>;

const PUBLIC_JWKS = { keys: [{ kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' }] };

describe('newer-protocol client fields in discovery, /reg and the admin API', () => {
  let t: TestServer;
  let adminToken: string;
  let api: string;

  async function call(method: string, path: string, options: { token?: string; body?: unknown } = {}): Promise<{ status: number; body: Json; type: string }> {
    const headers: Record<string, string> = {};
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const response = await t.fetch(path, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
    const type = response.headers.get('content-type') ?? '';
    const body = (type.includes('json') ? await response.json() : {}) as Json;
    for (const key of ['client_secret', 'registration_access_token']) if (typeof body[key] === 'string') recordSecret(body[key]);
    return { status: response.status, body, type };
  }
  const countClients = async () => (await t.cli<Json[]>('clients', 'list')).length;

  beforeAll(async () => {
    t = await startTestServer({ name: 'newer-protocols-registry', env: { REGISTRATION_ENABLED: 'true' }, listen: false });
    const admin = await t.build.client({ client_name: `admin ${randomUUID()}`, admin: true });
    const answer = await tokenRequest(t.server.url, { grant_type: 'client_credentials', scope: 'admin' }, admin, t.fetch);
    adminToken = String(answer.body.access_token);
    api = `https://orders-${randomUUID()}.example.test`;
    await t.build.resource({ identifier: api, scope: 'read' });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('discovery advertises the device endpoint, back-channel logout, PAR, request objects, DPoP and both new grants', async () => {
    const discovery = (await (await t.fetch('/.well-known/openid-configuration')).json()) as Json;
    expect(discovery).toMatchObject({
      device_authorization_endpoint: `${t.server.url}/device/auth`,
      backchannel_logout_supported: true,
      backchannel_logout_session_supported: true,
      pushed_authorization_request_endpoint: `${t.server.url}/request`,
      request_parameter_supported: true,
    });
    expect(discovery.grant_types_supported).toEqual(expect.arrayContaining([DEVICE_CODE_GRANT_TYPE, TOKEN_EXCHANGE_GRANT_TYPE]));
    expect(discovery.dpop_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256']));
  });

  it('the admin API creates, reads and patches every field under its RFC name', async () => {
    const created = await call('POST', '/admin/v1/clients', {
      token: adminToken,
      body: {
        client_name: 'Back office',
        redirect_uris: ['https://office.example.test/cb'],
        grant_types: ['authorization_code', TOKEN_EXCHANGE_GRANT_TYPE],
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: PUBLIC_JWKS,
        backchannel_logout_uri: 'https://office.example.test/logout',
        backchannel_logout_session_required: true,
        dpop_bound_access_tokens: true,
        require_pushed_authorization_requests: true,
        require_signed_request_object: true,
        may_act: [api],
      },
    });
    expect(created.status).toBe(201);
    const fields = {
      backchannel_logout_uri: 'https://office.example.test/logout',
      backchannel_logout_session_required: true,
      dpop_bound_access_tokens: true,
      require_pushed_authorization_requests: true,
      require_signed_request_object: true,
      profile: null,
      may_act: [api],
    };
    expect(created.body).toMatchObject(fields);
    const clientId = String(created.body.client_id);
    expect((await call('GET', `/admin/v1/clients/${clientId}`, { token: adminToken })).body).toMatchObject(fields);
    const patched = await call('PATCH', `/admin/v1/clients/${clientId}`, { token: adminToken, body: { may_act: [], grant_types: ['authorization_code'] } });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ ...fields, may_act: [], grant_types: ['authorization_code'] });
  });

  it.each([
    ['a back-channel URI with a fragment', { backchannel_logout_uri: 'https://office.example.test/logout#x' }, 'backchannel_logout_uri'],
    ['sid without a back-channel URI', { backchannel_logout_session_required: true }, 'backchannel_logout_session_required'],
    ['signed request objects without keys', { require_signed_request_object: true }, 'require_signed_request_object'],
    ['may_act without the grant', { may_act: ['https://orders.example.test'] }, 'may_act'],
    ['an unknown profile', { profile: 'fapi1' }, 'profile'],
    ['a non-boolean dpop flag', { dpop_bound_access_tokens: 'yes' }, 'dpop_bound_access_tokens'],
  ])('the admin API refuses %s with a problem naming the field, creating nothing', async (_name, body, field) => {
    const before = await countClients();
    const refused = await call('POST', '/admin/v1/clients', { token: adminToken, body: { client_name: 'refused', redirect_uris: ['https://office.example.test/cb'], ...body } });
    expect(refused.status).toBe(400);
    expect(refused.type).toMatch(/^application\/problem\+json/);
    expect((refused.body.errors as Array<{ field: string }>).map((error) => error.field)).toContain(field);
    expect(await countClients()).toBe(before);
  });

  it('the OpenAPI document describes the fields', async () => {
    const document = (await (await t.fetch('/admin/v1/openapi.json')).json()) as { components: { schemas: Record<string, { properties: Json }> } };
    for (const schema of ['ClientCreate', 'ClientUpdate', 'Client']) {
      expect(Object.keys(document.components.schemas[schema]!.properties)).toEqual(
        expect.arrayContaining(['backchannel_logout_uri', 'backchannel_logout_session_required', 'dpop_bound_access_tokens', 'require_pushed_authorization_requests', 'require_signed_request_object', 'profile', 'may_act']),
      );
    }
  });

  describe('dynamic registration (RFC 7591)', () => {
    let initialAccessToken: string;
    beforeAll(async () => {
      initialAccessToken = String((await t.cli('registration', 'token', 'create', '--expires-in', '600')).initial_access_token);
      recordSecret(initialAccessToken);
    });

    it('registers the protocol fields, answers them, and reads them back', async () => {
      const created = await call('POST', '/reg', {
        token: initialAccessToken,
        body: {
          client_name: `tv ${randomUUID()}`,
          grant_types: [DEVICE_CODE_GRANT_TYPE, 'refresh_token'],
          response_types: [],
          token_endpoint_auth_method: 'none',
          backchannel_logout_uri: 'https://tv.example.test/logout',
          backchannel_logout_session_required: true,
          dpop_bound_access_tokens: true,
        },
      });
      expect(created.status).toBe(201);
      const registered = {
        grant_types: [DEVICE_CODE_GRANT_TYPE, 'refresh_token'],
        backchannel_logout_uri: 'https://tv.example.test/logout',
        backchannel_logout_session_required: true,
        dpop_bound_access_tokens: true,
        require_pushed_authorization_requests: false,
      };
      expect(created.body).toMatchObject(registered);
      const read = await call('GET', `/reg/${String(created.body.client_id)}`, { token: String(created.body.registration_access_token) });
      expect(read.body).toMatchObject(registered);
      expect((await t.cli('clients', 'get', String(created.body.client_id))) as Json).toMatchObject(registered);
    });

    it.each([
      ['a back-channel URI with a fragment', { backchannel_logout_uri: 'https://tv.example.test/logout#x' }, /backchannel_logout_uri/],
      ['an http back-channel URI off loopback', { backchannel_logout_uri: 'http://tv.example.test/logout' }, /backchannel_logout_uri/],
    ])('refuses %s with invalid_client_metadata, registering nothing', async (_name, body, mentions) => {
      const before = await countClients();
      const refused = await call('POST', '/reg', {
        token: initialAccessToken,
        body: { client_name: 'refused', grant_types: ['client_credentials'], response_types: [], token_endpoint_auth_method: 'client_secret_basic', ...body },
      });
      expect(refused.status).toBe(400);
      expect(refused.body.error).toBe('invalid_client_metadata');
      expect(String(refused.body.error_description)).toMatch(mentions);
      expect(await countClients()).toBe(before);
    });

    it('ignores may_act and profile from a client (RFC 7591 §2: metadata it does not take): an administrator sets them', async () => {
      const created = await call('POST', '/reg', {
        token: initialAccessToken,
        body: { client_name: `svc ${randomUUID()}`, grant_types: ['client_credentials', TOKEN_EXCHANGE_GRANT_TYPE], response_types: [], may_act: [api], profile: 'fapi2' },
      });
      expect(created.status).toBe(201);
      expect(created.body).not.toHaveProperty('may_act');
      expect((await t.cli('clients', 'get', String(created.body.client_id))) as Json).toMatchObject({ may_act: [], profile: null });
    });
  });
});
