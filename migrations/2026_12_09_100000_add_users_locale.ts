import type { Kysely } from 'kysely';
import { sql } from 'kysely';

/**
 * The language a person's mail is written in ('en', 'de': src/ui/i18n.ts LOCALES), taken from the
 * page they last signed in or signed up on; null until then (mail falls back to English).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('users')
    .addColumn('locale', 'text', (c) => c.check(sql`locale is null or length(locale) between 2 and 16`))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('users').dropColumn('locale').execute();
}
