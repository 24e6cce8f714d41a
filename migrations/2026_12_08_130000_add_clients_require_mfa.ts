import type { Kysely } from 'kysely';

/**
 * A client whose sign-ins need a second factor (acr urn:gatehouse:acr:mfa): set by an administrator
 * (CLI --require-mfa, admin API require_mfa), never by a client registering itself.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('clients')
    .addColumn('require_mfa', 'boolean', (c) => c.notNull().defaultTo(false))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('clients').dropColumn('require_mfa').execute();
}
