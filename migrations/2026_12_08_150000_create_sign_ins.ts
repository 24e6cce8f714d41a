import { sql, type Kysely } from 'kysely';

/**
 * Successful sign-ins, for the account page's "Recent sign-ins" (docs/design/sign-in-methods.md
 * §2.2): who, when, how (method, amr, acr), through which app, from which address and browser.
 * Failures are in the audit log, not here. Each insert deletes the person's rows older than
 * SIGN_IN_HISTORY_DAYS (services/sign-ins.service.ts); the page reads the 20 newest by
 * (user_id, at desc).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('sign_ins')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('method', 'text', (c) => c.notNull().check(sql`method in ('password', 'passkey', 'upstream', 'step_up')`))
    .addColumn('amr', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('acr', 'text', (c) => c.notNull())
    .addColumn('client_id', 'text')
    .addColumn('upstream_provider_id', 'text')
    .addColumn('ip', 'text')
    .addColumn('user_agent', 'text')
    .execute();
  await db.schema.createIndex('sign_ins_user_at_idx').on('sign_ins').columns(['user_id', 'at desc']).execute();
  // The hourly sweep deletes rows past the retention for everyone (people who never sign in again).
  await db.schema.createIndex('sign_ins_at_idx').on('sign_ins').column('at').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('sign_ins').execute();
}
