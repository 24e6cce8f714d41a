import { sql, type Kysely } from 'kysely';
import { Migrator } from 'kysely/migration';
import { afterEach, describe, expect, it } from 'vitest';
import { down } from '../../../migrations/2026_12_08_150000_create_sign_ins.js';
import { MIGRATIONS } from '../../../migrations/index.js';
import { loadConfig } from '../../../src/config/load-config.js';
import { createLogger } from '../../../src/observability/logger.js';
import { openCliDatabase, type RegistryDatabase } from '../../../src/registry/database.js';
import { migrateToLatest, migrationState } from '../../../src/registry/migrate.js';
import { createTestDatabase, type TestDatabase } from '../../fixtures/database.js';

const MIGRATION = '2026_12_08_150000_create_sign_ins';
/** The newest migration that had landed before this one: a registry migrated that far must upgrade. */
const LANDED_BEFORE = '2026_12_08_130000_add_clients_require_mfa';

describe(`migration ${MIGRATION}`, () => {
  let database: TestDatabase | undefined;
  let registry: RegistryDatabase | undefined;
  afterEach(async () => {
    await registry?.close();
    await database?.drop();
    registry = undefined;
    database = undefined;
  });

  it('upgrades a registry migrated to the migrations that landed before it (its name sorts after theirs), and down() removes the table', async () => {
    expect(MIGRATION > LANDED_BEFORE).toBe(true);
    database = await createTestDatabase();
    registry = await openCliDatabase(loadConfig({ DATABASE_URL: database.url, NODE_ENV: 'test', LOG_LEVEL: 'silent' }), createLogger({ logLevel: 'silent' }));
    const { db } = registry;
    const migrator = new Migrator({ db, provider: { getMigrations: () => Promise.resolve(MIGRATIONS) } });
    expect((await migrator.migrateTo(LANDED_BEFORE)).error).toBeUndefined();
    expect((await migrationState(db)).pending).toContain(MIGRATION);

    const applied = await migrateToLatest(db);
    expect(applied).toContain(MIGRATION);
    const table = await sql<{ present: boolean }>`select to_regclass('sign_ins') is not null as present`.execute(db);
    expect(table.rows[0]?.present).toBe(true);
    // The method is one of four; a person's rows go with them.
    await sql`insert into users (id, email, password_hash) values ('u1', 'u1@example.test', 'hash')`.execute(db);
    await sql`insert into sign_ins (user_id, method, amr, acr) values ('u1', 'password', '{pwd}', 'urn:gatehouse:acr:basic')`.execute(db);
    await expect(sql`insert into sign_ins (user_id, method, acr) values ('u1', 'magic', 'x')`.execute(db)).rejects.toThrow(/check constraint/);
    await sql`delete from users where id = 'u1'`.execute(db);
    expect((await sql<{ n: string }>`select count(*) as n from sign_ins`.execute(db)).rows[0]?.n).toBe('0');

    await down(db as unknown as Kysely<unknown>);
    const gone = await sql<{ present: boolean }>`select to_regclass('sign_ins') is not null as present`.execute(db);
    expect(gone.rows[0]?.present).toBe(false);
  });
});
