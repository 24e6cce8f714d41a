import { randomBytes, randomUUID } from 'node:crypto';
import { hash, type Algorithm } from '@node-rs/argon2';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createAccountService, type AccountService } from '../../../src/accounts/accounts.js';
import { hashPassword, needsRehash, verifyPassword } from '../../../src/accounts/passwords.js';
import { loadConfig } from '../../../src/config/load-config.js';
import { createLogger } from '../../../src/observability/logger.js';
import { openCliDatabase, type RegistryDatabase } from '../../../src/registry/database.js';
import { migrateToLatest } from '../../../src/registry/migrate.js';
import { insertUser } from '../../../src/registry/user.repository.js';
import { ConflictError, isUniqueViolation, NotFoundError, ValidationError } from '../../../src/services/errors.js';
import {
  createUser,
  deleteUser,
  disableUser,
  enableUser,
  getUser,
  listUsers,
  updateUserFields,
  userToJson,
} from '../../../src/services/users.service.js';
import { sessionEnded } from '../../../src/accounts/account-record.js';
import { createTestDatabase, type TestDatabase } from '../../fixtures/database.js';
import { TEST_ACTOR, testServices } from '../../fixtures/services.js';
import { captureLogs, recordSecret, type LogCapture } from '../../fixtures/log-capture.js';

const ARGON2ID: Algorithm = 2;
const CURRENT_HASH = /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/;

