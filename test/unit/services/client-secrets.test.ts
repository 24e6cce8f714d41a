import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createSecretVerifier, digestClientSecret, generateClientSecret, verifyClientSecret } from '../../../src/services/client-secrets.js';

const KEY = randomBytes(32);

describe('generateClientSecret', () => {
  it('is 256 random bits as 43 base64url characters', () => {
    const secret = generateClientSecret();
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(secret, 'base64url')).toHaveLength(32);
  });

  it('differs on every call', () => {
    const secrets = new Set(Array.from({ length: 50 }, () => generateClientSecret()));
    expect(secrets.size).toBe(50);
  });
});

describe('digestClientSecret', () => {
  it('never contains the secret, and is deterministic for one key', () => {
    const secret = generateClientSecret();
    const digest = digestClientSecret(KEY, secret);
    expect(digest).not.toContain(secret);
    expect(digest.startsWith('hs256$')).toBe(true);
    expect(digestClientSecret(KEY, secret)).toBe(digest);
  });

  it('depends on the key', () => {
    const secret = generateClientSecret();
    expect(digestClientSecret(randomBytes(32), secret)).not.toBe(digestClientSecret(KEY, secret));
  });
});

describe('verifyClientSecret', () => {
  const secret = generateClientSecret();
  const digest = digestClientSecret(KEY, secret);

  it('accepts the right secret', () => {
    expect(verifyClientSecret(KEY, secret, digest)).toBe(true);
  });

  it('refuses a wrong secret, including near misses', () => {
    expect(verifyClientSecret(KEY, generateClientSecret(), digest)).toBe(false);
    expect(verifyClientSecret(KEY, `${secret}x`, digest)).toBe(false);
    expect(verifyClientSecret(KEY, secret.slice(0, -1), digest)).toBe(false);
    expect(verifyClientSecret(KEY, '', digest)).toBe(false);
  });

  it('refuses a digest made with another key', () => {
    expect(verifyClientSecret(KEY, secret, digestClientSecret(randomBytes(32), secret))).toBe(false);
  });

  it('refuses a missing digest (a client without a secret)', () => {
    expect(verifyClientSecret(KEY, secret, null)).toBe(false);
    expect(verifyClientSecret(KEY, secret, undefined)).toBe(false);
    expect(verifyClientSecret(KEY, secret, '')).toBe(false);
  });

  it('refuses malformed digests without throwing', () => {
    const body = digest.slice('hs256$'.length);
    for (const bad of [
      body, // no prefix
      `sha1$${body}`,
      'hs256$',
      'hs256$!!!not-base64!!!',
      `hs256$${body.slice(0, -4)}`,
      `hs256$${body}AAAA`,
      secret, // the secret itself stored by mistake
    ]) {
      expect(verifyClientSecret(KEY, secret, bad), bad).toBe(false);
    }
  });
});

describe('createSecretVerifier', () => {
  const key = Buffer.alloc(32, 7);
  it('accepts the right secret again from memory, and still refuses a wrong one or a changed digest', () => {
    const verify = createSecretVerifier(key);
    const secret = generateClientSecret();
    const digest = digestClientSecret(key, secret);
    expect(verify(secret, digest)).toBe(true);
    expect(verify(secret, digest)).toBe(true);
    expect(verify(`${secret}x`, digest)).toBe(false);
    expect(verify(generateClientSecret(), digest)).toBe(false);
    // A rotated secret: the old one does not match the new digest, remembered or not.
    const next = generateClientSecret();
    const nextDigest = digestClientSecret(key, next);
    expect(verify(secret, nextDigest)).toBe(false);
    expect(verify(next, nextDigest)).toBe(true);
    expect(verify(next, digest)).toBe(false);
    expect(verify(secret, null)).toBe(false);
  });
});
