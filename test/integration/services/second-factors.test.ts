import { randomBytes, randomUUID } from 'node:crypto';
import { generate } from 'otplib';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load-config.js';
import { staticDataKeyring } from '../../../src/keys/data-key.js';
import { createLogger } from '../../../src/observability/logger.js';
import { openCliDatabase, type RegistryDatabase } from '../../../src/registry/database.js';
import { migrateToLatest } from '../../../src/registry/migrate.js';
import { insertUser } from '../../../src/registry/user.repository.js';
import type { AuditActor } from '../../../src/services/changes.js';
import { NotFoundError } from '../../../src/services/errors.js';
import {
  beginTotpEnrolment,
  confirmTotpEnrolment,
  disableTotp,
  regenerateRecoveryCodes,
  secondFactorStatus,
  verifySecondFactor,
  WrongCodeError,
  type SecondFactorDeps,
} from '../../../src/services/second-factors.service.js';
import { SealedSecretError, unsealSecret } from '../../../src/services/sealed-secrets.js';
import { createTestDatabase, type TestDatabase } from '../../fixtures/database.js';
import { testServices } from '../../fixtures/services.js';

/** The middle of a 30 s step, so that ±30 s is exactly one step either way. */
const START_MS = Math.floor(1_800_000_000_000 / 30_000) * 30_000 + 15_000;
const STEP_MS = 30_000;

