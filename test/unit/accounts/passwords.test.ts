import { hash, type Algorithm } from '@node-rs/argon2';
import { dictionary } from '@zxcvbn-ts/language-common';
import { describe, expect, it } from 'vitest';
import {
  hashesInFlight,
  hashPassword,
  isOverlongPassword,
  MAX_PASSWORD_LENGTH,
  MIN_PASSWORD_LENGTH,
  needsRehash,
  PASSWORD_HASH_PARAMS,
  passwordProblem,
  verifyDummy,
  verifyPassword,
} from '../../../src/accounts/passwords.js';
import { recordSecret } from '../../fixtures/log-capture.js';

const ARGON2ID: Algorithm = 2;
const ARGON2I: Algorithm = 1;
const CURRENT_HASH = /^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/;

/** A password of exactly `length` characters that is in no breached-password list. */
const passwordOfLength = (length: number) => 'Tq7#vLx2!pZ9'.repeat(Math.ceil(length / 12)).slice(0, length);

const PASSWORD = 'violet-anvil-harbour-57';
recordSecret(PASSWORD);

describe('passwordProblem', () => {
  it('uses the limits the policy states', () => {
    expect(MIN_PASSWORD_LENGTH).toBe(12);
    expect(MAX_PASSWORD_LENGTH).toBe(1024);
  });

  it.each([
    { length: 0, problem: 'must be at least 12 characters' },
    { length: 11, problem: 'must be at least 12 characters' },
    { length: 12, problem: undefined },
    { length: 1024, problem: undefined },
    { length: 1025, problem: 'must be at most 1024 characters' },
    { length: 5000, problem: 'must be at most 1024 characters' },
  ])('$length characters: $problem', ({ length, problem }) => {
    expect(passwordProblem(passwordOfLength(length))).toBe(problem);
  });

  it('counts characters as a person does, not UTF-16 units', () => {
    // Each of these is one character and two UTF-16 units.
    expect(passwordProblem('🔑'.repeat(11))).toBe('must be at least 12 characters');
    expect(passwordProblem('🔑'.repeat(12))).toBeUndefined();
    expect(passwordProblem('🔑'.repeat(1024))).toBeUndefined();
    expect(passwordProblem('🔑'.repeat(1025))).toBe('must be at most 1024 characters');
    expect(isOverlongPassword('🔑'.repeat(1024))).toBe(false);
    expect(isOverlongPassword('🔑'.repeat(1025))).toBe(true);
    expect(isOverlongPassword('x'.repeat(1_000_000))).toBe(true);
  });

  it('refuses a common password whatever its case', () => {
    const common = 'is too common: it appears in lists of breached passwords';
    expect(passwordProblem('finalfantasy')).toBe(common);
    expect(passwordProblem('FinalFantasy')).toBe(common);
    expect(passwordProblem('1QAZ2WSX3EDC')).toBe(common);
    expect(passwordProblem('FinalFantasy!')).toBeUndefined();
  });

  it('refuses every entry of 12 characters or more in the breached-password list', () => {
    const long = dictionary['passwords-common'].filter((word) => [...word].length >= 12 && [...word].length <= 1024);
    expect(long.length).toBeGreaterThan(100);
    const accepted = long.filter((word) => passwordProblem(word.toUpperCase()) === undefined);
    expect(accepted).toEqual([]);
  });
});

describe('hashing', () => {
  it('hashes with argon2id at the OWASP parameters', async () => {
    expect(PASSWORD_HASH_PARAMS).toEqual({ memoryCost: 19456, timeCost: 2, parallelism: 1 });
    const stored = await hashPassword(PASSWORD);
    expect(stored).toMatch(CURRENT_HASH);
    expect(stored).not.toContain(PASSWORD);
    // A fresh salt every time.
    expect(await hashPassword(PASSWORD)).not.toBe(stored);
  });

  it('verifies the right password and refuses a wrong one', async () => {
    const stored = await hashPassword(PASSWORD);
    expect(await verifyPassword(stored, PASSWORD)).toBe(true);
    expect(await verifyPassword(stored, `${PASSWORD} `)).toBe(false);
    expect(await verifyPassword(stored, PASSWORD.toUpperCase())).toBe(false);
    expect(await verifyPassword(stored, '')).toBe(false);
  });

  it.each(['', 'not a hash', '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$', '$2b$12$abcdefghijklmnopqrstuuS8p6EN6uA3tQ1x2l5dWq0Zb9vKqG5C'])(
    'answers false, never throws, for the malformed hash %j',
    async (malformed) => {
      await expect(verifyPassword(malformed, PASSWORD)).resolves.toBe(false);
    },
  );

  it('needsRehash: true for weaker parameters, another algorithm or garbage; false for the current ones', async () => {
    const weak = await hash(PASSWORD, { memoryCost: 4096, timeCost: 1, parallelism: 1, algorithm: ARGON2ID });
    expect(weak).toMatch(/^\$argon2id\$v=19\$m=4096,t=1,p=1\$/);
    expect(needsRehash(weak)).toBe(true);
    expect(await verifyPassword(weak, PASSWORD)).toBe(true);

    const fewerPasses = await hash(PASSWORD, { memoryCost: 19456, timeCost: 1, parallelism: 1, algorithm: ARGON2ID });
    expect(needsRehash(fewerPasses)).toBe(true);
    const lessMemory = await hash(PASSWORD, { memoryCost: 8192, timeCost: 3, parallelism: 1, algorithm: ARGON2ID });
    expect(needsRehash(lessMemory)).toBe(true);
    const argon2i = await hash(PASSWORD, { ...PASSWORD_HASH_PARAMS, algorithm: ARGON2I });
    expect(needsRehash(argon2i)).toBe(true);

    expect(needsRehash(await hashPassword(PASSWORD))).toBe(false);
    const stronger = await hash(PASSWORD, { memoryCost: 19456, timeCost: 3, parallelism: 1, algorithm: ARGON2ID });
    expect(needsRehash(stronger)).toBe(false);

    expect(needsRehash('')).toBe(true);
    expect(needsRehash('not a hash')).toBe(true);
  });

  it('verifyDummy does the work of a verify and resolves without a verdict', async () => {
    await expect(verifyDummy(PASSWORD)).resolves.toBeUndefined();
    await expect(verifyDummy('')).resolves.toBeUndefined();
  });
});

describe('argon2id concurrency', () => {
  it('runs at most one hash per available CPU at a time, and finishes them all', async () => {
    const { availableParallelism } = await import('node:os');
    const limit = Math.max(1, availableParallelism());
    const passwords = Array.from({ length: limit * 3 }, (_, i) => `concurrency check password ${i}`);
    let most = 0;
    let sampling = true;
    const sample = () => {
      most = Math.max(most, hashesInFlight());
      if (sampling) setImmediate(sample);
    };
    sample();
    const hashes = await Promise.all(passwords.map((password) => hashPassword(password)));
    sampling = false;
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(limit);
    expect(new Set(hashes).size).toBe(passwords.length);
    const verified = await Promise.all(hashes.map((stored, i) => verifyPassword(stored, passwords[i]!)));
    expect(verified.every(Boolean)).toBe(true);
  });
});
