import { sql, type Kysely } from 'kysely';

/**
 * People's passkeys (WebAuthn credentials; docs/design/sign-in-methods.md §2.2, §4): the public
 * key (COSE bytes) and the state every use checks — the signature counter, the backup-eligible flag
 * (fixed at registration) and the backup state. `credential_id` (base64url, as the browser sends
 * it) is unique and looked up on every passkey sign-in.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('passkeys')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('credential_id', 'text', (c) => c.notNull().unique())
    .addColumn('public_key', 'bytea', (c) => c.notNull())
    .addColumn('counter', 'int8', (c) => c.notNull().defaultTo(0).check(sql`counter >= 0`))
    .addColumn('transports', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('backup_eligible', 'boolean', (c) => c.notNull())
    .addColumn('backup_state', 'boolean', (c) => c.notNull())
    .addColumn('aaguid', 'text')
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_used_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('passkeys_user_id_idx').on('passkeys').column('user_id').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('passkeys').execute();
}
