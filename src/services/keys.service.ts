import { generateAuditKey, loadAuditKeyring, type AuditKey } from '../keys/audit-key.js';
import { generateDataKey, loadDataKeyring, loadDataKeys, type DataKey } from '../keys/data-key.js';
import { generateKey, generateProfileKey, loadDigestKey, rotateKeys, summarize, type Fapi2SigningAlg, type SigningAlg, type StoredKey } from '../keys/key-store.js';
import { recordChange, type AuditActor, type Change, type RegistryServiceDeps } from './changes.js';
import { ChangeNotRecordedError, isUndefinedTable } from './errors.js';

/**
 * What the keys service needs. Keys live in KEYS_DIR, not in the database, so no transaction can
 * hold a key change and its audit row together. The rule, for signing keys and audit keys alike:
 *
 * 1. the file change is made first: a rotation never waits on the database, and once a new key is
 *    on disk a node may already publish it, so it is never undone;
 * 2. then the registry is opened and the row appended in a transaction of its own;
 * 3. if that fails, the command fails with ChangeNotRecordedError, which names the change and the
 *    key: the operator knows the key exists and that its record is missing.
 *
 * One exception, for signing keys: a registry with no audit table yet (the first `keys generate` of
 * a production install runs before `migrate`) is not an error; the result says the change was not
 * recorded. A new audit key needs its record (it seals the rows before it), so it has no exception.
 */
export interface KeysServiceDeps {
  keysDir: string;
  /**
   * Opens the registry, runs `run` with it and an audit writer, and closes it. Called after the file
   * change; the writer must read KEYS_DIR when it first appends, so that a new audit key keys its own record.
   */
  withRegistry<T>(run: (deps: RegistryServiceDeps) => Promise<T>): Promise<T>;
}

/** A key change's result; `unrecorded` says why it is not in the audit log when the registry has no audit table yet. */
export type KeyChange<T> = T & { unrecorded?: string };

/** Appends the change's row in a transaction of its own; a signing-key change before the first migrate is said, not refused. */
async function recordKeyChange(deps: KeysServiceDeps, by: AuditActor, change: Change, options: { beforeMigrate: boolean }): Promise<string | undefined> {
  try {
    await deps.withRegistry((registry) => registry.db.transaction().execute((trx) => recordChange(registry.audit, trx, by, change)));
    return undefined;
  } catch (error) {
    if (options.beforeMigrate && isUndefinedTable(error)) {
      return `${change.action} was not recorded in the audit log: the registry has no audit table yet (run gatehouse migrate)`;
    }
    throw new ChangeNotRecordedError(change, error);
  }
}

/**
 * Adds a signing key (it signs at once, being the newest active one), and the digest, audit and
 * data keys if they are missing. Recorded as `keys.generate` after the files are written (see KeysServiceDeps).
 */
export async function generateSigningKey(deps: KeysServiceDeps, by: AuditActor, alg: SigningAlg = 'RS256'): Promise<KeyChange<{ key: StoredKey }>> {
  const key = await generateKey(deps.keysDir, alg);
  await loadDigestKey(deps.keysDir, { generateIfMissing: true });
  await loadAuditKeyring(deps.keysDir, { generateIfMissing: true });
  await loadDataKeyring(deps.keysDir, { generateIfMissing: true });
  const unrecorded = await recordKeyChange(deps, by, {
    action: 'keys.generate',
    target: `key:${key.kid}`,
    details: { created: summarize(key), keys_dir: deps.keysDir },
  }, { beforeMigrate: true });
  return { key, ...(unrecorded ? { unrecorded } : {}) };
}

/**
 * Adds a profile key for clients of the FAPI 2.0 profile (PS256 or ES256; see StoredKey), active at
 * once; the server's signing key is unchanged. Recorded as `keys.generate` after the file is written.
 */
export async function generateProfileSigningKey(deps: KeysServiceDeps, by: AuditActor, alg?: Fapi2SigningAlg): Promise<KeyChange<{ key: StoredKey }>> {
  const key = await generateProfileKey(deps.keysDir, alg);
  const unrecorded = await recordKeyChange(deps, by, {
    action: 'keys.generate',
    target: `key:${key.kid}`,
    details: { created: summarize(key), keys_dir: deps.keysDir },
  }, { beforeMigrate: true });
  return { key, ...(unrecorded ? { unrecorded } : {}) };
}

/**
 * Rotates the signing keys (see rotateKeys: the new key is published at once and signs from
 * `activateInMs` later). Recorded as `keys.rotate` after the files are written (see KeysServiceDeps).
 */
export async function rotateSigningKeys(
  deps: KeysServiceDeps,
  by: AuditActor,
  alg?: SigningAlg,
  options: { activateInMs?: number } = {},
): Promise<KeyChange<{ created: StoredKey; retired: string[]; removed: string[]; profile?: { created: StoredKey; retired: string[] } }>> {
  const { created, retired, removed, profile } = await rotateKeys(deps.keysDir, alg, options);
  const unrecorded = await recordKeyChange(deps, by, {
    action: 'keys.rotate',
    target: `key:${created.kid}`,
    details: { created: summarize(created), retired, removed, ...(profile ? { profile: { created: summarize(profile.created), retired: profile.retired } } : {}) },
  }, { beforeMigrate: true });
  return { created, retired, removed, ...(profile ? { profile } : {}), ...(unrecorded ? { unrecorded } : {}) };
}

/**
 * Makes a new audit key. Its record, `audit.key_rotate`, is the first row keyed with it: from that
 * row on every node keys with it. Written after the key file (see KeysServiceDeps).
 */
export async function rotateAuditKey(deps: KeysServiceDeps, by: AuditActor): Promise<KeyChange<{ key: AuditKey }>> {
  const key = await generateAuditKey(deps.keysDir);
  const unrecorded = await recordKeyChange(deps, by, {
    action: 'audit.key_rotate',
    target: `audit-key:${key.kid}`,
    details: { created: { kid: key.kid, created_at: key.createdAt } },
  }, { beforeMigrate: false });
  return { key, ...(unrecorded ? { unrecorded } : {}) };
}

/**
 * Makes a new data key, which seals every secret from then on (each seal re-reads KEYS_DIR); the
 * older keys stay, listed in `older`, to open what they sealed until `keys reencrypt` has re-sealed
 * it. Recorded as `keys.data_key_rotate` after the file is written (see KeysServiceDeps); like a
 * signing key, one made before the first migrate is said, not refused.
 */
export async function rotateDataKey(deps: KeysServiceDeps, by: AuditActor): Promise<KeyChange<{ key: DataKey; older: string[] }>> {
  const key = await generateDataKey(deps.keysDir);
  const older = (await loadDataKeys(deps.keysDir)).map((k) => k.kid).filter((kid) => kid !== key.kid);
  const unrecorded = await recordKeyChange(deps, by, {
    action: 'keys.data_key_rotate',
    target: `data-key:${key.kid}`,
    details: { created: { kid: key.kid, created_at: key.createdAt }, older },
  }, { beforeMigrate: true });
  return { key, older, ...(unrecorded ? { unrecorded } : {}) };
}
