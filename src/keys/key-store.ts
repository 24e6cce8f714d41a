import { randomBytes, randomUUID } from 'node:crypto';
import { chmod, link, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exportJWK, generateKeyPair, type JWK } from 'jose';

export const SIGNING_ALGS = ['RS256', 'PS256', 'ES256', 'EdDSA'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];

/**
 * The algorithms the FAPI 2.0 Security Profile lets the server sign with (of those Gatehouse's keys
 * take; EdDSA is allowed too, but few clients verify it). A client of profile fapi2 gets its ID
 * token and access tokens signed with one of them.
 */
export const FAPI2_SIGNING_ALGS = ['PS256', 'ES256'] as const satisfies readonly SigningAlg[];
export type Fapi2SigningAlg = (typeof FAPI2_SIGNING_ALGS)[number];

/** The algorithm of a profile key made when none exists. */
export const PROFILE_KEY_ALG: Fapi2SigningAlg = 'ES256';

export const isFapi2SigningAlg = (alg: unknown): alg is Fapi2SigningAlg => (FAPI2_SIGNING_ALGS as readonly unknown[]).includes(alg);

/** How long a retired key's public half stays published: longer than any token it signed lives. */
export const RETIRED_KEY_RETENTION_MS = 48 * 60 * 60 * 1000;

const KEY_FILE = /^(?<kid>[A-Za-z0-9_-]{8,64})\.json$/;
const DIGEST_KEY_FILE = 'client-secret.key';

/** How long after `keys rotate` the new key starts signing, unless told otherwise (see rotateKeys). */
export const DEFAULT_ACTIVATION_DELAY_MS = 5 * 60 * 1000;

/**
 * A signing key as stored in keys/: the private JWK plus when it was made, when it starts signing
 * (absent or null: at once) and when it stops (null: not yet).
 *
 * `profile: 'fapi2'` marks a profile key: it signs only for clients of the FAPI 2.0 profile, in an
 * algorithm that profile allows (FAPI2_SIGNING_ALGS), beside the server's signing key (which stays
 * the newest active key without the mark, RS256 unless chosen otherwise). Profile keys are
 * published, rotated and retired like the others.
 */
export interface StoredKey {
  kid: string;
  alg: SigningAlg;
  createdAt: string;
  activatesAt?: string | null;
  retiredAt: string | null;
  profile?: 'fapi2';
  jwk: JWK;
}

/** pending: published, not signing yet; active: signs (the newest active one does); retired: published only. */
export type KeyState = 'pending' | 'active' | 'retired';

/** What `keys list` shows: no private material. */
export type KeySummary = {
  kid: string;
  alg: SigningAlg;
  createdAt: string;
  activatesAt: string | null;
  retiredAt: string | null;
  status: KeyState;
  /** 'fapi2' for a profile key (see StoredKey). */
  profile?: 'fapi2';
};

/** A key's state at `now` (ms since the epoch). */
export function keyState(key: StoredKey, now = Date.now()): KeyState {
  if (key.retiredAt !== null && Date.parse(key.retiredAt) <= now) return 'retired';
  if (key.activatesAt && Date.parse(key.activatesAt) > now) return 'pending';
  return 'active';
}

/** The next moment after `now` at which some key changes state, if any: nodes rebuild their signer then. */
export function nextKeyChange(keys: readonly StoredKey[], now = Date.now()): number | undefined {
  const moments = keys
    .flatMap((key) => [key.activatesAt, key.retiredAt])
    .filter((moment): moment is string => typeof moment === 'string')
    .map((moment) => Date.parse(moment))
    .filter((moment) => moment > now);
  return moments.length > 0 ? Math.min(...moments) : undefined;
}

export class KeyStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyStoreError';
  }
}

function isStoredKey(value: unknown): value is StoredKey {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.kid === 'string' &&
    typeof v.alg === 'string' &&
    (SIGNING_ALGS as readonly string[]).includes(v.alg) &&
    typeof v.createdAt === 'string' &&
    (v.retiredAt === null || typeof v.retiredAt === 'string') &&
    (v.activatesAt === undefined || v.activatesAt === null || typeof v.activatesAt === 'string') &&
    (v.profile === undefined || (v.profile === 'fapi2' && isFapi2SigningAlg(v.alg))) &&
    typeof v.jwk === 'object' &&
    v.jwk !== null
  );
}

async function writePrivateFile(file: string, content: string): Promise<void> {
  const tmp = `${file}.${randomUUID()}.tmp`;
  await writeFile(tmp, content, { mode: 0o600, flag: 'wx' });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}

const STATE_ORDER: Record<KeyState, number> = { active: 0, pending: 1, retired: 2 };

const isProfileKey = (key: StoredKey) => key.profile !== undefined;

/**
 * Active keys first (the newest first: oidc-provider signs with the first key of the algorithm it
 * wants), then pending ones, then retired ones; in each state the server's keys before profile keys,
 * each newest first; as of `now`. So the first key is the signing key, and the first of a FAPI 2.0
 * algorithm is the active key a fapi2 client's tokens are signed with.
 */
