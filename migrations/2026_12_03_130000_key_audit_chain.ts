import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // The audit key a row's hash is an HMAC with (keys live in KEYS_DIR, not here). Rows written
  // before this migration keep kid null: their unkeyed hashes are verified as the log's legacy
  // prefix, which the first keyed row seals by chaining to the last of them.
  await db.schema.alterTable('audit_log').addColumn('kid', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('audit_log').dropColumn('kid').execute();
}
