import { sql, type Kysely } from 'kysely';

/**
 * Upstream identity providers (docs/design/sign-in-methods.md §2.2, §6):
 * - `upstream_providers`: generic OpenID Connect providers an administrator registered; the client
 *   secret only as a compact JWE under a data key of KEYS_DIR (`key_id` names it, for re-encryption);
 * - `upstream_links`: an upstream identity (issuer, subject) linked to a person, at most one per
 *   provider and person;
 * - `users.password_hash` becomes nullable: a person who came only through a provider has none.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('upstream_providers')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('issuer', 'text', (c) => c.notNull())
    .addColumn('client_id', 'text', (c) => c.notNull())
    .addColumn('client_secret_jwe', 'text')
    .addColumn('key_id', 'text')
    .addColumn('scopes', sql`text[]`, (c) => c.notNull())
    .addColumn('allow_signup', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('allowed_email_domains', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('enabled', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('upstream_providers_key_id_idx').on('upstream_providers').column('key_id').execute();

  await db.schema
    .createTable('upstream_links')
    .addColumn('provider_id', 'text', (c) => c.notNull().references('upstream_providers.id').onDelete('cascade'))
    .addColumn('issuer', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('email_at_link', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_used_at', 'timestamptz')
    .addPrimaryKeyConstraint('upstream_links_pkey', ['issuer', 'subject'])
    .addUniqueConstraint('upstream_links_provider_user_key', ['provider_id', 'user_id'])
    .execute();
  await db.schema.createIndex('upstream_links_user_id_idx').on('upstream_links').column('user_id').execute();

  await db.schema.alterTable('users').alterColumn('password_hash', (c) => c.dropNotNull()).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // People without a password cannot be kept under a NOT NULL password_hash: the down migration
  // refuses rather than invent one (delete or give them a password first).
  await db.schema.alterTable('users').alterColumn('password_hash', (c) => c.setNotNull()).execute();
  await db.schema.dropTable('upstream_links').execute();
  await db.schema.dropTable('upstream_providers').execute();
}
