import { sql, type Kysely } from 'kysely';

/**
 * Links sent by mail (docs/design/self-service.md §2): a password reset, an address to verify, a
 * new address to confirm. Each carries a 256-bit random value of which only the SHA-256 digest is
 * kept (`digest`, as refresh tokens: registry/token-digest.ts), with what it is for, whose it is,
 * the address it went to, when it expires and whether it was used. Using one is a single
 * conditional update (`used_at is null and expires_at > now()`), so it works once.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('email_links')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('digest', 'text', (c) => c.notNull().unique())
    .addColumn('purpose', 'text', (c) => c.notNull().check(sql`purpose in ('password_reset', 'email_verification', 'email_change')`))
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('email', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('used_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('email_links_user_purpose_idx').on('email_links').columns(['user_id', 'purpose']).execute();
  await db.schema.createIndex('email_links_expires_at_idx').on('email_links').column('expires_at').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('email_links').execute();
}
