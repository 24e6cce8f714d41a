import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateAuditKey, loadAuditKeyring, loadAuditKeys } from '../../../src/keys/audit-key.js';
import { KeyStoreError, loadKeys } from '../../../src/keys/key-store.js';

describe('audit keys', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'gh-audit-key-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('makes a 0600 key of 32 bytes on first use when allowed, and the same keyring after', async () => {
    const keyring = await loadAuditKeyring(dir, { generateIfMissing: true });
    const [key] = keyring.keys();
    expect(key!.secret.length).toBe(32);
    const [file] = await readdir(dir);
    expect(file).toBe(`audit-${key!.kid}.key`);
    expect((await stat(path.join(dir, file!))).mode & 0o777).toBe(0o600);
    const again = await loadAuditKeyring(dir, { generateIfMissing: true });
    expect(again.keys().map((k) => k.kid)).toEqual([key!.kid]);
    expect(again.keys()[0]!.secret.equals(key!.secret)).toBe(true);
    // The signing-key loader does not mistake it for a signing key.
    expect(await loadKeys(dir)).toEqual([]);
  });

  it('refuses a missing key when not allowed to make one, saying how to make it', async () => {
    await expect(loadAuditKeyring(dir, { generateIfMissing: false })).rejects.toThrow(KeyStoreError);
    await expect(loadAuditKeyring(dir, { generateIfMissing: false })).rejects.toThrow(/keys generate|audit rotate-key/);
  });

  it('orders keys oldest first, and a keyring reloads a key made after it was loaded', async () => {
    const keyring = await loadAuditKeyring(dir, { generateIfMissing: true });
    const first = keyring.keys()[0]!;
    const second = await generateAuditKey(dir);
    expect(keyring.keys().map((k) => k.kid)).toEqual([first.kid]);
    await keyring.reload();
    expect(keyring.keys().map((k) => k.kid)).toEqual([first.kid, second.kid]);
    expect((await loadAuditKeys(dir)).map((k) => k.kid)).toEqual([first.kid, second.kid]);
  });

  it('makes each new key the newest, also in the millisecond of the last one or after a key dated ahead', async () => {
    const made: string[] = [];
    for (let i = 0; i < 20; i += 1) made.push((await generateAuditKey(dir)).kid);
    expect((await loadAuditKeys(dir)).map((k) => k.kid)).toEqual(made);
    // Another node, its clock an hour ahead, rotated: a key made here after it is still the current one.
    const ahead = new Date(Date.now() + 3_600_000).toISOString();
    await writeFile(path.join(dir, 'audit-aheadkey0001.key'), JSON.stringify({ kid: 'aheadkey0001', created_at: ahead, key: Buffer.alloc(32, 7).toString('base64url') }));
    const after = await generateAuditKey(dir);
    expect(after.createdAt > ahead).toBe(true);
    expect((await loadAuditKeys(dir)).map((k) => k.kid).slice(-2)).toEqual(['aheadkey0001', after.kid]);
  });

  it('refuses a key file that is not one, or holds too few bytes', async () => {
    await writeFile(path.join(dir, 'audit-abcdefgh12.key'), 'not json');
    await expect(loadAuditKeys(dir)).rejects.toThrow(/not a readable audit key file/);
    await writeFile(path.join(dir, 'audit-abcdefgh12.key'), JSON.stringify({ kid: 'abcdefgh12', created_at: new Date().toISOString(), key: 'c2hvcnQ' }));
    await expect(loadAuditKeys(dir)).rejects.toThrow(/at least 32 random bytes/);
  });
});
