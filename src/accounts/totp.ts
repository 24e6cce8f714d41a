import { generateSecret, generateURI, verify } from 'otplib';

/**
 * TOTP (RFC 6238) through otplib 13's functional API, at the parameters every authenticator app
 * assumes: SHA-1, 6 digits, 30-second steps. Pure logic: the secret comes in unsealed, and the step
 * of an accepted code goes out for the caller to record (registry/second-factor.repository.ts
 * `advanceTotpStep`), which is what makes each code single-use.
 */
export const TOTP_PERIOD_SECONDS = 30;

/** Codes of the step before and after the current one are accepted too (clock drift): ±1 step. */
const TOLERANCE_SECONDS = TOTP_PERIOD_SECONDS;

/** Why a code was not accepted. */
export type TotpRefusal = 'malformed' | 'invalid_code' | 'clock_skew';

export type TotpCheck = { ok: true; step: number } | { ok: false; reason: TotpRefusal };

/** A new secret: 20 random bytes (160 bits), base32, as otplib makes it. */
export function generateTotpSecret(): string {
  return generateSecret();
}

/**
 * The `otpauth://totp/<issuer>:<label>?secret=…&issuer=…` URI an authenticator app scans.
 *
 * @example
 * totpUri({ issuer: 'Gatehouse', label: 'ada@example.com', secret }) // 'otpauth://totp/Gatehouse:ada%40example.com?secret=…'
 */
export function totpUri(input: { issuer: string; label: string; secret: string }): string {
  return generateURI({ issuer: input.issuer, label: input.label, secret: input.secret });
}

/**
 * A typed code as six digits, or undefined when it is not one: NFKC first (full-width digits are
 * digits), then spaces, no-break spaces and dashes are dropped. It stays a string, so leading zeros
 * are kept.
 */
export function normaliseTotpCode(input: string): string | undefined {
  if (input.length > 64) return undefined;
  const code = input.normalize('NFKC').replace(/[\s\u00a0\u2010-\u2015\u2212-]/g, '');
  return /^\d{6}$/.test(code) ? code : undefined;
}

/**
 * Checks a six-digit code against the secret at `nowMs`, ±1 step, skipping steps up to `afterStep`
 * (the last one accepted; -1 for none). A code of a spent step is `invalid_code`; `clock_skew` when
 * the last accepted step is beyond the window (the server's clock went back since).
 */
export async function checkTotpCode(secret: string, code: string, options: { afterStep: number; nowMs?: number }): Promise<TotpCheck> {
  if (!/^\d{6}$/.test(code)) return { ok: false, reason: 'malformed' };
  const epoch = Math.floor((options.nowMs ?? Date.now()) / 1000);
  // otplib throws for an afterTimeStep past the window's last step (AfterTimeStepRangeExceededError):
  // every code of the window is then spent anyway.
  const lastStepOfWindow = Math.floor((epoch + TOLERANCE_SECONDS) / TOTP_PERIOD_SECONDS);
  if (options.afterStep > lastStepOfWindow) return { ok: false, reason: 'clock_skew' };
  const result = await verify({
    secret,
    token: code,
    epoch,
    epochTolerance: TOLERANCE_SECONDS,
    ...(options.afterStep >= 0 ? { afterTimeStep: options.afterStep } : {}),
  });
  if (!result.valid || !('timeStep' in result)) return { ok: false, reason: 'invalid_code' };
  return { ok: true, step: result.timeStep };
}
