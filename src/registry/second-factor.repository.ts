import { sql, type Kysely, type Transaction } from 'kysely';
import { hasNul } from './text.js';
import type { Database, TotpFactorRow } from './tables.js';

type Db = Kysely<Database> | Transaction<Database>;

export type TotpState = 'pending' | 'active';

/** A person's TOTP authenticator, its secret still sealed. */
export interface TotpFactorRecord {
  userId: string;
  state: TotpState;
  secretJwe: string;
  keyId: string;
  /** The time step of the last accepted code; -1 for none. */
  lastUsedStep: number;
  createdAt: Date;
  confirmedAt: Date | null;
}

function toTotpFactorRecord(row: TotpFactorRow): TotpFactorRecord {
  return {
    userId: row.user_id,
    state: row.state,
    secretJwe: row.secret_jwe,
    keyId: row.key_id,
    lastUsedStep: Number(row.last_used_step),
    createdAt: row.created_at,
    confirmedAt: row.confirmed_at,
  };
}

export async function findTotpFactor(db: Db, userId: string, state: TotpState): Promise<TotpFactorRecord | undefined> {
  if (hasNul(userId)) return undefined;
  const row = await db.selectFrom('totp_factors').selectAll().where('user_id', '=', userId).where('state', '=', state).executeTakeFirst();
  return row && toTotpFactorRecord(row);
}

/** The person's pending enrolment, its row locked for the rest of the transaction. */
export async function findPendingTotpForUpdate(trx: Transaction<Database>, userId: string): Promise<TotpFactorRecord | undefined> {
  if (hasNul(userId)) return undefined;
  const row = await trx
    .selectFrom('totp_factors')
    .selectAll()
    .where('user_id', '=', userId)
    .where('state', '=', 'pending')
    .forUpdate()
    .executeTakeFirst();
  return row && toTotpFactorRecord(row);
}

/** Writes the person's pending enrolment, replacing one already there (a new enrolment starts over). */
export async function putPendingTotp(db: Db, userId: string, secretJwe: string, keyId: string, now: Date): Promise<void> {
  await db
    .insertInto('totp_factors')
    .values({ user_id: userId, state: 'pending', secret_jwe: secretJwe, key_id: keyId, created_at: now })
    .onConflict((oc) => oc.columns(['user_id', 'state']).doUpdateSet({ secret_jwe: secretJwe, key_id: keyId, last_used_step: -1, created_at: now }))
    .execute();
}

/**
 * Makes the pending enrolment the person's authenticator: the active one it replaces (if any) is
 * deleted, and the confirming code's step is the last used one. False when there is no pending row.
 */
export async function activatePendingTotp(trx: Transaction<Database>, userId: string, step: number, now: Date): Promise<boolean> {
  await trx.deleteFrom('totp_factors').where('user_id', '=', userId).where('state', '=', 'active').execute();
  const updated = await trx
    .updateTable('totp_factors')
    .set({ state: 'active', last_used_step: step, confirmed_at: now })
    .where('user_id', '=', userId)
    .where('state', '=', 'pending')
    .executeTakeFirst();
  return updated.numUpdatedRows > 0n;
}

/**
 * Records that the code of time step `step` was accepted, only if no code of that step or a later
 * one was: true for exactly one of any number of concurrent callers with the same code.
 */
export async function advanceTotpStep(db: Db, userId: string, step: number): Promise<boolean> {
  const updated = await db
    .updateTable('totp_factors')
    .set({ last_used_step: step })
    .where('user_id', '=', userId)
    .where('state', '=', 'active')
    .where('last_used_step', '<', step)
    .executeTakeFirst();
  return updated.numUpdatedRows > 0n;
}

/** Deletes the person's authenticator and pending enrolment; how many rows were deleted. */
export async function deleteTotpFactors(db: Db, userId: string): Promise<number> {
  const deleted = await db.deleteFrom('totp_factors').where('user_id', '=', userId).executeTakeFirst();
  return Number(deleted.numDeletedRows);
}

/** Where a listing of rows stopped: the last row's key. */
export type TotpFactorCursor = Pick<TotpFactorRecord, 'userId' | 'state'>;

/**
 * Up to `limit` rows sealed under another data key than `currentKid` (for re-encryption), in key
 * order after `after`: a batch at a time, each row seen once even if it cannot be re-sealed.
 */
export async function listTotpFactorsNotUnder(db: Db, currentKid: string, after: TotpFactorCursor | undefined, limit: number): Promise<TotpFactorRecord[]> {
  let query = db.selectFrom('totp_factors').selectAll().where('key_id', '<>', currentKid);
  if (after) query = query.where((eb) => eb(eb.refTuple('user_id', 'state'), '>', eb.tuple(after.userId, after.state)));
  const rows = await query.orderBy('user_id').orderBy('state').limit(limit).execute();
  return rows.map(toTotpFactorRecord);
}

/** How many rows are sealed under another data key than `currentKid`. */
export async function countTotpFactorsNotUnder(db: Db, currentKid: string): Promise<number> {
  const row = await db
    .selectFrom('totp_factors')
    .select(sql<string | number>`count(*)`.as('n'))
    .where('key_id', '<>', currentKid)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Replaces a row's sealed secret, only if it is still the one read (a concurrent change wins). */
export async function resealTotpFactor(db: Db, row: Pick<TotpFactorRecord, 'userId' | 'state' | 'secretJwe'>, secretJwe: string, keyId: string): Promise<boolean> {
  const updated = await db
    .updateTable('totp_factors')
    .set({ secret_jwe: secretJwe, key_id: keyId })
    .where('user_id', '=', row.userId)
    .where('state', '=', row.state)
    .where('secret_jwe', '=', row.secretJwe)
    .executeTakeFirst();
  return updated.numUpdatedRows > 0n;
}

/** Replaces the person's recovery codes with these digests. */
export async function replaceRecoveryCodes(db: Db, userId: string, digests: readonly string[], now: Date): Promise<void> {
  await db.deleteFrom('recovery_codes').where('user_id', '=', userId).execute();
  if (digests.length === 0) return;
  await db
    .insertInto('recovery_codes')
    .values(digests.map((digest) => ({ user_id: userId, digest, created_at: now })))
    .execute();
}

/** Marks the unused code with this digest used: true for exactly one of any number of concurrent callers. */
export async function useRecoveryCode(db: Db, userId: string, digest: string, now: Date): Promise<boolean> {
  if (hasNul(userId)) return false;
  const updated = await db
    .updateTable('recovery_codes')
    .set({ used_at: now })
    .where('user_id', '=', userId)
    .where('digest', '=', digest)
    .where('used_at', 'is', null)
    .executeTakeFirst();
  return updated.numUpdatedRows > 0n;
}

/** How many of the person's recovery codes are still unused. */
export async function countUnusedRecoveryCodes(db: Db, userId: string): Promise<number> {
  if (hasNul(userId)) return 0;
  const row = await db
    .selectFrom('recovery_codes')
    .select(sql<string | number>`count(*)`.as('n'))
    .where('user_id', '=', userId)
    .where('used_at', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Deletes all the person's recovery codes; how many there were. */
export async function deleteRecoveryCodes(db: Db, userId: string): Promise<number> {
  const deleted = await db.deleteFrom('recovery_codes').where('user_id', '=', userId).executeTakeFirst();
  return Number(deleted.numDeletedRows);
}
