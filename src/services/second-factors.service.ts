import type { Kysely } from 'kysely';
import { generateRecoveryCodes, normaliseRecoveryCode, RECOVERY_CODE_COUNT, recoveryCodeDigest } from '../accounts/recovery-codes.js';
import { checkTotpCode, generateTotpSecret, normaliseTotpCode, totpUri, type TotpRefusal } from '../accounts/totp.js';
import type { DataKeyring } from '../keys/data-key.js';
import {
  activatePendingTotp,
  advanceTotpStep,
  countUnusedRecoveryCodes,
  deleteRecoveryCodes,
  deleteTotpFactors,
  findPendingTotpForUpdate,
  findTotpFactor,
  putPendingTotp,
  replaceRecoveryCodes,
  useRecoveryCode,
  type TotpFactorRecord,
} from '../registry/second-factor.repository.js';
import { userHasPasskey } from '../registry/passkey.repository.js';
import type { Database } from '../registry/tables.js';
import { findUserById } from '../registry/user.repository.js';
import { recordChange, type AuditActor, type RegistryServiceDeps } from './changes.js';
import { ConflictError, NotFoundError } from './errors.js';
import { sealSecret, unsealSecret } from './sealed-secrets.js';

/** How long an enrolment may wait for its confirming code; an older pending row is as none. */
export const PENDING_TOTP_TTL_MS = 30 * 60 * 1000;

/** Longer than any code a person types: refused before anything else looks at it. */
const MAX_CODE_INPUT = 128;

/**
 * What the second-factor service needs: the registry and its audit writer, the data keys TOTP
 * secrets are sealed with, and (for tests) the clock.
 */
export interface SecondFactorDeps extends RegistryServiceDeps {
  dataKeys: DataKeyring;
  /** Milliseconds since the epoch; Date.now unless given. */
  now?: () => number;
}

/** Why a code was not accepted (never the code). */
export type SecondFactorRefusal = TotpRefusal | 'code_reused' | 'no_factor';

/** A code that was not accepted while confirming an enrolment; nothing was changed. */
export class WrongCodeError extends Error {
  readonly reason: SecondFactorRefusal;

  constructor(reason: SecondFactorRefusal) {
    super(`that code is not right (${reason})`);
    this.name = 'WrongCodeError';
    this.reason = reason;
  }
}

/** The result of a second-factor code at sign-in: accepted once, or refused with a reason. */
export type SecondFactorResult =
  | { ok: true; method: 'totp' | 'recovery_code'; recoveryCodesLeft: number }
  | { ok: false; reason: SecondFactorRefusal };

/** What a person has enrolled, for their account page and the sign-in that asks for it. */
export interface SecondFactorStatus {
  totp: 'none' | 'pending' | 'active';
  recoveryCodesLeft: number;
}

const totpContext = (userId: string) => `totp:${userId}`;
const nowOf = (deps: SecondFactorDeps) => (deps.now ?? Date.now)();

function isFreshPending(row: TotpFactorRecord | undefined, now: number): row is TotpFactorRecord {
  return row !== undefined && now - row.createdAt.getTime() <= PENDING_TOTP_TTL_MS;
}

/** An enrolment shown to the person: the secret, its `otpauth://` URI, and when it started (ms; it names the pending row). */
export interface TotpEnrolment {
  secret: string;
  uri: string;
  startedAt: number;
}

/**
 * Starts (or starts over) a TOTP enrolment: a new secret, sealed for the person, in a `pending`
 * row that becomes their authenticator only once a code from it is confirmed. Returns the secret
 * and its `otpauth://` URI, to be shown to the person this once, and `startedAt`, which names this
 * enrolment for resumeTotpEnrolment. An active authenticator stays until the new one is confirmed.
 * Nothing is audited: no factor changes until the confirmation.
 *
 * @example
 * const { uri } = await beginTotpEnrolment(deps, person.id, { issuer: 'Gatehouse' });
 */
export async function beginTotpEnrolment(deps: SecondFactorDeps, userId: string, options: { issuer: string }): Promise<TotpEnrolment> {
  const user = await findUserById(deps.db, userId);
  if (!user) throw new NotFoundError(`user ${userId}`);
  const secret = generateTotpSecret();
  const sealed = await sealSecret(deps.dataKeys, secret, totpContext(userId));
  const startedAt = nowOf(deps);
  await putPendingTotp(deps.db, userId, sealed.jwe, sealed.kid, new Date(startedAt));
  return { secret, uri: totpUri({ issuer: options.issuer, label: user.email, secret }), startedAt };
}

/**
 * The enrolment that beginTotpEnrolment started at `startedAt`, shown again (a page reloaded): its
 * secret and URI while that pending row is still the person's and fresh; undefined when it was
 * started over since, confirmed, or is too old (then begin a new one).
 */
