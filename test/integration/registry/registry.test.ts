import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RegistryDatabase } from '../../../src/registry/database.js';
import { migrateToLatest } from '../../../src/registry/migrate.js';
import { verifyClientSecret } from '../../../src/services/client-secrets.js';
import {
  clientToJson,
  createClient,
  deleteClient,
  getClient,
  rotateClientSecret,
  updateClient,
  type ClientServiceDeps,
} from '../../../src/services/clients.service.js';
import { ConflictError, NotFoundError, ValidationError } from '../../../src/services/errors.js';
import { createResource, deleteResource, getResource, listResources, updateResource } from '../../../src/services/resources.service.js';
import { MIGRATIONS } from '../../../migrations/index.js';
import { REGISTRY_ENGINES, REGISTRY_TEST_ISSUER } from '../../fixtures/registry-engines.js';
import { TEST_ACTOR, testServices } from '../../fixtures/services.js';

const ISSUER = REGISTRY_TEST_ISSUER;

describe.each(REGISTRY_ENGINES)('registry on $name', (engine) => {
  let registry: RegistryDatabase;
  let cleanup: () => Promise<void>;
  let deps: ClientServiceDeps;
  let firstRun: string[];
  let secondRun: string[];

  beforeAll(async () => {
    ({ registry, cleanup } = await engine.open());
    firstRun = await migrateToLatest(registry.db);
    secondRun = await migrateToLatest(registry.db);
    deps = { db: registry.db, issuer: ISSUER, digestKey: randomBytes(32), audit: testServices(registry.db).audit };
  }, 60_000);
  afterAll(async () => {
    await cleanup?.();
  }, 60_000);

  const countClients = async () =>
    Number((await registry.db.selectFrom('clients').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
  const countResources = async () =>
    Number((await registry.db.selectFrom('resource_servers').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
  const uniqueResource = () => `https://api-${randomUUID()}.example.test`;

  /** Expects the call to throw a ValidationError naming `field`; returns its errors. */
  async function expectValidationError(promise: Promise<unknown>, field: string | RegExp) {
    const error = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ValidationError);
    const errors = (error as ValidationError).errors;
    const fields = errors.map((e) => e.field);
    if (typeof field === 'string') expect(fields).toContain(field);
    else expect(fields.some((f) => field.test(f)), fields.join(', ')).toBe(true);
    return errors;
  }

  it('migrateToLatest applies the migration once and nothing the second time', async () => {
    expect(firstRun).toEqual(Object.keys(MIGRATIONS));
    expect(firstRun).toContain('2026_11_23_120000_create_registry');
    expect(secondRun).toEqual([]);
    expect(await migrateToLatest(registry.db)).toEqual([]);
    const revision = await registry.db.selectFrom('registry_revision').select('revision').execute();
    expect(revision).toHaveLength(1);
  });

  it('answers ping', async () => {
    await expect(registry.ping(2000)).resolves.toBeUndefined();
  });

  describe('clients', () => {
    it('createClient returns the secret once and stores only a digest that verifies it', async () => {
      const { client, clientSecret } = await createClient(deps, TEST_ACTOR, { client_name: 'service', grant_types: ['client_credentials'] });
      expect(clientSecret).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(client.tokenEndpointAuthMethod).toBe('client_secret_basic');

      const row = await registry.db.selectFrom('clients').selectAll().where('client_id', '=', client.clientId).executeTakeFirstOrThrow();
      expect(row.secret_digest).not.toBeNull();
      expect(row.secret_digest).not.toBe(clientSecret);
      expect(row.secret_digest).not.toContain(clientSecret!);
      expect(JSON.stringify(row)).not.toContain(clientSecret!);
      expect(verifyClientSecret(deps.digestKey, clientSecret!, row.secret_digest)).toBe(true);
      expect(verifyClientSecret(deps.digestKey, `${clientSecret}x`, row.secret_digest)).toBe(false);

      // Reading the client back never yields the secret.
      const read = await getClient(registry.db, client.clientId);
      expect(JSON.stringify(read)).not.toContain(clientSecret!);
      expect(JSON.stringify(clientToJson(read))).not.toContain(clientSecret!);
      expect(clientToJson(read)).not.toHaveProperty('client_secret');
    });

    it('a public client (none) gets no secret', async () => {
      const { client, clientSecret } = await createClient(deps, TEST_ACTOR, {
        client_name: 'spa',
        redirect_uris: ['https://spa.example.test/cb'],
        token_endpoint_auth_method: 'none',
      });
      expect(clientSecret).toBeUndefined();
      expect(client.secretDigest).toBeNull();
      expect(client.grantTypes).toEqual(['authorization_code']);
      expect(client.scopes).toEqual(['openid', 'profile', 'email']);
    });

    it('gives a client the scopes of its default resource when created without a scope', async () => {
      const identifier = uniqueResource();
      await createResource(deps, TEST_ACTOR, { identifier, scope: 'orders:read orders:write' });
      const { client } = await createClient(deps, TEST_ACTOR, { client_name: 'svc', default_resource: identifier });
      expect(client.grantTypes).toEqual(['client_credentials']);
      expect(client.defaultResource).toBe(identifier);
      expect(client.scopes).toEqual([]);
      expect(client.grants).toEqual([expect.objectContaining({ resource: identifier, scopes: ['orders:read', 'orders:write'] })]);
      expect(clientToJson(client).scope).toBe('orders:read orders:write');
    });

    const invalid: Array<{ what: string; input: Record<string, unknown>; field: string | RegExp }> = [
      { what: 'a non-https redirect URI', input: { redirect_uris: ['http://example.com/cb'] }, field: /^redirect_uris/ },
      { what: 'a redirect URI with a fragment', input: { redirect_uris: ['https://app.example.test/cb#x'] }, field: /^redirect_uris/ },
      { what: 'a wildcard redirect URI', input: { redirect_uris: ['https://*.example.test/cb'] }, field: /^redirect_uris/ },
      { what: 'an unknown grant type', input: { grant_types: ['password'] }, field: /^grant_types/ },
      {
        what: 'none with client_credentials',
        input: { grant_types: ['client_credentials'], token_endpoint_auth_method: 'none' },
        field: 'token_endpoint_auth_method',
      },
      { what: 'private_key_jwt without jwks', input: { token_endpoint_auth_method: 'private_key_jwt' }, field: 'jwks' },
      { what: 'an unregistered default_resource', input: { default_resource: 'https://nowhere.example.test' }, field: 'default_resource' },
      { what: 'a scope no resource defines', input: { scope: `undefined-${randomUUID()}` }, field: 'scope' },
      {
        what: 'a private key in jwks',
        input: { jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y', d: 'secret' }] } },
        field: /^jwks/,
      },
      { what: 'an unknown field', input: { client_secret: 'chosen-by-caller' }, field: /^(body|client_secret)$/ },
      { what: 'authorization_code without redirect URIs', input: { grant_types: ['authorization_code'] }, field: 'redirect_uris' },
    ];

    it.each(invalid)('createClient refuses $what, naming the field, and writes nothing', async ({ input, field }) => {
      const clientsBefore = await countClients();
      const resourcesBefore = await countResources();
      await expectValidationError(createClient(deps, TEST_ACTOR, { client_name: 'bad', ...input }), field);
      expect(await countClients()).toBe(clientsBefore);
      expect(await countResources()).toBe(resourcesBefore);
    });

    it('createClient refuses an admin client that breaks a rule without writing the admin resource', async () => {
      const resourcesBefore = await countResources();
      const clientsBefore = await countClients();
      await expectValidationError(
        createClient({ ...deps, issuer: `https://fresh-${randomUUID()}.example.test` }, TEST_ACTOR, {
          client_name: 'bad admin',
          admin: true,
          token_endpoint_auth_method: 'none',
        }),
        'token_endpoint_auth_method',
      );
      expect(await countClients()).toBe(clientsBefore);
      expect(await countResources()).toBe(resourcesBefore);
    });

    it('updateClient refuses invalid changes and leaves the client as it was', async () => {
      const { client } = await createClient(deps, TEST_ACTOR, { client_name: 'stable', redirect_uris: ['https://app.example.test/cb'] });
      await expectValidationError(updateClient(deps, TEST_ACTOR, client.clientId, { redirect_uris: ['http://example.com/cb'] }), /^redirect_uris/);
      await expectValidationError(updateClient(deps, TEST_ACTOR, client.clientId, { token_endpoint_auth_method: 'private_key_jwt' }), 'jwks');
      const after = await getClient(registry.db, client.clientId);
      expect(after.redirectUris).toEqual(['https://app.example.test/cb']);
      expect(after.tokenEndpointAuthMethod).toBe('client_secret_basic');
      expect(after.version).toBe(client.version);
    });

    it('updateClient changes the client and bumps its version', async () => {
      const { client, clientSecret } = await createClient(deps, TEST_ACTOR, { client_name: 'before' });
      const { client: updated, clientSecret: newSecret } = await updateClient(deps, TEST_ACTOR, client.clientId, { client_name: 'after' });
      expect(updated.clientName).toBe('after');
      expect(updated.version).toBe(client.version + 1);
      expect(newSecret).toBeUndefined();
      expect(verifyClientSecret(deps.digestKey, clientSecret!, updated.secretDigest)).toBe(true);
    });

    it('rotateClientSecret makes the old secret fail and the new one verify', async () => {
      const { client, clientSecret: oldSecret } = await createClient(deps, TEST_ACTOR, { client_name: 'rotating' });
      const { clientSecret: newSecret } = await rotateClientSecret(deps, TEST_ACTOR, client.clientId);
      expect(newSecret).toBeDefined();
      expect(newSecret).not.toBe(oldSecret);
      const stored = await getClient(registry.db, client.clientId);
      expect(verifyClientSecret(deps.digestKey, oldSecret!, stored.secretDigest)).toBe(false);
      expect(verifyClientSecret(deps.digestKey, newSecret!, stored.secretDigest)).toBe(true);
      expect(stored.secretRotatedAt).toBeInstanceOf(Date);
    });

    it('rotateClientSecret refuses a client without a secret', async () => {
      const { client } = await createClient(deps, TEST_ACTOR, {
        client_name: 'public',
        redirect_uris: ['https://spa.example.test/cb'],
        token_endpoint_auth_method: 'none',
      });
      await expectValidationError(rotateClientSecret(deps, TEST_ACTOR, client.clientId), 'token_endpoint_auth_method');
      expect((await getClient(registry.db, client.clientId)).secretDigest).toBeNull();
    });

    it('get, update, rotate and delete of an unknown client are NotFoundError', async () => {
      const unknown = `missing-${randomUUID()}`;
      await expect(getClient(registry.db, unknown)).rejects.toThrow(NotFoundError);
      await expect(updateClient(deps, TEST_ACTOR, unknown, { client_name: 'x' })).rejects.toThrow(NotFoundError);
      await expect(rotateClientSecret(deps, TEST_ACTOR, unknown)).rejects.toThrow(NotFoundError);
      await expect(deleteClient(deps, TEST_ACTOR, unknown)).rejects.toThrow(NotFoundError);
    });

    it('deleteClient removes the client', async () => {
      const { client } = await createClient(deps, TEST_ACTOR, { client_name: 'short-lived' });
      await deleteClient(deps, TEST_ACTOR, client.clientId);
      await expect(getClient(registry.db, client.clientId)).rejects.toThrow(NotFoundError);
    });
  });

  describe('resources', () => {
    it('createResource stores a resource with defaults and reads it back by id or identifier', async () => {
      const identifier = uniqueResource();
      const created = await createResource(deps, TEST_ACTOR, { identifier, scope: 'read write read' });
      expect(created.scopes).toEqual(['read', 'write']);
      expect(created.accessTokenTtl).toBe(600);
      expect(created.name).toBeNull();
      expect((await getResource(registry.db, identifier)).id).toBe(created.id);
      expect((await getResource(registry.db, created.id)).identifier).toBe(identifier);
      expect((await listResources(registry.db)).map((r) => r.identifier)).toContain(identifier);
    });

    it('a duplicate identifier is a ConflictError on identifier and adds nothing', async () => {
      const identifier = uniqueResource();
      await createResource(deps, TEST_ACTOR, { identifier });
      const before = await countResources();
      const error = await createResource(deps, TEST_ACTOR, { identifier, scope: 'other' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConflictError);
      expect((error as ConflictError).field).toBe('identifier');
      expect(await countResources()).toBe(before);
    });

    it('refuses invalid resources, naming the field', async () => {
      const before = await countResources();
      await expectValidationError(createResource(deps, TEST_ACTOR, { identifier: 'not a uri' }), 'identifier');
      await expectValidationError(createResource(deps, TEST_ACTOR, { identifier: uniqueResource(), scope: 'openid' }), 'scope');
      await expectValidationError(createResource(deps, TEST_ACTOR, { identifier: uniqueResource(), access_token_ttl: 0 }), 'access_token_ttl');
      await expectValidationError(createResource(deps, TEST_ACTOR, { identifier: uniqueResource(), access_token_ttl: 90_000 }), 'access_token_ttl');
      expect(await countResources()).toBe(before);
    });

    it('updateResource changes name, scopes and ttl', async () => {
      const created = await createResource(deps, TEST_ACTOR, { identifier: uniqueResource() });
      const updated = await updateResource(deps, TEST_ACTOR, created.identifier, { name: 'Orders', scope: 'a b', access_token_ttl: 120 });
      expect(updated).toMatchObject({ id: created.id, name: 'Orders', scopes: ['a', 'b'], accessTokenTtl: 120 });
    });

    it('applies concurrent changes of one resource one after the other: each audit row starts where the one before ended', async () => {
      const created = await createResource(deps, TEST_ACTOR, { identifier: uniqueResource() });
      await Promise.all(['One', 'Two', 'Three', 'Four', 'Five', 'Six'].map((name) => updateResource(deps, TEST_ACTOR, created.id, { name })));
      const rows = await registry.db
        .selectFrom('audit_log')
        .select(['seq', 'details'])
        .where('action', '=', 'resource.update')
        .where('target', '=', `resource:${created.id}`)
        .orderBy('seq')
        .execute();
      expect(rows).toHaveLength(6);
      const names = rows.map((row) => {
        const details = (typeof row.details === 'string' ? JSON.parse(row.details) : row.details) as { before: { name: string | null }; after: { name: string | null } };
        return [details.before.name, details.after.name];
      });
      // Without the row lock, two changes read the same "before" and one of them is lost from the log.
      for (let i = 1; i < names.length; i += 1) expect(names[i]?.[0]).toBe(names[i - 1]?.[1]);
    });

    it('refuses to delete a resource that is some client default_resource, and deletes it once unused', async () => {
      const identifier = uniqueResource();
      await createResource(deps, TEST_ACTOR, { identifier, scope: 'x' });
      const { client } = await createClient(deps, TEST_ACTOR, { client_name: 'user of resource', default_resource: identifier });
      await expectValidationError(deleteResource(deps, TEST_ACTOR, identifier), 'identifier');
      expect((await getResource(registry.db, identifier)).identifier).toBe(identifier);

      await updateClient(deps, TEST_ACTOR, client.clientId, { default_resource: null, scope: '' });
      await deleteResource(deps, TEST_ACTOR, identifier);
      await expect(getResource(registry.db, identifier)).rejects.toThrow(NotFoundError);
    });
  });
});
