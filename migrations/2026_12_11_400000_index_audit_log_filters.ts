import type { Kysely } from 'kysely';
import { sql } from 'kysely';

/**
 * The admin API's audit log filters by actor and by action, newest or oldest first, each either
 * exact (`person:…`, `client.create`) or by prefix (`person:*`, `client.*`). An index on each with
 * seq serves both: text_pattern_ops so that the prefix (LIKE 'client.%') reads the index whatever
 * the database's collation, equality too. (The target has its index since 2026_12_09_130000.)
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create index audit_log_actor_seq_idx on audit_log (actor text_pattern_ops, seq)`.execute(db);
  await sql`create index audit_log_action_seq_idx on audit_log (action text_pattern_ops, seq)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('audit_log_action_seq_idx').execute();
  await db.schema.dropIndex('audit_log_actor_seq_idx').execute();
}
