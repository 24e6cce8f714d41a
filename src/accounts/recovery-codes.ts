import { randomBytes } from 'node:crypto';
import { digestTokenValue } from '../registry/token-digest.js';

/** How many recovery codes a person gets; regenerating replaces the whole set. */
export const RECOVERY_CODE_COUNT = 10;

/** Crockford's base32 alphabet: no I, L, O or U, so a code read aloud or copied by hand survives. */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const CODE_LENGTH = 16;
/** 16 characters × 5 bits. */
const CODE_BYTES = 10;

/** 80 random bits as 16 Crockford base32 characters (5 bits each, most significant first). */
function encode(bytes: Buffer): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(value >>> bits) & 31];
    }
    value &= (1 << bits) - 1;
  }
  return out;
}

/** `XXXX-XXXX-XXXX-XXXX`, as a person is shown it. */
function display(code: string): string {
  return code.match(/.{4}/g)!.join('-');
}

/**
 * A new set of recovery codes, as shown to the person once: each 80 random bits, as
 * `XXXX-XXXX-XXXX-XXXX` in Crockford base32.
 *
 * @example
 * generateRecoveryCodes() // ['7K2M-QX4D-…', … ten of them]
 */
export function generateRecoveryCodes(count = RECOVERY_CODE_COUNT): string[] {
  return Array.from({ length: count }, () => display(encode(randomBytes(CODE_BYTES))));
}

/**
 * A typed recovery code in its one stored form, or undefined when it cannot be one: upper-cased,
 * without spaces and dashes (and their Unicode look-alikes, via NFKC), and with the letters
 * Crockford reads as digits mapped (O → 0, I and L → 1).
 */
export function normaliseRecoveryCode(input: string): string | undefined {
  if (input.length > 128) return undefined;
  const code = input
    .normalize('NFKC')
    .toUpperCase()
    .replace(/[\s\u00a0\u2010-\u2015\u2212-]/g, '')
    .replace(/O/g, '0')
    .replace(/[IL]/g, '1');
  if (code.length !== CODE_LENGTH) return undefined;
  for (const char of code) if (!ALPHABET.includes(char)) return undefined;
  return code;
}

/**
 * What is stored of a recovery code: `sha256$` and the unkeyed SHA-256 of its normalised form, as
 * registry/token-digest.ts stores tokens. 80 random bits cannot be found from their digest, and with
 * no key there is none to lose or rotate.
 */
export function recoveryCodeDigest(normalised: string): string {
  return digestTokenValue(normalised);
}