describe('second factors on PostgreSQL', () => {
  let database: TestDatabase;
  let registry: RegistryDatabase;
  let deps: SecondFactorDeps;
  let nowMs = START_MS;

  beforeAll(async () => {
    database = await createTestDatabase();
    const config = loadConfig({ DATABASE_URL: database.url, NODE_ENV: 'test', LOG_LEVEL: 'silent' });
    registry = await openCliDatabase(config, createLogger({ logLevel: 'silent' }));
    await migrateToLatest(registry.db);
    const dataKeys = staticDataKeyring([{ kid: 'test-data-key-1', createdAt: new Date().toISOString(), secret: randomBytes(32) }]);
    deps = { ...testServices(registry.db), dataKeys, now: () => nowMs };
  });
  afterAll(async () => {
    await registry?.close();
    await database?.drop();
  });

  /** The code an authenticator app shows `offsetMs` from the service's clock. */
  const codeAt = (secret: string, offsetMs = 0) => generate({ secret, epoch: Math.floor((nowMs + offsetMs) / 1000) });
  /** Moves the clock on by whole minutes, past every step used so far. */
  const later = () => {
    nowMs += 10 * STEP_MS;
  };

  async function newPerson(): Promise<{ id: string; by: AuditActor }> {
    const id = randomUUID();
    await insertUser(registry.db, { id, email: `${id}@example.test`, name: null, password_hash: 'not-a-hash', created_at: new Date(), updated_at: new Date() });
    return { id, by: { actor: `person:${id}` } };
  }

  /** A person with a confirmed authenticator: its secret and recovery codes. */
  async function enrolled() {
    const person = await newPerson();
    const { secret } = await beginTotpEnrolment(deps, person.id, { issuer: 'Gatehouse' });
    const { recoveryCodes } = await confirmTotpEnrolment(deps, person.by, person.id, await codeAt(secret));
    later();
    return { ...person, secret, recoveryCodes };
  }

  const auditOf = (userId: string) =>
    registry.db.selectFrom('audit_log').select(['actor', 'action', 'target', 'details']).where('target', '=', `user:${userId}`).orderBy('seq').execute();

  const rowsOf = async (userId: string) => {
    const result = await sql<Record<string, unknown>>`select * from totp_factors where user_id = ${userId} order by state`.execute(registry.db);
    return result.rows;
  };

  it('enrols: a pending row with the secret sealed, then a confirmed authenticator, ten recovery codes and two audit rows as person:<id>', async () => {
    const person = await newPerson();
    const { secret, uri } = await beginTotpEnrolment(deps, person.id, { issuer: 'Gatehouse' });
    expect(secret).toMatch(/^[A-Z2-7]{32}$/);
    expect(uri).toMatch(/^otpauth:\/\/totp\/Gatehouse:/);
    expect(new URL(uri).searchParams.get('secret')).toBe(secret);
    expect(await secondFactorStatus(registry.db, person.id, nowMs)).toEqual({ totp: 'pending', recoveryCodesLeft: 0 });

    // The secret is not in the database in clear: not in any column of the row.
    const [pending] = await rowsOf(person.id);
    expect(pending).toMatchObject({ state: 'pending', key_id: 'test-data-key-1' });
    expect(JSON.stringify(pending)).not.toContain(secret);
    expect(await unsealSecret(deps.dataKeys, String(pending!.secret_jwe), `totp:${person.id}`)).toBe(secret);
    // Copied to another person's row, it does not open there.
    await expect(unsealSecret(deps.dataKeys, String(pending!.secret_jwe), `totp:${randomUUID()}`)).rejects.toThrow(SealedSecretError);

    const { recoveryCodes } = await confirmTotpEnrolment(deps, person.by, person.id, await codeAt(secret));
    expect(recoveryCodes).toHaveLength(10);
    const rows = await rowsOf(person.id);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ state: 'active', confirmed_at: expect.any(Date) });
    expect(Number(rows[0]!.last_used_step)).toBe(Math.floor(nowMs / STEP_MS));
    expect(await secondFactorStatus(registry.db, person.id, nowMs)).toEqual({ totp: 'active', recoveryCodesLeft: 10 });

    const stored = await registry.db.selectFrom('recovery_codes').select('digest').where('user_id', '=', person.id).execute();
    expect(stored).toHaveLength(10);
    for (const { digest } of stored) expect(digest).toMatch(/^sha256\$/);
    const dump = JSON.stringify(stored);
    for (const code of recoveryCodes) expect(dump).not.toContain(code.replace(/-/g, ''));

    const audit = await auditOf(person.id);
    expect(audit.map((row) => [row.actor, row.action])).toEqual([
      [`person:${person.id}`, 'totp.enable'],
      [`person:${person.id}`, 'recovery_codes.generate'],
    ]);
    expect(audit[1]!.details).toEqual({ count: 10 });
    const auditDump = JSON.stringify(audit);
    expect(auditDump).not.toContain(secret);
    for (const code of recoveryCodes) expect(auditDump).not.toContain(code);
  });

  it('refuses a wrong or malformed confirming code and changes nothing; without a fresh enrolment there is nothing to confirm', async () => {
    const person = await newPerson();
    await expect(confirmTotpEnrolment(deps, person.by, person.id, '123456')).rejects.toThrow(NotFoundError);
    const { secret } = await beginTotpEnrolment(deps, person.id, { issuer: 'Gatehouse' });
    const wrong = String((Number(await codeAt(secret)) + 1) % 1_000_000).padStart(6, '0');
    for (const [input, reason] of [[wrong, 'invalid_code'], ['12345', 'malformed'], ['abcdef', 'malformed'], ['9'.repeat(500), 'malformed']] as const) {
      const error = await confirmTotpEnrolment(deps, person.by, person.id, input).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WrongCodeError);
      expect((error as WrongCodeError).reason).toBe(reason);
    }
    expect((await rowsOf(person.id)).map((row) => row.state)).toEqual(['pending']);
    expect(await secondFactorStatus(registry.db, person.id, nowMs)).toEqual({ totp: 'pending', recoveryCodesLeft: 0 });
    expect(await auditOf(person.id)).toEqual([]);
    // An enrolment left longer than its lifetime is as none.
    nowMs += 31 * 60 * 1000;
    await expect(confirmTotpEnrolment(deps, person.by, person.id, await codeAt(secret))).rejects.toThrow(NotFoundError);
    expect(await secondFactorStatus(registry.db, person.id, nowMs)).toEqual({ totp: 'none', recoveryCodesLeft: 0 });
  });

  it('accepts a code once: the same code twice is refused as reused, also the one that confirmed the enrolment', async () => {
    const person = await newPerson();
    const { secret } = await beginTotpEnrolment(deps, person.id, { issuer: 'Gatehouse' });
    const confirming = await codeAt(secret);
    await confirmTotpEnrolment(deps, person.by, person.id, confirming);
    expect(await verifySecondFactor(deps, person.id, confirming)).toEqual({ ok: false, reason: 'code_reused' });
    later();
    const code = await codeAt(secret);
    expect(await verifySecondFactor(deps, person.id, code)).toEqual({ ok: true, method: 'totp', recoveryCodesLeft: 10 });
    expect(await verifySecondFactor(deps, person.id, code)).toEqual({ ok: false, reason: 'code_reused' });
    // The step before the one used is spent too.
    expect(await verifySecondFactor(deps, person.id, await codeAt(secret, -STEP_MS))).toEqual({ ok: false, reason: 'code_reused' });
  });

  it('of two concurrent checks of one code, exactly one is accepted', async () => {
    const { id, secret } = await enrolled();
    const code = await codeAt(secret);
    const results = await Promise.all([verifySecondFactor(deps, id, code), verifySecondFactor(deps, id, code), verifySecondFactor(deps, id, code)]);
    expect(results.filter((result) => result.ok)).toHaveLength(1);
    expect(results.filter((result) => !result.ok)).toEqual([{ ok: false, reason: 'code_reused' }, { ok: false, reason: 'code_reused' }]);
  });

  it('accepts a code of the step before or after (clock drift), refuses two steps away', async () => {
    const { id, secret } = await enrolled();
    expect(await verifySecondFactor(deps, id, await codeAt(secret, -STEP_MS))).toMatchObject({ ok: true });
    later();
    expect(await verifySecondFactor(deps, id, await codeAt(secret, STEP_MS))).toMatchObject({ ok: true });
    later();
    expect(await verifySecondFactor(deps, id, await codeAt(secret, -2 * STEP_MS))).toEqual({ ok: false, reason: 'invalid_code' });
    expect(await verifySecondFactor(deps, id, await codeAt(secret, 2 * STEP_MS))).toEqual({ ok: false, reason: 'invalid_code' });
    expect(await verifySecondFactor(deps, id, await codeAt(secret))).toMatchObject({ ok: true });
  });

  it('takes spaces and keeps leading zeros; refuses 5 or 7 digits, letters and junk without throwing', async () => {
    const { id, secret } = await enrolled();
    // A step whose code starts with 0 (one in ten do).
    while (!(await codeAt(secret)).startsWith('0')) nowMs += STEP_MS;
    const code = await codeAt(secret);
    expect(await verifySecondFactor(deps, id, ` ${code.slice(0, 3)} ${code.slice(3)} `)).toMatchObject({ ok: true, method: 'totp' });
    later();
    const fresh = await codeAt(secret);
    const before = { rows: await rowsOf(id), status: await secondFactorStatus(registry.db, id, nowMs) };
    for (const input of [fresh.slice(1), `${fresh}1`, '12 34 5', 'abcdef', '', ' ', 'x'.repeat(10_000), '12\u00003456']) {
      expect(await verifySecondFactor(deps, id, input), JSON.stringify(input.slice(0, 20))).toEqual({ ok: false, reason: 'malformed' });
    }
    // Refusals change nothing: no step spent, no recovery code used.
    expect(await verifySecondFactor(deps, id, await codeAt(secret, 2 * STEP_MS))).toEqual({ ok: false, reason: 'invalid_code' });
    expect(await verifySecondFactor(deps, id, 'AAAA-BBBB-CCCC-DDDD')).toEqual({ ok: false, reason: 'invalid_code' });
    expect({ rows: await rowsOf(id), status: await secondFactorStatus(registry.db, id, nowMs) }).toEqual(before);
    // Full-width digits are digits; the right code written so is accepted.
    const wide = fresh.replace(/\d/g, (d) => String.fromCharCode(0xff10 + Number(d)));
    expect(await verifySecondFactor(deps, id, wide)).toMatchObject({ ok: true, method: 'totp' });
  });

  it('a recovery code works once, typed any way; regenerating invalidates the old set', async () => {
    const { id, by, recoveryCodes } = await enrolled();
    expect(await verifySecondFactor(deps, id, recoveryCodes[0]!)).toEqual({ ok: true, method: 'recovery_code', recoveryCodesLeft: 9 });
    expect(await verifySecondFactor(deps, id, recoveryCodes[0]!)).toEqual({ ok: false, reason: 'invalid_code' });
    expect(await verifySecondFactor(deps, id, ` ${recoveryCodes[1]!.toLowerCase().replace(/-/g, ' ')} `)).toEqual({ ok: true, method: 'recovery_code', recoveryCodesLeft: 8 });
    // Another person's code is not this person's.
    const other = await enrolled();
    expect(await verifySecondFactor(deps, id, other.recoveryCodes[0]!)).toEqual({ ok: false, reason: 'invalid_code' });
    // Concurrent uses of one code: one wins.
    const racing = await Promise.all([verifySecondFactor(deps, id, recoveryCodes[2]!), verifySecondFactor(deps, id, recoveryCodes[2]!)]);
    expect(racing.filter((result) => result.ok)).toHaveLength(1);

    const fresh = await regenerateRecoveryCodes(deps, by, id);
    expect(fresh).toHaveLength(10);
    expect(fresh.some((code) => recoveryCodes.includes(code))).toBe(false);
    expect(await verifySecondFactor(deps, id, recoveryCodes[3]!)).toEqual({ ok: false, reason: 'invalid_code' });
    expect(await verifySecondFactor(deps, id, fresh[0]!)).toEqual({ ok: true, method: 'recovery_code', recoveryCodesLeft: 9 });
    const audit = await auditOf(id);
    expect(audit.at(-1)).toMatchObject({ actor: `person:${id}`, action: 'recovery_codes.generate', details: { count: 10 } });
    expect(JSON.stringify(audit)).not.toContain(fresh[1]!);
  });

  it('disabling removes the authenticator and the recovery codes, audited; codes stop working', async () => {
    const { id, by, secret, recoveryCodes } = await enrolled();
    await disableTotp(deps, by, id);
    expect(await rowsOf(id)).toEqual([]);
    expect(await secondFactorStatus(registry.db, id, nowMs)).toEqual({ totp: 'none', recoveryCodesLeft: 0 });
    expect(await verifySecondFactor(deps, id, await codeAt(secret))).toEqual({ ok: false, reason: 'no_factor' });
    expect(await verifySecondFactor(deps, id, recoveryCodes[0]!)).toEqual({ ok: false, reason: 'invalid_code' });
    expect((await auditOf(id)).at(-1)).toMatchObject({ actor: `person:${id}`, action: 'totp.disable', details: { recovery_codes_removed: 10 } });
    await expect(disableTotp(deps, by, id)).rejects.toThrow(NotFoundError);
    await expect(regenerateRecoveryCodes(deps, by, id)).rejects.toThrow(NotFoundError);
  });

  it('a new enrolment keeps the current authenticator working until it is confirmed, then replaces it', async () => {
    const { id, by, secret } = await enrolled();
    const next = await beginTotpEnrolment(deps, id, { issuer: 'Gatehouse' });
    expect(await verifySecondFactor(deps, id, await codeAt(secret))).toMatchObject({ ok: true });
    later();
    await confirmTotpEnrolment(deps, by, id, await codeAt(next.secret));
    later();
    expect(await verifySecondFactor(deps, id, await codeAt(secret))).toEqual({ ok: false, reason: 'invalid_code' });
    expect(await verifySecondFactor(deps, id, await codeAt(next.secret))).toMatchObject({ ok: true });
    expect((await rowsOf(id)).map((row) => row.state)).toEqual(['active']);
  });
});
