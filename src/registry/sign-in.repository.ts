import type { Kysely, Transaction } from 'kysely';
import { hasNul } from './text.js';
import type { Database, SignInMethod, SignInRow } from './tables.js';

type Db = Kysely<Database> | Transaction<Database>;

/** The longest user agent kept (design §2.2); longer ones are cut. */
export const MAX_USER_AGENT = 256;

/** A successful sign-in as the account page lists it. */
export interface SignInRecord {
  id: string;
  userId: string;
  at: Date;
  method: SignInMethod;
  amr: string[];
  acr: string;
  clientId: string | null;
  upstreamProviderId: string | null;
  ip: string | null;
  userAgent: string | null;
}

/** What is recorded for one sign-in (`at` defaults to the database's now()). */
export interface NewSignIn {
  userId: string;
  method: SignInMethod;
  amr: readonly string[];
  acr: string;
  clientId?: string | null;
  upstreamProviderId?: string | null;
  ip?: string | null;
  userAgent?: string | null;
  at?: Date;
}

function toSignInRecord(row: SignInRow): SignInRecord {
  return {
    id: String(row.id),
    userId: row.user_id,
    at: row.at,
    method: row.method,
    amr: row.amr,
    acr: row.acr,
    clientId: row.client_id,
    upstreamProviderId: row.upstream_provider_id,
    ip: row.ip,
    userAgent: row.user_agent,
  };
}

/** Text as PostgreSQL can hold it (no U+0000), at most `max` characters; empty is null. */
function storable(value: string | null | undefined, max: number): string | null {
  if (!value) return null;
  const clean = value.replaceAll('\u0000', '').slice(0, max);
  return clean === '' ? null : clean;
}

/**
 * Inserts one sign-in and deletes the person's rows from before `keepAfter` (the retention), in one
 * transaction: the table never holds more history than the setting allows for anyone who signs in.
 */
export async function insertSignIn(db: Kysely<Database>, entry: NewSignIn, keepAfter: Date): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx
      .insertInto('sign_ins')
      .values({
        user_id: entry.userId,
        method: entry.method,
        amr: [...entry.amr],
        acr: entry.acr,
        client_id: storable(entry.clientId, 256),
        upstream_provider_id: storable(entry.upstreamProviderId, 64),
        ip: storable(entry.ip, 64),
        user_agent: storable(entry.userAgent, MAX_USER_AGENT),
        ...(entry.at ? { at: entry.at } : {}),
      })
      .execute();
    await trx.deleteFrom('sign_ins').where('user_id', '=', entry.userId).where('at', '<', keepAfter).execute();
  });
}

/** Deletes everyone's rows from before `keepAfter` (the retention, for people who do not sign in again); how many went. */
export async function deleteSignInsBefore(db: Kysely<Database>, keepAfter: Date): Promise<number> {
  const result = await db.deleteFrom('sign_ins').where('at', '<', keepAfter).executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** The person's newest sign-ins, newest first, at most `limit`. */
export async function listRecentSignIns(db: Db, userId: string, limit: number): Promise<SignInRecord[]> {
  if (hasNul(userId)) return [];
  const rows = await db.selectFrom('sign_ins').selectAll().where('user_id', '=', userId).orderBy('at', 'desc').orderBy('id', 'desc').limit(limit).execute();
  return rows.map(toSignInRecord);
}
