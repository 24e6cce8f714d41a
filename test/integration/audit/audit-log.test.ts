import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql, type Kysely } from 'kysely';
import { Migrator } from 'kysely/migration';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../../migrations/index.js';
import {
  AUDIT_GENESIS_HASH,
  appendAudit,
  auditRowHash,
  auditRowMac,
  createAuditSink,
  redactSecrets,
  sealLegacyAuditChain,
  tailAudit,
  verifyAuditChain,
  type AuditEntry,
  type AuditRecord,
} from '../../../src/audit/audit-log.js';
import { createAuditCheckpoint, verifyAuditChainAgainst } from '../../../src/audit/audit-checkpoint.js';
import { loadConfig } from '../../../src/config/load-config.js';
import { generateAuditKey, loadAuditKeyring, staticAuditKeyring, type AuditKey } from '../../../src/keys/audit-key.js';
import { createLogger } from '../../../src/observability/logger.js';
import { openCliDatabase, openServerDatabase, type RegistryDatabase } from '../../../src/registry/database.js';
import { migrateToLatest } from '../../../src/registry/migrate.js';
import type { Database } from '../../../src/registry/tables.js';
import { createTestDatabase } from '../../fixtures/database.js';

const logger = createLogger({ logLevel: 'silent' });
const ISSUER = 'https://issuer.example.test';

const auditKey: AuditKey = { kid: 'test-audit-key-1', createdAt: '2026-01-01T00:00:00.000Z', secret: randomBytes(32) };
const keys = staticAuditKeyring([auditKey]);

/** A row as stored, with what its hash covers. */
type StoredRow = { seq: string | number; at: Date; actor: string; action: string; target: string | null; request_id: string | null; ip: string | null; details: Record<string, unknown> };
const contentOf = (row: StoredRow) => ({
  at: row.at,
  actor: row.actor,
  action: row.action,
  target: row.target,
  request_id: row.request_id,
  ip: row.ip,
  details: row.details,
});

/**
 * What an attacker with SQL access (but not KEYS_DIR) does: rewrites rows from `fromSeq` on, each
 * with `hashOf` computed over the new content and the new prev_hash, as the unkeyed chain allowed.
 */
async function rewriteChain(
  db: Kysely<Database>,
  fromSeq: number,
  edit: (row: StoredRow) => StoredRow,
  hashOf: (prevHash: string, row: StoredRow) => { hash: string; kid: string | null },
): Promise<void> {
  const rows = (await db.selectFrom('audit_log').selectAll().orderBy('seq').execute()) as unknown as Array<StoredRow & { prev_hash: string; hash: string }>;
  let prev = AUDIT_GENESIS_HASH;
  for (const row of rows) {
    if (Number(row.seq) < fromSeq) {
      prev = row.hash;
      continue;
    }
    const changed = edit(row);
    const { hash, kid } = hashOf(prev, changed);
    await sql`update audit_log set actor = ${changed.actor}, details = ${JSON.stringify(changed.details)}::jsonb, prev_hash = ${prev}, hash = ${hash}, kid = ${kid} where seq = ${row.seq}`.execute(db);
    prev = hash;
  }
}

interface Opened {
  registry: RegistryDatabase;
  /** A second, separate connection (pool) to the same database, when the engine has one. */
  second?: RegistryDatabase;
  cleanup(): Promise<void>;
}

