import { randomBytes } from 'node:crypto';
import os from 'node:os';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliJson, runCliCapture, type CliResult } from '../../fixtures/cli.js';
import { createCliEnv } from '../../fixtures/cli-env.js';
import { createTestDatabase } from '../../fixtures/database.js';
import { TEST_REDIS_URL } from '../../fixtures/env.js';
import { recordSecret } from '../../fixtures/log-capture.js';
import type { AuditJson } from '../../../src/audit/audit-log.js';

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
    expectOneLineError(await runCliCapture(['audit', 'nope'], env), 2, /tail or verify/);
    const human = await runCliCapture(['audit', 'tail', '--limit', '1'], env);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('resource.update');
  });

  it('verify says ok with the row count, then exit 1 and one line at the tampered row', async () => {
    const rows = await tail();
    expect(await cliJson(['audit', 'verify'], env)).toEqual({ ok: true, rows: rows.length });

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
