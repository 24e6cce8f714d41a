import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createAuditChainMonitor } from '../../../src/audit/audit-chain-monitor.js';
import { appendAudit, verifyAuditChain } from '../../../src/audit/audit-log.js';
import { loadConfig } from '../../../src/config/load-config.js';
import { staticAuditKeyring, type AuditKey } from '../../../src/keys/audit-key.js';
import { createLogger } from '../../../src/observability/logger.js';
import { openServerDatabase, type RegistryDatabase } from '../../../src/registry/database.js';
import { migrateToLatest } from '../../../src/registry/migrate.js';
import { createTestDatabase, type TestDatabase } from '../../fixtures/database.js';

const auditKey: AuditKey = { kid: 'monitor-key-1', createdAt: '2026-01-01T00:00:00.000Z', secret: randomBytes(32) };
const keyring = staticAuditKeyring([auditKey]);
const MINUTE = 60_000;

describe('audit chain monitor (the overview\'s chain status, bounded)', () => {
  let database: TestDatabase;
  let registry: RegistryDatabase;

  beforeAll(async () => {
    database = await createTestDatabase();
    const config = loadConfig({ DATABASE_URL: database.url, NODE_ENV: 'test', ISSUER: 'https://issuer.example.test', LOG_LEVEL: 'silent' });
    registry = await openServerDatabase(config, createLogger({ logLevel: 'silent' }));
    await migrateToLatest(registry.db);
  });
  afterAll(async () => {
    await registry.close();
    await database.drop();
  });
  beforeEach(async () => {
    await sql`truncate audit_log restart identity`.execute(registry.db);
  });

  const append = async (n: number) => {
    for (let i = 0; i < n; i += 1) await appendAudit(registry.db, keyring, { actor: 'cli:test', action: 'thing.create', target: `thing:${i}` });
  };
  /** Rewrites one row's actor without the key, as someone with SQL access alone would. */
  const tamper = (seq: number) => sql`update audit_log set actor = 'cli:mallory' where seq = ${seq}`.execute(registry.db);

  function monitor() {
    let clock = Date.parse('2026-12-08T00:00:00Z');
    const chain = createAuditChainMonitor({ db: registry.db, keyring, now: () => clock, maxAgeMs: MINUTE, fullEveryMs: 60 * MINUTE });
    return { chain, advance: (ms: number) => (clock += ms) };
  }

  it('verifies an empty log, then the rows appended since, and reuses a result for a minute', async () => {
    const { chain, advance } = monitor();
    const first = await chain.status();
    expect(first).toMatchObject({ ok: true, rows: 0, head: null, mode: 'full' });
    await append(3);
    // Within the minute: the same result, the new rows not read.
    expect(await chain.status()).toBe(first);
    advance(MINUTE);
    const second = await chain.status();
    expect(second).toMatchObject({ ok: true, rows: 3, head: { seq: 3 }, mode: 'incremental' });
    expect(second.fullCheckAt).toEqual(first.fullCheckAt);
    await append(2);
    advance(MINUTE);
    expect(await chain.status()).toMatchObject({ ok: true, rows: 5, head: { seq: 5 }, mode: 'incremental' });
  });

  it('shares one verification among callers while it runs', async () => {
    const { chain } = monitor();
    await append(2);
    const [a, b] = await Promise.all([chain.status(), chain.status()]);
    expect(a).toBe(b);
  });

  it('reads only the rows after the verified head between full checks, and finds an older rewrite at the next full one', async () => {
    const { chain, advance } = monitor();
    await append(5);
    expect(await chain.status()).toMatchObject({ ok: true, rows: 5, mode: 'full' });
    await tamper(2);
    await append(1);
    advance(MINUTE);
    // Row 2 is behind the head verified before: the incremental check does not read it (that is its bound).
    expect(await chain.status()).toMatchObject({ ok: true, rows: 6, mode: 'incremental' });
    advance(60 * MINUTE);
    expect(await chain.status()).toMatchObject({ ok: false, brokenAt: 2, mode: 'full', head: null });
  });

  it('starts over with a full check when the verified head was rewritten or removed', async () => {
    const { chain, advance } = monitor();
    await append(4);
    expect(await chain.status()).toMatchObject({ ok: true, head: { seq: 4 } });
    await tamper(4);
    advance(MINUTE);
    expect(await chain.status()).toMatchObject({ ok: false, brokenAt: 4, mode: 'full' });

    await sql`truncate audit_log restart identity`.execute(registry.db);
    await append(3);
    advance(MINUTE);
    expect(await chain.status()).toMatchObject({ ok: true, rows: 3, mode: 'full' });
    // The newest row removed: its head is gone, so the next check is full (and the chain that is left verifies).
    await sql`delete from audit_log where seq = 3`.execute(registry.db);
    advance(MINUTE);
    expect(await chain.status()).toMatchObject({ ok: true, rows: 2, head: { seq: 2 }, mode: 'full' });
  });

  it('does not keep a request waiting for a long check: "still running" first, the last result later', async () => {
    let clock = Date.parse('2026-12-08T00:00:00Z');
    let release: () => void = () => undefined;
    let gate = Promise.resolve();
    const chain = createAuditChainMonitor({
      db: registry.db,
      keyring,
      now: () => clock,
      waitMs: 50,
      verify: async (...args) => {
        await gate;
        return verifyAuditChain(...args);
      },
    });
    await append(2);
    gate = new Promise<void>((resolve) => (release = resolve));
    const first = await chain.status();
    expect(first).toMatchObject({ ok: null, rows: 0, head: null });
    release();
    // Asked again, it answers when the check is done.
    await expect.poll(async () => (await chain.status()).ok).toBe(true);
    const verified = await chain.status();
    expect(verified).toMatchObject({ ok: true, rows: 2 });
    // The next check is slow too: meanwhile the last result is given, not "still running".
    gate = new Promise<void>((resolve) => (release = resolve));
    clock += MINUTE;
    expect(await chain.status()).toBe(verified);
    release();
    await expect.poll(async () => (await chain.status()).checkedAt.getTime()).toBe(clock);
  });

  it('reports a break and keeps checking fully until the chain verifies again', async () => {
    const { chain, advance } = monitor();
    await append(3);
    await tamper(1);
    expect(await chain.status()).toMatchObject({ ok: false, brokenAt: 1, rows: 0, mode: 'full' });
    expect((await chain.status()).reason).toMatch(/altered/);
    advance(MINUTE);
    expect(await chain.status()).toMatchObject({ ok: false, brokenAt: 1, mode: 'full' });
  });
});