const engines: Array<{ name: string; separateConnections: boolean; open(): Promise<Opened> }> = [
  {
    name: 'postgresql',
    separateConnections: true,
    async open() {
      const database = await createTestDatabase();
      const config = loadConfig({ DATABASE_URL: database.url, NODE_ENV: 'test', ISSUER, LOG_LEVEL: 'silent' });
      const registry = await openServerDatabase(config, logger);
      const second = await openCliDatabase(config, logger);
      return {
        registry,
        second,
        async cleanup() {
          await second.close();
          await registry.close();
          await database.drop();
        },
      };
    },
  },
  {
    // The server's embedded database, served on its socket; the CLI reaches it through that socket too.
    name: 'pglite (server and socket)',
    separateConnections: true,
    async open() {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'gh-audit-'));
      const config = loadConfig({ NODE_ENV: 'test', ISSUER, DATA_DIR: path.join(dir, 'data'), KEYS_DIR: path.join(dir, 'keys') });
      const registry = await openServerDatabase(config, logger);
      const second = await openCliDatabase(config, logger);
      return {
        registry,
        second,
        async cleanup() {
          await second.close();
          await registry.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    // The CLI opening the files itself (no server running): PGlite in this process.
    name: 'pglite (in process)',
    // One process owns the files: there is no second connection to race with.
    separateConnections: false,
    async open() {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'gh-audit-'));
      const config = loadConfig({ NODE_ENV: 'test', ISSUER, DATA_DIR: path.join(dir, 'data'), KEYS_DIR: path.join(dir, 'keys') });
      const registry = await openCliDatabase(config, logger);
      expect(registry.kind).toBe('pglite');
      return {
        registry,
        async cleanup() {
          await registry.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  },
];

const entry = (i: number, extra: Partial<AuditEntry> = {}): AuditEntry => ({
  actor: 'cli:tester',
  action: 'client.update',
  target: `client:c${i}`,
  requestId: `req-${i}`,
  ip: '127.0.0.1',
  details: { before: { n: i, scopes: ['a', 'b'], nested: { z: 1, a: [{ y: true, x: null }] } }, after: { n: i + 1 } },
  ...extra,
});

describe.each(engines)('audit log on $name', (engine) => {
  let opened: Opened;
  let db: Kysely<Database>;

  beforeAll(async () => {
    opened = await engine.open();
    db = opened.registry.db;
    await migrateToLatest(db);
  }, 60_000);
  afterAll(async () => {
    await opened?.cleanup();
  }, 60_000);
  beforeEach(async () => {
    await sql`truncate audit_log restart identity`.execute(db);
  });

  const allRows = () => db.selectFrom('audit_log').selectAll().orderBy('seq').execute();

  it('an empty log verifies', async () => {
    expect(await verifyAuditChain(db, keys)).toMatchObject({ ok: true, rows: 0, legacyRows: 0 });
  });

  it('chains N appends from the genesis hash, and the chain verifies', async () => {
    const appended: AuditRecord[] = [];
    for (let i = 0; i < 12; i += 1) appended.push(await appendAudit(db, keys, entry(i)));
    expect(appended[0]!.prevHash).toBe(AUDIT_GENESIS_HASH);
    for (let i = 1; i < appended.length; i += 1) {
      expect(appended[i]!.prevHash).toBe(appended[i - 1]!.hash);
      expect(appended[i]!.seq).toBeGreaterThan(appended[i - 1]!.seq);
      expect(appended[i]!.at.getTime()).toBeGreaterThanOrEqual(appended[i - 1]!.at.getTime());
    }
    expect(appended[3]).toMatchObject({ actor: 'cli:tester', action: 'client.update', target: 'client:c3', requestId: 'req-3', ip: '127.0.0.1' });
    expect(appended[3]!.details).toEqual(entry(3).details);
    expect(appended[0]!.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(await verifyAuditChain(db, keys)).toMatchObject({ ok: true, rows: 12, legacyRows: 0 });
  });

  it('stores what it hashed: nulls for what was left out, no undefined, dates as text', async () => {
    const at = new Date('2026-01-02T03:04:05.678Z');
    const record = await appendAudit(db, keys, { actor: 'system', action: 'keys.rotate', details: { when: at, gone: undefined, list: [1, undefined] } });
    expect(record).toMatchObject({ target: null, requestId: null, ip: null });
    expect(record.details).toEqual({ when: at.toISOString(), list: [1, null] });
    expect(await verifyAuditChain(db, keys)).toMatchObject({ ok: true, rows: 1, legacyRows: 0 });
  });

  it('20 concurrent appends on one pool do not fork the chain', async () => {
    await appendAudit(db, keys, entry(0));
    await Promise.all(Array.from({ length: 20 }, (_, i) => appendAudit(db, keys, entry(i + 1))));
    const rows = await allRows();
    expect(rows).toHaveLength(21);
    expect(new Set(rows.map((r) => r.prev_hash)).size).toBe(21);
    expect(await verifyAuditChain(db, keys)).toMatchObject({ ok: true, rows: 21, legacyRows: 0 });
  });

  const twoConnections = engine.separateConnections ? it : undefined;
  twoConnections?.('20 concurrent appends from two separate connections do not fork the chain', async () => {
    const other = opened.second!.db;
    await Promise.all(Array.from({ length: 20 }, (_, i) => appendAudit(i % 2 === 0 ? db : other, keys, entry(i))));
    const rows = await allRows();
    expect(rows).toHaveLength(20);
    expect(new Set(rows.map((r) => r.prev_hash)).size).toBe(20);
    expect(await verifyAuditChain(other, keys)).toMatchObject({ ok: true, rows: 20, legacyRows: 0 });
  });

  it('a database constraint refuses a second row on the same predecessor (a fork)', async () => {
    const first = await appendAudit(db, keys, entry(0));
    await appendAudit(db, keys, entry(1));
    await expect(
      sql`insert into audit_log (actor, action, details, prev_hash, hash) values ('x', 'y', '{}'::jsonb, ${first.hash}, 'h')`.execute(db),
    ).rejects.toMatchObject({ code: '23505' });
  });

  it('appends inside a caller transaction, committed or rolled back with it', async () => {
    await db.transaction().execute(async (trx) => {
      await appendAudit(trx, keys, entry(1));
    });
    await db
      .transaction()
      .execute(async (trx) => {
        await appendAudit(trx, keys, entry(2));
        throw new Error('roll back');
      })
      .catch(() => undefined);
    const rows = await allRows();
    expect(rows.map((r) => r.target)).toEqual(['client:c1']);
    await appendAudit(db, keys, entry(3));
    expect(await verifyAuditChain(db, keys)).toMatchObject({ ok: true, rows: 2, legacyRows: 0 });
  });

  it('reports exactly the row whose details were tampered with', async () => {
    const appended: AuditRecord[] = [];
    for (let i = 0; i < 6; i += 1) appended.push(await appendAudit(db, keys, entry(i)));
    const target = appended[3]!.seq;
    await sql`update audit_log set details = ${JSON.stringify({ before: { n: 999 } })}::jsonb where seq = ${target}`.execute(db);
    const result = await verifyAuditChain(db, keys);
    expect(result).toMatchObject({ ok: false, brokenAt: target });
    expect(result.ok === false && result.reason).toMatch(/altered/);
  });

  it('reports a tampered actor or time, and a rewritten hash at the row after it', async () => {
    const appended: AuditRecord[] = [];
    for (let i = 0; i < 4; i += 1) appended.push(await appendAudit(db, keys, entry(i)));
    await sql`update audit_log set at = at + interval '1 second' where seq = ${appended[1]!.seq}`.execute(db);
    expect(await verifyAuditChain(db, keys)).toMatchObject({ ok: false, brokenAt: appended[1]!.seq });
    await sql`update audit_log set at = at - interval '1 second' where seq = ${appended[1]!.seq}`.execute(db);
    expect(await verifyAuditChain(db, keys)).toMatchObject({ ok: true, rows: 4, legacyRows: 0 });
    // Whoever rewrites a row and its hash still breaks the next row's link.
    await sql`update audit_log set actor = 'cli:someone-else', hash = ${'f'.repeat(64)} where seq = ${appended[2]!.seq}`.execute(db);
    const result = await verifyAuditChain(db, keys);
    expect(result).toMatchObject({ ok: false, brokenAt: appended[2]!.seq });
  });

  it('reports a deleted middle row at the row after it', async () => {
    const appended: AuditRecord[] = [];
    for (let i = 0; i < 6; i += 1) appended.push(await appendAudit(db, keys, entry(i)));
    await sql`delete from audit_log where seq = ${appended[2]!.seq}`.execute(db);
    const result = await verifyAuditChain(db, keys);
    expect(result).toMatchObject({ ok: false, brokenAt: appended[3]!.seq });
    expect(result.ok === false && result.reason).toMatch(/removed/);
  });

  it('reports a deleted first row', async () => {
    const appended: AuditRecord[] = [];
    for (let i = 0; i < 3; i += 1) appended.push(await appendAudit(db, keys, entry(i)));
    await sql`delete from audit_log where seq = ${appended[0]!.seq}`.execute(db);
    expect(await verifyAuditChain(db, keys)).toMatchObject({ ok: false, brokenAt: appended[1]!.seq });
  });

  it('verifies past one batch of rows', async () => {
    await db.transaction().execute(async (trx) => {
      for (let i = 0; i < 1003; i += 1) await appendAudit(trx, keys, { actor: 'system', action: 'test.bulk', details: { i } });
    });
    expect(await verifyAuditChain(db, keys)).toMatchObject({ ok: true, rows: 1003, legacyRows: 0 });
  }, 60_000);

  it('never stores secrets, at any depth', async () => {
    await appendAudit(db, keys, {
      actor: 'cli:tester',
      action: 'client.create',
      details: { after: { client_id: 'c', client_secret: 'S3CRET', jwks: { keys: [{ kty: 'RSA', n: 'n', e: 'AQAB', d: 'PRIVATE' }] } }, password: 'hunter2' },
    });
    const [row] = await allRows();
    const text = JSON.stringify(row);
    expect(text).not.toMatch(/S3CRET|PRIVATE|hunter2/);
    expect(row!.details).toEqual({ after: { client_id: 'c', jwks: { keys: [{ kty: 'RSA', n: 'n', e: 'AQAB' }] } } });
  });

  it('tails the last rows oldest first, from a time, or after a seq', async () => {
    const appended: AuditRecord[] = [];
    for (let i = 0; i < 5; i += 1) appended.push(await appendAudit(db, keys, entry(i)));
    expect((await tailAudit(db)).map((r) => r.seq)).toEqual(appended.map((r) => r.seq));
    expect((await tailAudit(db, { limit: 2 })).map((r) => r.seq)).toEqual(appended.slice(3).map((r) => r.seq));
    expect((await tailAudit(db, { afterSeq: appended[1]!.seq, limit: 2 })).map((r) => r.seq)).toEqual(appended.slice(2, 4).map((r) => r.seq));
    expect(await tailAudit(db, { since: new Date(Date.now() + 60_000) })).toEqual([]);
    expect((await tailAudit(db, { since: appended[2]!.at })).map((r) => r.seq)).toEqual(
      appended.filter((r) => r.at >= appended[2]!.at).map((r) => r.seq),
    );
    expect(typeof (await tailAudit(db))[0]!.seq).toBe('number');
  });

  it('the sink records, and logs instead of throwing when it cannot', async () => {
    await createAuditSink(db, keys, logger).record(entry(1, { action: 'signin.success' }));
    expect((await allRows()).map((r) => r.action)).toEqual(['signin.success']);

    const errors: string[] = [];
    const capture = createLogger({ logLevel: 'error' }, { write: (line: string) => errors.push(line) });
    const broken = {
      isTransaction: false,
      transaction: () => ({ execute: () => Promise.reject(new Error('database is down')) }),
    } as unknown as Kysely<Database>;
    await expect(createAuditSink(broken, keys, capture).record(entry(2))).resolves.toBeUndefined();
    expect(errors.join('')).toMatch(/audit record could not be written/);
    expect(errors.join('')).toMatch(/database is down/);
  });

  it('every row is keyed: an HMAC with the audit key, which names it', async () => {
    const record = await appendAudit(db, keys, entry(0));
    expect(record.kid).toBe(auditKey.kid);
    const [row] = (await allRows()) as unknown as StoredRow[];
    expect(record.hash).toBe(auditRowMac(auditKey, AUDIT_GENESIS_HASH, contentOf(row!)));
    expect(record.hash).not.toBe(auditRowHash(AUDIT_GENESIS_HASH, contentOf(row!)));
  });

  it('an attacker with SQL access who rewrites a row and recomputes every hash after it without the key is caught', async () => {
    const appended: AuditRecord[] = [];
    for (let i = 0; i < 5; i += 1) appended.push(await appendAudit(db, keys, entry(i)));
    const target = appended[2]!.seq;
    const edit = (row: StoredRow) => (Number(row.seq) === target ? { ...row, actor: 'cli:someone-else' } : row);
    // The unkeyed hash the chain used to have, keeping the kid.
    await rewriteChain(db, target, edit, (prev, row) => ({ hash: auditRowHash(prev, contentOf(row)), kid: auditKey.kid }));
    expect(await verifyAuditChain(db, keys)).toMatchObject({ ok: false, brokenAt: target, reason: expect.stringMatching(/altered/) });
    // An HMAC with a key of the attacker's own under the real kid.
    const guessed: AuditKey = { ...auditKey, secret: randomBytes(32) };
    await rewriteChain(db, target, edit, (prev, row) => ({ hash: auditRowMac(guessed, prev, contentOf(row)), kid: auditKey.kid }));
    expect(await verifyAuditChain(db, keys)).toMatchObject({ ok: false, brokenAt: target, reason: expect.stringMatching(/altered/) });
    // Calling the rewritten rows unkeyed (as if from before the key): refused after a keyed row…
    await rewriteChain(db, target, edit, (prev, row) => ({ hash: auditRowHash(prev, contentOf(row)), kid: null }));
    expect(await verifyAuditChain(db, keys)).toMatchObject({ ok: false, brokenAt: target, reason: expect.stringMatching(/unkeyed row after/) });
    // …and the whole log, rewritten unkeyed from the genesis hash, is vouched for by no key.
    await rewriteChain(db, 0, edit, (prev, row) => ({ hash: auditRowHash(prev, contentOf(row)), kid: null }));
    expect(await verifyAuditChain(db, keys)).toMatchObject({ ok: false, reason: expect.stringMatching(/no row is keyed/) });
  });

  it('a forged row appended with a plausible hash is caught, whatever kid it names', async () => {
    const appended: AuditRecord[] = [];
    for (let i = 0; i < 3; i += 1) appended.push(await appendAudit(db, keys, entry(i)));
    const head = appended[2]!;
    const forge = async (kid: string | null, hashOf: (content: ReturnType<typeof contentOf>) => string) => {
      const at = new Date(head.at.getTime() + 1000);
      const content = { at, actor: 'cli:ada', action: 'client.delete', target: 'client:c9', request_id: null, ip: null, details: {} };
      const { rows } = await sql<{ seq: string }>`insert into audit_log (at, actor, action, target, details, prev_hash, hash, kid)
        values (${at}, 'cli:ada', 'client.delete', 'client:c9', '{}'::jsonb, ${head.hash}, ${hashOf(content)}, ${kid}) returning seq`.execute(db);
      return Number(rows[0]!.seq);
    };
    const cases: Array<{ kid: string | null; hashOf: (content: ReturnType<typeof contentOf>) => string; reason: RegExp }> = [
      { kid: auditKey.kid, hashOf: (content) => auditRowHash(head.hash, content), reason: /altered/ },
      { kid: null, hashOf: (content) => auditRowHash(head.hash, content), reason: /unkeyed row after/ },
      { kid: 'attacker-key', hashOf: (content) => auditRowMac({ kid: 'attacker-key', createdAt: auditKey.createdAt, secret: randomBytes(32) }, head.hash, content), reason: /not in KEYS_DIR/ },
    ];
    for (const forged of cases) {
      const seq = await forge(forged.kid, forged.hashOf);
      expect(await verifyAuditChain(db, keys)).toMatchObject({ ok: false, brokenAt: seq, reason: expect.stringMatching(forged.reason) });
      await sql`delete from audit_log where seq = ${seq}`.execute(db);
    }
    expect(await verifyAuditChain(db, keys)).toMatchObject({ ok: true, rows: 3 });
  });

  it('after a key rotation, rows under the old and the new key verify, and the chain never goes back to the old key', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'gh-audit-keys-'));
    try {
      const nodeA = await loadAuditKeyring(dir, { generateIfMissing: true });
      const oldKey = nodeA.keys()[0]!;
      for (let i = 0; i < 3; i += 1) await appendAudit(db, nodeA, entry(i));
      const newKey = await generateAuditKey(dir);
      // Another process (the CLI's rotate-key) appends with the new key…
      const nodeB = await loadAuditKeyring(dir, { generateIfMissing: false });
      await appendAudit(db, nodeB, entry(3));
      // …and a node that loaded its keys before the rotation follows it, not the old key.
      const followed = await appendAudit(db, nodeA, entry(4));
      expect(followed.kid).toBe(newKey.kid);
      const rows = await allRows();
      expect(rows.map((r) => r.kid)).toEqual([oldKey.kid, oldKey.kid, oldKey.kid, newKey.kid, newKey.kid]);
      const verifier = await loadAuditKeyring(dir, { generateIfMissing: false });
      expect(await verifyAuditChain(db, verifier)).toMatchObject({ ok: true, rows: 5, legacyRows: 0 });
      // A row forged with the old (say leaked) key after the rotation is refused, though its HMAC is right.
      const last = rows[4]!;
      const at = new Date(last.at.getTime() + 1000);
      const content = { at, actor: 'cli:ada', action: 'client.delete', target: null, request_id: null, ip: null, details: {} };
      await sql`insert into audit_log (at, actor, action, details, prev_hash, hash, kid)
        values (${at}, 'cli:ada', 'client.delete', '{}'::jsonb, ${last.hash}, ${auditRowMac(oldKey, last.hash, content)}, ${oldKey.kid})`.execute(db);
      expect(await verifyAuditChain(db, verifier)).toMatchObject({ ok: false, reason: expect.stringMatching(/older than the key of the row before it/) });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a checkpoint of the head detects the newest rows removed, and a row before it rewritten even with the key', async () => {
    const appended: AuditRecord[] = [];
    for (let i = 0; i < 6; i += 1) appended.push(await appendAudit(db, keys, entry(i)));
    const checkpoint = await createAuditCheckpoint(db, keys, ISSUER);
    expect(checkpoint).toMatchObject({ seq: appended[5]!.seq, hash: appended[5]!.hash, kid: auditKey.kid });
    await appendAudit(db, keys, entry(6));
    expect(await verifyAuditChainAgainst(db, keys, checkpoint.jws)).toMatchObject({ ok: true, rows: 7, checkpoint: { seq: appended[5]!.seq } });

    // Whoever holds the key too can rewrite a row and every HMAC after it: the chain verifies…
    const target = appended[3]!.seq;
    await rewriteChain(db, target, (row) => (Number(row.seq) === target ? { ...row, actor: 'cli:someone-else' } : row), (prev, row) => ({
      hash: auditRowMac(auditKey, prev, contentOf(row)),
      kid: auditKey.kid,
    }));
    expect(await verifyAuditChain(db, keys)).toMatchObject({ ok: true, rows: 7 });
    // …the checkpoint kept elsewhere does not.
    expect(await verifyAuditChainAgainst(db, keys, checkpoint.jws)).toMatchObject({ ok: false, brokenAt: appended[5]!.seq, reason: expect.stringMatching(/rewritten/) });

    // The newest rows removed: the chain verifies, the checkpoint names a seq past its end.
    await sql`truncate audit_log restart identity`.execute(db);
    for (let i = 0; i < 6; i += 1) await appendAudit(db, keys, entry(i));
    const head = await createAuditCheckpoint(db, keys, ISSUER);
    await sql`delete from audit_log where seq >= ${head.seq - 1}`.execute(db);
    expect(await verifyAuditChain(db, keys)).toMatchObject({ ok: true, rows: 4 });
    expect(await verifyAuditChainAgainst(db, keys, head.jws)).toMatchObject({ ok: false, truncated: true, brokenAt: head.seq, reason: expect.stringMatching(/truncated/) });
  });
});

describe('audit log written before the chain was keyed (upgrade)', () => {
  it('its unkeyed rows verify once a keyed row seals them, and a rewrite of them is caught', async () => {
    const database = await createTestDatabase();
    const config = loadConfig({ DATABASE_URL: database.url, NODE_ENV: 'test', ISSUER, LOG_LEVEL: 'silent' });
    const registry = await openServerDatabase(config, logger);
    try {
      const db = registry.db;
      // The registry as the previous migrations left it, with rows hashed as the old code did.
      const previous = Object.fromEntries(Object.entries(MIGRATIONS).filter(([name]) => name < '2026_12_03_130000_key_audit_chain'));
      const before = await new Migrator({ db, provider: { getMigrations: () => Promise.resolve(previous) } }).migrateToLatest();
      expect(before.error).toBeUndefined();
      let prev = AUDIT_GENESIS_HASH;
      for (let i = 0; i < 3; i += 1) {
        const content = { at: new Date(Date.UTC(2026, 10, 24, 12, 0, i)), actor: 'cli:tester', action: 'client.update', target: `client:c${i}`, request_id: null, ip: null, details: { n: i } };
        const hash = auditRowHash(prev, content);
        await sql`insert into audit_log (at, actor, action, target, details, prev_hash, hash)
          values (${content.at}, ${content.actor}, ${content.action}, ${content.target}, ${JSON.stringify(content.details)}::jsonb, ${prev}, ${hash})`.execute(db);
        prev = hash;
      }
      await migrateToLatest(db);
      // All unkeyed: whoever can write to the database could have written every row.
      expect(await verifyAuditChain(db, keys)).toMatchObject({ ok: false, reason: expect.stringMatching(/no row is keyed/) });

      expect(await sealLegacyAuditChain(db, keys)).toBe(true);
      expect(await sealLegacyAuditChain(db, keys)).toBe(false);
      await appendAudit(db, keys, entry(3));
      expect(await verifyAuditChain(db, keys)).toMatchObject({ ok: true, rows: 5, legacyRows: 3 });
      const rows = await db.selectFrom('audit_log').selectAll().orderBy('seq').execute();
      expect(rows.map((r) => r.kid)).toEqual([null, null, null, auditKey.kid, auditKey.kid]);
      expect(rows[3]).toMatchObject({ actor: 'system', action: 'audit.chain_keyed', details: { legacy_rows: 3 } });

      // The unkeyed rows rewritten, their hashes recomputed: the sealing row no longer follows them.
      const first = Number(rows[1]!.seq);
      await rewriteChain(
        db,
        first,
        (row) => (Number(row.seq) === first ? { ...row, actor: 'cli:someone-else' } : row),
        (p, row) => (Number(row.seq) < Number(rows[3]!.seq) ? { hash: auditRowHash(p, contentOf(row)), kid: null } : { hash: 'x'.repeat(64), kid: auditKey.kid }),
      );
      expect(await verifyAuditChain(db, keys)).toMatchObject({ ok: false, brokenAt: Number(rows[3]!.seq) });
    } finally {
      await registry.close();
      await database.drop();
    }
  }, 60_000);
});

describe('redactSecrets', () => {
  it('drops secrets at any depth and keeps everything else', () => {
    const input = {
      client_id: 'abc',
      client_secret: 'x',
      clientSecret: 'x',
      secret_digest: 'x',
      secret_rotated_at: '2026-01-01T00:00:00.000Z',
      access_token_ttl: 600,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['refresh_token'],
      before: {
        password: 'x',
        password_hash: 'x',
        nested: [{ refresh_token: 'x', 'new-password': 'x', Authorization: 'Basic x', cookie: 'x', keep: [1, { token: 'x', ok: true }] }],
      },
      jwks: { keys: [{ kty: 'RSA', kid: 'k1', n: 'n', e: 'AQAB', d: 'x', p: 'x', q: 'x', dp: 'x', dq: 'x', qi: 'x' }, { kty: 'oct', k: 'x', kid: 'k2' }] },
      key: { jwk: { kty: 'EC', d: 'x' }, kid: 'k3' },
      // Not a JWK: a `d` here is just a field.
      range: { d: 4 },
    };
    const output = redactSecrets(input);
    expect(output).toEqual({
      client_id: 'abc',
      secret_rotated_at: '2026-01-01T00:00:00.000Z',
      access_token_ttl: 600,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['refresh_token'],
      before: { nested: [{ keep: [1, { ok: true }] }] },
      jwks: { keys: [{ kty: 'RSA', kid: 'k1', n: 'n', e: 'AQAB' }, { kty: 'oct', kid: 'k2' }] },
      key: { kid: 'k3' },
      range: { d: 4 },
    });
    expect(JSON.stringify(output)).not.toMatch(/"x"/);
    // The input is left as it was.
    expect(input.client_secret).toBe('x');
    expect(input.jwks.keys[0]!.d).toBe('x');
  });

  it('survives a cycle', () => {
    const a: Record<string, unknown> = { name: 'a', password: 'x' };
    a.self = a;
    expect(redactSecrets(a)).toEqual({ name: 'a', self: '[circular]' });
  });
});

// Compile-time: the application cannot update audit rows through Kysely.
export function appendOnlyAtCompileTime(db: Kysely<Database>) {
  // @ts-expect-error audit_log columns are not updatable
  return db.updateTable('audit_log').set({ details: '{}' });
}
