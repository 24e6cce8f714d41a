import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load-config.js';
import { createLogger } from '../../../src/observability/logger.js';
import { purgeExpiredDurableRows } from '../../../src/oidc/adapters/durable-adapter.js';
import { openCliDatabase, type RegistryDatabase } from '../../../src/registry/database.js';
import { migrateToLatest } from '../../../src/registry/migrate.js';
import { createTestDatabase, type TestDatabase } from '../../fixtures/database.js';

describe('purging expired grants and refresh tokens', () => {
  let database: TestDatabase;
  let registry: RegistryDatabase;

  beforeAll(async () => {
    database = await createTestDatabase();
    registry = await openCliDatabase(loadConfig({ DATABASE_URL: database.url, NODE_ENV: 'test' }), createLogger({ logLevel: 'silent' }));
    await migrateToLatest(registry.db);
  });
  afterAll(async () => {
    await registry.close();
    await database.drop();
  });

  it('deletes only rows that expired longer ago than the grace period', async () => {
    const hoursFromNow = (h: number) => new Date(Date.now() + h * 3600_000);
    const rows = [
      { id: 'long-expired', expires_at: hoursFromNow(-2) },
      { id: 'just-expired', expires_at: hoursFromNow(-0.1) },
      { id: 'alive', expires_at: hoursFromNow(5) },
      { id: 'no-expiry', expires_at: null },
    ];
    await registry.db
      .insertInto('oidc_durable')
      .values(rows.map((row) => ({ model: 'RefreshToken', id: row.id, payload: JSON.stringify({ jti: row.id }), expires_at: row.expires_at })))
      .execute();
    expect(await purgeExpiredDurableRows(registry.db, 3600)).toBe(1);
    const left = (await registry.db.selectFrom('oidc_durable').select('id').execute()).map((row) => row.id).sort();
    expect(left).toEqual(['alive', 'just-expired', 'no-expiry']);
    expect(await purgeExpiredDurableRows(registry.db, 0)).toBe(1);
  });
});
