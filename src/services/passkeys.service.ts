import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import {
  accountIdOfUserHandle,
  authenticationOptions,
  parseAuthenticationResponse,
  parseRegistrationResponse,
  passkeyMethod,
  PasskeyRejected,
  registrationOptions,
  verifyAuthentication,
  verifyRegistration,
  type PasskeyRefusal,
  type RelyingParty,
} from '../accounts/passkeys.js';
import {
  countPasskeysOfUser,
  deletePasskey,
  findPasskeyByCredentialId,
  findPasskeyOfUser,
  insertPasskey,
  listPasskeysOfUser,
  recordPasskeyUse,
  renamePasskey as renamePasskeyRow,
  userHasPasskey,
  type PasskeyRecord,
} from '../registry/passkey.repository.js';
import type { Database } from '../registry/tables.js';
import { findUserById, findUserByIdForUpdate, recordLogin } from '../registry/user.repository.js';
import { listUpstreamLinksOfUser } from '../registry/upstream.repository.js';
import type { EphemeralStore } from '../store/ephemeral-store.js';
import { recordChange, type AuditActor, type RegistryServiceDeps } from './changes.js';
import { isUniqueViolation, LastSignInMethodError, NotFoundError, ValidationError } from './errors.js';

export { PasskeyRejected, type PasskeyRefusal, type RelyingParty };

/*
 * The rules of passkeys (docs/design/sign-in-methods.md §4): registration (options, verification,
 * the row with its name, audited as the person), listing, renaming and removing, and their use at
 * sign-in (challenge taken once, credential looked up, the library's checks, the backup-eligible
 * flag, the counter moved on atomically, the person not disabled). The WebAuthn work itself is
 * accounts/passkeys.ts (@simplewebauthn/server).
 */

/** What the passkey service needs: the registry and its audit writer, the store challenges wait in, and who the passkeys are for. */
export interface PasskeyDeps extends RegistryServiceDeps {
  store: EphemeralStore;
  relyingParty: RelyingParty;
  /** Milliseconds since the epoch; Date.now unless given. */
  now?: () => number;
}

/** The ephemeral-store model of a pending WebAuthn ceremony (design §2.3). */
export const WEBAUTHN_CHALLENGE = 'WebAuthnChallenge';
/** How long a challenge waits for its answer (the browser's own timeout is 120 s). */
export const CHALLENGE_TTL_SECONDS = 300;

/** What a ceremony is for: the key of its challenge is `<purpose>:<binding>`. */
export type CeremonyPurpose = 'login' | 'mfa' | 'register';

/** A passkey as its owner sees it (never the key or the credential id). */
export interface PasskeySummary {
  id: string;
  name: string;
  /** Synced (backup eligible): a software-secured key, `swk`; else device-bound, `hwk`. */
  synced: boolean;
  createdAt: Date;
  lastUsedAt: Date | null;
}

const MAX_NAME_LENGTH = 64;
const nowOf = (deps: { now?: () => number }) => (deps.now ?? Date.now)();

function summary(row: PasskeyRecord): PasskeySummary {
  return { id: row.id, name: row.name, synced: row.backupEligible, createdAt: row.createdAt, lastUsedAt: row.lastUsedAt };
}

/** A passkey's name as stored: NFKC, control characters removed, trimmed, 1–64 characters; ValidationError otherwise. */
export function normalisePasskeyName(input: string): string {
  // eslint-disable-next-line no-control-regex
  const name = input.normalize('NFKC').replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, '').trim();
  if (name.length === 0 || [...name].length > MAX_NAME_LENGTH) {
    throw new ValidationError([{ field: 'name', message: `a passkey's name has 1 to ${MAX_NAME_LENGTH} characters` }]);
  }
  return name;
}

/** The default name of a new passkey: "Passkey <date>". */
export function defaultPasskeyName(at: Date): string {
  return `Passkey ${at.toISOString().slice(0, 10)}`;
}