/** A fresh strong password (recorded for the log audit). */
function newPassword(): string {
  const password = `quiet-lantern-${randomBytes(8).toString('hex')}`;
  recordSecret(password);
  return password;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function elapsed(run: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await run();
  return performance.now() - start;
}

describe('users and accounts on PostgreSQL', () => {
  let database: TestDatabase;
  let registry: RegistryDatabase;
  let logs: LogCapture;
  let accounts: AccountService;

  beforeAll(async () => {
    database = await createTestDatabase();
    const config = loadConfig({ DATABASE_URL: database.url, NODE_ENV: 'test', LOG_LEVEL: 'silent' });
    registry = await openCliDatabase(config, createLogger({ logLevel: 'silent' }));
    await migrateToLatest(registry.db);
    logs = captureLogs('accounts-integration');
    accounts = createAccountService({ db: registry.db, logger: createLogger({ logLevel: 'info' }, logs.stream) });
  });
  afterAll(async () => {
    await registry?.close();
    await database?.drop();
  });
  beforeEach(async () => {
    await registry.db.deleteFrom('oidc_durable').execute();
    await registry.db.deleteFrom('users').execute();
  });

  const countUsers = async () =>
    Number((await registry.db.selectFrom('users').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);

  async function refusal(promise: Promise<unknown>): Promise<unknown> {
    return promise.then(
      () => expect.unreachable('expected a refusal'),
      (error: unknown) => error,
    );
  }

  describe('users service', () => {
    it('createUser keeps the email in its normalised form (trimmed, NFKC, lower case) and only an argon2id hash of the password', async () => {
      const password = newPassword();
      const user = await createUser(testServices(registry.db), TEST_ACTOR, { email: '  Ada.Lovelace@Ｅｘａｍｐｌｅ.test ', name: 'Ada Lovelace', password });
      expect(user).toMatchObject({ email: 'ada.lovelace@example.test', name: 'Ada Lovelace', emailVerified: false, disabled: false, lastLoginAt: null });
      expect(user.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(user.passwordHash).toMatch(CURRENT_HASH);
      expect(await verifyPassword(user.passwordHash!, password)).toBe(true);

      const json = userToJson(user);
      expect(Object.keys(json).sort()).toEqual(['created_at', 'disabled', 'email', 'email_verified', 'id', 'last_login_at', 'name', 'roles', 'updated_at']);
      expect(JSON.stringify(json)).not.toContain('argon2');
      expect(await getUser(registry.db, user.id)).toEqual(user);
      expect((await listUsers(registry.db)).map((u) => u.id)).toEqual([user.id]);
    });

    it('refuses an email already taken in another case, and writes nothing', async () => {
      await createUser(testServices(registry.db), TEST_ACTOR, { email: 'grace@example.test', password: newPassword() });
      const error = await refusal(createUser(testServices(registry.db), TEST_ACTOR, { email: 'GRACE@Example.TEST', password: newPassword() }));
      expect(error).toBeInstanceOf(ConflictError);
      expect((error as ConflictError).field).toBe('email');
      expect(await countUsers()).toBe(1);
    });

    it.each([
      { what: 'full-width letters', spelling: 'ｇｒａｃｅ@ｅｘａｍｐｌｅ．ｔｅｓｔ' },
      { what: 'a ligature', spelling: 'ﬁnn@example.test', taken: 'finn@example.test' },
      { what: 'the Kelvin sign', spelling: '\u212aate@example.test', taken: 'kate@example.test' },
      { what: 'case and space', spelling: ' GRACE@example.TEST' },
    ])('refuses an email that differs from a taken one only by $what (ConflictError), and writes nothing', async ({ spelling, taken }) => {
      await createUser(testServices(registry.db), TEST_ACTOR, { email: taken ?? 'grace@example.test', password: newPassword() });
      const error = await refusal(createUser(testServices(registry.db), TEST_ACTOR, { email: spelling, password: newPassword() }));
      expect(error).toBeInstanceOf(ConflictError);
      expect((error as ConflictError).field).toBe('email');
      expect(await countUsers()).toBe(1);
    });

    it('stores every spelling of an address as one: the unique index refuses a second row whatever the repository is given', async () => {
      // Rows made without the users service (an import, an older Gatehouse) go through insertUser too.
      const row = (email: string) => ({ id: randomUUID(), email, password_hash: 'not-a-real-hash', created_at: new Date(), updated_at: new Date() });
      for (const [first, second] of [
        ['josé@example.test', 'JOSE\u0301@example.test'],
        ['straße@example.test', 'STRAẞE@example.test'],
        ['vİctim@example.test', 'vi\u0307ctim@example.test'],
      ] as const) {
        const stored = await insertUser(registry.db, row(first));
        expect(stored.email).toBe(first.normalize('NFKC').toLowerCase());
        const error = await refusal(insertUser(registry.db, row(second)));
        expect(isUniqueViolation(error), String(error)).toBe(true);
      }
      expect(await countUsers()).toBe(3);
    });

    it.each([
      { what: 'a malformed email', input: () => ({ email: 'not-an-email', password: newPassword() }), field: 'email' },
      { what: 'an email over 254 characters', input: () => ({ email: `${'a'.repeat(250)}@example.test`, password: newPassword() }), field: 'email' },
      { what: 'no email', input: () => ({ password: newPassword() }), field: 'email' },
      { what: 'a short password', input: () => ({ email: 'short@example.test', password: 'Sh0rt-pass!' }), field: 'password' },
      { what: 'a common password', input: () => ({ email: 'common@example.test', password: 'FinalFantasy' }), field: 'password' },
      { what: 'no password', input: () => ({ email: 'none@example.test' }), field: 'password' },
      { what: 'a name over 200 characters', input: () => ({ email: 'long@example.test', name: 'n'.repeat(201), password: newPassword() }), field: 'name' },
    ])('refuses $what with a ValidationError naming $field, and writes nothing', async ({ input, field }) => {
      const error = await refusal(createUser(testServices(registry.db), TEST_ACTOR, input()));
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).errors.map((e) => e.field)).toEqual([field]);
      expect(await countUsers()).toBe(0);
    });

    it('disable, enable, get and delete answer NotFoundError for an unknown id', async () => {
      const id = randomUUID();
      expect(await refusal(getUser(registry.db, id))).toBeInstanceOf(NotFoundError);
      for (const call of [disableUser, enableUser, deleteUser]) {
        expect(await refusal(call(testServices(registry.db), TEST_ACTOR, id))).toBeInstanceOf(NotFoundError);
      }
    });

    it('deleteUser removes the user and its grants and refresh tokens in one transaction; other accounts keep theirs', async () => {
      const user = await createUser(testServices(registry.db), TEST_ACTOR, { email: 'leaving@example.test', password: newPassword() });
      const other = await createUser(testServices(registry.db), TEST_ACTOR, { email: 'staying@example.test', password: newPassword() });
      const row = (model: string, id: string, accountId: string | null, grantId: string | null) => ({
        model,
        id,
        grant_id: grantId,
        account_id: accountId,
        client_id: 'app',
        payload: JSON.stringify({ accountId, grantId }),
      });
      await registry.db
        .insertInto('oidc_durable')
        .values([
          row('Grant', 'grant-1', user.id, 'grant-1'),
          row('RefreshToken', 'refresh-1', user.id, 'grant-1'),
          row('RefreshToken', 'refresh-2', null, 'grant-1'),
          row('Grant', 'grant-2', other.id, 'grant-2'),
          row('RefreshToken', 'refresh-3', other.id, 'grant-2'),
        ])
        .execute();
      // Rows of an account that does not exist: a refused delete must leave them (the transaction rolls back).
      await registry.db.insertInto('oidc_durable').values(row('Grant', 'grant-ghost', 'ghost', 'grant-ghost')).execute();
      expect(await refusal(deleteUser(testServices(registry.db), TEST_ACTOR, 'ghost'))).toBeInstanceOf(NotFoundError);

      await deleteUser(testServices(registry.db), TEST_ACTOR, user.id);
      expect(await refusal(getUser(registry.db, user.id))).toBeInstanceOf(NotFoundError);
      const left = await registry.db.selectFrom('oidc_durable').select('id').orderBy('id').execute();
      expect(left.map((r) => r.id)).toEqual(['grant-2', 'grant-ghost', 'refresh-3']);
      expect((await getUser(registry.db, other.id)).email).toBe('staying@example.test');
    });

    it('a password change ends the sessions signed in before it and deletes the grants and refresh tokens; keep_sessions keeps them; other changes do neither', async () => {
      const user = await createUser(testServices(registry.db), TEST_ACTOR, { email: 'changing@example.test', password: newPassword() });
      const other = await createUser(testServices(registry.db), TEST_ACTOR, { email: 'bystander@example.test', password: newPassword() });
      const rows = (accountId: string, tag: string) => [
        { model: 'Grant', id: `grant-${tag}`, grant_id: `grant-${tag}`, account_id: accountId, client_id: 'app', payload: '{}' },
        { model: 'RefreshToken', id: `refresh-${tag}`, grant_id: `grant-${tag}`, account_id: accountId, client_id: 'app', payload: '{}' },
      ];
      const left = async () => (await registry.db.selectFrom('oidc_durable').select('id').orderBy('id').execute()).map((r) => r.id);
      await registry.db.insertInto('oidc_durable').values([...rows(user.id, 'a'), ...rows(other.id, 'b')]).execute();
      expect(user.sessionsValidAfter).toBeNull();

      // Not a password change: nothing ends.
      const renamed = await updateUserFields(testServices(registry.db), TEST_ACTOR, user.id, { name: 'Renamed', email_verified: true });
      expect(renamed.sessionsValidAfter).toBeNull();
      expect(await left()).toEqual(['grant-a', 'grant-b', 'refresh-a', 'refresh-b']);

      const kept = await updateUserFields(testServices(registry.db), TEST_ACTOR, user.id, { password: newPassword(), keep_sessions: true });
      expect(kept.sessionsValidAfter).toBeNull();
      expect(await left()).toEqual(['grant-a', 'grant-b', 'refresh-a', 'refresh-b']);

      const before = Math.floor(Date.now() / 1000) - 1;
      const changed = await updateUserFields(testServices(registry.db), TEST_ACTOR, user.id, { password: newPassword() });
      expect(changed.sessionsValidAfter).toBeInstanceOf(Date);
      expect(await left()).toEqual(['grant-b', 'refresh-b']);
      expect((await getUser(registry.db, other.id)).sessionsValidAfter).toBeNull();
      // A session that signed in before the change is over; one that signs in in a later second is not.
      expect(sessionEnded(changed, before)).toBe(true);
      expect(sessionEnded(changed, Math.ceil(changed.sessionsValidAfter!.getTime() / 1000))).toBe(false);
      expect(sessionEnded(await getUser(registry.db, other.id), before)).toBe(false);

      // keep_sessions only goes with a password or a disable; a refused update changes nothing.
      const refused = await refusal(updateUserFields(testServices(registry.db), TEST_ACTOR, other.id, { keep_sessions: true, name: 'x' }));
      expect(refused).toBeInstanceOf(ValidationError);
      expect((refused as ValidationError).errors.map((e) => e.field)).toEqual(['keep_sessions']);
      expect(await refusal(updateUserFields(testServices(registry.db), TEST_ACTOR, 'ghost', { password: newPassword() }))).toBeInstanceOf(NotFoundError);
      expect(await left()).toEqual(['grant-b', 'refresh-b']);
    });

    it('disabling ends the sessions (so enabling does not revive them) but keeps the grants', async () => {
      const user = await createUser(testServices(registry.db), TEST_ACTOR, { email: 'paused-sessions@example.test', password: newPassword() });
      await registry.db.insertInto('oidc_durable').values({ model: 'Grant', id: 'grant-p', grant_id: 'grant-p', account_id: user.id, client_id: 'app', payload: '{}' }).execute();
      const before = Math.floor(Date.now() / 1000) - 1;
      expect((await disableUser(testServices(registry.db), TEST_ACTOR, user.id)).sessionsValidAfter).toBeInstanceOf(Date);
      const enabled = await enableUser(testServices(registry.db), TEST_ACTOR, user.id);
      expect(sessionEnded(enabled, before)).toBe(true);
      expect((await registry.db.selectFrom('oidc_durable').select('id').execute()).map((r) => r.id)).toEqual(['grant-p']);
      // Through the service's update too, unless kept.
      const again = await updateUserFields(testServices(registry.db), TEST_ACTOR, user.id, { disabled: true, keep_sessions: true });
      expect(again.sessionsValidAfter).toEqual(enabled.sessionsValidAfter);
    });
  });

  describe('authenticate', () => {
    it('signs in with the right password whatever the email case, and records the time', async () => {
      const password = newPassword();
      const created = await createUser(testServices(registry.db), TEST_ACTOR, { email: 'Linus@Example.test', password });
      const before = Date.now();
      const result = await accounts.authenticate('  linus@EXAMPLE.test', password);
      expect(result.ok).toBe(true);
      if (!result.ok) return;
      expect(result.user.id).toBe(created.id);
      expect(result.user.lastLoginAt!.getTime()).toBeGreaterThanOrEqual(before - 1000);
      expect(result.user.updatedAt).toEqual(created.updatedAt);
      expect(result.user.passwordHash).toBe(created.passwordHash);
      expect(await accounts.findById(created.id)).toEqual(result.user);
      expect(await accounts.findById(randomUUID())).toBeUndefined();
    });

    it.each([
      { what: 'full-width letters', stored: 'victim@example.test', spellings: ['ｖｉｃｔｉｍ@ｅｘａｍｐｌｅ．ｔｅｓｔ', 'ＶＩＣＴＩＭ@example.test'] },
      { what: 'a combining accent', stored: 'josé@example.test', spellings: ['jose\u0301@example.test', 'JOSE\u0301@EXAMPLE.test', 'JOSÉ@example.test'] },
      { what: 'capital sharp s', stored: 'straße@example.test', spellings: ['STRAẞE@example.test', 'Straße@example.test'] },
      { what: 'dotted capital I', stored: 'i\u0307pek@example.test', spellings: ['İpek@example.test', 'İPEK@EXAMPLE.TEST'] },
    ])('finds the person whatever the spelling ($what)', async ({ stored, spellings }) => {
      const password = newPassword();
      // Such addresses are not accepted by the users service (it takes ASCII addresses only), but
      // may be in the table (imported, or stored by an older Gatehouse and migrated).
      const user = await insertUser(registry.db, { id: randomUUID(), email: stored, password_hash: await hashPassword(password), created_at: new Date(), updated_at: new Date() });
      for (const spelling of spellings) {
        const result = await accounts.authenticate(spelling, password);
        expect(result.ok && result.user.id, spelling).toBe(user.id);
      }
    });

    it('does not take a dotted capital I for an i, nor ss for ß: those are other addresses, for the lookup as for the sign-in limiter', async () => {
      const password = newPassword();
      await createUser(testServices(registry.db), TEST_ACTOR, { email: 'victim@example.test', password });
      await insertUser(registry.db, { id: randomUUID(), email: 'straße@example.test', password_hash: await hashPassword(password), created_at: new Date(), updated_at: new Date() });
      for (const spelling of ['vİctim@example.test', 'VİCTIM@example.test', 'STRASSE@example.test']) {
        expect(await accounts.authenticate(spelling, password), spelling).toEqual({ ok: false, reason: 'invalid' });
      }
    });

    it('answers invalid for a wrong password, an unknown email, an empty or an over-long password', async () => {
      const password = newPassword();
      await createUser(testServices(registry.db), TEST_ACTOR, { email: 'wrong@example.test', password });
      expect(await accounts.authenticate('wrong@example.test', `${password}x`)).toEqual({ ok: false, reason: 'invalid' });
      expect(await accounts.authenticate('wrong@example.test', '')).toEqual({ ok: false, reason: 'invalid' });
      expect(await accounts.authenticate('nobody@example.test', password)).toEqual({ ok: false, reason: 'invalid' });
      expect(await accounts.authenticate(`${'a'.repeat(300)}@example.test`, password)).toEqual({ ok: false, reason: 'invalid' });
      expect(await accounts.authenticate('wrong@example.test', 'p'.repeat(1025))).toEqual({ ok: false, reason: 'invalid' });
      expect(await accounts.authenticate('wrong@example.test', 'p'.repeat(1_000_000))).toEqual({ ok: false, reason: 'invalid' });
      expect((await getUser(registry.db, (await listUsers(registry.db))[0]!.id)).lastLoginAt).toBeNull();
    });

    it('answers disabled for a disabled user with the right password (invalid with a wrong one), and ok once enabled', async () => {
      const password = newPassword();
      const user = await createUser(testServices(registry.db), TEST_ACTOR, { email: 'paused@example.test', password });
      expect((await disableUser(testServices(registry.db), TEST_ACTOR, user.id)).disabled).toBe(true);
      expect(await accounts.authenticate('paused@example.test', password)).toEqual({ ok: false, reason: 'disabled' });
      expect(await accounts.authenticate('paused@example.test', `${password}x`)).toEqual({ ok: false, reason: 'invalid' });
      expect((await getUser(registry.db, user.id)).lastLoginAt).toBeNull();
      expect((await enableUser(testServices(registry.db), TEST_ACTOR, user.id)).disabled).toBe(false);
      expect((await accounts.authenticate('paused@example.test', password)).ok).toBe(true);
    });

    it('upgrades a hash made at weaker parameters after a successful sign-in, and logs only the user id', async () => {
      const password = newPassword();
      const weakHash = await hash(password, { memoryCost: 4096, timeCost: 1, parallelism: 1, algorithm: ARGON2ID });
      const now = new Date();
      const user = await insertUser(registry.db, {
        id: randomUUID(),
        email: 'legacy@example.test',
        password_hash: weakHash,
        created_at: now,
        updated_at: now,
      });
      expect(needsRehash(user.passwordHash!)).toBe(true);

      // A wrong password upgrades nothing.
      expect((await accounts.authenticate('legacy@example.test', `${password}x`)).ok).toBe(false);
      expect((await getUser(registry.db, user.id)).passwordHash).toBe(weakHash);

      const result = await accounts.authenticate('legacy@example.test', password);
      expect(result.ok).toBe(true);
      const stored = (await getUser(registry.db, user.id)).passwordHash;
      expect(stored).not.toBe(weakHash);
      expect(stored).toMatch(CURRENT_HASH);
      expect(needsRehash(stored!)).toBe(false);
      expect(await verifyPassword(stored!, password)).toBe(true);
      expect((await accounts.authenticate('legacy@example.test', password)).ok).toBe(true);

      const upgraded = logs.entries().filter((entry) => entry.msg === 'password hash upgraded');
      expect(upgraded).toHaveLength(1);
      expect(upgraded[0]).toMatchObject({ level: 'info', userId: user.id });
      expect(logs.text()).not.toContain(password);
      expect(logs.text()).not.toContain('legacy@example.test');
    });

    it('takes about as long for an unknown email as for a wrong password of a known one', async () => {
      const password = newPassword();
      await createUser(testServices(registry.db), TEST_ACTOR, { email: 'timing@example.test', password });
      const known = () => accounts.authenticate('timing@example.test', `${password}x`);
      const unknown = () => accounts.authenticate(`nobody-${randomUUID()}@example.test`, `${password}x`);
      await known();
      await unknown();
      const knownTimes: number[] = [];
      const unknownTimes: number[] = [];
      for (let i = 0; i < 7; i += 1) {
        knownTimes.push(await elapsed(known));
        unknownTimes.push(await elapsed(unknown));
      }
      const ratio = median(unknownTimes) / median(knownTimes);
      expect(ratio, `unknown ${median(unknownTimes).toFixed(1)} ms, known ${median(knownTimes).toFixed(1)} ms`).toBeGreaterThan(1 / 3);
      expect(ratio).toBeLessThan(3);
    });
  });
});