function signingOrder(now: number): (a: StoredKey, b: StoredKey) => number {
  return (a, b) =>
    STATE_ORDER[keyState(a, now)] - STATE_ORDER[keyState(b, now)] ||
    Number(isProfileKey(a)) - Number(isProfileKey(b)) ||
    b.createdAt.localeCompare(a.createdAt);
}

/** Every key in the directory, in signing order. Files that are not keys are ignored. */
export async function loadKeys(dir: string): Promise<StoredKey[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const keys: StoredKey[] = [];
  for (const name of names) {
    const match = KEY_FILE.exec(name);
    if (!match) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(path.join(dir, name), 'utf8'));
    } catch {
      throw new KeyStoreError(`${path.join(dir, name)} is not a readable key file`);
    }
    if (!isStoredKey(parsed) || parsed.kid !== match.groups?.kid) {
      throw new KeyStoreError(`${path.join(dir, name)} is not a Gatehouse key file`);
    }
    keys.push(parsed);
  }
  return keys.sort(signingOrder(Date.now()));
}

/** A cheap fingerprint of the directory (names, sizes, times) to notice changes without reading keys. */
export async function keysFingerprint(dir: string): Promise<string> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((name) => KEY_FILE.test(name)).sort();
  } catch {
    return '';
  }
  const parts = await Promise.all(
    names.map(async (name) => {
      const s = await stat(path.join(dir, name)).catch(() => undefined);
      return `${name}:${s?.size ?? 0}:${s?.mtimeMs ?? 0}`;
    }),
  );
  return parts.join('|');
}

export function summarize(key: StoredKey): KeySummary {
  return {
    kid: key.kid,
    alg: key.alg,
    createdAt: key.createdAt,
    activatesAt: key.activatesAt ?? null,
    retiredAt: key.retiredAt,
    status: keyState(key),
    ...(key.profile ? { profile: key.profile } : {}),
  };
}

async function newKey(alg: SigningAlg, profile?: 'fapi2'): Promise<StoredKey> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
  const kid = randomBytes(12).toString('base64url');
  const jwk = { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
  return { kid, alg, createdAt: new Date().toISOString(), retiredAt: null, ...(profile ? { profile } : {}), jwk };
}

async function saveKey(dir: string, key: StoredKey): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writePrivateFile(path.join(dir, `${key.kid}.json`), `${JSON.stringify(key, null, 2)}\n`);
}

/** Adds a key. It becomes the signing key, since it is the newest active one. */
export async function generateKey(dir: string, alg: SigningAlg = 'RS256'): Promise<StoredKey> {
  const key = await newKey(alg);
  await saveKey(dir, key);
  return key;
}

/**
 * Adds a profile key for the FAPI 2.0 profile (see StoredKey), active at once: fapi2 clients' tokens
 * are signed with it from the next reload on. PROFILE_KEY_ALG unless told otherwise.
 */
export async function generateProfileKey(dir: string, alg: Fapi2SigningAlg = PROFILE_KEY_ALG): Promise<StoredKey> {
  if (!isFapi2SigningAlg(alg)) throw new KeyStoreError(`a key for the FAPI 2.0 profile must be one of ${FAPI2_SIGNING_ALGS.join(', ')}`);
  const key = await newKey(alg, 'fapi2');
  await saveKey(dir, key);
  return key;
}

/**
 * The algorithm fapi2 clients' tokens are signed with: that of the first active key (in signing
 * order) of a FAPI 2.0 algorithm, the signing key itself when it is PS256 or ES256, else the newest
 * active profile key. Undefined when there is none: fapi2 clients cannot be served then.
 */
export function fapi2SigningAlg(keys: readonly StoredKey[], now = Date.now()): Fapi2SigningAlg | undefined {
  const alg = [...keys].sort(signingOrder(now)).find((key) => keyState(key, now) === 'active' && isFapi2SigningAlg(key.alg))?.alg;
  return isFapi2SigningAlg(alg) ? alg : undefined;
}

/**
 * Makes a new signing key and retires the current ones. The new key is published (every node's
 * JWKS shows it within KEYS_POLL_MS) at once but signs only from `activateInMs` later, when the
 * current keys retire: no node ever signs with a key another node does not publish yet, and a
 * resource server that caches the JWKS has that long to see it. Retired keys stay published for
 * RETIRED_KEY_RETENTION_MS; keys retired longer ago than that are deleted.
 *
 * A profile key still in use (see StoredKey) is rotated with it, on the same schedule and in its
 * own algorithm: `profile` says which key was made and which retired.
 */
