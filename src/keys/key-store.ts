import { randomBytes, randomUUID } from 'node:crypto';
import { chmod, link, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exportJWK, generateKeyPair, type JWK } from 'jose';

export const SIGNING_ALGS = ['RS256', 'PS256', 'ES256', 'EdDSA'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];

/** How long a retired key's public half stays published: longer than any token it signed lives. */
export const RETIRED_KEY_RETENTION_MS = 48 * 60 * 60 * 1000;

const KEY_FILE = /^(?<kid>[A-Za-z0-9_-]{8,64})\.json$/;
const DIGEST_KEY_FILE = 'client-secret.key';

/** How long after `keys rotate` the new key starts signing, unless told otherwise (see rotateKeys). */
export const DEFAULT_ACTIVATION_DELAY_MS = 5 * 60 * 1000;

/**
 * A signing key as stored in keys/: the private JWK plus when it was made, when it starts signing
 * (absent or null: at once) and when it stops (null: not yet).
 */
export interface StoredKey {
  kid: string;
  alg: SigningAlg;
  createdAt: string;
  activatesAt?: string | null;
  retiredAt: string | null;
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

/**
 * Active keys first (the newest first: oidc-provider signs with the first key), then pending ones,
 * then retired ones, each newest first; as of `now`.
 */
function signingOrder(now: number): (a: StoredKey, b: StoredKey) => number {
  return (a, b) => STATE_ORDER[keyState(a, now)] - STATE_ORDER[keyState(b, now)] || b.createdAt.localeCompare(a.createdAt);
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
  };
}

async function newKey(alg: SigningAlg): Promise<StoredKey> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
  const kid = randomBytes(12).toString('base64url');
  const jwk = { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
  return { kid, alg, createdAt: new Date().toISOString(), retiredAt: null, jwk };
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
 * Makes a new signing key and retires the current ones. The new key is published (every node's
 * JWKS shows it within KEYS_POLL_MS) at once but signs only from `activateInMs` later, when the
 * current keys retire: no node ever signs with a key another node does not publish yet, and a
 * resource server that caches the JWKS has that long to see it. Retired keys stay published for
 * RETIRED_KEY_RETENTION_MS; keys retired longer ago than that are deleted.
 */
export async function rotateKeys(
  dir: string,
  alg?: SigningAlg,
  options: { activateInMs?: number } = {},
): Promise<{ created: StoredKey; retired: string[]; removed: string[] }> {
  const existing = await loadKeys(dir);
  const now = new Date();
  const activatesAt = new Date(now.getTime() + (options.activateInMs ?? DEFAULT_ACTIVATION_DELAY_MS)).toISOString();
  // Every key that would still sign (or start signing) after the new one activates retires then.
  const current = existing.filter((key) => key.retiredAt === null || Date.parse(key.retiredAt) > Date.parse(activatesAt));
  const created = { ...(await newKey(alg ?? existing.find((key) => keyState(key, now.getTime()) === 'active')?.alg ?? 'RS256')), activatesAt };
  // The new key is written first: a node that reloads in between publishes it, and signs with the old one.
  await saveKey(dir, created);
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
  return { created, retired: current.map((key) => key.kid), removed };
}

/** Keys for oidc-provider's `jwks`: every kept key, signing key first. Makes one when asked to and none exist. */
export async function loadSigningJwks(dir: string, options: { generateIfMissing: boolean }): Promise<JWK[]> {
  return (await loadSigningKeys(dir, options)).jwks;
}

/** loadSigningJwks, and when the keys next change state (a pending key activates, an active one retires). */
export async function loadSigningKeys(dir: string, options: { generateIfMissing: boolean }): Promise<{ jwks: JWK[]; nextChangeAt: number | undefined }> {
  let keys = await loadKeys(dir);
  if (keys.length === 0 && options.generateIfMissing) {
    await generateKey(dir, 'RS256');
    keys = await loadKeys(dir);
  }
  if (keys.length === 0) {
    throw new KeyStoreError(`no signing keys in ${dir}: run "npx gatehouse keys generate" (or mount the keys directory)`);
  }
  const now = Date.now();
  if (!keys.some((key) => keyState(key, now) === 'active')) {
    throw new KeyStoreError(`no key in ${dir} is active (every one is retired or not yet active): run "npx gatehouse keys generate"`);
  }
  return { jwks: keys.map((key) => key.jwk), nextChangeAt: nextKeyChange(keys, now) };
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
