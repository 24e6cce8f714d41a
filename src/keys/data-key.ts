import { compareSecretKeys, generateSecretKey, loadSecretKeys, type KeyFileKind, type SecretKey } from './key-files.js';
import { KeyStoreError } from './key-store.js';

/** One file per data key: `data-<kid>.key` (see key-files.ts). */
const DATA_KEYS: KeyFileKind = { prefix: 'data', name: 'data key' };

/**
 * A key that secrets stored in the database are encrypted with (TOTP secrets, upstream client
 * secrets; see services/sealed-secrets.ts). Kept for as long as any row is sealed under it.
 */
export type DataKey = SecretKey;

/** Every data key in the directory, oldest first (the current key last); files that are not data keys are ignored. */
export function loadDataKeys(dir: string): Promise<DataKey[]> {
  return loadSecretKeys(dir, DATA_KEYS);
}

/**
 * Makes a new data key, which becomes the current one: secrets sealed from then on use it. Old keys
 * are never removed here: rows sealed under them still open with them until `keys reencrypt`
 * re-seals them, and only then may an old file be deleted, by hand.
 */
export function generateDataKey(dir: string): Promise<DataKey> {
  return generateSecretKey(dir, DATA_KEYS);
}

/**
 * The data keys a process seals and opens with. Sealing uses the newest key; a sealed secret names
 * its key (`kid`), and one naming a key this process does not know makes it re-read the directory
 * (another node or the CLI rotated).
 */
export interface DataKeyring {
  /** Every known key, oldest first; the last one seals. */
  keys(): readonly DataKey[];
  /** The key with this kid, if known. */
  byKid(kid: string): DataKey | undefined;
  /** Re-reads the keys directory. */
  reload(): Promise<void>;
}

function keyringOver(initial: readonly DataKey[], load: () => Promise<readonly DataKey[]>): DataKeyring {
  let keys = initial;
  return {
    keys: () => keys,
    byKid: (kid) => keys.find((key) => key.kid === kid),
    async reload() {
      const loaded = await load();
      if (loaded.length > 0) keys = loaded;
    },
  };
}

/** A keyring over fixed keys (tests). */
export function staticDataKeyring(keys: readonly DataKey[]): DataKeyring {
  const sorted = [...keys].sort(compareSecretKeys);
  if (sorted.length === 0) throw new KeyStoreError('a data keyring needs at least one key');
  return keyringOver(sorted, () => Promise.resolve(sorted));
}

/**
 * The data keyring of KEYS_DIR. With `generateIfMissing` (outside production), makes the first key
 * when there is none; otherwise a directory without one is refused, saying how to make it.
 *
 * @example
 * const dataKeys = await loadDataKeyring(config.keysDir, { generateIfMissing: !config.production });
 * const { jwe, kid } = await sealSecret(dataKeys, secret, `totp:${userId}`);
 */
export async function loadDataKeyring(dir: string, options: { generateIfMissing: boolean }): Promise<DataKeyring> {
  let keys = await loadDataKeys(dir);
  if (keys.length === 0) {
    if (!options.generateIfMissing) {
      throw new KeyStoreError(
        `no data key (data-*.key) in ${dir}: it encrypts the secrets stored in the database (run "npx gatehouse keys generate" or "npx gatehouse keys rotate-data-key" once, and back it up)`,
      );
    }
    await generateDataKey(dir);
    keys = await loadDataKeys(dir);
  }
  return keyringOver(keys, () => loadDataKeys(dir));
}
