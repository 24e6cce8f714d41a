import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { Migrator } from 'kysely/migration';
import { afterEach, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../../migrations/index.js';
import { loadConfig } from '../../../src/config/load-config.js';
import { createLogger } from '../../../src/observability/logger.js';
import { openCliDatabase, type RegistryDatabase } from '../../../src/registry/database.js';
import { migrateToLatest, migrationState, MigrationError } from '../../../src/registry/migrate.js';
import type { Database } from '../../../src/registry/tables.js';
import { findUserByEmail } from '../../../src/registry/user.repository.js';
import { createTestDatabase, type TestDatabase } from '../../fixtures/database.js';

const MIGRATION = '2026_12_03_120000_normalise_emails';
const BEFORE = '2026_11_23_140000_create_audit_log';

describe(`migration ${MIGRATION}`, () => {
  let database: TestDatabase | undefined;
  let registry: RegistryDatabase | undefined;
  afterEach(async () => {
    await registry?.close();
    await database?.drop();
    registry = undefined;
    database = undefined;
  });

  /** A registry made by the migrations before this one, holding users with these emails (as an older Gatehouse stored them). */
  async function olderRegistry(emails: readonly string[]): Promise<{ db: Kysely<Database>; ids: string[] }> {
    database = await createTestDatabase();
    registry = await openCliDatabase(loadConfig({ DATABASE_URL: database.url, NODE_ENV: 'test', LOG_LEVEL: 'silent' }), createLogger({ logLevel: 'silent' }));
    const { db } = registry;
    const migrator = new Migrator({ db, provider: { getMigrations: () => Promise.resolve(MIGRATIONS) } });
    const older = await migrator.migrateTo(BEFORE);
    expect(older.error).toBeUndefined();
    const ids = emails.map(() => randomUUID());
    for (const [index, email] of emails.entries()) {
      // Raw SQL: today's insertUser would normalise the address, which an older Gatehouse did not do.
      await sql`insert into users (id, email, password_hash) values (${ids[index]}, ${email}, 'hash')`.execute(db);
    }
    return { db, ids };
  }

  const emailsOf = async (db: Kysely<Database>) =>
    Object.fromEntries((await db.selectFrom('users').select(['id', 'email']).execute()).map((row) => [row.id, row.email]));
  const indexesOf = async (db: Kysely<Database>) =>
    (await sql<{ indexname: string }>`select indexname from pg_indexes where tablename = 'users' order by indexname`.execute(db)).rows.map((row) => row.indexname);

  it('stores every email in its normalised form and makes that form the unique key', async () => {
    const stored = ['Ada.Lovelace@Example.TEST', 'ｇｒａｃｅ@ｅｘａｍｐｌｅ．ｔｅｓｔ', 'JOSE\u0301@example.test', 'İpek@example.test', 'plain@example.test'];
    const { db, ids } = await olderRegistry(stored);
    expect(await indexesOf(db)).toEqual(['users_email_lower_key', 'users_pkey']);

    expect(await migrateToLatest(db)).toContain(MIGRATION);

    expect(await emailsOf(db)).toEqual({
      [ids[0]!]: 'ada.lovelace@example.test',
      [ids[1]!]: 'grace@example.test',
      [ids[2]!]: 'josé@example.test',
      [ids[3]!]: 'i\u0307pek@example.test',
      [ids[4]!]: 'plain@example.test',
    });
    expect(await indexesOf(db)).toEqual(['users_email_key', 'users_pkey']);
    // Found under any spelling; a second spelling of a stored address cannot be inserted.
    expect((await findUserByEmail(db, 'ＧＲＡＣＥ@example.test'))?.id).toBe(ids[1]);
    expect((await findUserByEmail(db, 'josé@EXAMPLE.test'))?.id).toBe(ids[2]);
    await expect(sql`insert into users (id, email, password_hash) values (${randomUUID()}, 'grace@example.test', 'hash')`.execute(db)).rejects.toMatchObject({ code: '23505' });
  });

  it('refuses, naming the users, when two emails become one address, and changes nothing', async () => {
    // The old index (lower(email)) let these live side by side: lower() does not fold width or composition.
    const stored = ['grace@example.test', 'ｇｒａｃｅ@example.test', 'josé@example.test', 'jose\u0301@example.test', 'Alone@example.test'];
    const { db, ids } = await olderRegistry(stored);
    const before = await emailsOf(db);

    const error = await migrateToLatest(db).then(
      () => expect.unreachable('the migration should refuse'),
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(MigrationError);
    const message = (error as Error).message;
    expect(message).toContain(MIGRATION);
    expect(message).toMatch(/2 email address\(es\) would belong to more than one user/);
    for (const id of ids.slice(0, 4)) expect(message).toContain(id);
    expect(message).not.toContain(ids[4]);
    expect(message).not.toContain('\n');

    expect(await emailsOf(db)).toEqual(before);
    expect(await indexesOf(db)).toEqual(['users_email_lower_key', 'users_pkey']);
    expect((await migrationState(db)).pending).toContain(MIGRATION);
  });
});
