import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load-config.js';
import { createLogger } from '../../../src/observability/logger.js';
import { prepareFindApiKeyForExchange, touchApiKey } from '../../../src/registry/api-key.repository.js';
import { openCliDatabase, type RegistryDatabase } from '../../../src/registry/database.js';
import { migrateToLatest } from '../../../src/registry/migrate.js';
import { ADMIN_RESOURCE_IDENTIFIER } from '../../../src/registry/resource-server.repository.js';
import { insertUser } from '../../../src/registry/user.repository.js';
import {
  apiKeyDigest,
  apiKeyToJson,
  createApiKey,
  listApiKeys,
  MAX_KEYS_PER_PERSON,
  regenerateApiKey,
  revokeApiKey,
} from '../../../src/services/api-keys.service.js';
import type { AuditActor, RegistryServiceDeps } from '../../../src/services/changes.js';
import { ConflictError, NotFoundError, ValidationError } from '../../../src/services/errors.js';
import { createResource } from '../../../src/services/resources.service.js';
import { createTestDatabase, type TestDatabase } from '../../fixtures/database.js';
import { testServices, TEST_ACTOR } from '../../fixtures/services.js';

/** Personal API keys in the registry: what is stored (a digest, never the key), and every change audited. */
describe('personal API keys on PostgreSQL', () => {
  let database: TestDatabase;
  let registry: RegistryDatabase;
  let deps: RegistryServiceDeps;
  let api: string;
  let find: ReturnType<typeof prepareFindApiKeyForExchange>;

  beforeAll(async () => {
    database = await createTestDatabase();
    const config = loadConfig({ DATABASE_URL: database.url, NODE_ENV: 'test', LOG_LEVEL: 'silent' });
    registry = await openCliDatabase(config, createLogger({ logLevel: 'silent' }));
    await migrateToLatest(registry.db);
    deps = testServices(registry.db);
    api = (await createResource(deps, TEST_ACTOR, { identifier: 'https://api.keys.example.test', scope: 'read write' })).identifier;
    find = prepareFindApiKeyForExchange(registry.db);
  });
  afterAll(async () => {
    await registry?.close();
    await database?.drop();
  });

  async function newPerson(): Promise<{ id: string; by: AuditActor }> {
    const id = randomUUID();
    await insertUser(registry.db, { id, email: `${id}@example.test`, name: null, password_hash: 'not-a-hash', created_at: new Date(), updated_at: new Date() });
    return { id, by: { actor: `person:${id}` } };
  }

  const auditOf = (target: string) => registry.db.selectFrom('audit_log').selectAll().where('target', '=', target).orderBy('seq').execute();
  const rowsOf = (userId: string) => registry.db.selectFrom('api_keys').selectAll().where('user_id', '=', userId).execute();

  it('creates a key shown once: the row holds its SHA-256 digest and prefix, never the key; audited as api_key.create', async () => {
    const person = await newPerson();
    const { key, apiKey } = await createApiKey(deps, person.by, person.id, { label: 'Nightly export', resource: api, scope: 'read', expires_in: 86_400 });
    expect(apiKey).toMatch(/^gk_[A-Za-z0-9_-]{43}$/);
    const [row] = await rowsOf(person.id);
    expect(row?.digest).toBe(apiKeyDigest(apiKey));
    expect(row?.digest).toMatch(/^sha256\$/);
    expect(row?.prefix).toBe(apiKey.slice(0, 11));
    expect(JSON.stringify(row)).not.toContain(apiKey.slice(11));
    expect(row?.scopes).toEqual(['read']);
    expect(apiKeyToJson(key)).toMatchObject({ label: 'Nightly export', prefix: apiKey.slice(0, 11), resource: api, scope: 'read', last_used_at: null });
    expect(JSON.stringify(apiKeyToJson(key))).not.toContain(apiKey.slice(11));
    const expires = key.expiresAt!.getTime() - key.createdAt.getTime();
    expect(expires).toBe(86_400_000);
    const audit = await auditOf(`api_key:${key.id}`);
    expect(audit.map((entry) => [entry.action, entry.actor])).toEqual([['api_key.create', `person:${person.id}`]]);
    expect(JSON.stringify(audit)).not.toContain(apiKey.slice(11));
  });

  it('lists the keys of a person by label and prefix, oldest first; another person sees none of them', async () => {
    const person = await newPerson();
    const first = await createApiKey(deps, person.by, person.id, { label: 'one', resource: api });
    const second = await createApiKey(deps, person.by, person.id, { label: 'two', resource: api, scope: 'read write' });
    const listed = await listApiKeys(registry.db, person.id);
    expect(listed.map((key) => [key.label, key.prefix])).toEqual([
      ['one', first.apiKey.slice(0, 11)],
      ['two', second.apiKey.slice(0, 11)],
    ]);
    const stranger = await newPerson();
    expect(await listApiKeys(registry.db, stranger.id)).toEqual([]);
    await expect(listApiKeys(registry.db, randomUUID())).rejects.toBeInstanceOf(NotFoundError);
    await expect(revokeApiKey(deps, stranger.by, stranger.id, first.key.id)).rejects.toBeInstanceOf(NotFoundError);
    expect(await listApiKeys(registry.db, person.id)).toHaveLength(2);
  });

  it('regenerates: a new key for the same label, API and scopes; the old one is found nowhere; audited', async () => {
    const person = await newPerson();
    const { key, apiKey } = await createApiKey(deps, person.by, person.id, { label: 'ci', resource: api, scope: 'write' });
    await touchApiKey(registry.db, key.id, new Date(), new Date(0));
    const fresh = await regenerateApiKey(deps, person.by, person.id, key.id);
    expect(fresh.apiKey).not.toBe(apiKey);
    expect(fresh.key).toMatchObject({ id: key.id, label: 'ci', scopes: ['write'], lastUsedAt: null });
    expect(await find(apiKeyDigest(apiKey))).toBeUndefined();
    expect(await find(apiKeyDigest(fresh.apiKey))).toMatchObject({ id: key.id, userId: person.id, resourceIdentifier: api, scopes: ['write'] });
    expect((await auditOf(`api_key:${key.id}`)).map((entry) => entry.action)).toEqual(['api_key.create', 'api_key.regenerate']);
  });

  it('revokes: the key is gone at once; audited; a second revoke is NotFound and records nothing', async () => {
    const person = await newPerson();
    const { key, apiKey } = await createApiKey(deps, person.by, person.id, { label: 'temp', resource: api });
    await revokeApiKey(deps, person.by, person.id, key.id);
    expect(await find(apiKeyDigest(apiKey))).toBeUndefined();
    await expect(revokeApiKey(deps, person.by, person.id, key.id)).rejects.toBeInstanceOf(NotFoundError);
    expect((await auditOf(`api_key:${key.id}`)).map((entry) => entry.action)).toEqual(['api_key.create', 'api_key.revoke']);
  });

  it('keeps the expiry; an expired key cannot be regenerated', async () => {
    const person = await newPerson();
    const past = new Date(Date.now() - 7_200_000);
    const { key, apiKey } = await createApiKey(deps, person.by, person.id, { label: 'short', resource: api, expires_in: 60 }, past);
    expect((await find(apiKeyDigest(apiKey)))?.expiresAt?.getTime()).toBe(past.getTime() + 60_000);
    await expect(regenerateApiKey(deps, person.by, person.id, key.id)).rejects.toBeInstanceOf(ConflictError);
    expect(await find(apiKeyDigest(apiKey))).toBeDefined();
  });

  it('writes last_used_at at most once per interval', async () => {
    const person = await newPerson();
    const { key, apiKey } = await createApiKey(deps, person.by, person.id, { label: 'busy', resource: api });
    const first = new Date(Date.now() - 30_000);
    await touchApiKey(registry.db, key.id, first, new Date(first.getTime() - 60_000));
    await touchApiKey(registry.db, key.id, new Date(), new Date(Date.now() - 60_000));
    expect((await find(apiKeyDigest(apiKey)))?.lastUsedAt?.getTime()).toBe(first.getTime());
  });

  describe('refuses, and writes nothing', () => {
    const refusals: Array<[string, Record<string, unknown>, string]> = [
      ['a label of 10,000 characters', { label: 'x'.repeat(10_000) }, 'label'],
      ['an empty label', { label: '   ' }, 'label'],
      ['no label', { label: undefined }, 'label'],
      ['an unregistered API', { resource: 'https://nobody.example.test' }, 'resource'],
      ['the admin API', { resource: ADMIN_RESOURCE_IDENTIFIER }, 'resource'],
      ["the API's internal id", { resource: 'admin' }, 'resource'],
      ['a scope the API does not define', { scope: 'read delete' }, 'scope'],
      ['an OpenID scope', { scope: 'openid' }, 'scope'],
      ['an expiry under a minute', { expires_in: 5 }, 'expires_in'],
      ['an expiry past a year', { expires_in: 400 * 86_400 }, 'expires_in'],
      ['an unknown field', { extra: 1 }, 'body'],
    ];
    for (const [what, input, field] of refusals) {
      it(what, async () => {
        const person = await newPerson();
        const error = await createApiKey(deps, person.by, person.id, { label: 'ok', resource: api, ...input }).catch((caught: unknown) => caught);
        expect(error).toBeInstanceOf(ValidationError);
        expect((error as ValidationError).errors.map((entry) => entry.field)).toContain(field);
        expect(await rowsOf(person.id)).toEqual([]);
      });
    }

    it('a person who does not exist', async () => {
      await expect(createApiKey(deps, TEST_ACTOR, randomUUID(), { label: 'ok', resource: api })).rejects.toBeInstanceOf(NotFoundError);
    });

    it(`more than ${MAX_KEYS_PER_PERSON} keys`, async () => {
      const person = await newPerson();
      for (let i = 0; i < MAX_KEYS_PER_PERSON; i += 1) await createApiKey(deps, person.by, person.id, { label: `k${i}`, resource: api });
      await expect(createApiKey(deps, person.by, person.id, { label: 'one more', resource: api })).rejects.toBeInstanceOf(ConflictError);
      expect(await rowsOf(person.id)).toHaveLength(MAX_KEYS_PER_PERSON);
    });
  });

  it('stores a label with HTML as typed (escaping is the page’s job), control characters removed', async () => {
    const person = await newPerson();
    const { key } = await createApiKey(deps, person.by, person.id, { label: ' <b>deploy</b>\u0007 ', resource: api });
    expect(key.label).toBe('<b>deploy</b>');
  });
});
