import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  fapi2SigningAlg,
  generateKey,
  generateProfileKey,
  KeyStoreError,
  loadDigestKey,
  loadKeys,
  loadSigningJwks,
  loadSigningKeys,
  summarize,
  DEFAULT_ACTIVATION_DELAY_MS,
  keyState,
  nextKeyChange,
  RETIRED_KEY_RETENTION_MS,
  rotateKeys,
  type StoredKey,
} from '../../../src/keys/key-store.js';

// A disk that can be made slow to write, to open the window in which a second process looks at a
// file the first one is still writing. Pass-through unless a test sets writeDelayMs.
const disk = vi.hoisted(() => ({ writeDelayMs: 0 }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  const pause = () => (disk.writeDelayMs > 0 ? new Promise((resolve) => setTimeout(resolve, disk.writeDelayMs)) : Promise.resolve());
  const slow =
    <A extends unknown[], R>(write: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      await pause();
      return write(...args);
    };
  const open: typeof actual.open = async (...args) => {
    const handle = await actual.open(...args);
    handle.writeFile = slow(handle.writeFile.bind(handle));
    handle.appendFile = slow(handle.appendFile.bind(handle));
    return handle;
  };
  const mocked = { ...actual, open, writeFile: slow(actual.writeFile), appendFile: slow(actual.appendFile) };
  return { ...mocked, default: mocked };
});

const mode = async (file: string) => (await stat(file)).mode & 0o777;

