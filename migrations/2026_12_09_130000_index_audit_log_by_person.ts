import type { Kysely } from 'kysely';
import { sql } from 'kysely';

/**
 * The account page's "Recent security events" reads the newest audit rows about one person: rows
 * whose target is `user:<id>`, and rows about one of their things that name them in
 * `details.user_id` (a passkey). Two indexes keep that read from scanning the whole log.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createIndex('audit_log_target_seq_idx').on('audit_log').columns(['target', 'seq']).execute();
  await sql`create index audit_log_details_user_id_seq_idx on audit_log ((details->>'user_id'), seq) where details ? 'user_id'`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('audit_log_details_user_id_seq_idx').execute();
  await db.schema.dropIndex('audit_log_target_seq_idx').execute();
}
