import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('users')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('email', 'text', (c) => c.notNull())
    .addColumn('email_verified', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('name', 'text')
    .addColumn('password_hash', 'text', (c) => c.notNull())
    .addColumn('disabled', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('last_login_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  // Email addresses are unique whatever their case.
  await sql`create unique index users_email_lower_key on users (lower(email))`.execute(db);

  // Durable oidc-provider models (Grant, RefreshToken): what a Redis flush must not lose.
  await db.schema
    .createTable('oidc_durable')
    .addColumn('model', 'text', (c) => c.notNull())
    .addColumn('id', 'text', (c) => c.notNull())
    .addColumn('grant_id', 'text')
    .addColumn('account_id', 'text')
    .addColumn('client_id', 'text')
    .addColumn('payload', 'jsonb', (c) => c.notNull())
    .addColumn('consumed_at', 'timestamptz')
    .addColumn('expires_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('oidc_durable_pkey', ['model', 'id'])
    .execute();
  await db.schema.createIndex('oidc_durable_grant_id_idx').on('oidc_durable').column('grant_id').execute();
  await db.schema.createIndex('oidc_durable_account_client_idx').on('oidc_durable').columns(['account_id', 'client_id']).execute();
  await db.schema.createIndex('oidc_durable_client_id_idx').on('oidc_durable').column('client_id').execute();
  await db.schema.createIndex('oidc_durable_expires_at_idx').on('oidc_durable').column('expires_at').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('oidc_durable').execute();
  await db.schema.dropTable('users').execute();
}