export async function rotateKeys(
  dir: string,
  alg?: SigningAlg,
  options: { activateInMs?: number } = {},
): Promise<{ created: StoredKey; retired: string[]; removed: string[]; profile?: { created: StoredKey; retired: string[] } }> {
  const existing = await loadKeys(dir);
  const now = new Date();
  const activatesAt = new Date(now.getTime() + (options.activateInMs ?? DEFAULT_ACTIVATION_DELAY_MS)).toISOString();
  // Every key that would still sign (or start signing) after the new one activates retires then.
  const current = existing.filter((key) => key.retiredAt === null || Date.parse(key.retiredAt) > Date.parse(activatesAt));
  const currentServer = current.filter((key) => !isProfileKey(key));
  const currentProfile = current.filter(isProfileKey);
  const activeAlg = existing.find((key) => !isProfileKey(key) && keyState(key, now.getTime()) === 'active')?.alg;
  const created = { ...(await newKey(alg ?? activeAlg ?? 'RS256')), activatesAt };
  // The profile keys go on in their algorithm; a server key of a FAPI 2.0 algorithm rotated to one
  // of another passes its role for fapi2 clients on to a new profile key.
  const profileAlg =
    currentProfile.find((key) => keyState(key, now.getTime()) === 'active')?.alg ??
    currentProfile[0]?.alg ??
    (!isFapi2SigningAlg(created.alg) && isFapi2SigningAlg(activeAlg) ? activeAlg : undefined);
  const profileCreated = profileAlg ? { ...(await newKey(profileAlg, 'fapi2')), activatesAt } : undefined;
  // The new keys are written first: a node that reloads in between publishes them, and signs with the old ones.
  await saveKey(dir, created);
  if (profileCreated) await saveKey(dir, profileCreated);
  for (const key of current) {
    await saveKey(dir, { ...key, retiredAt: activatesAt });
  }
  const removed: string[] = [];
  for (const key of existing) {
    if (key.retiredAt !== null && now.getTime() - Date.parse(key.retiredAt) > RETIRED_KEY_RETENTION_MS) {
      await rm(path.join(dir, `${key.kid}.json`), { force: true });
      removed.push(key.kid);
    }
  }
  return {
    created,
    retired: currentServer.map((key) => key.kid),
    removed,
    ...(profileCreated ? { profile: { created: profileCreated, retired: currentProfile.map((key) => key.kid) } } : {}),
  };
}

/** Keys for oidc-provider's `jwks`: every kept key, signing key first. Makes one when asked to and none exist. */
export async function loadSigningJwks(dir: string, options: { generateIfMissing: boolean }): Promise<JWK[]> {
  return (await loadSigningKeys(dir, options)).jwks;
}

/**
 * loadSigningJwks, when the keys next change state (a pending key activates, an active one retires),
 * and the algorithm fapi2 clients are signed with (see fapi2SigningAlg). Making keys when asked to
 * (development): the signing key (RS256) when none exists, and a profile key (PROFILE_KEY_ALG)
 * when no key of a FAPI 2.0 algorithm is active or pending.
 */
export async function loadSigningKeys(
  dir: string,
  options: { generateIfMissing: boolean },
): Promise<{ jwks: JWK[]; nextChangeAt: number | undefined; fapi2Alg: Fapi2SigningAlg | undefined }> {
  let keys = await loadKeys(dir);
  if (keys.length === 0 && options.generateIfMissing) {
    await generateKey(dir, 'RS256');
    keys = await loadKeys(dir);
  }
  if (keys.length === 0) {
    throw new KeyStoreError(`no signing keys in ${dir}: run "npx gatehouse keys generate" (or mount the keys directory)`);
  }
  const now = Date.now();
  if (!keys.some((key) => !isProfileKey(key) && keyState(key, now) === 'active')) {
    throw new KeyStoreError(`no key in ${dir} is active (every one is retired or not yet active): run "npx gatehouse keys generate"`);
  }
  if (options.generateIfMissing && !keys.some((key) => isFapi2SigningAlg(key.alg) && keyState(key, now) !== 'retired')) {
    await generateProfileKey(dir);
    keys = await loadKeys(dir);
  }
  return { jwks: keys.map((key) => key.jwk), nextChangeAt: nextKeyChange(keys, now), fapi2Alg: fapi2SigningAlg(keys, now) };
}

/**
 * The 256-bit key that client-secret digests are keyed with. Made on first use when allowed;
 * two processes racing to make it agree on the first one written.
 */
export async function loadDigestKey(dir: string, options: { generateIfMissing: boolean }): Promise<Buffer> {
  const file = path.join(dir, DIGEST_KEY_FILE);
  try {
    return decodeDigestKey(await readFile(file, 'utf8'), file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (!options.generateIfMissing) {
    throw new KeyStoreError(`${file} is missing: it keys client-secret digests (run "npx gatehouse keys generate" once, and back it up)`);
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Written whole under a temporary name, then linked into place: link() is atomic and refuses an
  // existing file, so a racing process either wins or reads the complete key of the winner.
  const tmp = `${file}.${randomUUID()}.tmp`;
  await writeFile(tmp, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  try {
    await link(tmp, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    await rm(tmp, { force: true });
  }
  return decodeDigestKey(await readFile(file, 'utf8'), file);
}

function decodeDigestKey(text: string, file: string): Buffer {
  const key = Buffer.from(text.trim(), 'base64url');
  if (key.length < 32) throw new KeyStoreError(`${file} must hold at least 32 random bytes, base64url-encoded`);
  return key;
}
