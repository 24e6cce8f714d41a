import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RegistryDatabase } from '../../../src/registry/database.js';
import { migrateToLatest } from '../../../src/registry/migrate.js';
import { countPasskeysOfUser, deletePasskey, findPasskeyByCredentialId, insertPasskey, listPasskeysOfUser, recordPasskeyUse, userHasPasskey } from '../../../src/registry/passkey.repository.js';
import { isUniqueViolation } from '../../../src/services/errors.js';
import { createUser } from '../../../src/services/users.service.js';
import { REGISTRY_ENGINES } from '../../fixtures/registry-engines.js';
import { TEST_ACTOR, testServices } from '../../fixtures/services.js';

/* The passkeys table on PostgreSQL and PGlite: the counter update of design §4.1 step 6 and the rows' life. */
describe.each(REGISTRY_ENGINES)('passkey repository on $name', (engine) => {
  let registry: RegistryDatabase;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    ({ registry, cleanup } = await engine.open());
    await migrateToLatest(registry.db);
  }, 60_000);
  afterAll(async () => {
    await cleanup?.();
  }, 60_000);

  async function passkey(counter = 0) {
    const user = await createUser(testServices(registry.db), TEST_ACTOR, { email: `pk-${randomUUID()}@example.test`, password: 'a long enough password 12' });
    const row = await insertPasskey(registry.db, {
      id: randomUUID(),
      user_id: user.id,
      credential_id: randomBytes(32).toString('base64url'),
      public_key: randomBytes(77),
      counter,
      transports: ['internal', 'hybrid'],
      backup_eligible: false,
      backup_state: false,
      aaguid: null,
      name: 'Key',
    });
    return { user, row };
  }

  it('stores and finds a passkey by its credential id, with its bytes, counter and transports; the credential id is unique', async () => {
    const { user, row } = await passkey(5);
    const found = await findPasskeyByCredentialId(registry.db, row.credentialId);
    expect(found).toMatchObject({ id: row.id, userId: user.id, counter: 5, transports: ['internal', 'hybrid'], backupEligible: false, lastUsedAt: null });
    expect(Buffer.from(found!.publicKey).equals(Buffer.from(row.publicKey))).toBe(true);
    expect(await userHasPasskey(registry.db, user.id)).toBe(true);
    expect(await findPasskeyByCredentialId(registry.db, 'nope\u0000')).toBeUndefined();
    const again = insertPasskey(registry.db, { id: randomUUID(), user_id: user.id, credential_id: row.credentialId, public_key: randomBytes(10), transports: [], backup_eligible: false, backup_state: false, aaguid: null, name: 'Copy' });
    await expect(again.then(() => false, (error: unknown) => isUniqueViolation(error))).resolves.toBe(true);
  });

  it('a use moves the counter on only upwards: lower or equal is refused and changes nothing; of concurrent uses with one counter exactly one wins', async () => {
    const { row } = await passkey(5);
    const at = new Date('2026-12-08T10:00:00Z');
    expect(await recordPasskeyUse(registry.db, row.id, { counter: 5, backupState: true, at })).toBe(false);
    expect(await recordPasskeyUse(registry.db, row.id, { counter: 4, backupState: true, at })).toBe(false);
    expect(await recordPasskeyUse(registry.db, row.id, { counter: 0, backupState: true, at })).toBe(false);
    expect(await findPasskeyByCredentialId(registry.db, row.credentialId)).toMatchObject({ counter: 5, backupState: false, lastUsedAt: null });
    const results = await Promise.all([1, 2, 3, 4].map(() => recordPasskeyUse(registry.db, row.id, { counter: 6, backupState: true, at })));
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await findPasskeyByCredentialId(registry.db, row.credentialId)).toMatchObject({ counter: 6, backupState: true, lastUsedAt: at });
  });

  it('an authenticator without a counter (always 0) is accepted while the stored counter is 0', async () => {
    const { row } = await passkey(0);
    const at = new Date();
    expect(await recordPasskeyUse(registry.db, row.id, { counter: 0, backupState: false, at })).toBe(true);
    expect(await recordPasskeyUse(registry.db, row.id, { counter: 0, backupState: false, at })).toBe(true);
  });

  it('lists a person\'s passkeys and deletes only their own', async () => {
    const { user, row } = await passkey();
    const other = await passkey();
    expect((await listPasskeysOfUser(registry.db, user.id)).map((p) => p.id)).toEqual([row.id]);
    expect(await deletePasskey(registry.db, user.id, other.row.id)).toBe(false);
    expect(await deletePasskey(registry.db, user.id, row.id)).toBe(true);
    expect(await userHasPasskey(registry.db, user.id)).toBe(false);
    expect(await userHasPasskey(registry.db, other.user.id)).toBe(true);
    // What unlinking a provider counts as another way in (a number on both engines).
    expect(await countPasskeysOfUser(registry.db, user.id)).toBe(0);
    expect(await countPasskeysOfUser(registry.db, other.user.id)).toBe(1);
    expect(await countPasskeysOfUser(registry.db, 'a\u0000b')).toBe(0);
  });
});
