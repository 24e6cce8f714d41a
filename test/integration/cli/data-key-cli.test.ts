import { readdir, readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliJson, expectJsonResult, runCliCapture } from '../../fixtures/cli.js';
import { createCliEnv } from '../../fixtures/cli-env.js';
import type { AuditJson } from '../../../src/audit/audit-log.js';
import { loadDataKeyring, loadDataKeys } from '../../../src/keys/data-key.js';
import { sealSecret, unsealSecret } from '../../../src/services/sealed-secrets.js';

type Rotated = { kid: string; created_at: string; older_keys: string[]; keys_dir: string };

describe('gatehouse keys rotate-data-key', () => {
  let env: Record<string, string>;
  let dispose: () => Promise<void>;
  let keysDir: string;

  beforeAll(async () => {
    ({ env, dispose } = await createCliEnv('data-key-cli'));
    keysDir = env.KEYS_DIR!;
  });
  afterAll(() => dispose?.());

  it('makes a 0600 data key, the newest, keeps the older ones, prints one JSON document, and audits each rotation', async () => {
    const first = expectJsonResult<Rotated>(await runCliCapture(['keys', 'rotate-data-key', '--json'], env), 'keys rotate-data-key');
    expect(first).toEqual({ kid: expect.stringMatching(/^[A-Za-z0-9_-]{16}$/), created_at: expect.any(String), older_keys: [], keys_dir: keysDir });
    const file = path.join(keysDir, `data-${first.kid}.key`);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const keyMaterial = (JSON.parse(await readFile(file, 'utf8')) as { key: string }).key;

    // A secret sealed under the first key; then a second rotation.
    const sealed = await sealSecret(await loadDataKeyring(keysDir, { generateIfMissing: false }), 'JBSWY3DPEHPK3PXP', 'totp:someone');
    const second = await cliJson<Rotated>(['keys', 'rotate-data-key'], env);
    expect(second.older_keys).toEqual([first.kid]);
    expect((await loadDataKeys(keysDir)).map((k) => k.kid)).toEqual([first.kid, second.kid]);
    const ring = await loadDataKeyring(keysDir, { generateIfMissing: false });
    expect(await unsealSecret(ring, sealed.jwe, 'totp:someone')).toBe('JBSWY3DPEHPK3PXP');
    expect((await sealSecret(ring, 'x', 'totp:someone')).kid).toBe(second.kid);

    const tail = await runCliCapture(['audit', 'tail', '--json'], env);
    const rows = (JSON.parse(tail.stdout) as AuditJson[]).filter((row) => row.action === 'keys.data_key_rotate');
    expect(rows.map((row) => [row.actor, row.target])).toEqual([
      [`cli:${os.userInfo().username}`, `data-key:${first.kid}`],
      [`cli:${os.userInfo().username}`, `data-key:${second.kid}`],
    ]);
    expect(rows[1]!.details).toEqual({ created: { kid: second.kid, created_at: second.created_at }, older: [first.kid] });
    expect(tail.stdout).not.toContain(keyMaterial);
  });

  it('prints key: value lines without --json', async () => {
    const result = await runCliCapture(['keys', 'rotate-data-key'], env);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^kid\s+\S+$/m);
    expect(result.stdout).toMatch(/^older_keys\s+\S+ \S+$/m);
  });

  it('keys generate makes a data key when there is none, and leaves existing ones alone', async () => {
    const fresh = await createCliEnv('data-key-generate');
    try {
      await cliJson(['keys', 'generate'], fresh.env);
      const made = (await readdir(fresh.env.KEYS_DIR!)).filter((name) => name.startsWith('data-'));
      expect(made).toHaveLength(1);
      await cliJson(['keys', 'generate'], fresh.env);
      expect((await readdir(fresh.env.KEYS_DIR!)).filter((name) => name.startsWith('data-'))).toEqual(made);
    } finally {
      await fresh.dispose();
    }
  });
});
