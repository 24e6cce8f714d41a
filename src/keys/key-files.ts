import { randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { KeyStoreError } from './key-store.js';

/**
 * A kind of symmetric key kept in KEYS_DIR as one file per key, `<prefix>-<kid>.key` holding
 * `{"kid","created_at","key"}` (the key base64url, at least 32 bytes), mode 0600. Not `*.json`, so
 * the signing-key loader never reads one. The newest key is the current one; old keys stay.
 */
export interface KeyFileKind {
  /** The file name's prefix: `audit` for `audit-<kid>.key`. */
  prefix: string;
  /** What the key is called in errors: "audit key". */
  name: string;
}

/** A key of one of those kinds. */
export interface SecretKey {
  kid: string;
  /** ISO 8601; with the kid, orders the keys: the newest is the current one. */
  createdAt: string;
  secret: Buffer;
}

/** Oldest first; the last one is the current key. */
export function compareSecretKeys(a: Pick<SecretKey, 'kid' | 'createdAt'>, b: Pick<SecretKey, 'kid' | 'createdAt'>): number {
  return a.createdAt.localeCompare(b.createdAt) || a.kid.localeCompare(b.kid);
}

function fileRegex(kind: KeyFileKind): RegExp {
  return new RegExp(`^${kind.prefix}-(?<kid>[A-Za-z0-9_-]{8,64})\\.key$`);
}

function parseSecretKey(kind: KeyFileKind, text: string, file: string, kid: string): SecretKey {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new KeyStoreError(`${file} is not a readable ${kind.name} file`);
  }
  const v = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
  if (v.kid !== kid || typeof v.created_at !== 'string' || Number.isNaN(Date.parse(v.created_at)) || typeof v.key !== 'string') {
    throw new KeyStoreError(`${file} is not a Gatehouse ${kind.name} file`);
  }
  const secret = Buffer.from(v.key, 'base64url');
  if (secret.length < 32) throw new KeyStoreError(`${file} must hold at least 32 random bytes, base64url-encoded`);
  return { kid, createdAt: v.created_at, secret };
}

/** Every key of the kind in the directory, oldest first (the current key last); other files are ignored. */
export async function loadSecretKeys(dir: string, kind: KeyFileKind): Promise<SecretKey[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const pattern = fileRegex(kind);
  const keys: SecretKey[] = [];
  for (const name of names) {
    const kid = pattern.exec(name)?.groups?.kid;
    if (!kid) continue;
    const file = path.join(dir, name);
    keys.push(parseSecretKey(kind, await readFile(file, 'utf8'), file, kid));
  }
  return keys.sort(compareSecretKeys);
}

/**
 * Writes a new key of the kind (32 random bytes, 0600), which becomes the current one. Old keys are
 * never removed here.
 */
export async function generateSecretKey(dir: string, kind: KeyFileKind): Promise<SecretKey> {
  // The newest key is the current one, so a new key must sort after every key already there: a key
  // made in the same millisecond as the last one, or after one whose node's clock ran ahead, takes
  // the millisecond after the newest instead of a tie broken by its random kid.
  const newest = (await loadSecretKeys(dir, kind)).at(-1);
  const createdAt = new Date(Math.max(Date.now(), newest ? Date.parse(newest.createdAt) + 1 : 0)).toISOString();
  const key: SecretKey = { kid: randomBytes(12).toString('base64url'), createdAt, secret: randomBytes(32) };
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, `${kind.prefix}-${key.kid}.key`);
  const tmp = `${file}.${randomUUID()}.tmp`;
  const content = { kid: key.kid, created_at: key.createdAt, key: key.secret.toString('base64url') };
  await writeFile(tmp, `${JSON.stringify(content)}\n`, { mode: 0o600, flag: 'wx' });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
  return key;
}
