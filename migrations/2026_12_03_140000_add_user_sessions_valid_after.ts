import type { Kysely } from 'kysely';

/**
 * A person's browser sessions signed in before this time are over: set when their password changes
 * or they are disabled (unless the caller keeps them). Null: no session has been ended so.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('users').addColumn('sessions_valid_after', 'timestamptz').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('users').dropColumn('sessions_valid_after').execute();
}
