import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cliJson, runCliCapture, type CliResult } from '../../fixtures/cli.js';
import { createCliEnv } from '../../fixtures/cli-env.js';
import { createTestDatabase } from '../../fixtures/database.js';
import { TEST_REDIS_URL } from '../../fixtures/env.js';
import { recordSecret } from '../../fixtures/log-capture.js';
import { AUDIT_GENESIS_HASH, auditRowHash, auditRowMac, type AuditJson } from '../../../src/audit/audit-log.js';
import { loadAuditKeys } from '../../../src/keys/audit-key.js';

type AuditRow = AuditJson;

const ACTOR = `cli:${os.userInfo().username}`;

function expectOneLineError(result: CliResult, code: number, pattern: RegExp) {
  expect(result.code).toBe(code);
  expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(result.stderr).toMatch(pattern);
}

describe('gatehouse audit', () => {
  let env: Record<string, string>;
  let databaseUrl: string;
  let dispose: () => Promise<void>;
  const secrets: string[] = [];
  let password: string;
  let clientId: string;
  let kids: string[];

  const tail = (...args: string[]) => cliJson<AuditRow[]>(['audit', 'tail', ...args], env);

  beforeAll(async () => {
    const created = await createCliEnv('audit-cli');
    ({ env, dispose } = created);
    databaseUrl = created.database.url;

    // A run of changes, each of which the audit log must record.
    const resource = await cliJson<{ id: string }>(['resources', 'create', '--identifier', 'https://api.audit.test', '--scope', 'read write'], env);
    const client = await cliJson<{ client_id: string; client_secret: string }>(
      ['clients', 'create', '--name', 'audited', '--resource', 'https://api.audit.test', '--scope', 'read'],
      env,
    );
    clientId = client.client_id;
    secrets.push(client.client_secret);
    const rotated = await cliJson<{ client_secret: string }>(['clients', 'rotate-secret', clientId], env);
    secrets.push(rotated.client_secret);
    await cliJson(['clients', 'update', clientId, '--name', 'audited, renamed'], env);
    const generated = await cliJson<{ kid: string }>(['keys', 'generate'], env);
    const rotatedKey = await cliJson<{ kid: string }>(['keys', 'rotate'], env);
    kids = [generated.kid, rotatedKey.kid];
    password = `amber-meridian-${randomBytes(8).toString('hex')}`;
    recordSecret(password);
    secrets.push(password);
    const user = await cliJson<{ id: string }>(['users', 'create', '--email', 'audited@example.test', '--password-stdin'], env, { stdin: `${password}\n` });
    await cliJson(['users', 'disable', user.id], env);
    await cliJson(['resources', 'update', resource.id, '--name', 'Audited API'], env);
  }, 60_000);
  afterAll(() => dispose?.());

  it('records every change with the OS user as actor, oldest first', async () => {
    const rows = await tail();
    expect(rows.map((r) => r.action)).toEqual([
      'resource.create',
      'client.create',
      'client.secret_rotate',
      'client.update',
      'keys.generate',
      'keys.rotate',
      'user.create',
      'user.disable',
      'resource.update',
    ]);
    for (const row of rows) {
      expect(row.actor).toBe(ACTOR);
      expect(row.hash).toMatch(/^[0-9a-f]{64}$/);
      expect(Number.isNaN(Date.parse(row.at))).toBe(false);
    }
    expect(rows.map((r) => r.seq)).toEqual([...rows.map((r) => r.seq)].sort((a, b) => a - b));
    const byAction = Object.fromEntries(rows.map((r) => [r.action, r]));
    expect(byAction['client.create']!.target).toBe(`client:${clientId}`);
    expect(byAction['client.create']!.details).toMatchObject({ after: { client_id: clientId, client_name: 'audited', scope: 'read' } });
    expect(byAction['client.secret_rotate']!.target).toBe(`client:${clientId}`);
    expect(byAction['client.update']!.details).toMatchObject({ before: { client_name: 'audited' }, after: { client_name: 'audited, renamed' } });
    expect(byAction['keys.generate']!.target).toBe(`key:${kids[0]}`);
    expect(byAction['keys.rotate']!.details).toMatchObject({ created: { kid: kids[1], status: 'pending' }, retired: [kids[0]] });
    expect(byAction['user.disable']!.details).toMatchObject({ before: { disabled: false }, after: { disabled: true } });
    expect(byAction['resource.update']!.details).toMatchObject({ before: { name: null }, after: { name: 'Audited API' } });
  });

  it('shows no secret: no client secret, password, digest, hash or private key', async () => {
    const result = await runCliCapture(['audit', 'tail', '--json'], env);
    expect(result.code).toBe(0);
    for (const secret of secrets) expect(result.stdout).not.toContain(secret);
    expect(result.stdout).not.toMatch(/client_secret"|secret_digest|password|"d":|"jwk"/);
  });

  it('tail takes --limit and --since, and refuses bad values on one line', async () => {
    const all = await tail();
    expect((await tail('--limit', '2')).map((r) => r.seq)).toEqual(all.slice(-2).map((r) => r.seq));
    expect(await tail('--since', new Date(Date.now() + 3_600_000).toISOString())).toEqual([]);
    expect((await tail('--since', all[3]!.at)).map((r) => r.seq)).toEqual(all.filter((r) => r.at >= all[3]!.at).map((r) => r.seq));
    expectOneLineError(await runCliCapture(['audit', 'tail', '--since', 'yesterday'], env), 2, /--since/);
    expectOneLineError(await runCliCapture(['audit', 'tail', '--limit', '0'], env), 2, /--limit/);
    expectOneLineError(await runCliCapture(['audit', 'nope'], env), 2, /tail, verify, checkpoint or rotate-key/);
    const human = await runCliCapture(['audit', 'tail', '--limit', '1'], env);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('resource.update');
  });

  it('verify says ok with the row count, then exit 1 and one line at the tampered row', async () => {
    const rows = await tail();
    expect(await cliJson(['audit', 'verify'], env)).toEqual({ ok: true, rows: rows.length, legacy_rows: 0, head: { seq: rows.at(-1)!.seq, hash: rows.at(-1)!.hash } });

    const target = rows[2]!.seq;
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      await client.query(`update audit_log set details = '{"note": "nothing happened"}'::jsonb where seq = $1`, [target]);
    } finally {
      await client.end();
    }
    const result = await runCliCapture(['audit', 'verify', '--json'], env);
    expectOneLineError(result, 1, new RegExp(`audit chain broken at seq ${target}`));
    expect(JSON.parse(result.stdout)).toEqual({ ok: false, broken_at: target, reason: expect.stringMatching(/altered/) });
    const human = await runCliCapture(['audit', 'verify'], env);
    expectOneLineError(human, 1, new RegExp(`seq ${target}`));
  });

  it('upgrading production: migrate says the audit key is missing, and audit rotate-key makes it and seals the unkeyed rows', async () => {
    const database = await createTestDatabase();
    const keysDir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-upgrade-keys-'));
    try {
      const production = {
        ...env,
        NODE_ENV: 'production',
        DATABASE_URL: database.url,
        REDIS_URL: TEST_REDIS_URL,
        COOKIE_KEYS: 'audit-cli-cookie-key-0123456789abcdefghij',
        ISSUER: 'https://issuer.audit.test',
        KEYS_DIR: keysDir,
      };
      const migrated = await runCliCapture(['migrate', '--json'], production);
      expect(migrated.code).toBe(0);
      expect(JSON.parse(migrated.stdout)).toMatchObject({ status: 'migrated' });
      expectOneLineError(migrated, 0, /no audit key .*audit rotate-key/);
      // Rows as the version before the key wrote them: unkeyed SHA-256 hashes.
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      try {
        let prev = AUDIT_GENESIS_HASH;
        for (let i = 0; i < 2; i += 1) {
          const content = { at: new Date(Date.UTC(2026, 10, 30, 9, 0, i)), actor: 'cli:old', action: 'client.update', target: null, request_id: null, ip: null, details: { i } };
          const hash = auditRowHash(prev, content);
          await client.query(`insert into audit_log (at, actor, action, details, prev_hash, hash) values ($1, $2, $3, $4::jsonb, $5, $6)`, [
            content.at,
            content.actor,
            content.action,
            JSON.stringify(content.details),
            prev,
            hash,
          ]);
          prev = hash;
        }
      } finally {
        await client.end();
      }
      expectOneLineError(await runCliCapture(['audit', 'verify'], production), 1, /no audit key/);
      const rotated = await cliJson<{ kid: string }>(['audit', 'rotate-key'], production);
      expect(await cliJson(['audit', 'verify'], production)).toMatchObject({ ok: true, rows: 3, legacy_rows: 2 });
      const rows = await cliJson<AuditRow[]>(['audit', 'tail'], production);
      expect(rows.map((r) => r.kid)).toEqual([null, null, rotated.kid]);
    } finally {
      await database.drop();
      await rm(keysDir, { recursive: true, force: true });
    }
  });

  it('a key made before the first migrate is said on stderr, not refused', async () => {
    const database = await createTestDatabase();
    try {
      const production = {
        ...env,
        NODE_ENV: 'production',
        DATABASE_URL: database.url,
        REDIS_URL: TEST_REDIS_URL,
        COOKIE_KEYS: 'audit-cli-cookie-key-0123456789abcdefghij',
        ISSUER: 'https://issuer.audit.test',
      };
      const result = await runCliCapture(['keys', 'generate', '--json'], production);
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({ status: 'active' });
      expectOneLineError(result, 0, /keys\.generate was not recorded in the audit log.*gatehouse migrate/);
    } finally {
      await database.drop();
    }
  });
});

