import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  AUDIT_GENESIS_HASH,
  appendAudit,
  createAuditSink,
  redactSecrets,
  tailAudit,
  verifyAuditChain,
  type AuditEntry,
  type AuditRecord,
} from '../../../src/audit/audit-log.js';
import { loadConfig } from '../../../src/config/load-config.js';
import { createLogger } from '../../../src/observability/logger.js';
import { openCliDatabase, openServerDatabase, type RegistryDatabase } from '../../../src/registry/database.js';
import { migrateToLatest } from '../../../src/registry/migrate.js';
import type { Database } from '../../../src/registry/tables.js';
import { createTestDatabase } from '../../fixtures/database.js';

const logger = createLogger({ logLevel: 'silent' });
const ISSUER = 'https://issuer.example.test';

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
    expect(await verifyAuditChain(db)).toEqual({ ok: true, rows: 0 });
  });

  it('chains N appends from the genesis hash, and the chain verifies', async () => {
    const appended: AuditRecord[] = [];
    for (let i = 0; i < 12; i += 1) appended.push(await appendAudit(db, entry(i)));
    expect(appended[0]!.prevHash).toBe(AUDIT_GENESIS_HASH);
    for (let i = 1; i < appended.length; i += 1) {
      expect(appended[i]!.prevHash).toBe(appended[i - 1]!.hash);
      expect(appended[i]!.seq).toBeGreaterThan(appended[i - 1]!.seq);
      expect(appended[i]!.at.getTime()).toBeGreaterThanOrEqual(appended[i - 1]!.at.getTime());
    }
    expect(appended[3]).toMatchObject({ actor: 'cli:tester', action: 'client.update', target: 'client:c3', requestId: 'req-3', ip: '127.0.0.1' });
    expect(appended[3]!.details).toEqual(entry(3).details);
    expect(appended[0]!.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(await verifyAuditChain(db)).toEqual({ ok: true, rows: 12 });
  });

  it('stores what it hashed: nulls for what was left out, no undefined, dates as text', async () => {
    const at = new Date('2026-01-02T03:04:05.678Z');
    const record = await appendAudit(db, { actor: 'system', action: 'keys.rotate', details: { when: at, gone: undefined, list: [1, undefined] } });
    expect(record).toMatchObject({ target: null, requestId: null, ip: null });
    expect(record.details).toEqual({ when: at.toISOString(), list: [1, null] });
    expect(await verifyAuditChain(db)).toEqual({ ok: true, rows: 1 });
  });

  it('20 concurrent appends on one pool do not fork the chain', async () => {
    await appendAudit(db, entry(0));
    await Promise.all(Array.from({ length: 20 }, (_, i) => appendAudit(db, entry(i + 1))));
    const rows = await allRows();
    expect(rows).toHaveLength(21);
    expect(new Set(rows.map((r) => r.prev_hash)).size).toBe(21);
    expect(await verifyAuditChain(db)).toEqual({ ok: true, rows: 21 });
  });

  const twoConnections = engine.separateConnections ? it : undefined;
  twoConnections?.('20 concurrent appends from two separate connections do not fork the chain', async () => {
    const other = opened.second!.db;
    await Promise.all(Array.from({ length: 20 }, (_, i) => appendAudit(i % 2 === 0 ? db : other, entry(i))));
    const rows = await allRows();
    expect(rows).toHaveLength(20);
    expect(new Set(rows.map((r) => r.prev_hash)).size).toBe(20);
    expect(await verifyAuditChain(other)).toEqual({ ok: true, rows: 20 });
  });

  it('a database constraint refuses a second row on the same predecessor (a fork)', async () => {
    const first = await appendAudit(db, entry(0));
    await appendAudit(db, entry(1));
    await expect(
      sql`insert into audit_log (actor, action, details, prev_hash, hash) values ('x', 'y', '{}'::jsonb, ${first.hash}, 'h')`.execute(db),
    ).rejects.toMatchObject({ code: '23505' });
  });

  it('appends inside a caller transaction, committed or rolled back with it', async () => {
    await db.transaction().execute(async (trx) => {
      await appendAudit(trx, entry(1));
    });
    await db
      .transaction()
      .execute(async (trx) => {
        await appendAudit(trx, entry(2));
        throw new Error('roll back');
      })
      .catch(() => undefined);
    const rows = await allRows();
    expect(rows.map((r) => r.target)).toEqual(['client:c1']);
    await appendAudit(db, entry(3));
    expect(await verifyAuditChain(db)).toEqual({ ok: true, rows: 2 });
  });

  it('reports exactly the row whose details were tampered with', async () => {
    const appended: AuditRecord[] = [];
    for (let i = 0; i < 6; i += 1) appended.push(await appendAudit(db, entry(i)));
    const target = appended[3]!.seq;
    await sql`update audit_log set details = ${JSON.stringify({ before: { n: 999 } })}::jsonb where seq = ${target}`.execute(db);
    const result = await verifyAuditChain(db);
    expect(result).toMatchObject({ ok: false, brokenAt: target });
    expect(result.ok === false && result.reason).toMatch(/altered/);
  });

  it('reports a tampered actor or time, and a rewritten hash at the row after it', async () => {
    const appended: AuditRecord[] = [];
    for (let i = 0; i < 4; i += 1) appended.push(await appendAudit(db, entry(i)));
    await sql`update audit_log set at = at + interval '1 second' where seq = ${appended[1]!.seq}`.execute(db);
    expect(await verifyAuditChain(db)).toMatchObject({ ok: false, brokenAt: appended[1]!.seq });
    await sql`update audit_log set at = at - interval '1 second' where seq = ${appended[1]!.seq}`.execute(db);
    expect(await verifyAuditChain(db)).toEqual({ ok: true, rows: 4 });
    // Whoever rewrites a row and its hash still breaks the next row's link.
    await sql`update audit_log set actor = 'cli:someone-else', hash = ${'f'.repeat(64)} where seq = ${appended[2]!.seq}`.execute(db);
    const result = await verifyAuditChain(db);
    expect(result).toMatchObject({ ok: false, brokenAt: appended[2]!.seq });
  });

  it('reports a deleted middle row at the row after it', async () => {
    const appended: AuditRecord[] = [];
    for (let i = 0; i < 6; i += 1) appended.push(await appendAudit(db, entry(i)));
    await sql`delete from audit_log where seq = ${appended[2]!.seq}`.execute(db);
    const result = await verifyAuditChain(db);
    expect(result).toMatchObject({ ok: false, brokenAt: appended[3]!.seq });
    expect(result.ok === false && result.reason).toMatch(/removed/);
  });

  it('reports a deleted first row', async () => {
    const appended: AuditRecord[] = [];
    for (let i = 0; i < 3; i += 1) appended.push(await appendAudit(db, entry(i)));
    await sql`delete from audit_log where seq = ${appended[0]!.seq}`.execute(db);
    expect(await verifyAuditChain(db)).toMatchObject({ ok: false, brokenAt: appended[1]!.seq });
  });

  it('verifies past one batch of rows', async () => {
    await db.transaction().execute(async (trx) => {
      for (let i = 0; i < 1003; i += 1) await appendAudit(trx, { actor: 'system', action: 'test.bulk', details: { i } });
    });
    expect(await verifyAuditChain(db)).toEqual({ ok: true, rows: 1003 });
  }, 60_000);

  it('never stores secrets, at any depth', async () => {
    await appendAudit(db, {
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
    for (let i = 0; i < 5; i += 1) appended.push(await appendAudit(db, entry(i)));
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
    await createAuditSink(db, logger).record(entry(1, { action: 'signin.success' }));
    expect((await allRows()).map((r) => r.action)).toEqual(['signin.success']);

    const errors: string[] = [];
    const capture = createLogger({ logLevel: 'error' }, { write: (line: string) => errors.push(line) });
    const broken = {
      isTransaction: false,
      transaction: () => ({ execute: () => Promise.reject(new Error('database is down')) }),
    } as unknown as Kysely<Database>;
    await expect(createAuditSink(broken, capture).record(entry(2))).resolves.toBeUndefined();
    expect(errors.join('')).toMatch(/audit record could not be written/);
    expect(errors.join('')).toMatch(/database is down/);
  });
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