export async function resumeTotpEnrolment(deps: SecondFactorDeps, userId: string, startedAt: number, options: { issuer: string }): Promise<TotpEnrolment | undefined> {
  const pending = await findTotpFactor(deps.db, userId, 'pending');
  if (!isFreshPending(pending, nowOf(deps)) || pending.createdAt.getTime() !== startedAt) return undefined;
  const user = await findUserById(deps.db, userId);
  if (!user) return undefined;
  const secret = await unsealSecret(deps.dataKeys, pending.secretJwe, totpContext(userId));
  return { secret, uri: totpUri({ issuer: options.issuer, label: user.email, secret }), startedAt };
}

/**
 * Confirms the pending enrolment with a code from it. In one transaction: the pending row becomes
 * the person's authenticator (replacing an active one), the code's step counts as used, ten new
 * recovery codes replace the old ones, and `totp.enable` and `recovery_codes.generate` are
 * recorded as `by`. Returns the recovery codes, to be shown this once. A wrong code throws
 * WrongCodeError and changes nothing (the person tries again); no fresh pending row, NotFoundError.
 * With `startedAt`, only the enrolment beginTotpEnrolment started then is confirmed (one started
 * over since is NotFoundError). With `onlyIfNone` (an enrolment during sign-in, after a password
 * alone) an active authenticator is never replaced: ConflictError, nothing changed.
 */
export async function confirmTotpEnrolment(
  deps: SecondFactorDeps,
  by: AuditActor,
  userId: string,
  input: string,
  options: { onlyIfNone?: boolean; startedAt?: number } = {},
): Promise<{ recoveryCodes: string[] }> {
  const code = input.length > MAX_CODE_INPUT ? undefined : normaliseTotpCode(input);
  if (code === undefined) throw new WrongCodeError('malformed');
  const now = nowOf(deps);
  const pending = await findTotpFactor(deps.db, userId, 'pending');
  if (!isFreshPending(pending, now) || (options.startedAt !== undefined && pending.createdAt.getTime() !== options.startedAt)) {
    throw new NotFoundError(`a TOTP enrolment of user ${userId}`);
  }
  const secret = await unsealSecret(deps.dataKeys, pending.secretJwe, totpContext(userId));
  const check = await checkTotpCode(secret, code, { afterStep: -1, nowMs: now });
  if (!check.ok) throw new WrongCodeError(check.reason);
  const recoveryCodes = generateRecoveryCodes();
  const digests = recoveryCodes.map((shown) => recoveryCodeDigest(normaliseRecoveryCode(shown)!));
  await deps.db.transaction().execute(async (trx) => {
    const locked = await findPendingTotpForUpdate(trx, userId);
    // Started over meanwhile: this code was for the secret that enrolment replaced.
    if (!locked || locked.secretJwe !== pending.secretJwe) throw new WrongCodeError('invalid_code');
    // Checked under the pending row's lock, which every confirmation takes first.
    if (options.onlyIfNone && (await findTotpFactor(trx, userId, 'active'))) throw new ConflictError('totp', 'the person already has an authenticator');
    const at = new Date(now);
    await activatePendingTotp(trx, userId, check.step, at);
    await replaceRecoveryCodes(trx, userId, digests, at);
    await recordChange(deps.audit, trx, by, { action: 'totp.enable', target: `user:${userId}` });
    await recordChange(deps.audit, trx, by, { action: 'recovery_codes.generate', target: `user:${userId}`, details: { count: digests.length } });
  });
  return { recoveryCodes };
}

/**
 * Removes the person's authenticator (and any pending enrolment) and their recovery codes, in one
 * transaction recorded as `totp.disable`. NotFoundError when they have no authenticator.
 */
export async function disableTotp(deps: SecondFactorDeps, by: AuditActor, userId: string): Promise<void> {
  await deps.db.transaction().execute(async (trx) => {
    if (!(await findTotpFactor(trx, userId, 'active'))) throw new NotFoundError(`a TOTP authenticator of user ${userId}`);
    await deleteTotpFactors(trx, userId);
    const removed = await deleteRecoveryCodes(trx, userId);
    await recordChange(deps.audit, trx, by, { action: 'totp.disable', target: `user:${userId}`, details: { recovery_codes_removed: removed } });
  });
}

/**
 * Replaces the person's recovery codes with ten new ones (the old ones stop working at once), in
 * one transaction recorded as `recovery_codes.generate` with the count, never the codes. Returns the
 * codes, to be shown this once. NotFoundError when the person has no second factor.
 */
