import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const DIGEST_PREFIX = 'hs256$';

/** A new 256-bit client secret, base64url: shown once, never stored. */
export function generateClientSecret(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * The stored form of a client secret: HMAC-SHA256 keyed with keys/client-secret.key. Secrets are
 * 256-bit random values, so a fast keyed hash is the right tool (argon2id is for passwords).
 */
export function digestClientSecret(key: Buffer, secret: string): string {
  return DIGEST_PREFIX + createHmac('sha256', key).update(secret, 'utf8').digest('base64url');
}

/** True for the stored form of a secret: issued secrets are base64url and never look like one. */
export function isClientSecretDigest(value: unknown): boolean {
  return typeof value === 'string' && value.startsWith(DIGEST_PREFIX);
}

/** Compares a presented secret with a stored digest in constant time. */
export function verifyClientSecret(key: Buffer, presented: string, digest: string | null | undefined): boolean {
  if (!digest || !digest.startsWith(DIGEST_PREFIX) || typeof presented !== 'string') return false;
  const expected = Buffer.from(digest.slice(DIGEST_PREFIX.length), 'base64url');
  const actual = createHmac('sha256', key).update(presented, 'utf8').digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
