import { randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { KeyStoreError } from './key-store.js';

/** One file per audit key: `audit-<kid>.key` (not `*.json`, so the signing-key loader never reads it). */
const AUDIT_KEY_FILE = /^audit-(?<kid>[A-Za-z0-9_-]{8,64})\.key$/;

/** A key the audit chain's HMACs are computed with. Kept for as long as any row it keyed. */
export interface AuditKey {
  kid: string;
  /** ISO 8601; with the kid, orders the keys: the newest is the one new rows are keyed with. */
  createdAt: string;
  secret: Buffer;
}

/** Oldest first; the last one is the current key. */
export function compareAuditKeys(a: Pick<AuditKey, 'kid' | 'createdAt'>, b: Pick<AuditKey, 'kid' | 'createdAt'>): number {
  return a.createdAt.localeCompare(b.createdAt) || a.kid.localeCompare(b.kid);
}

function parseAuditKey(text: string, file: string, kid: string): AuditKey {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new KeyStoreError(`${file} is not a readable audit key file`);
  }
  const v = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
  if (v.kid !== kid || typeof v.created_at !== 'string' || Number.isNaN(Date.parse(v.created_at)) || typeof v.key !== 'string') {
    throw new KeyStoreError(`${file} is not a Gatehouse audit key file`);
  }
  const secret = Buffer.from(v.key, 'base64url');
  if (secret.length < 32) throw new KeyStoreError(`${file} must hold at least 32 random bytes, base64url-encoded`);
  return { kid, createdAt: v.created_at, secret };
}

/** Every audit key in the directory, oldest first (the current key last); files that are not audit keys are ignored. */
export async function loadAuditKeys(dir: string): Promise<AuditKey[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const keys: AuditKey[] = [];
  for (const name of names) {
    const kid = AUDIT_KEY_FILE.exec(name)?.groups?.kid;
    if (!kid) continue;
    const file = path.join(dir, name);
    keys.push(parseAuditKey(await readFile(file, 'utf8'), file, kid));
  }
  return keys.sort(compareAuditKeys);
}

/**
 * Makes a new audit key, which becomes the current one: rows appended from then on are keyed with
 * it (every node switches when it sees a row keyed with a key it does not know yet). Old keys are
 * never removed: rows they keyed are verified with them.
 */
export async function generateAuditKey(dir: string): Promise<AuditKey> {
  // The newest key is the current one, so a new key must sort after every key already there: a key
  // made in the same millisecond as the last one, or after one whose node's clock ran ahead, takes
  // the millisecond after the newest instead of a tie broken by its random kid.
  const newest = (await loadAuditKeys(dir)).at(-1);
  const createdAt = new Date(Math.max(Date.now(), newest ? Date.parse(newest.createdAt) + 1 : 0)).toISOString();
  const key: AuditKey = { kid: randomBytes(12).toString('base64url'), createdAt, secret: randomBytes(32) };
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, `audit-${key.kid}.key`);
  const tmp = `${file}.${randomUUID()}.tmp`;
  const content = { kid: key.kid, created_at: key.createdAt, key: key.secret.toString('base64url') };
  await writeFile(tmp, `${JSON.stringify(content)}\n`, { mode: 0o600, flag: 'wx' });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
  return key;
}

/**
 * The audit keys a process appends and verifies with. Appending keys a row with the newest key;
 * when the chain's last row names a key this process does not know (another node or the CLI
 * rotated), it reloads the directory first, so the chain never goes back to an older key.
 */
export interface AuditKeyring {
  /** Every known key, oldest first; the last one keys new rows. */
  keys(): readonly AuditKey[];
  /** Re-reads the keys directory. */
  reload(): Promise<void>;
}

/** A keyring over fixed keys (tests, or a verifier given the keys). */
export function staticAuditKeyring(keys: readonly AuditKey[]): AuditKeyring {
  const sorted = [...keys].sort(compareAuditKeys);
  if (sorted.length === 0) throw new KeyStoreError('an audit keyring needs at least one key');
  return { keys: () => sorted, reload: () => Promise.resolve() };
}

/**
 * The audit keyring of KEYS_DIR. With `generateIfMissing`, makes the first key when there is none;
 * otherwise a directory without one is refused, saying how to make it.
 *
 * @example
 * const auditKeys = await loadAuditKeyring(config.keysDir, { generateIfMissing: !config.production });
 * await appendAudit(db, auditKeys, { actor: 'system', action: 'example' });
 */
export async function loadAuditKeyring(dir: string, options: { generateIfMissing: boolean }): Promise<AuditKeyring> {
  let keys = await loadAuditKeys(dir);
  if (keys.length === 0) {
    if (!options.generateIfMissing) {
      throw new KeyStoreError(`no audit key (audit-*.key) in ${dir}: it keys the audit log's chain (run "npx gatehouse keys generate" or "npx gatehouse audit rotate-key" once, and back it up)`);
    }
    await generateAuditKey(dir);
    keys = await loadAuditKeys(dir);
  }
  return {
    keys: () => keys,
    async reload() {
      const loaded = await loadAuditKeys(dir);
      if (loaded.length > 0) keys = loaded;
    },
  };
}
