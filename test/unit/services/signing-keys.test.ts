import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateKey, generateProfileKey, rotateKeys } from '../../../src/keys/key-store.js';
import type { KeysServiceDeps } from '../../../src/services/keys.service.js';
import { ValidationError } from '../../../src/services/errors.js';
import { isNotWritable, KeysNotWritableError, listSigningKeys, rotateSigningKeysAsked, signingKeyToJson } from '../../../src/services/signing-keys.service.js';

const ACTOR = { actor: 'test:signing-keys' };

describe('signing keys as the admin API shows and rotates them', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'gh-signing-keys-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  /** A keys service whose registry records nothing (it must not be reached when the input is refused). */
  const deps = (recorded: string[] = []): KeysServiceDeps => ({
    keysDir: dir,
    withRegistry: async (run) =>
      run({
        db: { transaction: () => ({ execute: (fn: (trx: unknown) => Promise<unknown>) => fn({}) }) },
        audit: { append: async (_trx: unknown, event: { action: string }) => void recorded.push(event.action) },
      } as never),
  });

  it('says which keys sign now, their state and age, and carries no key material', async () => {
    const server = await generateKey(dir, 'RS256');
    const profile = await generateProfileKey(dir, 'ES256');
    const now = Date.parse(server.createdAt) + 90_500;
    const keys = await listSigningKeys(dir, now);
    expect(keys.map((key) => [key.kid, key.status, key.signing, key.profile])).toEqual([
      [server.kid, 'active', true, null],
      [profile.kid, 'active', true, 'fapi2'],
    ]);
    expect(keys[0]?.ageSeconds).toBe(90);
    const wire = JSON.stringify(keys.map(signingKeyToJson));
    for (const member of ['"d"', '"p"', '"q"', '"dp"', '"dq"', '"qi"', '"jwk"', '"n"', '"x"']) expect(wire).not.toContain(member);
  });

  it('after a rotation with a delay: the new keys pending and not signing, the old ones signing until then', async () => {
    const old = await generateKey(dir, 'RS256');
    const { created } = await rotateKeys(dir, undefined, { activateInMs: 60_000 });
    const now = Date.now();
    const keys = await listSigningKeys(dir, now);
    expect(keys.find((key) => key.kid === created.kid)).toMatchObject({ status: 'pending', signing: false });
    expect(keys.find((key) => key.kid === old.kid)).toMatchObject({ status: 'active', signing: true, retiredAt: created.activatesAt });
    const later = await listSigningKeys(dir, Date.parse(created.activatesAt!) + 1);
    expect(later.find((key) => key.kid === created.kid)).toMatchObject({ status: 'active', signing: true });
    expect(later.find((key) => key.kid === old.kid)).toMatchObject({ status: 'retired', signing: false });
  });

  it.each([
    [{ activate_in: -5 }, 'activate_in'],
    [{ activate_in: 86_401 }, 'activate_in'],
    [{ activate_in: 2.5 }, 'activate_in'],
    [{ alg: 'none' }, 'alg'],
  ])('refuses %j naming %s, writing nothing and recording nothing', async (input, field) => {
    await generateKey(dir, 'RS256');
    const before = await readdir(dir);
    const recorded: string[] = [];
    const refused = await rotateSigningKeysAsked(deps(recorded), ACTOR, input).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(ValidationError);
    expect((refused as ValidationError).errors.map((error) => error.field)).toEqual([field]);
    expect(await readdir(dir)).toEqual(before);
    expect(recorded).toEqual([]);
  });

  it('rotates as asked and records keys.rotate', async () => {
    await generateKey(dir, 'RS256');
    const recorded: string[] = [];
    const { created } = await rotateSigningKeysAsked(deps(recorded), ACTOR, { activate_in: 10, alg: 'ES256' });
    expect(created.alg).toBe('ES256');
    expect(Date.parse(created.activatesAt!) - Date.parse(created.createdAt)).toBeLessThanOrEqual(10_000);
    expect(recorded).toEqual(['keys.rotate']);
  });

  it('tells a keys directory it may not write from other failures', async () => {
    for (const code of ['EROFS', 'EACCES', 'EPERM']) expect(isNotWritable(Object.assign(new Error(code), { code }))).toBe(true);
    for (const error of [new Error('ENOSPC'), Object.assign(new Error('x'), { code: 'ENOSPC' }), null, 'EROFS']) expect(isNotWritable(error)).toBe(false);
    const refusal = new KeysNotWritableError('/secrets/keys', new Error('EROFS'));
    expect(refusal.message).toMatch(/\/secrets\/keys is not writable.*gatehouse keys rotate/);
  });
});
