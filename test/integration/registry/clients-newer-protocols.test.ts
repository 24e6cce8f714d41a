import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEVICE_CODE_GRANT_TYPE, TOKEN_EXCHANGE_GRANT_TYPE } from '../../../src/config/protocol.js';
import { toProviderMetadata } from '../../../src/oidc/adapters/client-adapter.js';
import type { RegistryDatabase } from '../../../src/registry/database.js';
import { migrateToLatest } from '../../../src/registry/migrate.js';
import { clientToJson, createClient, getClient, saveRegisteredClient, updateClient, type ClientServiceDeps } from '../../../src/services/clients.service.js';
import { ValidationError } from '../../../src/services/errors.js';
import { createResource } from '../../../src/services/resources.service.js';
import { REGISTRY_ENGINES, REGISTRY_TEST_ISSUER } from '../../fixtures/registry-engines.js';
import { TEST_ACTOR, testServices } from '../../fixtures/services.js';

/*
 * The client metadata of the newer protocols (issue 18): back-channel logout, DPoP, PAR, JAR, a
 * profile and may_act, stored, answered, passed to oidc-provider, and refused where they do not fit.
 */

const PUBLIC_JWKS = { keys: [{ kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' }] };

describe.each(REGISTRY_ENGINES)('newer-protocol client metadata on $name', (engine) => {
  let registry: RegistryDatabase;
  let cleanup: () => Promise<void>;
  let deps: ClientServiceDeps;
  let api: string;

  beforeAll(async () => {
    ({ registry, cleanup } = await engine.open());
    await migrateToLatest(registry.db);
    deps = { db: registry.db, issuer: REGISTRY_TEST_ISSUER, digestKey: randomBytes(32), audit: testServices(registry.db).audit };
    api = `https://orders-${randomUUID()}.example.test`;
    await createResource(testServices(registry.db), TEST_ACTOR, { identifier: api, name: 'Orders', scope: 'read' });
  }, 60_000);
  afterAll(async () => {
    await cleanup?.();
  }, 60_000);

  /** The field names of the ValidationError the call throws. */
  async function refusedFields(promise: Promise<unknown>): Promise<string[]> {
    const error = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ValidationError);
    return (error as ValidationError).errors.map((e) => e.field);
  }

  it('a new client has none of them, and existing answers show the defaults', async () => {
    const { client } = await createClient(deps, TEST_ACTOR, { client_name: 'plain', redirect_uris: ['https://app.example.test/cb'] });
    expect(clientToJson(client)).toMatchObject({
      backchannel_logout_uri: null,
      backchannel_logout_session_required: false,
      dpop_bound_access_tokens: false,
      require_pushed_authorization_requests: false,
      require_signed_request_object: false,
      profile: null,
      may_act: [],
    });
    const metadata = toProviderMetadata(client);
    expect(metadata.backchannel_logout_uri).toBeUndefined();
    expect(metadata).toMatchObject({ dpop_bound_access_tokens: false, require_pushed_authorization_requests: false, require_signed_request_object: false });
  });

  it('stores every field, answers it under its RFC name, and passes the protocol ones to oidc-provider', async () => {
    const { client } = await createClient(deps, TEST_ACTOR, {
      client_name: 'all of them',
      redirect_uris: ['https://app.example.test/cb'],
      grant_types: ['authorization_code', 'refresh_token', DEVICE_CODE_GRANT_TYPE, TOKEN_EXCHANGE_GRANT_TYPE],
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: PUBLIC_JWKS,
      backchannel_logout_uri: 'https://app.example.test/backchannel?tenant=1',
      backchannel_logout_session_required: true,
      dpop_bound_access_tokens: true,
      require_pushed_authorization_requests: true,
      require_signed_request_object: true,
      may_act: [api, api],
    });
    const stored = await getClient(registry.db, client.clientId);
    expect(clientToJson(stored)).toMatchObject({
      grant_types: ['authorization_code', 'refresh_token', DEVICE_CODE_GRANT_TYPE, TOKEN_EXCHANGE_GRANT_TYPE],
      backchannel_logout_uri: 'https://app.example.test/backchannel?tenant=1',
      backchannel_logout_session_required: true,
      dpop_bound_access_tokens: true,
      require_pushed_authorization_requests: true,
      require_signed_request_object: true,
      may_act: [api],
    });
    expect(toProviderMetadata(stored)).toMatchObject({
      backchannel_logout_uri: 'https://app.example.test/backchannel?tenant=1',
      backchannel_logout_session_required: true,
      dpop_bound_access_tokens: true,
      require_pushed_authorization_requests: true,
      require_signed_request_object: true,
    });

    // A partial update changes what it names and keeps the rest.
    const { client: updated } = await updateClient(deps, TEST_ACTOR, client.clientId, { dpop_bound_access_tokens: false, backchannel_logout_session_required: false });
    expect(clientToJson(updated)).toMatchObject({
      dpop_bound_access_tokens: false,
      backchannel_logout_session_required: false,
      backchannel_logout_uri: 'https://app.example.test/backchannel?tenant=1',
      require_pushed_authorization_requests: true,
      may_act: [api],
    });
  });

  it.each([
    ['an http back-channel URI off loopback', { backchannel_logout_uri: 'http://app.example.test/bc' }, 'backchannel_logout_uri'],
    ['a back-channel URI with a fragment', { backchannel_logout_uri: 'https://app.example.test/bc#x' }, 'backchannel_logout_uri'],
    ['a relative back-channel URI', { backchannel_logout_uri: '/bc' }, 'backchannel_logout_uri'],
    ['sid required without a back-channel URI', { backchannel_logout_session_required: true }, 'backchannel_logout_session_required'],
    ['signed request objects without keys', { require_signed_request_object: true }, 'require_signed_request_object'],
    ['may_act without the token-exchange grant', { may_act: ['https://orders.example.test'] }, 'may_act'],
    ['an unknown profile', { profile: 'fapi1' }, 'profile'],
    ['a may_act entry that is not a URI', { grant_types: ['client_credentials', TOKEN_EXCHANGE_GRANT_TYPE], may_act: ['orders'] }, 'may_act.0'],
  ])('refuses %s, and stores nothing', async (_name, fields, field) => {
    const name = `refused-${randomUUID()}`;
    const fieldsOf = await refusedFields(createClient(deps, TEST_ACTOR, { client_name: name, redirect_uris: ['https://app.example.test/cb'], ...fields }));
    expect(fieldsOf).toContain(field);
    const stored = await registry.db.selectFrom('clients').select('client_id').where('client_name', '=', name).execute();
    expect(stored).toEqual([]);
  });

  it('refuses a may_act API that is not registered, and the admin API', async () => {
    const base = { client_name: 'acting service', grant_types: ['client_credentials', TOKEN_EXCHANGE_GRANT_TYPE] };
    expect(await refusedFields(createClient(deps, TEST_ACTOR, { ...base, may_act: ['https://nowhere.example.test'] }))).toEqual(['may_act.0']);
    expect(await refusedFields(createClient(deps, TEST_ACTOR, { ...base, may_act: [api, `${REGISTRY_TEST_ISSUER}/admin/v1`] }))).toEqual(['may_act.1']);
  });

  it('a public client may use the device grant alone, never token exchange', async () => {
    const { client } = await createClient(deps, TEST_ACTOR, { client_name: 'tv app', grant_types: [DEVICE_CODE_GRANT_TYPE, 'refresh_token'], token_endpoint_auth_method: 'none' });
    expect(client.grantTypes).toEqual([DEVICE_CODE_GRANT_TYPE, 'refresh_token']);
    expect(client.secretDigest).toBeNull();
    const fields = await refusedFields(createClient(deps, TEST_ACTOR, { client_name: 'public exchanger', grant_types: ['authorization_code', TOKEN_EXCHANGE_GRANT_TYPE], redirect_uris: ['https://app.example.test/cb'], token_endpoint_auth_method: 'none' }));
    expect(fields).toContain('token_endpoint_auth_method');
  });

  it('an update that breaks a rule changes nothing', async () => {
    const { client } = await createClient(deps, TEST_ACTOR, { client_name: 'bc app', redirect_uris: ['https://app.example.test/cb'], backchannel_logout_uri: 'https://app.example.test/bc', backchannel_logout_session_required: true });
    expect(await refusedFields(updateClient(deps, TEST_ACTOR, client.clientId, { backchannel_logout_uri: null }))).toContain('backchannel_logout_session_required');
    const after = await getClient(registry.db, client.clientId);
    expect(after.backchannelLogoutUri).toBe('https://app.example.test/bc');
    expect(after.version).toBe(client.version);
  });

  it('a client registering itself sets the protocol fields, and keeps what an administrator set (may_act, profile)', async () => {
    const { client } = await createClient(deps, TEST_ACTOR, { client_name: 'service', grant_types: ['client_credentials', TOKEN_EXCHANGE_GRANT_TYPE], may_act: [api] });
    const saved = await saveRegisteredClient(
      deps,
      { actor: `registration:${client.clientId}` },
      client.clientId,
      {
        client_name: 'service',
        grant_types: ['client_credentials', TOKEN_EXCHANGE_GRANT_TYPE],
        backchannel_logout_uri: 'https://service.example.test/bc',
        dpop_bound_access_tokens: true,
      },
      'a-newly-issued-secret',
    );
    expect(clientToJson(saved)).toMatchObject({ backchannel_logout_uri: 'https://service.example.test/bc', dpop_bound_access_tokens: true, may_act: [api] });
    // may_act and profile are not the client's to say.
    expect(await refusedFields(saveRegisteredClient(deps, { actor: 'registration:x' }, client.clientId, { client_name: 'service', may_act: [] }, undefined))).toContain('body');
  });
});
