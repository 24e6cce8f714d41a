import { CompactEncrypt, compactDecrypt, decodeProtectedHeader, errors as joseErrors } from 'jose';
import type { DataKey, DataKeyring } from '../keys/data-key.js';

/**
 * A secret the server must read back (a TOTP secret, an upstream provider's client secret), as it
 * is stored: a compact JWE (`alg: dir`, `enc: A256GCM`) under a data key of KEYS_DIR, whose
 * protected header names the key (`kid`) and the row it belongs to (`ctx`). The header is the
 * AES-GCM additional data, so neither can be changed without the JWE failing to open. `kid` is
 * stored beside the JWE (a `key_id` column), so rows under older keys are found without parsing.
 */
export interface SealedSecret {
  jwe: string;
  kid: string;
}

/** Why a sealed secret was refused: never the secret, nor anything derived from it. */
export type SealedSecretRefusal = 'malformed' | 'unknown_key' | 'wrong_context' | 'not_authentic';

/** A sealed secret that does not open: tampered, moved to another row, or under a key this node does not have. */
export class SealedSecretError extends Error {
  readonly reason: SealedSecretRefusal;

  constructor(reason: SealedSecretRefusal, message: string) {
    super(message);
    this.name = 'SealedSecretError';
    this.reason = reason;
  }
}

const ALG = 'dir';
const ENC = 'A256GCM';
const CONTEXT = /^[a-z_]+:[^\s]{1,200}$/;

function checkContext(context: string): void {
  // A programming error, not bad input: every caller passes `<kind>:<row id>`.
  if (!CONTEXT.test(context)) throw new TypeError(`a sealed secret's context is "<kind>:<row id>" (got ${JSON.stringify(context)})`);
}

/**
 * Encrypts `plaintext` for the row `context` names (`totp:<user id>`, `upstream:<provider id>`)
 * under the newest data key. The keys directory is re-read first (seals are rare: an enrolment, a
 * provider's registration), so a seal never uses a key older than the newest on disk; a caller
 * sealing many at once (re-encryption) reloads once itself and passes `reload: false`.
 *
 * @example
 * const { jwe, kid } = await sealSecret(dataKeys, secret, `totp:${userId}`);
 * // store jwe in secret_jwe and kid in key_id
 */
export async function sealSecret(ring: DataKeyring, plaintext: string, context: string, options: { reload?: boolean } = {}): Promise<SealedSecret> {
  checkContext(context);
  if (options.reload !== false) await ring.reload();
  const key = ring.keys().at(-1);
  if (!key) throw new SealedSecretError('unknown_key', 'no data key to seal with');
  const jwe = await new CompactEncrypt(new TextEncoder().encode(plaintext))
    .setProtectedHeader({ alg: ALG, enc: ENC, kid: key.kid, ctx: context })
    .encrypt(key.secret);
  return { jwe, kid: key.kid };
}

/** The data key a sealed secret names, without opening it; undefined when it names none. */
export function sealedKid(jwe: string): string | undefined {
  try {
    const { kid } = decodeProtectedHeader(jwe);
    return typeof kid === 'string' ? kid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Decrypts a secret sealed by sealSecret for the row `context` names. Refused with
 * SealedSecretError when the JWE is not one of ours, names a key this node does not have (after
 * re-reading the keys directory once), was sealed for another row, or was changed.
 *
 * @example
 * const secret = await unsealSecret(dataKeys, row.secret_jwe, `totp:${row.user_id}`);
 */
export async function unsealSecret(ring: DataKeyring, jwe: string, context: string): Promise<string> {
  checkContext(context);
  const kid = sealedKid(jwe);
  if (kid === undefined) throw new SealedSecretError('malformed', 'the sealed secret is not a JWE naming a data key');
  let key: DataKey | undefined = ring.byKid(kid);
  if (!key) {
    await ring.reload();
    key = ring.byKid(kid);
  }
  if (!key) throw new SealedSecretError('unknown_key', `the sealed secret names data key ${kid}, which is not in the keys directory`);
  let opened;
  try {
    opened = await compactDecrypt(jwe, key.secret, { keyManagementAlgorithms: [ALG], contentEncryptionAlgorithms: [ENC] });
  } catch (error) {
    if (error instanceof joseErrors.JWEDecryptionFailed) throw new SealedSecretError('not_authentic', 'the sealed secret does not decrypt: it was changed, or sealed under another key');
    if (error instanceof joseErrors.JOSEError) throw new SealedSecretError('malformed', `the sealed secret is not one Gatehouse makes (${error.code})`);
    throw error;
  }
  // The header was authenticated with the ciphertext: its context is the one it was sealed for.
  if (opened.protectedHeader.ctx !== context) throw new SealedSecretError('wrong_context', `the sealed secret belongs to another row, not ${context}`);
  return new TextDecoder('utf-8', { fatal: true }).decode(opened.plaintext);
}