export async function regenerateRecoveryCodes(deps: SecondFactorDeps, by: AuditActor, userId: string): Promise<string[]> {
  const codes = generateRecoveryCodes();
  const digests = codes.map((shown) => recoveryCodeDigest(normaliseRecoveryCode(shown)!));
  await deps.db.transaction().execute(async (trx) => {
    if (!(await findTotpFactor(trx, userId, 'active'))) throw new NotFoundError(`a second factor of user ${userId}`);
    await replaceRecoveryCodes(trx, userId, digests, new Date(nowOf(deps)));
    await recordChange(deps.audit, trx, by, { action: 'recovery_codes.generate', target: `user:${userId}`, details: { count: RECOVERY_CODE_COUNT } });
  });
  return codes;
}

/**
 * Checks a code typed at sign-in: six digits are a TOTP code (±1 step of 30 s, each step accepted
 * once, whoever races), anything else is tried as a recovery code (each accepted once). Malformed
 * input is refused without throwing. Nothing is audited here: the sign-in records `mfa.success` or
 * `mfa.failure` with the result.
 */
export async function verifySecondFactor(deps: SecondFactorDeps, userId: string, input: string): Promise<SecondFactorResult> {
  if (input.length > MAX_CODE_INPUT) return { ok: false, reason: 'malformed' };
  const totp = normaliseTotpCode(input);
  if (totp !== undefined) {
    const factor = await findTotpFactor(deps.db, userId, 'active');
    if (!factor) return { ok: false, reason: 'no_factor' };
    const secret = await unsealSecret(deps.dataKeys, factor.secretJwe, totpContext(userId));
    const nowMs = nowOf(deps);
    const check = await checkTotpCode(secret, totp, { afterStep: factor.lastUsedStep, nowMs });
    if (!check.ok) {
      // Right, but of a step already used: said as such (the audit's `code_reused`).
      if (check.reason === 'invalid_code' && factor.lastUsedStep >= 0) {
        const again = await checkTotpCode(secret, totp, { afterStep: -1, nowMs });
        if (again.ok && again.step <= factor.lastUsedStep) return { ok: false, reason: 'code_reused' };
      }
      return { ok: false, reason: check.reason };
    }
    if (!(await advanceTotpStep(deps.db, userId, check.step))) return { ok: false, reason: 'code_reused' };
    return { ok: true, method: 'totp', recoveryCodesLeft: await countUnusedRecoveryCodes(deps.db, userId) };
  }
  const recovery = normaliseRecoveryCode(input);
  if (recovery === undefined) return { ok: false, reason: 'malformed' };
  if (!(await useRecoveryCode(deps.db, userId, recoveryCodeDigest(recovery), new Date(nowOf(deps))))) return { ok: false, reason: 'invalid_code' };
  return { ok: true, method: 'recovery_code', recoveryCodesLeft: await countUnusedRecoveryCodes(deps.db, userId) };
}

/**
 * What a code typed at sign-in reads as, without checking it: six digits are a TOTP code, anything
 * verifySecondFactor would try as a recovery code is one, and the rest (undefined) is no code at all.
 * For counting what was refused; verifySecondFactor decides.
 */
export function secondFactorMethodOf(input: string): 'totp' | 'recovery_code' | undefined {
  if (input.length > MAX_CODE_INPUT) return undefined;
  if (normaliseTotpCode(input) !== undefined) return 'totp';
  return normaliseRecoveryCode(input) !== undefined ? 'recovery_code' : undefined;
}

/**
 * Whether the person has a confirmed authenticator: then a password alone never finishes their
 * sign-in (design D6). One indexed read, on every password sign-in.
 */
export async function hasSecondFactor(db: Kysely<Database>, userId: string): Promise<boolean> {
  return (await findTotpFactor(db, userId, 'active')) !== undefined;
}

/**
 * Whether the person has any second factor: a confirmed authenticator app or a passkey (a passkey
 * with user verification is two factors in itself, and a passkey sign-in gives acr mfa). The one
 * rule for "has a second factor" wherever it is asked: after a password at sign-in (D6), for a
 * step-up, for a re-authentication on /account (acr mfa then), and for what MFA_REQUIRED lets the
 * person remove on /account.
 */
export async function hasAnySecondFactor(db: Kysely<Database>, userId: string): Promise<boolean> {
  return (await hasSecondFactor(db, userId)) || (await userHasPasskey(db, userId));
}

/** What the person has enrolled. */
export async function secondFactorStatus(db: Kysely<Database>, userId: string, nowMs = Date.now()): Promise<SecondFactorStatus> {
  const active = await findTotpFactor(db, userId, 'active');
  const pending = active ? undefined : await findTotpFactor(db, userId, 'pending');
  return {
    totp: active ? 'active' : isFreshPending(pending, nowMs) ? 'pending' : 'none',
    recoveryCodesLeft: await countUnusedRecoveryCodes(db, userId),
  };
}
