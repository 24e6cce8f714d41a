import { sql, type Kysely } from 'kysely';

/**
 * A person's second factors (docs/design/sign-in-methods.md §2.2, §5):
 * - `totp_factors`: at most one confirmed (`active`) authenticator and one `pending` enrolment per
 *   person; the secret only as a compact JWE under a data key of KEYS_DIR (`key_id` names it, for
 *   re-encryption), and the time step of the last accepted code, so no code is accepted twice;
 * - `recovery_codes`: ten single-use codes per person, stored only as `sha256$` digests.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('totp_factors')
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state in ('pending', 'active')`))
    .addColumn('secret_jwe', 'text', (c) => c.notNull())
    .addColumn('key_id', 'text', (c) => c.notNull())
    .addColumn('last_used_step', 'int8', (c) => c.notNull().defaultTo(-1))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('confirmed_at', 'timestamptz')
    .addPrimaryKeyConstraint('totp_factors_pkey', ['user_id', 'state'])
    .execute();
  await db.schema.createIndex('totp_factors_key_id_idx').on('totp_factors').column('key_id').execute();

  await db.schema
    .createTable('recovery_codes')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('digest', 'text', (c) => c.notNull())
    .addColumn('used_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('recovery_codes_user_digest_key', ['user_id', 'digest'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('recovery_codes').execute();
  await db.schema.dropTable('totp_factors').execute();
}
