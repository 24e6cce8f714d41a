import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load-config.js';
import { createLogger } from '../../../src/observability/logger.js';
import { openCliDatabase, type RegistryDatabase } from '../../../src/registry/database.js';
import { migrateToLatest } from '../../../src/registry/migrate.js';
import { insertUser } from '../../../src/registry/user.repository.js';
import { purgeEmailLinks } from '../../../src/registry/email-link.repository.js';
import { checkEmailLink, issueEmailLink, revokeEmailLinks, useEmailLink } from '../../../src/services/email-links.service.js';
import { createTestDatabase, type TestDatabase } from '../../fixtures/database.js';

describe('links sent by mail, on PostgreSQL', () => {
  let database: TestDatabase;
  let registry: RegistryDatabase;

  beforeAll(async () => {
    database = await createTestDatabase();
    const config = loadConfig({ DATABASE_URL: database.url, NODE_ENV: 'test', LOG_LEVEL: 'silent' });
    registry = await openCliDatabase(config, createLogger({ logLevel: 'silent' }));
    await migrateToLatest(registry.db);
  });
  afterAll(async () => {
    await registry?.close();
    await database?.drop();
  });

  async function person() {
    const now = new Date();
    return insertUser(registry.db, { id: randomUUID(), email: `${randomUUID()}@example.com`, password_hash: null, created_at: now, updated_at: now });
  }

  it('stores only the digest, works once, and says why a second use is refused', async () => {
    const ada = await person();
    const { value, link } = await issueEmailLink(registry.db, { purpose: 'password_reset', userId: ada.id, email: ada.email });
    expect(value).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const rows = await registry.db.selectFrom('email_links').selectAll().where('user_id', '=', ada.id).execute();
    expect(rows).toHaveLength(1);
    expect(JSON.stringify(rows)).not.toContain(value);
    expect(rows[0]!.digest).toMatch(/^sha256\$/);
    expect(link.expiresAt.getTime() - Date.now()).toBeGreaterThan(29 * 60 * 1000);
    expect(link.expiresAt.getTime() - Date.now()).toBeLessThanOrEqual(30 * 60 * 1000);

    await expect(checkEmailLink(registry.db, value, 'password_reset')).resolves.toMatchObject({ ok: true, link: { userId: ada.id } });
    // Checking does not use it.
    await expect(useEmailLink(registry.db, value, 'password_reset')).resolves.toMatchObject({ ok: true, link: { userId: ada.id, email: ada.email } });
    await expect(useEmailLink(registry.db, value, 'password_reset')).resolves.toEqual({ ok: false, reason: 'used' });
    await expect(checkEmailLink(registry.db, value, 'password_reset')).resolves.toEqual({ ok: false, reason: 'used' });
  });

  it('of two uses at the same time, exactly one wins', async () => {
    const ada = await person();
    const { value } = await issueEmailLink(registry.db, { purpose: 'password_reset', userId: ada.id, email: ada.email });
    const results = await Promise.all(Array.from({ length: 8 }, () => useEmailLink(registry.db, value, 'password_reset')));
    expect(results.filter((r) => r.ok)).toHaveLength(1);
  });

  it('refuses an expired link, one of another purpose, garbage, and a link a newer one replaced', async () => {
    const ada = await person();
    const expired = await issueEmailLink(registry.db, { purpose: 'email_verification', userId: ada.id, email: ada.email, ttlSeconds: 60 });
    await registry.db.updateTable('email_links').set({ expires_at: sql<Date>`now() - interval '1 second'` }).where('id', '=', expired.link.id).execute();
    await expect(useEmailLink(registry.db, expired.value, 'email_verification')).resolves.toEqual({ ok: false, reason: 'expired' });
    const reset = await issueEmailLink(registry.db, { purpose: 'password_reset', userId: ada.id, email: ada.email });
    await expect(useEmailLink(registry.db, reset.value, 'email_change')).resolves.toEqual({ ok: false, reason: 'unknown' });
    for (const garbage of [undefined, 42, '', 'x'.repeat(10_000), `${reset.value}\u0000`, "' or 1=1 --"]) {
      await expect(useEmailLink(registry.db, garbage, 'password_reset')).resolves.toEqual({ ok: false, reason: 'unknown' });
    }
    const newer = await issueEmailLink(registry.db, { purpose: 'password_reset', userId: ada.id, email: ada.email });
    await expect(checkEmailLink(registry.db, reset.value, 'password_reset')).resolves.toEqual({ ok: false, reason: 'unknown' });
    // The refusals changed nothing: the newest link still works once.
    await expect(useEmailLink(registry.db, newer.value, 'password_reset')).resolves.toMatchObject({ ok: true });
  });

  it('revokes a person’s unused links of one purpose only', async () => {
    const ada = await person();
    const reset = await issueEmailLink(registry.db, { purpose: 'password_reset', userId: ada.id, email: ada.email });
    const verify = await issueEmailLink(registry.db, { purpose: 'email_verification', userId: ada.id, email: ada.email });
    await expect(revokeEmailLinks(registry.db, ada.id, 'password_reset')).resolves.toBe(1);
    await expect(checkEmailLink(registry.db, reset.value, 'password_reset')).resolves.toEqual({ ok: false, reason: 'unknown' });
    await expect(checkEmailLink(registry.db, verify.value, 'email_verification')).resolves.toMatchObject({ ok: true });
  });

  it('the sweep deletes links expired before the cut-off and keeps the rest', async () => {
    const ada = await person();
    const old = await issueEmailLink(registry.db, { purpose: 'email_verification', userId: ada.id, email: ada.email });
    const live = await issueEmailLink(registry.db, { purpose: 'password_reset', userId: ada.id, email: ada.email });
    await registry.db.updateTable('email_links').set({ expires_at: sql<Date>`now() - interval '2 days'` }).where('id', '=', old.link.id).execute();
    expect(await purgeEmailLinks(registry.db, new Date(Date.now() - 86_400_000))).toBeGreaterThanOrEqual(1);
    const left = await registry.db.selectFrom('email_links').select('id').where('user_id', '=', ada.id).execute();
    expect(left.map((row) => String(row.id))).toEqual([live.link.id]);
  });
});
