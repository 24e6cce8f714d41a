import { generate } from 'otplib';
import { describe, expect, it } from 'vitest';
import { checkTotpCode, generateTotpSecret, normaliseTotpCode, totpUri } from '../../../src/accounts/totp.js';

/** The middle of a step: ±30 s is exactly one step either way. */
const NOW_MS = Math.floor(1_800_000_000_000 / 30_000) * 30_000 + 15_000;
const STEP = Math.floor(NOW_MS / 30_000);
const codeAt = (secret: string, offsetSeconds: number) => generate({ secret, epoch: Math.floor(NOW_MS / 1000) + offsetSeconds });

describe('TOTP', () => {
  const secret = generateTotpSecret();

  it('makes 160-bit base32 secrets, each new, and the otpauth URI apps scan', () => {
    expect(secret).toMatch(/^[A-Z2-7]{32}$/);
    expect(generateTotpSecret()).not.toBe(secret);
    const uri = new URL(totpUri({ issuer: 'Gatehouse', label: 'ada@example.com', secret }));
    expect(uri.protocol).toBe('otpauth:');
    expect(uri.host).toBe('totp');
    expect(decodeURIComponent(uri.pathname)).toBe('/Gatehouse:ada@example.com');
    expect(uri.searchParams.get('secret')).toBe(secret);
    expect(uri.searchParams.get('issuer')).toBe('Gatehouse');
  });

  it('normalises spaces, dashes and full-width digits, keeps leading zeros, and refuses anything else', () => {
    expect(normaliseTotpCode(' 012 345 ')).toBe('012345');
    expect(normaliseTotpCode('012-345')).toBe('012345');
    expect(normaliseTotpCode('０１２３４５')).toBe('012345');
    expect(normaliseTotpCode('012\u00a0345')).toBe('012345');
    for (const input of ['12345', '1234567', 'abcdef', '12345a', '', '1'.repeat(1000), '12\u00003456', '١٢٣٤٥٦']) {
      expect(normaliseTotpCode(input), JSON.stringify(input.slice(0, 20))).toBeUndefined();
    }
  });

  it('accepts the current step and one either side, refuses two away', async () => {
    for (const offset of [-30, 0, 30]) {
      expect(await checkTotpCode(secret, await codeAt(secret, offset), { afterStep: -1, nowMs: NOW_MS })).toEqual({ ok: true, step: STEP + offset / 30 });
    }
    for (const offset of [-60, 60, -3600]) {
      expect(await checkTotpCode(secret, await codeAt(secret, offset), { afterStep: -1, nowMs: NOW_MS })).toEqual({ ok: false, reason: 'invalid_code' });
    }
  });

  it('refuses a code of a step at or before the last accepted one', async () => {
    const code = await codeAt(secret, 0);
    expect(await checkTotpCode(secret, code, { afterStep: STEP, nowMs: NOW_MS })).toEqual({ ok: false, reason: 'invalid_code' });
    expect(await checkTotpCode(secret, await codeAt(secret, -30), { afterStep: STEP - 1, nowMs: NOW_MS })).toEqual({ ok: false, reason: 'invalid_code' });
    expect(await checkTotpCode(secret, await codeAt(secret, 30), { afterStep: STEP, nowMs: NOW_MS })).toEqual({ ok: true, step: STEP + 1 });
    // Every step of the window spent, and beyond it (the clock went back): refused, never thrown.
    expect(await checkTotpCode(secret, await codeAt(secret, 30), { afterStep: STEP + 1, nowMs: NOW_MS })).toEqual({ ok: false, reason: 'invalid_code' });
    expect(await checkTotpCode(secret, code, { afterStep: STEP + 5, nowMs: NOW_MS })).toEqual({ ok: false, reason: 'clock_skew' });
  });

  it('refuses malformed codes without calling otplib (which would throw)', async () => {
    for (const code of ['12345', '1234567', 'abcdef', ' 123456']) {
      expect(await checkTotpCode(secret, code, { afterStep: -1, nowMs: NOW_MS })).toEqual({ ok: false, reason: 'malformed' });
    }
  });
});