async function putChallenge(deps: PasskeyDeps, purpose: CeremonyPurpose, binding: string, challenge: string, accountId?: string): Promise<void> {
  // One challenge per purpose and binding is alive at a time: a new options request replaces it.
  await deps.store.upsert(WEBAUTHN_CHALLENGE, `${purpose}:${binding}`, { challenge, purpose, ...(accountId ? { accountId } : {}) }, CHALLENGE_TTL_SECONDS);
}

/** Takes the challenge once (design §4.1 step 2): missing or expired is stale, already taken is replayed. */
async function takeChallenge(deps: PasskeyDeps, purpose: CeremonyPurpose, binding: string): Promise<{ challenge: string; accountId?: string }> {
  const id = `${purpose}:${binding}`;
  const found = await deps.store.find(WEBAUTHN_CHALLENGE, id);
  if (!found || typeof found.challenge !== 'string') throw new PasskeyRejected('stale_challenge');
  if (found.consumed) throw new PasskeyRejected('replayed_challenge');
  const taken = await deps.store.consume(WEBAUTHN_CHALLENGE, id);
  if (taken.result === 'spent') throw new PasskeyRejected('replayed_challenge');
  if (taken.result === 'missing') throw new PasskeyRejected('stale_challenge');
  // A new options request may have replaced the entry between find and consume: then what was
  // consumed is the new challenge, not the one found, and the found one could be verified twice.
  // Only the caller that consumed the challenge it found goes on.
  const after = await deps.store.find(WEBAUTHN_CHALLENGE, id);
  if (!after || after.challenge !== found.challenge) throw new PasskeyRejected('stale_challenge');
  return { challenge: found.challenge, ...(typeof found.accountId === 'string' ? { accountId: found.accountId } : {}) };
}

/**
 * Options for adding a passkey to the person `accountId` (for `startRegistration` in the browser):
 * a discoverable credential with user verification, none of the person's own passkeys again. The
 * challenge waits under `register:<binding>` (the caller's binding: the /account page uses its
 * session uid), for registerPasskey. NotFoundError for an unknown person.
 *
 * @example
 * const options = await passkeyRegistrationOptions(deps, person.id, session.uid);
 * ctx.body = options; // JSON for SimpleWebAuthnBrowser.startRegistration({ optionsJSON })
 */
export async function passkeyRegistrationOptions(deps: PasskeyDeps, accountId: string, binding: string): Promise<PublicKeyCredentialCreationOptionsJSON> {
  const person = await findUserById(deps.db, accountId);
  if (!person) throw new NotFoundError(`user ${accountId}`);
  const existing = await listPasskeysOfUser(deps.db, accountId);
  const options = await registrationOptions(deps.relyingParty, person, existing);
  await putChallenge(deps, 'register', binding, options.challenge, accountId);
  return options;
}

/**
 * Adds the passkey the browser created (`startRegistration`'s JSON, as text) to the person, under
 * `name` (normalised; empty gives "Passkey <date>"), after taking the challenge of
 * passkeyRegistrationOptions for the same binding and person once and verifying the answer. In one
 * transaction with `passkey.register` recorded as `by` (`person:<id>` when the person does it).
 * PasskeyRejected (reason) when the answer is refused, ValidationError for a bad name: nothing is
 * written then.
 *
 * @example
 * const passkey = await registerPasskey(deps, { actor: `person:${id}`, requestId, ip }, id, form.response, form.name, session.uid);
 */
