import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLoginLimiter, type LoginLimiter } from '../../../src/interactions/login-limiter.js';
import { createLogger } from '../../../src/observability/logger.js';
import { connectRedis } from '../../../src/store/redis-store.js';
import { WORKER_REDIS_URL } from '../../fixtures/env.js';

const LIMITS = { perAccount: 3, perIp: 100_000, windowSeconds: 60 };

describe.each(['redis', 'memory'] as const)('the sign-in limiter (%s) counts an account under its normalised email', (kind) => {
  let redis: Redis | undefined;
  let limiter: LoginLimiter;

  beforeAll(() => {
    redis = kind === 'redis' ? connectRedis(WORKER_REDIS_URL, createLogger({ logLevel: 'silent' })) : undefined;
    limiter = createLoginLimiter({ ...(redis ? { redis } : {}), limits: LIMITS });
  });
  afterAll(async () => {
    await redis?.quit();
  });

  // Each account is unique to the test (a random tag), so the shared Redis holds no count of it.
  it.each([
    { what: 'case and space', stored: 'victim-{tag}@example.test', spellings: [' VICTIM-{TAG}@Example.test', 'Victim-{tag}@EXAMPLE.TEST'] },
    { what: 'full-width letters', stored: 'victim-{tag}@example.test', spellings: ['ｖｉｃｔｉｍ-{tag}@ｅｘａｍｐｌｅ．ｔｅｓｔ', 'ＶＩＣＴＩＭ-{TAG}@example.test'] },
    { what: 'a combining accent', stored: 'josé-{tag}@example.test', spellings: ['jose\u0301-{tag}@example.test', 'JOSE\u0301-{TAG}@example.test'] },
    { what: 'capital sharp s', stored: 'straße-{tag}@example.test', spellings: ['STRAẞE-{TAG}@example.test'] },
    { what: 'dotted capital I', stored: 'i\u0307pek-{tag}@example.test', spellings: ['İpek-{tag}@example.test', 'İPEK-{TAG}@example.test'] },
  ])('failures under any spelling ($what) lock every spelling', async ({ stored, spellings }) => {
    const tag = randomUUID().slice(0, 8);
    const fill = (template: string) => template.replace('{tag}', tag).replace('{TAG}', tag.toUpperCase());
    const all = [stored, ...spellings].map(fill);
    // The failures are spread over the spellings: they add up to the one account's limit.
    for (let i = 0; i < LIMITS.perAccount; i += 1) {
      for (const email of all) expect(await limiter.check(email, '192.0.2.1'), `${email} before failure ${i + 1}`).toEqual({ allowed: true });
      await limiter.recordFailure(all[i % all.length]!, '192.0.2.1');
    }
    for (const email of all) expect((await limiter.check(email, '192.0.2.1')).allowed, email).toBe(false);
    // Another address is not affected.
    expect(await limiter.check(fill('someone-else-{tag}@example.test'), '192.0.2.1')).toEqual({ allowed: true });
    // A success under one spelling clears the count for all of them.
    await limiter.recordSuccess(all.at(-1)!);
    for (const email of all) expect(await limiter.check(email, '192.0.2.1'), email).toEqual({ allowed: true });
  });
});

describe.each(['redis', 'memory'] as const)('the second-factor limiter (%s, kind mfa)', (kind) => {
  let redis: Redis | undefined;
  let passwords: LoginLimiter;
  let codes: LoginLimiter;

  beforeAll(() => {
    redis = kind === 'redis' ? connectRedis(WORKER_REDIS_URL, createLogger({ logLevel: 'silent' })) : undefined;
    passwords = createLoginLimiter({ ...(redis ? { redis } : {}), limits: LIMITS });
    codes = createLoginLimiter({ ...(redis ? { redis } : {}), limits: LIMITS, kind: 'mfa' });
  });
  afterAll(async () => {
    await redis?.quit();
  });

  it('counts wrong codes per account id, apart from wrong passwords, and a success clears the account', async () => {
    const accountId = randomUUID();
    const ip = `192.0.2.${1 + Math.floor(Math.random() * 200)}`;
    for (let i = 0; i < LIMITS.perAccount; i += 1) {
      expect(await codes.check(accountId, ip)).toEqual({ allowed: true });
      await codes.recordFailure(accountId, ip);
    }
    const locked = await codes.check(accountId, ip);
    expect(locked.allowed).toBe(false);
    expect(locked.allowed === false && locked.retryAfterSeconds).toBeGreaterThan(0);
    // Not the password limiter's count (own keys), nor another account's.
    expect(await passwords.check(accountId, ip)).toEqual({ allowed: true });
    expect(await codes.check(randomUUID(), ip)).toEqual({ allowed: true });
    await codes.recordSuccess(accountId);
    expect(await codes.check(accountId, ip)).toEqual({ allowed: true });
  });
});
