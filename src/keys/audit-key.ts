import { compareSecretKeys, generateSecretKey, loadSecretKeys, type KeyFileKind, type SecretKey } from './key-files.js';
import { KeyStoreError } from './key-store.js';

/** One file per audit key: `audit-<kid>.key` (see key-files.ts). */
const AUDIT_KEYS: KeyFileKind = { prefix: 'audit', name: 'audit key' };

/** A key the audit chain's HMACs are computed with. Kept for as long as any row it keyed. */
export type AuditKey = SecretKey;

/** Oldest first; the last one is the current key. */
export const compareAuditKeys = compareSecretKeys;

/** Every audit key in the directory, oldest first (the current key last); files that are not audit keys are ignored. */
export function loadAuditKeys(dir: string): Promise<AuditKey[]> {
  return loadSecretKeys(dir, AUDIT_KEYS);
}

/**
 * Makes a new audit key, which becomes the current one: rows appended from then on are keyed with
 * it (every node switches when it sees a row keyed with a key it does not know yet). Old keys are
 * never removed: rows they keyed are verified with them.
 */
export function generateAuditKey(dir: string): Promise<AuditKey> {
  return generateSecretKey(dir, AUDIT_KEYS);
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
