import { createHmac, hash, randomBytes, timingSafeEqual } from 'node:crypto';

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

/**
 * verifyClientSecret that remembers, per stored digest, the secret it last accepted, as its SHA-256:
 * a client presenting the same secret again is checked with one unkeyed hash instead of an HMAC
 * (whose key setup is most of its cost). Issued secrets are 256-bit random, so the remembered hash
 * gives nothing away; a changed secret has a new digest and is verified afresh.
 *
 * @example
 * const verify = createSecretVerifier(digestKey);
 * if (!verify(presentedSecret, client.secretDigest)) throw new InvalidClient();
 */
export function createSecretVerifier(key: Buffer, maxEntries = 10_000): (presented: string, digest: string | null | undefined) => boolean {
  const accepted = new Map<string, Buffer>();
  return (presented, digest) => {
    if (!digest || typeof presented !== 'string') return false;
    const fingerprint = hash('sha256', presented, 'buffer');
    const known = accepted.get(digest);
    if (known && timingSafeEqual(known, fingerprint)) return true;
    if (!verifyClientSecret(key, presented, digest)) return false;
    if (accepted.size >= maxEntries) accepted.clear();
    accepted.set(digest, fingerprint);
    return true;
  };
}
