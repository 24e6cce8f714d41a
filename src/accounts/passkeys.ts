import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type AuthenticatorTransport,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { z } from 'zod';
import type { Amr } from './authentication-context.js';

/*
 * Passkeys (WebAuthn) through @simplewebauthn/server: the options a browser gets and the checks of
 * what it answers (docs/design/sign-in-methods.md §4.1). No CBOR, attestation or signature is read
 * here: the library does all of it. Every library throw becomes a PasskeyRejected with a reason
 * (never a 500); the registry side (challenges, rows, counters) is services/passkeys.service.ts.
 */

/** Who the passkeys are for: RP ID = the issuer's host, origin = the issuer's origin. */
export interface RelyingParty {
  rpID: string;
  origin: string;
  rpName: string;
}

/** The relying party of an issuer: its hostname is the RP ID (an IP address cannot be one). */
export function relyingPartyOf(issuer: string, rpName = 'Gatehouse'): RelyingParty {
  const url = new URL(issuer);
  return { rpID: url.hostname, origin: url.origin, rpName };
}

/** How long a browser may take over a ceremony (the stored challenge lives longer: §2.3). */
export const CEREMONY_TIMEOUT_MS = 120_000;

/** The largest WebAuthn response accepted (the form field's cap, design §4.1 step 1). */
export const MAX_RESPONSE_BYTES = 16 * 1024;

/** Why a passkey was not accepted (audit `details.reason`; never the response itself). */
export type PasskeyRefusal =
  | 'malformed'
  | 'stale_challenge'
  | 'replayed_challenge'
  | 'unknown_credential'
  | 'wrong_user'
  | 'wrong_challenge'
  | 'wrong_origin'
  | 'wrong_rp_id'
  | 'user_verification'
  | 'counter_regression'
  | 'backup_flag_changed'
  | 'already_registered'
  | 'disabled'
  | 'invalid';

/** A passkey response that was refused; `reason` says why. Nothing was changed. */
export class PasskeyRejected extends Error {
  readonly reason: PasskeyRefusal;

  constructor(reason: PasskeyRefusal, cause?: unknown) {
    super(`passkey refused: ${reason}`, cause === undefined ? undefined : { cause });
    this.name = 'PasskeyRejected';
    this.reason = reason;
  }
}

/**
 * What a library error message says went wrong, as a refusal reason (the message itself is only
 * logged). Only the fixed start of each @simplewebauthn/server 14 message is matched: the rest
 * quotes values from the response (its origin, challenge, type), which the sender chose, so a
 * response cannot pick the reason its refusal is recorded with.
 */
export function refusalOfLibraryError(error: unknown): PasskeyRefusal {
  if (error instanceof SyntaxError) return 'malformed';
  const message = error instanceof Error ? error.message : '';
  if (/^Response counter value \d+ was lower than expected \d+$/.test(message)) return 'counter_regression';
  if (/^User verification required, but user could not be verified$|^User not present during (authentication|registration)/.test(message)) return 'user_verification';
  if (/^Unexpected RP ID hash/.test(message)) return 'wrong_rp_id';
  if (/^Unexpected response origin |^Unexpected (cross-origin (authentication|registration) response )?top origin |^Detected cross-origin /.test(message)) return 'wrong_origin';
  if (/^Unexpected (authentication|registration) response challenge /.test(message)) return 'wrong_challenge';
  if (/^(Missing credential ID|Credential ID was not base64url-encoded|Credential missing response|Credential response \w+ was not a (base64url )?string)/.test(message)) return 'malformed';
  return 'invalid';
}

const base64url = (max: number) => z.string().min(1).max(max).regex(/^[A-Za-z0-9_-]+={0,2}$/);
const transports = z.array(z.string().max(32)).max(10).optional();
const clientExtensionResults = z.record(z.string(), z.unknown());

/** The members every PublicKeyCredential JSON has, registration or authentication. */
const credentialFields = {
  id: base64url(1400),
  rawId: base64url(1400),
  type: z.literal('public-key'),
  authenticatorAttachment: z.enum(['platform', 'cross-platform']).optional(),
  clientExtensionResults,
};

const authenticationResponseSchema = z.object({
  ...credentialFields,
  response: z.object({
    clientDataJSON: base64url(4096),
    authenticatorData: base64url(4096),
    signature: base64url(1024),
    userHandle: base64url(128).optional(),
  }),
});

const registrationResponseSchema = z.object({
  ...credentialFields,
  response: z.object({
    clientDataJSON: base64url(4096),
    attestationObject: base64url(8192),
    authenticatorData: base64url(8192).optional(),
    transports,
    publicKeyAlgorithm: z.number().int().optional(),
    publicKey: base64url(4096).optional(),
  }),
});

function parseJson(text: string): unknown {
  if (Buffer.byteLength(text) > MAX_RESPONSE_BYTES) throw new PasskeyRejected('malformed');
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new PasskeyRejected('malformed', error);
  }
}

/** A browser's sign-in answer (`startAuthentication`'s JSON), shape-checked; PasskeyRejected('malformed') otherwise. */
export function parseAuthenticationResponse(text: string): AuthenticationResponseJSON {
  const parsed = authenticationResponseSchema.safeParse(parseJson(text));
  if (!parsed.success) throw new PasskeyRejected('malformed');
  return parsed.data as AuthenticationResponseJSON;
}

