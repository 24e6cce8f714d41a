import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadAuditKeys } from '../../../src/keys/audit-key.js';
import { generateDataKey, loadDataKeyring, loadDataKeys } from '../../../src/keys/data-key.js';
import { KeyStoreError, loadKeys } from '../../../src/keys/key-store.js';

describe('data keys', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'gh-data-key-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('makes a 0600 data-<kid>.key of 32 bytes on first use when allowed, and the same keyring after', async () => {
    const keyring = await loadDataKeyring(dir, { generateIfMissing: true });
    const [key] = keyring.keys();
    expect(key!.secret.length).toBe(32);
    const [file] = await readdir(dir);
    expect(file).toBe(`data-${key!.kid}.key`);
    expect((await stat(path.join(dir, file!))).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(path.join(dir, file!), 'utf8'))).toEqual({ kid: key!.kid, created_at: key!.createdAt, key: key!.secret.toString('base64url') });
    const again = await loadDataKeyring(dir, { generateIfMissing: true });
    expect(again.keys().map((k) => k.kid)).toEqual([key!.kid]);
    expect(again.byKid(key!.kid)!.secret.equals(key!.secret)).toBe(true);
    // Neither the signing-key loader nor the audit-key loader mistakes it for one of theirs.
    expect(await loadKeys(dir)).toEqual([]);
    expect(await loadAuditKeys(dir)).toEqual([]);
  });

  it('refuses a missing key when not allowed to make one (production), saying how to make it, and writes nothing', async () => {
    await expect(loadDataKeyring(dir, { generateIfMissing: false })).rejects.toThrow(KeyStoreError);
    await expect(loadDataKeyring(dir, { generateIfMissing: false })).rejects.toThrow(/no data key \(data-\*\.key\) in .*keys rotate-data-key/);
    expect(await readdir(dir)).toEqual([]);
  });

  it('makes each new key the newest, keeps the old ones, and a keyring reloads a key made after it was loaded', async () => {
    const keyring = await loadDataKeyring(dir, { generateIfMissing: true });
    const first = keyring.keys()[0]!;
    const made = [first.kid];
    for (let i = 0; i < 10; i += 1) made.push((await generateDataKey(dir)).kid);
    expect((await loadDataKeys(dir)).map((k) => k.kid)).toEqual(made);
    expect(keyring.keys().map((k) => k.kid)).toEqual([first.kid]);
    expect(keyring.byKid(made[1]!)).toBeUndefined();
    await keyring.reload();
    expect(keyring.keys().map((k) => k.kid)).toEqual(made);
    expect(keyring.byKid(made[1]!)?.kid).toBe(made[1]);
    for (const name of await readdir(dir)) expect((await stat(path.join(dir, name))).mode & 0o777).toBe(0o600);
  });

  it('refuses a key file that is not one, or holds too few bytes', async () => {
    await writeFile(path.join(dir, 'data-abcdefgh12.key'), 'not json');
    await expect(loadDataKeys(dir)).rejects.toThrow(/not a readable data key file/);
    await writeFile(path.join(dir, 'data-abcdefgh12.key'), JSON.stringify({ kid: 'other-kid-1', created_at: new Date().toISOString(), key: Buffer.alloc(32).toString('base64url') }));
    await expect(loadDataKeys(dir)).rejects.toThrow(/not a Gatehouse data key file/);
    await writeFile(path.join(dir, 'data-abcdefgh12.key'), JSON.stringify({ kid: 'abcdefgh12', created_at: new Date().toISOString(), key: 'c2hvcnQ' }));
    await expect(loadDataKeys(dir)).rejects.toThrow(/at least 32 random bytes/);
  });
});
