import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareFindApiKeyForExchange, touchApiKey } from '../../../src/registry/api-key.repository.js';
import type { RegistryDatabase } from '../../../src/registry/database.js';
import { migrateToLatest } from '../../../src/registry/migrate.js';
import { apiKeyDigest, createApiKey, listApiKeys, regenerateApiKey } from '../../../src/services/api-keys.service.js';
import { isUniqueViolation } from '../../../src/services/errors.js';
import { createResource } from '../../../src/services/resources.service.js';
import { createUser, disableUser } from '../../../src/services/users.service.js';
import { REGISTRY_ENGINES } from '../../fixtures/registry-engines.js';
import { TEST_ACTOR, testServices } from '../../fixtures/services.js';

/* The api_keys table on PostgreSQL and PGlite (the embedded default): the exchange's one read, its types, and the once-a-minute touch. */
describe.each(REGISTRY_ENGINES)('API key repository on $name', (engine) => {
  let registry: RegistryDatabase;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    ({ registry, cleanup } = await engine.open());
    await migrateToLatest(registry.db);
  }, 60_000);
  afterAll(async () => {
    await cleanup?.();
  }, 60_000);

  it('finds a key by its digest with its person and API, as the exchange reads it; a digest is unique; the touch writes once per interval', async () => {
    const deps = testServices(registry.db);
    const api = await createResource(deps, TEST_ACTOR, { identifier: `https://api-${randomUUID()}.example.test`, scope: 'read write', access_token_ttl: 900 });
    const person = await createUser(deps, TEST_ACTOR, { email: `k-${randomUUID()}@example.test`, password: 'a long enough password 12' });
    const { key, apiKey } = await createApiKey(deps, TEST_ACTOR, person.id, { label: 'engine', resource: api.identifier, scope: 'write', expires_in: 3600 });
    const find = prepareFindApiKeyForExchange(registry.db);
    const found = await find(apiKeyDigest(apiKey));
    expect(found).toMatchObject({ id: key.id, userId: person.id, scopes: ['write'], resourceIdentifier: api.identifier, resourceScopes: ['read', 'write'], accessTokenTtl: 900, userDisabled: false, sessionsValidAfter: null, lastUsedAt: null });
    expect(found!.expiresAt).toBeInstanceOf(Date);
    expect(found!.secretIssuedAt).toBeInstanceOf(Date);
    expect(await find('sha256$nothing')).toBeUndefined();
    expect(await find('bad\u0000')).toBeUndefined();

    const at = new Date(Date.now() - 10_000);
    await touchApiKey(registry.db, key.id, at, new Date(at.getTime() - 60_000));
    await touchApiKey(registry.db, key.id, new Date(), new Date(Date.now() - 60_000));
    expect((await find(apiKeyDigest(apiKey)))?.lastUsedAt?.getTime()).toBe(at.getTime());

    await disableUser(deps, TEST_ACTOR, person.id);
    expect(await find(apiKeyDigest(apiKey))).toMatchObject({ userDisabled: true, sessionsValidAfter: expect.any(Date) });

    const duplicate = registry.db.insertInto('api_keys').values({ id: randomUUID(), user_id: person.id, label: 'copy', prefix: 'gk_x', digest: apiKeyDigest(apiKey), resource_id: api.id, scopes: [] }).execute();
    await expect(duplicate.then(() => false, (error: unknown) => isUniqueViolation(error))).resolves.toBe(true);

    const fresh = await regenerateApiKey(deps, TEST_ACTOR, person.id, key.id);
    expect(await find(apiKeyDigest(apiKey))).toBeUndefined();
    expect((await find(apiKeyDigest(fresh.apiKey)))?.id).toBe(key.id);
    expect((await listApiKeys(registry.db, person.id)).map((listed) => listed.prefix)).toEqual([fresh.apiKey.slice(0, 11)]);
  });
});
