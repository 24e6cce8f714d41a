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

/** A signing key as stored in keys/: the private JWK plus when it was made and retired. */
export interface StoredKey {
  kid: string;
  alg: SigningAlg;
  createdAt: string;
  retiredAt: string | null;
  jwk: JWK;
}

/** What `keys list` shows: no private material. */
export type KeySummary = {
  kid: string;
  alg: SigningAlg;
  createdAt: string;
  retiredAt: string | null;
  status: 'active' | 'retired';
};

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

/** Newest active key first, then the retired ones, newest first: oidc-provider signs with the first. */
function signingOrder(a: StoredKey, b: StoredKey): number {
  if ((a.retiredAt === null) !== (b.retiredAt === null)) return a.retiredAt === null ? -1 : 1;
  return b.createdAt.localeCompare(a.createdAt);
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
  return keys.sort(signingOrder);
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
    retiredAt: key.retiredAt,
    status: key.retiredAt === null ? 'active' : 'retired',
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
 * Makes a new signing key and retires the active ones, whose public halves stay published for
 * RETIRED_KEY_RETENTION_MS; keys retired longer ago than that are deleted.
 */
export async function rotateKeys(dir: string, alg?: SigningAlg): Promise<{ created: StoredKey; retired: string[]; removed: string[] }> {
  const existing = await loadKeys(dir);
  const active = existing.filter((key) => key.retiredAt === null);
  const created = await newKey(alg ?? active[0]?.alg ?? 'RS256');
  // The new key is written first: a node that reloads in between still signs with a published key.
  await saveKey(dir, created);
  const now = new Date();
  for (const key of active) {
    await saveKey(dir, { ...key, retiredAt: now.toISOString() });
  }
  const removed: string[] = [];
  for (const key of existing) {
    if (key.retiredAt !== null && now.getTime() - Date.parse(key.retiredAt) > RETIRED_KEY_RETENTION_MS) {
      await rm(path.join(dir, `${key.kid}.json`), { force: true });
      removed.push(key.kid);
    }
  }
  return { created, retired: active.map((key) => key.kid), removed };
}

/** Keys for oidc-provider's `jwks`: every kept key, signing key first. Makes one when asked to and none exist. */
export async function loadSigningJwks(dir: string, options: { generateIfMissing: boolean }): Promise<JWK[]> {
  let keys = await loadKeys(dir);
  if (keys.length === 0 && options.generateIfMissing) {
    await generateKey(dir, 'RS256');
    keys = await loadKeys(dir);
  }
  if (keys.length === 0) {
    throw new KeyStoreError(`no signing keys in ${dir}: run "npx gatehouse keys generate" (or mount the keys directory)`);
  }
  if (keys.every((key) => key.retiredAt !== null)) {
    throw new KeyStoreError(`every key in ${dir} is retired: run "npx gatehouse keys generate"`);
  }
  return keys.map((key) => key.jwk);
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