/** Stored rows as an attacker with SQL access reads them, oldest first. */
interface SqlRow {
  seq: string;
  at: Date;
  actor: string;
  action: string;
  target: string | null;
  request_id: string | null;
  ip: string | null;
  details: Record<string, unknown>;
  prev_hash: string;
  hash: string;
  kid: string | null;
}

const contentOf = (row: SqlRow) => ({ at: row.at, actor: row.actor, action: row.action, target: row.target, request_id: row.request_id, ip: row.ip, details: row.details });

describe('gatehouse audit: a keyed chain and checkpoints against someone who can write to the database', () => {
  let env: Record<string, string>;
  let databaseUrl: string;
  let dispose: () => Promise<void>;
  let dir: string;

  const sqlClient = async <T>(run: (client: pg.Client) => Promise<T>): Promise<T> => {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      return await run(client);
    } finally {
      await client.end();
    }
  };
  const rowsNow = () => sqlClient(async (client) => (await client.query<SqlRow>('select * from audit_log order by seq')).rows);
  /** Rewrites rows from `fromSeq` on (the row at `fromSeq` gets another actor), each hash recomputed with `hashOf`. */
  const rewrite = (fromSeq: number, hashOf: (prevHash: string, row: SqlRow) => string) =>
    sqlClient(async (client) => {
      let prev = AUDIT_GENESIS_HASH;
      for (const row of (await client.query<SqlRow>('select * from audit_log order by seq')).rows) {
        if (Number(row.seq) < fromSeq) {
          prev = row.hash;
          continue;
        }
        const changed = Number(row.seq) === fromSeq ? { ...row, actor: 'cli:someone-else' } : row;
        const hash = hashOf(prev, changed);
        await client.query('update audit_log set actor = $1, prev_hash = $2, hash = $3 where seq = $4', [changed.actor, prev, hash, row.seq]);
        prev = hash;
      }
    });
  const verify = async (...args: string[]) => {
    const result = await runCliCapture(['audit', 'verify', ...args, '--json'], env);
    return { code: result.code, stderr: result.stderr, body: JSON.parse(result.stdout) as Record<string, unknown> };
  };

  beforeEach(async () => {
    const created = await createCliEnv('audit-keyed');
    ({ env, dispose } = created);
    databaseUrl = created.database.url;
    dir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-checkpoints-'));
    await cliJson(['resources', 'create', '--identifier', 'https://api.keyed.test', '--scope', 'read write'], env);
    for (const name of ['one', 'two', 'three']) {
      await cliJson(['clients', 'create', '--name', name, '--resource', 'https://api.keyed.test', '--scope', 'read'], env);
    }
  }, 60_000);
  afterEach(async () => {
    await dispose?.();
    await rm(dir, { recursive: true, force: true });
  });

  it('rows are HMACs with the audit key of KEYS_DIR, which each row names', async () => {
    const [key] = await loadAuditKeys(env.KEYS_DIR!);
    const rows = await rowsNow();
    expect(rows).toHaveLength(4);
    for (const row of rows) {
      expect(row.kid).toBe(key!.kid);
      expect(row.hash).toBe(auditRowMac(key!, row.prev_hash, contentOf(row)));
    }
    const tail = await cliJson<AuditRow[]>(['audit', 'tail'], env);
    expect(tail.map((r) => r.kid)).toEqual(rows.map(() => key!.kid));
  });

  it('a row rewritten with every hash after it recomputed, as the unkeyed chain allowed, is reported broken', async () => {
    const target = Number((await rowsNow())[1]!.seq);
    await rewrite(target, (prev, row) => auditRowHash(prev, contentOf(row)));
    const result = await verify();
    expect(result.code).toBe(1);
    expect(result.body).toEqual({ ok: false, broken_at: target, reason: expect.stringMatching(/altered/) });
    expect(result.stderr).toMatch(new RegExp(`audit chain broken at seq ${target}`));
  });

  it('a forged row appended with a plausible hash is reported broken', async () => {
    const head = (await rowsNow()).at(-1)!;
    const at = new Date(head.at.getTime() + 1000);
    const content = { at, actor: `cli:${os.userInfo().username}`, action: 'client.delete', target: 'client:x', request_id: null, ip: null, details: {} };
    const forged = await sqlClient(async (client) => {
      const inserted = await client.query<{ seq: string }>(
        `insert into audit_log (at, actor, action, target, details, prev_hash, hash, kid) values ($1, $2, 'client.delete', 'client:x', '{}'::jsonb, $3, $4, $5) returning seq`,
        [at, content.actor, head.hash, auditRowHash(head.hash, content), head.kid],
      );
      return Number(inserted.rows[0]!.seq);
    });
    const result = await verify();
    expect(result.code).toBe(1);
    expect(result.body).toMatchObject({ ok: false, broken_at: forged });
  });

  it('checkpoint --json signs the head; verify --checkpoint reports the newest rows deleted as truncation', async () => {
    const rows = await rowsNow();
    const checkpoint = await cliJson<{ seq: number; hash: string; at: string; kid: string; checkpoint: string }>(['audit', 'checkpoint'], env);
    expect(checkpoint).toMatchObject({ seq: Number(rows.at(-1)!.seq), hash: rows.at(-1)!.hash, at: rows.at(-1)!.at.toISOString(), kid: rows.at(-1)!.kid });
    expect(checkpoint.checkpoint).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    const file = path.join(dir, 'checkpoint.json');
    await writeFile(file, JSON.stringify(checkpoint));
    // The JWS alone is a checkpoint file too.
    const jwsFile = path.join(dir, 'checkpoint.jws');
    await writeFile(jwsFile, `${checkpoint.checkpoint}\n`);
    await cliJson(['clients', 'create', '--name', 'after the checkpoint'], env);
    expect((await verify('--checkpoint', file)).body).toMatchObject({ ok: true, rows: 5, checkpoint: { seq: checkpoint.seq, hash: checkpoint.hash } });
    const human = await runCliCapture(['audit', 'verify', '--checkpoint', jwsFile], env);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(`holds the checkpoint at seq ${checkpoint.seq}`);

    await sqlClient((client) => client.query('delete from audit_log where seq >= $1', [Number(rows.at(-2)!.seq)]));
    // The chain alone cannot tell…
    expect(await verify()).toMatchObject({ code: 0, body: { ok: true, rows: 2 } });
    // …the checkpoint can.
    const result = await verify('--checkpoint', file);
    expect(result.code).toBe(1);
    expect(result.body).toEqual({ ok: false, truncated: true, broken_at: checkpoint.seq, reason: expect.stringMatching(/truncated/) });
    expect(result.stderr).toMatch(/truncated/);
  });

  it('verify --checkpoint detects a row before the checkpoint rewritten, even by someone holding the audit key', async () => {
    const file = path.join(dir, 'checkpoint.json');
    await writeFile(file, (await runCliCapture(['audit', 'checkpoint', '--json'], env)).stdout);
    const [key] = await loadAuditKeys(env.KEYS_DIR!);
    const target = Number((await rowsNow())[1]!.seq);
    await rewrite(target, (prev, row) => auditRowMac(key!, prev, contentOf(row)));
    expect((await verify()).body).toMatchObject({ ok: true });
    const result = await verify('--checkpoint', file);
    expect(result.code).toBe(1);
    expect(result.body).toMatchObject({ ok: false, reason: expect.stringMatching(/rewritten/) });
  });

  it('verify --checkpoint refuses a checkpoint whose content was changed, and checkpoint refuses to sign a broken chain', async () => {
    const checkpoint = JSON.parse((await runCliCapture(['audit', 'checkpoint', '--json'], env)).stdout) as { checkpoint: string };
    const [header, , signature] = checkpoint.checkpoint.split('.');
    const payload = Buffer.from(JSON.stringify({ seq: 2, hash: 'f'.repeat(64), at: null, iss: 'x', iat: 1 })).toString('base64url');
    const file = path.join(dir, 'altered.jws');
    await writeFile(file, `${header}.${payload}.${signature}`);
    const altered = await verify('--checkpoint', file);
    expect(altered.code).toBe(1);
    expect(altered.body).toMatchObject({ ok: false, reason: expect.stringMatching(/signature does not verify/) });
    expectOneLineError(await runCliCapture(['audit', 'verify', '--checkpoint', path.join(dir, 'missing.json')], env), 2, /--checkpoint: cannot read/);

    await rewrite(Number((await rowsNow())[1]!.seq), (prev, row) => auditRowHash(prev, contentOf(row)));
    const refused = await runCliCapture(['audit', 'checkpoint', '--json'], env);
    expectOneLineError(refused, 1, /audit chain broken.*no checkpoint is signed/);
    expect(JSON.parse(refused.stdout)).toMatchObject({ ok: false });
  });

  it('audit rotate-key: rows under the old and the new key verify, and against a checkpoint from before', async () => {
    const file = path.join(dir, 'checkpoint.json');
    await writeFile(file, (await runCliCapture(['audit', 'checkpoint', '--json'], env)).stdout);
    const [oldKey] = await loadAuditKeys(env.KEYS_DIR!);
    const rotated = await cliJson<{ kid: string }>(['audit', 'rotate-key'], env);
    expect(rotated.kid).not.toBe(oldKey!.kid);
    await cliJson(['clients', 'create', '--name', 'under the new key'], env);
    const rows = await rowsNow();
    expect(rows.map((r) => r.kid)).toEqual([oldKey!.kid, oldKey!.kid, oldKey!.kid, oldKey!.kid, rotated.kid, rotated.kid]);
    expect(rows.at(-2)).toMatchObject({ action: 'audit.key_rotate', target: `audit-key:${rotated.kid}` });
    expect(await verify('--checkpoint', file)).toMatchObject({ code: 0, body: { ok: true, rows: 6, legacy_rows: 0 } });
    const keyFiles = await loadAuditKeys(env.KEYS_DIR!);
    expect(keyFiles.map((k) => k.kid)).toEqual([oldKey!.kid, rotated.kid]);
    // Each key file is private to its owner.
    const keyFile = path.join(env.KEYS_DIR!, `audit-${rotated.kid}.key`);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(keyFile, 'utf8'))).toMatchObject({ kid: rotated.kid });
  });
});
