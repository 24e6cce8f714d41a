import { sql, type Kysely, type Transaction } from 'kysely';
import { hasNul } from './text.js';
import type { Database, NewPasskeyRow, PasskeyRow } from './tables.js';

type Db = Kysely<Database> | Transaction<Database>;

/** A person's passkey, as the services see it. */
export interface PasskeyRecord {
  id: string;
  userId: string;
  /** base64url, as the browser sends it. */
  credentialId: string;
  /** The COSE public key bytes. */
  publicKey: Uint8Array<ArrayBuffer>;
  counter: number;
  transports: string[];
  backupEligible: boolean;
  backupState: boolean;
  aaguid: string | null;
  name: string;
  createdAt: Date;
  lastUsedAt: Date | null;
}

function toPasskeyRecord(row: PasskeyRow): PasskeyRecord {
  const bytes = new Uint8Array(new ArrayBuffer(row.public_key.length));
  bytes.set(row.public_key);
  return {
    id: row.id,
    userId: row.user_id,
    credentialId: row.credential_id,
    publicKey: bytes,
    counter: Number(row.counter),
    transports: row.transports,
    backupEligible: row.backup_eligible,
    backupState: row.backup_state,
    aaguid: row.aaguid,
    name: row.name,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
  };
}

export async function insertPasskey(db: Db, row: NewPasskeyRow): Promise<PasskeyRecord> {
  return toPasskeyRecord(await db.insertInto('passkeys').values(row).returningAll().executeTakeFirstOrThrow());
}

/** The passkey with this credential id (what a sign-in presents), or undefined. */
export async function findPasskeyByCredentialId(db: Db, credentialId: string): Promise<PasskeyRecord | undefined> {
  if (hasNul(credentialId)) return undefined;
  const row = await db.selectFrom('passkeys').selectAll().where('credential_id', '=', credentialId).executeTakeFirst();
  return row && toPasskeyRecord(row);
}

/** The person's passkey with our id `id`, or undefined (another person's is not found). */
export async function findPasskeyOfUser(db: Db, userId: string, id: string): Promise<PasskeyRecord | undefined> {
  if (hasNul(userId) || hasNul(id)) return undefined;
  const row = await db.selectFrom('passkeys').selectAll().where('user_id', '=', userId).where('id', '=', id).executeTakeFirst();
  return row && toPasskeyRecord(row);
}

/** The person's passkeys, oldest first. */
export async function listPasskeysOfUser(db: Db, userId: string): Promise<PasskeyRecord[]> {
  if (hasNul(userId)) return [];
  const rows = await db.selectFrom('passkeys').selectAll().where('user_id', '=', userId).orderBy('created_at').orderBy('id').execute();
  return rows.map(toPasskeyRecord);
}

/** Whether the person has any passkey (one indexed read, on every password sign-in). */
export async function userHasPasskey(db: Db, userId: string): Promise<boolean> {
  if (hasNul(userId)) return false;
  const row = await db.selectFrom('passkeys').select(sql<number>`1`.as('one')).where('user_id', '=', userId).limit(1).executeTakeFirst();
  return row !== undefined;
}

/** How many passkeys the person has (a way to sign in: unlinking a provider counts it, design §6.3). */
export async function countPasskeysOfUser(db: Db, userId: string): Promise<number> {
  if (hasNul(userId)) return 0;
  const row = await db.selectFrom('passkeys').select((eb) => eb.fn.countAll<string | number>().as('n')).where('user_id', '=', userId).executeTakeFirstOrThrow();
  return Number(row.n);
}

/**
 * Records a use of the passkey (design §4.1 step 6): the new counter, the backup state and the
 * time, only if the counter went up (or both are 0: an authenticator without a counter). True for
 * exactly one of any number of concurrent uses of one assertion; false leaves the row unchanged.
 */
export async function recordPasskeyUse(db: Db, id: string, use: { counter: number; backupState: boolean; at: Date }): Promise<boolean> {
  const updated = await db
    .updateTable('passkeys')
    .set({ counter: use.counter, backup_state: use.backupState, last_used_at: use.at })
    .where('id', '=', id)
    // A counter of 0 (the authenticator keeps none) matches only a stored 0; any other must go up.
    .where('counter', use.counter === 0 ? '=' : '<', use.counter)
    .executeTakeFirst();
  return updated.numUpdatedRows > 0n;
}

export async function renamePasskey(db: Db, userId: string, id: string, name: string): Promise<boolean> {
  const updated = await db.updateTable('passkeys').set({ name }).where('user_id', '=', userId).where('id', '=', id).executeTakeFirst();
  return updated.numUpdatedRows > 0n;
}

export async function deletePasskey(db: Db, userId: string, id: string): Promise<boolean> {
  const deleted = await db.deleteFrom('passkeys').where('user_id', '=', userId).where('id', '=', id).executeTakeFirst();
  return deleted.numDeletedRows > 0n;
}