/** A browser's registration answer (`startRegistration`'s JSON), shape-checked; PasskeyRejected('malformed') otherwise. */
export function parseRegistrationResponse(text: string): RegistrationResponseJSON {
  const parsed = registrationResponseSchema.safeParse(parseJson(text));
  if (!parsed.success) throw new PasskeyRejected('malformed');
  return parsed.data as RegistrationResponseJSON;
}

/** A stored credential, as the options and the checks need it. */
export interface StoredCredential {
  credentialId: string;
  publicKey: Uint8Array<ArrayBuffer>;
  counter: number;
  transports: readonly string[];
}

const asTransports = (list: readonly string[]) => list as AuthenticatorTransport[];

/** Options to create a discoverable passkey with user verification, for `person` (excluding the ones they have). */
export function registrationOptions(
  rp: RelyingParty,
  person: { id: string; email: string; name: string | null },
  existing: readonly StoredCredential[],
): Promise<PublicKeyCredentialCreationOptionsJSON> {
  return generateRegistrationOptions({
    rpName: rp.rpName,
    rpID: rp.rpID,
    userName: person.email,
    // users.id is a random UUID: stable and not personal; it comes back as the userHandle.
    userID: new TextEncoder().encode(person.id),
    userDisplayName: person.name ?? person.email,
    attestationType: 'none',
    excludeCredentials: existing.map((c) => ({ id: c.credentialId, transports: asTransports(c.transports) })),
    authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
    timeout: CEREMONY_TIMEOUT_MS,
  });
}

/** Options to sign in: discoverable (no list) on the login page; the person's credentials as a second factor. */
export function authenticationOptions(rp: RelyingParty, allow?: readonly StoredCredential[]): Promise<PublicKeyCredentialRequestOptionsJSON> {
  return generateAuthenticationOptions({
    rpID: rp.rpID,
    userVerification: 'required',
    timeout: CEREMONY_TIMEOUT_MS,
    ...(allow ? { allowCredentials: allow.map((c) => ({ id: c.credentialId, transports: asTransports(c.transports) })) } : {}),
  });
}

/** A verified registration: what the passkeys row keeps. */
export interface VerifiedRegistration {
  credentialId: string;
  publicKey: Uint8Array;
  counter: number;
  transports: string[];
  backupEligible: boolean;
  backupState: boolean;
  aaguid: string | null;
}

/** Verifies a registration answer against the challenge; PasskeyRejected with the reason otherwise. */
export async function verifyRegistration(rp: RelyingParty, response: RegistrationResponseJSON, expectedChallenge: string): Promise<VerifiedRegistration> {
  let verified;
  try {
    verified = await verifyRegistrationResponse({
      response,
      expectedChallenge,
      expectedOrigin: rp.origin,
      expectedRPID: rp.rpID,
      requireUserVerification: true,
    });
  } catch (error) {
    throw new PasskeyRejected(refusalOfLibraryError(error), error);
  }
  const info = verified.registrationInfo;
  if (!verified.verified || !info) throw new PasskeyRejected('invalid');
  if (!info.userVerified) throw new PasskeyRejected('user_verification');
  return {
    credentialId: info.credential.id,
    publicKey: info.credential.publicKey,
    counter: info.credential.counter,
    transports: [...(info.credential.transports ?? [])],
    backupEligible: info.credentialDeviceType === 'multiDevice',
    backupState: info.credentialBackedUp,
    aaguid: info.aaguid || null,
  };
}

/** A verified sign-in answer: the new counter and the flags it carried. */
export interface VerifiedAuthentication {
  newCounter: number;
  backupEligible: boolean;
  backupState: boolean;
}

/** Verifies a sign-in answer for `credential` against the challenge; PasskeyRejected with the reason otherwise. */
export async function verifyAuthentication(
  rp: RelyingParty,
  response: AuthenticationResponseJSON,
  expectedChallenge: string,
  credential: StoredCredential,
): Promise<VerifiedAuthentication> {
  let verified;
  try {
    verified = await verifyAuthenticationResponse({
      response,
      expectedChallenge,
      expectedOrigin: rp.origin,
      expectedRPID: rp.rpID,
      credential: { id: credential.credentialId, publicKey: credential.publicKey, counter: credential.counter, transports: asTransports(credential.transports) },
      requireUserVerification: true,
    });
  } catch (error) {
    throw new PasskeyRejected(refusalOfLibraryError(error), error);
  }
  if (!verified.verified) throw new PasskeyRejected('invalid');
  if (!verified.authenticationInfo.userVerified) throw new PasskeyRejected('user_verification');
  return {
    newCounter: verified.authenticationInfo.newCounter,
    backupEligible: verified.authenticationInfo.credentialDeviceType === 'multiDevice',
    backupState: verified.authenticationInfo.credentialBackedUp,
  };
}

/** The RFC 8176 method of a passkey: a synced (backup-eligible) one is software-secured, `swk`; else `hwk` (design §3.2). */
export function passkeyMethod(backupEligible: boolean): Extract<Amr, 'hwk' | 'swk'> {
  return backupEligible ? 'swk' : 'hwk';
}

/** The userHandle a discoverable sign-in returns, decoded back to the account id it was made from. */
export function accountIdOfUserHandle(userHandle: string | undefined): string | undefined {
  if (!userHandle) return undefined;
  const decoded = Buffer.from(userHandle, 'base64url').toString('utf8');
  return decoded.length > 0 ? decoded : undefined;
}
