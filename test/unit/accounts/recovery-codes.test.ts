import { describe, expect, it } from 'vitest';
import { generateRecoveryCodes, normaliseRecoveryCode, RECOVERY_CODE_COUNT, recoveryCodeDigest } from '../../../src/accounts/recovery-codes.js';

describe('recovery codes', () => {
  it('are ten distinct XXXX-XXXX-XXXX-XXXX codes of Crockford base32 (no I, L, O, U)', () => {
    const codes = generateRecoveryCodes();
    expect(codes).toHaveLength(RECOVERY_CODE_COUNT);
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of codes) expect(code).toMatch(/^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$/);
  });

  it('use all 32 characters in every position over many codes (80 random bits, none fixed)', () => {
    const codes = generateRecoveryCodes(2000).map((code) => code.replace(/-/g, ''));
    for (let position = 0; position < 16; position += 1) {
      expect(new Set(codes.map((code) => code[position])).size, `position ${position}`).toBe(32);
    }
  });

  it('normalise what a person types to the one stored form', () => {
    const [code] = generateRecoveryCodes(1);
    const plain = code!.replace(/-/g, '');
    expect(normaliseRecoveryCode(code!)).toBe(plain);
    expect(normaliseRecoveryCode(` ${code!.toLowerCase()} `)).toBe(plain);
    expect(normaliseRecoveryCode(plain.match(/.{4}/g)!.join(' '))).toBe(plain);
    expect(normaliseRecoveryCode(code!.replace(/-/g, '\u2013'))).toBe(plain);
    // Full-width characters (a phone keyboard) are their ASCII selves.
    expect(normaliseRecoveryCode(plain.replace(/[0-9A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0)))).toBe(plain);
    // Letters Crockford reads as digits.
    expect(normaliseRecoveryCode('OOOO-IIII-LLLL-oil0')).toBe('0000111111110110');
  });

  it('refuse what cannot be a code, without throwing', () => {
    for (const input of ['', '123456', 'ABCD-EFGH-JKMN-PQR', 'ABCD-EFGH-JKMN-PQRST', 'ABCD-EFGH-JKMN-PQRU', '!!!!-????-####-$$$$', 'A'.repeat(10_000), 'ABCD\u0000EFGH-JKMN-PQRS']) {
      expect(normaliseRecoveryCode(input), JSON.stringify(input.slice(0, 30))).toBeUndefined();
    }
  });

  it('are stored as sha256$ digests of their normalised form', () => {
    const digest = recoveryCodeDigest('0000111111110110');
    expect(digest).toMatch(/^sha256\$[A-Za-z0-9_-]{43}$/);
    expect(recoveryCodeDigest(normaliseRecoveryCode('oooo-iiii-llll-oil0')!)).toBe(digest);
    expect(digest).not.toContain('0000111111110110');
  });
});
