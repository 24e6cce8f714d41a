import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CompactEncrypt, decodeProtectedHeader } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateDataKey, loadDataKeyring, staticDataKeyring, type DataKey, type DataKeyring } from '../../../src/keys/data-key.js';
import { SealedSecretError, sealedKid, sealSecret, unsealSecret } from '../../../src/services/sealed-secrets.js';

const SECRET = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP';

/** The refusal's reason, or a failure when it opened (or threw something else). */
async function refusal(opening: Promise<string>): Promise<string> {
  const error = await opening.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SealedSecretError);
  expect((error as Error).message).not.toContain(SECRET);
  return (error as SealedSecretError).reason;
}

/** Flips one character of a base64url segment of a compact JWE (0 header … 4 tag). */
function flip(jwe: string, segment: number): string {
  const parts = jwe.split('.');
  const part = parts[segment]!;
  const at = Math.floor(part.length / 2);
  parts[segment] = part.slice(0, at) + (part[at] === 'A' ? 'B' : 'A') + part.slice(at + 1);
  return parts.join('.');
}

describe('sealed secrets', () => {
  let dir: string;
  let ring: DataKeyring;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'gh-sealed-'));
    ring = await loadDataKeyring(dir, { generateIfMissing: true });
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('round-trips, as a compact JWE (dir, A256GCM) naming its key and row, without the secret in it', async () => {
    const sealed = await sealSecret(ring, SECRET, 'totp:user-1');
    expect(sealed.kid).toBe(ring.keys().at(-1)!.kid);
    expect(sealed.jwe.split('.')).toHaveLength(5);
    expect(sealed.jwe.split('.')[1]).toBe(''); // dir: no encrypted key
    expect(decodeProtectedHeader(sealed.jwe)).toEqual({ alg: 'dir', enc: 'A256GCM', kid: sealed.kid, ctx: 'totp:user-1' });
    expect(sealedKid(sealed.jwe)).toBe(sealed.kid);
    expect(sealed.jwe).not.toContain(SECRET);
    expect(Buffer.from(sealed.jwe.split('.')[3]!, 'base64url').toString('latin1')).not.toContain(SECRET);
    expect(await unsealSecret(ring, sealed.jwe, 'totp:user-1')).toBe(SECRET);
    // A fresh IV each time: the same secret sealed twice is two different JWEs.
    expect((await sealSecret(ring, SECRET, 'totp:user-1')).jwe).not.toBe(sealed.jwe);
    expect(await unsealSecret(ring, (await sealSecret(ring, 'ü✓ and more', 'upstream:acme')).jwe, 'upstream:acme')).toBe('ü✓ and more');
  });

  it("refuses a ciphertext moved to another row (another context), and one whose header was rewritten to that row's", async () => {
    const { jwe } = await sealSecret(ring, SECRET, 'totp:user-1');
    expect(await refusal(unsealSecret(ring, jwe, 'totp:user-2'))).toBe('wrong_context');
    expect(await refusal(unsealSecret(ring, jwe, 'upstream:user-1'))).toBe('wrong_context');
    // Rewriting the header to name the other row breaks the authentication of the whole JWE.
    const [, ...rest] = jwe.split('.');
    const forged = [Buffer.from(JSON.stringify({ alg: 'dir', enc: 'A256GCM', kid: sealedKid(jwe), ctx: 'totp:user-2' })).toString('base64url'), ...rest].join('.');
    expect(await refusal(unsealSecret(ring, forged, 'totp:user-2'))).toBe('not_authentic');
  });

  it('refuses a JWE naming a key the keys directory does not have, after re-reading it', async () => {
    const elsewhere = staticDataKeyring([{ kid: 'elsewhere-key-1', createdAt: new Date().toISOString(), secret: Buffer.alloc(32, 9) }]);
    const { jwe } = await sealSecret(elsewhere, SECRET, 'totp:user-1');
    expect(await refusal(unsealSecret(ring, jwe, 'totp:user-1'))).toBe('unknown_key');
    // The same kid as ours but another key's bytes: not authentic.
    const impostor: DataKey = { ...ring.keys()[0]!, secret: Buffer.alloc(32, 1) };
    const forged = await sealSecret(staticDataKeyring([impostor]), SECRET, 'totp:user-1');
    expect(await refusal(unsealSecret(ring, forged.jwe, 'totp:user-1'))).toBe('not_authentic');
  });

  it('refuses a tampered ciphertext, tag, IV or header, and what is not a JWE, without throwing anything else', async () => {
    const { jwe } = await sealSecret(ring, SECRET, 'totp:user-1');
    for (const segment of [0, 2, 3, 4]) {
      expect(['not_authentic', 'malformed']).toContain(await refusal(unsealSecret(ring, flip(jwe, segment), 'totp:user-1')));
    }
    expect(await refusal(unsealSecret(ring, flip(jwe, 3), 'totp:user-1'))).toBe('not_authentic');
    expect(await refusal(unsealSecret(ring, flip(jwe, 4), 'totp:user-1'))).toBe('not_authentic');
    expect(await refusal(unsealSecret(ring, jwe.split('.').slice(0, 4).join('.'), 'totp:user-1'))).toBe('malformed');
    for (const junk of ['', 'not a jwe', 'a.b.c.d.e', `${jwe}.x`]) {
      expect(await refusal(unsealSecret(ring, junk, 'totp:user-1'))).toBe('malformed');
    }
  });

  it('refuses another algorithm under a known kid (no downgrade to what the header says)', async () => {
    const key = ring.keys()[0]!;
    const other = await new CompactEncrypt(new TextEncoder().encode(SECRET))
      .setProtectedHeader({ alg: 'dir', enc: 'A128CBC-HS256', kid: key.kid, ctx: 'totp:user-1' })
      .encrypt(key.secret);
    expect(await refusal(unsealSecret(ring, other, 'totp:user-1'))).toBe('malformed');
  });

  it('after a rotation, seals with the new key and still opens what the old one sealed', async () => {
    const old = await sealSecret(ring, SECRET, 'totp:user-1');
    // Another process (the CLI) rotates: this keyring has not seen the new key yet.
    const rotated = await generateDataKey(dir);
    expect(ring.byKid(rotated.kid)).toBeUndefined();
    const fresh = await sealSecret(ring, 'new secret', 'totp:user-2');
    expect(fresh.kid).toBe(rotated.kid);
    expect(fresh.kid).not.toBe(old.kid);
    expect(await unsealSecret(ring, old.jwe, 'totp:user-1')).toBe(SECRET);
    expect(await unsealSecret(ring, fresh.jwe, 'totp:user-2')).toBe('new secret');
    // Both keys stay in the directory, the new one current.
    expect((await loadDataKeyring(dir, { generateIfMissing: false })).keys().map((k) => k.kid)).toEqual([old.kid, rotated.kid]);
  });

  it('a node that loaded before the rotation opens a secret sealed under the new key (it re-reads KEYS_DIR)', async () => {
    const before = await loadDataKeyring(dir, { generateIfMissing: false });
    await generateDataKey(dir);
    const writer = await loadDataKeyring(dir, { generateIfMissing: false });
    const sealed = await sealSecret(writer, SECRET, 'totp:user-1');
    expect(before.byKid(sealed.kid)).toBeUndefined();
    expect(await unsealSecret(before, sealed.jwe, 'totp:user-1')).toBe(SECRET);
  });

  it('takes only "<kind>:<row id>" contexts (a programming error otherwise)', async () => {
    await expect(sealSecret(ring, SECRET, '')).rejects.toThrow(TypeError);
    await expect(sealSecret(ring, SECRET, 'user-1')).rejects.toThrow(TypeError);
  });
});
