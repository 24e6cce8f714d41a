import type { Kysely } from 'kysely';
import { sql } from 'kysely';

/**
 * A person's roles (services/users.service.ts ROLES): `admin` lets them use the console and, through
 * it, the admin API. Empty for everyone until given. Only known role names are stored.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('users')
    .addColumn('roles', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`).check(sql`roles <@ array['admin']::text[]`))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('users').dropColumn('roles').execute();
}