export async function registerPasskey(
  deps: PasskeyDeps,
  by: AuditActor,
  accountId: string,
  responseText: string,
  name: string,
  binding: string,
): Promise<PasskeySummary> {
  const createdAt = new Date(nowOf(deps));
  const finalName = name.trim() === '' ? defaultPasskeyName(createdAt) : normalisePasskeyName(name);
  const response = parseRegistrationResponse(responseText);
  const stored = await takeChallenge(deps, 'register', binding);
  if (stored.accountId !== accountId) throw new PasskeyRejected('wrong_user');
  const verified = await verifyRegistration(deps.relyingParty, response, stored.challenge);
  const id = randomUUID();
  try {
    return await deps.db.transaction().execute(async (trx) => {
      if (!(await findUserById(trx, accountId))) throw new NotFoundError(`user ${accountId}`);
      const row = await insertPasskey(trx, {
        id,
        user_id: accountId,
        credential_id: verified.credentialId,
        public_key: Buffer.from(verified.publicKey),
        counter: verified.counter,
        transports: verified.transports,
        backup_eligible: verified.backupEligible,
        backup_state: verified.backupState,
        aaguid: verified.aaguid,
        name: finalName,
        created_at: createdAt,
      });
      await recordChange(deps.audit, trx, by, {
        action: 'passkey.register',
        target: `passkey:${id}`,
        details: { user_id: accountId, name: finalName, backup_eligible: verified.backupEligible, aaguid: verified.aaguid },
      });
      return summary(row);
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw new PasskeyRejected('already_registered', error);
    throw error;
  }
}

/** The person's passkeys, oldest first. */
export async function listPasskeys(db: Kysely<Database>, accountId: string): Promise<PasskeySummary[]> {
  return (await listPasskeysOfUser(db, accountId)).map(summary);
}

/** Whether the person has a passkey: then, like an authenticator app, it is asked for after a password (design D6). */
export function hasPasskey(db: Kysely<Database>, accountId: string): Promise<boolean> {
  return userHasPasskey(db, accountId);
}

/** Renames one of the person's passkeys, recorded as `passkey.rename`; NotFoundError if it is not theirs, ValidationError for a bad name. */
export async function renamePasskey(deps: RegistryServiceDeps, by: AuditActor, accountId: string, passkeyId: string, name: string): Promise<PasskeySummary> {
  const finalName = normalisePasskeyName(name);
  return deps.db.transaction().execute(async (trx) => {
    const before = await findPasskeyOfUser(trx, accountId, passkeyId);
    if (!before || !(await renamePasskeyRow(trx, accountId, passkeyId, finalName))) throw new NotFoundError(`passkey ${passkeyId}`);
    await recordChange(deps.audit, trx, by, { action: 'passkey.rename', target: `passkey:${passkeyId}`, details: { user_id: accountId, from: before.name, name: finalName } });
    return summary({ ...before, name: finalName });
  });
}

/**
 * Removes one of the person's passkeys (it stops working at once), recorded as `passkey.remove`;
 * NotFoundError if it is not theirs, LastSignInMethodError if it is their last way to sign in (no
 * password, no other passkey, no upstream link).
 */
export async function removePasskey(deps: RegistryServiceDeps, by: AuditActor, accountId: string, passkeyId: string): Promise<void> {
  await deps.db.transaction().execute(async (trx) => {
    // The person's row is locked first (as an unlink does): a removal and an unlink, or two
    // removals, run one after the other, so together they never take the last way in.
    const user = await findUserByIdForUpdate(trx, accountId);
    if (!user) throw new NotFoundError(`passkey ${passkeyId}`);
    const before = await findPasskeyOfUser(trx, accountId, passkeyId);
    if (!before) throw new NotFoundError(`passkey ${passkeyId}`);
    if (user.passwordHash === null && (await countPasskeysOfUser(trx, accountId)) <= 1 && (await listUpstreamLinksOfUser(trx, accountId)).length === 0) {
      throw new LastSignInMethodError();
    }
    if (!(await deletePasskey(trx, accountId, passkeyId))) throw new NotFoundError(`passkey ${passkeyId}`);
    await recordChange(deps.audit, trx, by, {
      action: 'passkey.remove',
      target: `passkey:${passkeyId}`,
      details: { user_id: accountId, name: before.name, backup_eligible: before.backupEligible },
    });
  });
}

/**
 * Options to sign in with a passkey, its challenge kept under `<purpose>:<binding>` (the
 * interaction's uid): `login` is discoverable (no list: the browser offers what it has for this RP
 * ID); `mfa` lists the credentials of `accountId` (the person whose password was right).
 */
export async function passkeySignInOptions(
  deps: PasskeyDeps,
  purpose: 'login' | 'mfa',
  binding: string,
  accountId?: string,
): Promise<PublicKeyCredentialRequestOptionsJSON> {
  const allow = purpose === 'mfa' ? await listPasskeysOfUser(deps.db, accountId ?? '') : undefined;
  const options = await authenticationOptions(deps.relyingParty, allow);
  await putChallenge(deps, purpose, binding, options.challenge, accountId);
  return options;
}

/** A passkey sign-in that was accepted: who, with which passkey, and its RFC 8176 method. */
export interface PasskeySignIn {
  ok: true;
  accountId: string;
  passkeyId: string;
  method: 'hwk' | 'swk';
  /** The person's sessions_valid_after: sessions from before it are over. */
  sessionsValidAfter: Date | null;
}

/** A passkey sign-in that was refused: why, and (when the credential was known) whose it was. Nothing was changed. */
export interface PasskeySignInRefused {
  ok: false;
  reason: PasskeyRefusal | 'rate_limited';
  passkeyId?: string;
  accountId?: string;
}

/**
 * Checks a passkey answer at sign-in (design §4.1): the shape, the challenge of
 * passkeySignInOptions for `<purpose>:<binding>` taken once, the credential (known; for `login`
 * the userHandle is its owner; for `mfa` it belongs to `accountId`), `gate(owner)` (the caller's
 * rate limit: false refuses with `rate_limited` before any signature is checked), the library's
 * checks (challenge, origin, RP ID, user verification, signature, counter), the backup-eligible
 * flag unchanged, the owner not disabled, and then the counter, backup state and last use written
 * only if the counter went up (one of concurrent uses wins). Never throws for a bad answer: a
 * refusal says why and changed nothing.
 */
export async function verifyPasskeySignIn(
  deps: PasskeyDeps,
  purpose: 'login' | 'mfa',
  binding: string,
  responseText: string,
  options: { accountId?: string; gate?: (accountId: string) => Promise<boolean> } = {},
): Promise<PasskeySignIn | PasskeySignInRefused> {
  let row: PasskeyRecord | undefined;
  try {
    const response = parseAuthenticationResponse(responseText);
    const stored = await takeChallenge(deps, purpose, binding);
    row = await findPasskeyByCredentialId(deps.db, response.id);
    if (!row) throw new PasskeyRejected('unknown_credential');
    if (purpose === 'mfa' ? row.userId !== (options.accountId ?? stored.accountId) : accountIdOfUserHandle(response.response.userHandle) !== row.userId) {
      throw new PasskeyRejected('wrong_user');
    }
    if (options.gate && !(await options.gate(row.userId))) return { ok: false, reason: 'rate_limited', passkeyId: row.id, accountId: row.userId };
    const verified = await verifyAuthentication(deps.relyingParty, response, stored.challenge, row);
    // The backup-eligible flag is fixed when a credential is made (WebAuthn §6.1.3): a change is not the same authenticator.
    if (verified.backupEligible !== row.backupEligible) throw new PasskeyRejected('backup_flag_changed');
    const person = await findUserById(deps.db, row.userId);
    if (!person || person.disabled) throw new PasskeyRejected('disabled');
    const at = new Date(nowOf(deps));
    const passkeyId = row.id;
    const signedIn = await deps.db.transaction().execute(async (trx) => {
      // Only if the counter went up: of concurrent uses of one answer, one gets here (§4.1 step 6).
      if (!(await recordPasskeyUse(trx, passkeyId, { counter: verified.newCounter, backupState: verified.backupState, at }))) throw new PasskeyRejected('counter_regression');
      // The person's last sign-in, as a password sign-in records it; gone meanwhile, no sign-in.
      const updated = await recordLogin(trx, person.id, at);
      if (!updated || updated.disabled) throw new PasskeyRejected('disabled');
      return updated;
    });
    return { ok: true, accountId: row.userId, passkeyId: row.id, method: passkeyMethod(row.backupEligible), sessionsValidAfter: signedIn.sessionsValidAfter };
  } catch (error) {
    if (!(error instanceof PasskeyRejected)) throw error;
    return { ok: false, reason: error.reason, ...(row ? { passkeyId: row.id, accountId: row.userId } : {}) };
  }
}
