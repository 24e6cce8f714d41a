import type { Kysely, Transaction } from 'kysely';
import type { Database } from './tables.js';

type Db = Kysely<Database> | Transaction<Database>;

/** oidc-provider's model name for the initial access tokens of dynamic registration. */
const MODEL = 'InitialAccessToken';

/**
 * An initial access token as the registry keeps it: `storedId` is the row's key, which may be the
 * token's value itself, so it never leaves the services (the listing shows an id derived from it).
 */
export interface StoredInitialAccessToken {
  storedId: string;
  createdAt: Date;
  expiresAt: Date | null;
}

/**
 * Stores a new initial access token as the durable adapter would: under `storedId` (the digest of
 * its value), with the payload oidc-provider reads back, until `expiresAt`.
 */
export async function insertInitialAccessTokenRow(db: Db, row: { storedId: string; payload: Record<string, unknown>; expiresAt: Date }): Promise<void> {
  await db
    .insertInto('oidc_durable')
    .values({
      model: MODEL,
      id: row.storedId,
      grant_id: null,
      account_id: null,
      client_id: null,
      payload: JSON.stringify(row.payload),
      expires_at: row.expiresAt,
      consumed_at: null,
    })
    .execute();
}

/** Every stored initial access token (expired ones too, until the purge removes them), oldest first. */
export async function listInitialAccessTokenRows(db: Db): Promise<StoredInitialAccessToken[]> {
  const rows = await db
    .selectFrom('oidc_durable')
    .select(['id', 'created_at', 'expires_at'])
    .where('model', '=', MODEL)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  return rows.map((row) => ({ storedId: row.id, createdAt: row.created_at, expiresAt: row.expires_at }));
}

/** Deletes one initial access token by its stored key: it registers nothing from then on. */
export async function deleteInitialAccessTokenRow(db: Db, storedId: string): Promise<boolean> {
  const result = await db.deleteFrom('oidc_durable').where('model', '=', MODEL).where('id', '=', storedId).executeTakeFirst();
  return result.numDeletedRows > 0n;
}
