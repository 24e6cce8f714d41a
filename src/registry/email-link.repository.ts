import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database, EmailLinkPurpose, EmailLinkRow } from './tables.js';

type Db = Kysely<Database> | Transaction<Database>;

/** A link sent by mail, as the services see it (never its value: only the digest is stored). */
export interface EmailLinkRecord {
  id: string;
  purpose: EmailLinkPurpose;
  userId: string;
  email: string;
  createdAt: Date;
  expiresAt: Date;
  usedAt: Date | null;
}

function toRecord(row: EmailLinkRow): EmailLinkRecord {
  return { id: String(row.id), purpose: row.purpose, userId: row.user_id, email: row.email, createdAt: row.created_at, expiresAt: row.expires_at, usedAt: row.used_at };
}

/** Stores a new link (by digest) and drops the person's earlier unused links of the same purpose: only the newest works. */
export async function insertEmailLink(db: Db, link: { digest: string; purpose: EmailLinkPurpose; userId: string; email: string; expiresAt: Date }): Promise<EmailLinkRecord> {
  await db.deleteFrom('email_links').where('user_id', '=', link.userId).where('purpose', '=', link.purpose).where('used_at', 'is', null).execute();
  const row = await db
    .insertInto('email_links')
    .values({ digest: link.digest, purpose: link.purpose, user_id: link.userId, email: link.email, expires_at: link.expiresAt })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toRecord(row);
}

/** The link with this digest and purpose, used or not, expired or not (undefined: no such link). */
export async function findEmailLinkByDigest(db: Db, digest: string, purpose: EmailLinkPurpose): Promise<EmailLinkRecord | undefined> {
  const row = await db.selectFrom('email_links').selectAll().where('digest', '=', digest).where('purpose', '=', purpose).executeTakeFirst();
  return row ? toRecord(row) : undefined;
}

/** Marks the link used if it is unused and unexpired, in one statement: of two uses at once, one wins. */
export async function markEmailLinkUsed(db: Db, digest: string, purpose: EmailLinkPurpose): Promise<EmailLinkRecord | undefined> {
  const row = await db
    .updateTable('email_links')
    .set({ used_at: sql<Date>`now()` })
    .where('digest', '=', digest)
    .where('purpose', '=', purpose)
    .where('used_at', 'is', null)
    .where('expires_at', '>', sql<Date>`now()`)
    .returningAll()
    .executeTakeFirst();
  return row ? toRecord(row) : undefined;
}

/** Drops the person's unused links of a purpose (a password set another way, an address changed again). */
export async function deleteUnusedEmailLinks(db: Db, userId: string, purpose: EmailLinkPurpose): Promise<number> {
  const result = await db.deleteFrom('email_links').where('user_id', '=', userId).where('purpose', '=', purpose).where('used_at', 'is', null).executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** Deletes links that expired before `before` (the hourly sweep). */
export async function purgeEmailLinks(db: Db, before: Date): Promise<number> {
  const result = await db.deleteFrom('email_links').where('expires_at', '<', before).executeTakeFirst();
  return Number(result.numDeletedRows);
}
