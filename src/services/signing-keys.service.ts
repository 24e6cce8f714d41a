import { z } from 'zod';
import { fapi2SigningAlg, keyState, loadKeys, SIGNING_ALGS, type KeyState, type SigningAlg, type StoredKey } from '../keys/key-store.js';
import type { AuditActor } from './changes.js';
import { rotateSigningKeys, type KeyChange, type KeysServiceDeps } from './keys.service.js';
import { NotFoundError } from './errors.js';
import { parseInput } from './validation.js';

/** The longest activation delay a rotation takes: a JWKS cache is minutes, not days. */
export const MAX_ACTIVATION_DELAY_SECONDS = 86_400;

/** What a rotation asked through the admin API takes: the delay (seconds, 300 unless said) and the algorithm. */
export const keyRotateSchema = z.strictObject({
  activate_in: z
    .number({ error: 'must be a whole number of seconds' })
    .int('must be a whole number of seconds')
    .min(0, 'must be 0 (at once, as after a leak) or more seconds')
    .max(MAX_ACTIVATION_DELAY_SECONDS, `must be at most ${MAX_ACTIVATION_DELAY_SECONDS} seconds (one day)`)
    .optional()
    .describe('seconds from now until the new key signs and the current one retires (300 unless said; 0: at once, as after a leak)'),
  alg: z.enum(SIGNING_ALGS).optional().describe("the new key's algorithm (that of the current signing key unless said)"),
});
export type KeyRotateInput = z.input<typeof keyRotateSchema>;

/** A signing key as the admin API shows it: what `keys list` shows, whether it signs now, and its age. Never private material. */
export interface SigningKeyView {
  kid: string;
  alg: SigningAlg;
  /** 'fapi2' for a key that signs only for clients of the FAPI 2.0 profile. */
  profile: 'fapi2' | null;
  status: KeyState;
  /** It signs now: the server's signing key, or the key fapi2 clients' tokens are signed with. */
  signing: boolean;
  createdAt: string;
  /** When it starts (or started) signing; null: from its creation. */
  activatesAt: string | null;
  retiredAt: string | null;
  ageSeconds: number;
}

/** The keys that sign at `now`: the first active server key, and the first active key of the algorithm fapi2 clients get. */
function signersAt(keys: readonly StoredKey[], now: number): Set<string> {
  const active = keys.filter((key) => keyState(key, now) === 'active');
  const server = active.find((key) => key.profile === undefined);
  const fapi2Alg = fapi2SigningAlg(keys, now);
  const fapi2 = fapi2Alg ? active.find((key) => key.alg === fapi2Alg) : undefined;
  return new Set([server?.kid, fapi2?.kid].filter((kid): kid is string => kid !== undefined));
}

function toView(key: StoredKey, signers: Set<string>, now: number): SigningKeyView {
  return {
    kid: key.kid,
    alg: key.alg,
    profile: key.profile ?? null,
    status: keyState(key, now),
    signing: signers.has(key.kid),
    createdAt: key.createdAt,
    activatesAt: key.activatesAt ?? null,
    retiredAt: key.retiredAt,
    ageSeconds: Math.max(0, Math.floor((now - Date.parse(key.createdAt)) / 1000)),
  };
}

/** Every signing key in KEYS_DIR (all of them published in the JWKS), in signing order: the signing key first. */
export async function listSigningKeys(keysDir: string, now = Date.now()): Promise<SigningKeyView[]> {
  const keys = await loadKeys(keysDir);
  const signers = signersAt(keys, now);
  return keys.map((key) => toView(key, signers, now));
}

/** One signing key by kid; NotFoundError when KEYS_DIR holds none (a key retired over 48 hours ago is deleted at the next rotation). */
export async function getSigningKey(keysDir: string, kid: string, now = Date.now()): Promise<SigningKeyView> {
  const found = (await listSigningKeys(keysDir, now)).find((key) => key.kid === kid);
  if (!found) throw new NotFoundError(`signing key ${kid}`);
  return found;
}

/** The wire form of a signing key (snake_case). */
export function signingKeyToJson(key: SigningKeyView) {
  return {
    kid: key.kid,
    alg: key.alg,
    use: 'sig' as const,
    profile: key.profile,
    status: key.status,
    signing: key.signing,
    created_at: key.createdAt,
    activates_at: key.activatesAt,
    retired_at: key.retiredAt,
    age_seconds: key.ageSeconds,
  };
}

/** KEYS_DIR cannot be written by this process (mounted read-only from a secret, or owned by someone else): nothing was changed. */
export class KeysNotWritableError extends Error {
  constructor(keysDir: string, cause: unknown) {
    super(`the keys directory ${keysDir} is not writable by this server: rotate with "gatehouse keys rotate" where it is`, { cause });
    this.name = 'KeysNotWritableError';
  }
}

const NOT_WRITABLE = new Set(['EROFS', 'EACCES', 'EPERM']);

/** True for a file system refusal to write (read-only mount, permissions), as node:fs reports it. */
export function isNotWritable(error: unknown): boolean {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && NOT_WRITABLE.has(code);
}

/**
 * Rotates the signing keys as asked through the admin API (see rotateSigningKeys: the new key is
 * published at once and signs from `activate_in` seconds later; recorded as `keys.rotate` by `by`).
 * ValidationError naming the field for a bad input, KeysNotWritableError when KEYS_DIR is read-only;
 * in both cases nothing was changed.
 */
export async function rotateSigningKeysAsked(
  deps: KeysServiceDeps,
  by: AuditActor,
  input: unknown,
): Promise<KeyChange<{ created: StoredKey; retired: string[]; removed: string[]; profile?: { created: StoredKey; retired: string[] } }>> {
  const data = parseInput(keyRotateSchema, input);
  try {
    return await rotateSigningKeys(deps, by, data.alg, data.activate_in === undefined ? {} : { activateInMs: data.activate_in * 1000 });
  } catch (error) {
    if (isNotWritable(error)) throw new KeysNotWritableError(deps.keysDir, error);
    throw error;
  }
}