describe('key store', () => {
  let dir: string;

  beforeEach(async () => {
    dir = path.join(await mkdtemp(path.join(os.tmpdir(), 'gatehouse-keys-')), 'keys');
  });
  afterEach(async () => {
    await rm(path.dirname(dir), { recursive: true, force: true });
  });

  it('generateKey writes <kid>.json, readable by the owner only, holding the private RS256 key', async () => {
    const key = await generateKey(dir);
    const file = path.join(dir, `${key.kid}.json`);
    expect(await readdir(dir)).toEqual([`${key.kid}.json`]);
    expect(await mode(file)).toBe(0o600);
    expect(await mode(dir)).toBe(0o700);
    const stored = JSON.parse(await readFile(file, 'utf8')) as StoredKey;
    expect(stored.kid).toBe(key.kid);
    expect(stored.alg).toBe('RS256');
    expect(stored.retiredAt).toBeNull();
    expect(stored.jwk).toMatchObject({ kty: 'RSA', kid: key.kid, alg: 'RS256', use: 'sig' });
    expect(typeof stored.jwk.d).toBe('string');
    // No temp files are left behind.
    expect((await readdir(dir)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  it('generates ES256 keys', async () => {
    const key = await generateKey(dir, 'ES256');
    expect(key.alg).toBe('ES256');
    expect(key.jwk).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', kid: key.kid });
    const [jwk] = await loadSigningJwks(dir, { generateIfMissing: false });
    expect(jwk?.kid).toBe(key.kid);
    expect(await mode(path.join(dir, `${key.kid}.json`))).toBe(0o600);
  });

  it('loadSigningJwks puts the newest active key first', async () => {
    const older = await generateKey(dir);
    await sleep(5);
    const newer = await generateKey(dir, 'ES256');
    const jwks = await loadSigningJwks(dir, { generateIfMissing: false });
    expect(jwks.map((jwk) => jwk.kid)).toEqual([newer.kid, older.kid]);
  });

  it('loadSigningJwks makes an RS256 signing key and an ES256 profile key when asked to and none exist', async () => {
    const jwks = await loadSigningJwks(dir, { generateIfMissing: true });
    expect(jwks.map((jwk) => jwk.alg)).toEqual(['RS256', 'ES256']);
    expect((await readdir(dir)).sort()).toEqual(jwks.map((jwk) => `${jwk.kid}.json`).sort());
    expect((await loadKeys(dir)).map((key) => key.profile)).toEqual([undefined, 'fapi2']);
    // The second call reuses them.
    expect((await loadSigningJwks(dir, { generateIfMissing: true })).map((jwk) => jwk.kid)).toEqual(jwks.map((jwk) => jwk.kid));
  });

  it('loadSigningKeys makes no profile key without generateIfMissing, nor when the signing key is PS256 or ES256; it names the algorithm fapi2 clients get', async () => {
    await generateKey(dir);
    expect(await loadSigningKeys(dir, { generateIfMissing: false })).toMatchObject({ fapi2Alg: undefined });
    expect(await readdir(dir)).toHaveLength(1);

    const other = path.join(path.dirname(dir), 'other');
    const es = await generateKey(other, 'PS256');
    const loaded = await loadSigningKeys(other, { generateIfMissing: true });
    expect(loaded.jwks.map((jwk) => jwk.kid)).toEqual([es.kid]);
    expect(loaded.fapi2Alg).toBe('PS256');
  });

  it('a profile key never becomes the signing key, however new: the server key stays first, the profile key signs for fapi2', async () => {
    const server = await generateKey(dir);
    await sleep(5);
    const profile = await generateProfileKey(dir);
    expect(profile).toMatchObject({ alg: 'ES256', profile: 'fapi2' });
    const loaded = await loadSigningKeys(dir, { generateIfMissing: false });
    expect(loaded.jwks.map((jwk) => jwk.kid)).toEqual([server.kid, profile.kid]);
    expect(loaded.fapi2Alg).toBe('ES256');
    expect(summarize(profile)).toMatchObject({ kid: profile.kid, profile: 'fapi2', status: 'active' });
    expect(summarize(server)).not.toHaveProperty('profile');
    await expect(generateProfileKey(dir, 'RS256' as never)).rejects.toThrow(KeyStoreError);
  });

  it('a key file marked profile fapi2 in an algorithm the profile forbids is not a key file', async () => {
    const key = await generateKey(dir);
    await writeFile(path.join(dir, `${key.kid}.json`), JSON.stringify({ ...key, profile: 'fapi2' }));
    await expect(loadKeys(dir)).rejects.toThrow(KeyStoreError);
  });

  it('rotateKeys rotates the profile key with the signing key, on the same schedule, in its own algorithm', async () => {
    const server = await generateKey(dir);
    const profile = await generateProfileKey(dir, 'PS256');
    const { created, retired, profile: rotated } = await rotateKeys(dir);
    expect(created.alg).toBe('RS256');
    expect(retired).toEqual([server.kid]);
    expect(rotated?.created).toMatchObject({ alg: 'PS256', profile: 'fapi2', activatesAt: created.activatesAt });
    expect(rotated?.retired).toEqual([profile.kid]);
    const keys = await loadKeys(dir);
    expect(keys.map((key) => [key.kid, keyState(key)])).toEqual([
      [server.kid, 'active'],
      [profile.kid, 'active'],
      [created.kid, 'pending'],
      [rotated?.created.kid, 'pending'],
    ]);
    const at = Date.parse(created.activatesAt!);
    expect(fapi2SigningAlg(keys, at)).toBe('PS256');
    expect(keys.filter((key) => keyState(key, at) === 'active').map((key) => key.kid).sort()).toEqual([created.kid, rotated?.created.kid].sort());
  });

  it('rotateKeys from an ES256 signing key to RS256 makes a profile key to go on signing for fapi2; without one and from RS256, none', async () => {
    await generateKey(dir, 'ES256');
    const { profile } = await rotateKeys(dir, 'RS256', { activateInMs: 0 });
    expect(profile?.created).toMatchObject({ alg: 'ES256', profile: 'fapi2' });
    expect(fapi2SigningAlg(await loadKeys(dir))).toBe('ES256');

    const other = path.join(path.dirname(dir), 'plain');
    await generateKey(other);
    expect((await rotateKeys(other)).profile).toBeUndefined();
  });

  it('loadSigningJwks without generateIfMissing on an empty directory says to run keys generate', async () => {
    await expect(loadSigningJwks(dir, { generateIfMissing: false })).rejects.toThrow(KeyStoreError);
    await expect(loadSigningJwks(dir, { generateIfMissing: false })).rejects.toThrow(/run "npx gatehouse keys generate"/);
  });

  it('rotateKeys publishes the new key at once but lets the current one sign until the activation time', async () => {
    const first = await generateKey(dir);
    await sleep(5);
    const before = Date.now();
    const { created, retired } = await rotateKeys(dir);
    expect(retired).toEqual([first.kid]);
    const activatesAt = Date.parse(created.activatesAt!);
    expect(activatesAt - before).toBeGreaterThanOrEqual(DEFAULT_ACTIVATION_DELAY_MS);
    expect(activatesAt - before).toBeLessThan(DEFAULT_ACTIVATION_DELAY_MS + 60_000);

    const keys = await loadKeys(dir);
    expect(keys.map((key) => [key.kid, keyState(key)])).toEqual([
      [first.kid, 'active'],
      [created.kid, 'pending'],
    ]);
    // The current key retires when the new one activates; both change state then, nothing before.
    expect(keys[0]?.retiredAt).toBe(created.activatesAt);
    expect(nextKeyChange(keys)).toBe(activatesAt);
    expect(keys.map((key) => keyState(key, activatesAt))).toEqual(['retired', 'active']);
    expect((await loadSigningJwks(dir, { generateIfMissing: false })).map((jwk) => jwk.kid)).toEqual([first.kid, created.kid]);
  });

  it('rotateKeys with no delay makes the new key sign at once and keeps the previous one, retired, behind it', async () => {
    const first = await generateKey(dir);
    await sleep(5);
    const { created, retired, removed } = await rotateKeys(dir, undefined, { activateInMs: 0 });
    expect(created.kid).not.toBe(first.kid);
    expect(created.alg).toBe('RS256');
    expect(retired).toEqual([first.kid]);
    expect(removed).toEqual([]);

    const keys = await loadKeys(dir);
    expect(keys.map((key) => key.kid)).toEqual([created.kid, first.kid]);
    expect(keys[0]?.retiredAt).toBeNull();
    expect(keys.map((key) => keyState(key))).toEqual(['active', 'retired']);
    expect(typeof keys[1]?.retiredAt).toBe('string');
    expect(Date.now() - Date.parse(keys[1]!.retiredAt!)).toBeLessThan(60_000);

    const jwks = await loadSigningJwks(dir, { generateIfMissing: false });
    expect(jwks.map((jwk) => jwk.kid)).toEqual([created.kid, first.kid]);
    expect(await mode(path.join(dir, `${first.kid}.json`))).toBe(0o600);
    expect(await mode(path.join(dir, `${created.kid}.json`))).toBe(0o600);
  });

  it('rotateKeys keeps the algorithm of the active key unless told otherwise', async () => {
    await generateKey(dir, 'ES256');
    expect((await rotateKeys(dir)).created.alg).toBe('ES256');
    expect((await rotateKeys(dir, 'PS256')).created.alg).toBe('PS256');
  });

  it('rotateKeys removes keys retired more than RETIRED_KEY_RETENTION_MS ago, and only those', async () => {
    const stale = await generateKey(dir);
    const recent = await generateKey(dir);
    const longAgo = new Date(Date.now() - RETIRED_KEY_RETENTION_MS - 60_000).toISOString();
    const lately = new Date(Date.now() - RETIRED_KEY_RETENTION_MS + 60 * 60_000).toISOString();
    await writeFile(path.join(dir, `${stale.kid}.json`), JSON.stringify({ ...stale, retiredAt: longAgo }), { mode: 0o600 });
    await writeFile(path.join(dir, `${recent.kid}.json`), JSON.stringify({ ...recent, retiredAt: lately }), { mode: 0o600 });
    const active = await generateKey(dir);

    const { created, retired, removed } = await rotateKeys(dir, undefined, { activateInMs: 0 });
    expect(removed).toEqual([stale.kid]);
    expect(retired).toEqual([active.kid]);
    const kids = (await loadKeys(dir)).map((key) => key.kid);
    expect(kids).toHaveLength(3);
    expect(kids[0]).toBe(created.kid);
    expect(kids).toContain(active.kid);
    expect(kids).toContain(recent.kid);
    expect(kids).not.toContain(stale.kid);
    expect(await readdir(dir)).not.toContain(`${stale.kid}.json`);
  });

  it('loadSigningJwks refuses a directory where no key is active (all retired, or not yet active)', async () => {
    const key = await generateKey(dir);
    await writeFile(path.join(dir, `${key.kid}.json`), JSON.stringify({ ...key, retiredAt: new Date().toISOString() }));
    await expect(loadSigningJwks(dir, { generateIfMissing: true })).rejects.toThrow(/no key .* is active/);
    await writeFile(path.join(dir, `${key.kid}.json`), JSON.stringify({ ...key, activatesAt: new Date(Date.now() + 60_000).toISOString() }));
    await expect(loadSigningJwks(dir, { generateIfMissing: true })).rejects.toThrow(/no key .* is active/);
  });

  it('loadKeys ignores files that are not keys and refuses a corrupt key file', async () => {
    const key = await generateKey(dir);
    await writeFile(path.join(dir, 'README.md'), '# keys\n');
    await writeFile(path.join(dir, 'notes.json'), '{}');
    expect((await loadKeys(dir)).map((k) => k.kid)).toEqual([key.kid]);
    await writeFile(path.join(dir, 'AAAAAAAAAAAA.json'), '{ not json');
    await expect(loadKeys(dir)).rejects.toThrow(KeyStoreError);
  });

  it('loadKeys of a missing directory is empty', async () => {
    expect(await loadKeys(path.join(dir, 'nope'))).toEqual([]);
  });

  it('loadDigestKey creates a 0600 32-byte key once and returns the same key after', async () => {
    const key = await loadDigestKey(dir, { generateIfMissing: true });
    expect(key).toHaveLength(32);
    const file = path.join(dir, 'client-secret.key');
    expect(await mode(file)).toBe(0o600);
    const text = await readFile(file, 'utf8');
    const again = await loadDigestKey(dir, { generateIfMissing: true });
    expect(again.equals(key)).toBe(true);
    expect(await readFile(file, 'utf8')).toBe(text);
    expect((await loadDigestKey(dir, { generateIfMissing: false })).equals(key)).toBe(true);
  });

  it('loadDigestKey agrees on one key when several calls race to create it', async () => {
    for (let round = 0; round < 20; round += 1) {
      const roundDir = path.join(dir, `race-${round}`);
      const keys = await Promise.all(Array.from({ length: 6 }, () => loadDigestKey(roundDir, { generateIfMissing: true })));
      expect(keys[0]).toHaveLength(32);
      for (const key of keys) expect(key.equals(keys[0]!)).toBe(true);
      expect((await loadDigestKey(roundDir, { generateIfMissing: false })).equals(keys[0]!)).toBe(true);
    }
  });

  it('loadDigestKey never hands a second caller a key file that the first is still writing', async () => {
    disk.writeDelayMs = 30;
    try {
      const first = loadDigestKey(dir, { generateIfMissing: true });
      await sleep(10);
      const second = loadDigestKey(dir, { generateIfMissing: true });
      const [a, b] = await Promise.all([first, second]);
      expect(a).toHaveLength(32);
      expect(b.equals(a)).toBe(true);
    } finally {
      disk.writeDelayMs = 0;
    }
  });

  it('loadDigestKey without generateIfMissing refuses a missing key, saying to run keys generate', async () => {
    await expect(loadDigestKey(dir, { generateIfMissing: false })).rejects.toThrow(KeyStoreError);
    await expect(loadDigestKey(dir, { generateIfMissing: false })).rejects.toThrow(/keys generate/);
  });

  it('loadDigestKey refuses a key file that holds too few bytes', async () => {
    await loadDigestKey(dir, { generateIfMissing: true });
    await writeFile(path.join(dir, 'client-secret.key'), 'c2hvcnQ\n');
    await expect(loadDigestKey(dir, { generateIfMissing: true })).rejects.toThrow(/at least 32 random bytes/);
  });
});

describe('the repository keeps keys out of git', () => {
  const ignored = (file: string) => spawnSync('git', ['check-ignore', '-q', '--no-index', file], { cwd: process.cwd() }).status;

  it.each(['keys/abc.json', 'keys/cjwMWD9Gpq3eMeya.json', 'keys/client-secret.key'])('ignores %s', (file) => {
    expect(ignored(file)).toBe(0);
  });

  it('still tracks keys/README.md', () => {
    expect(ignored('keys/README.md')).toBe(1);
  });
});
