import type { DataKeyring } from '../keys/data-key.js';
import { countTotpFactorsNotUnder, listTotpFactorsNotUnder, resealTotpFactor, type TotpFactorCursor } from '../registry/second-factor.repository.js';
import { listProvidersNotUnder, resealProviderSecret } from '../registry/upstream.repository.js';
import { recordChange, type AuditActor, type RegistryServiceDeps } from './changes.js';
import { SealedSecretError, sealSecret, unsealSecret, type SealedSecretRefusal } from './sealed-secrets.js';

/** Rows re-sealed per transaction (each transaction also holds one audit row for its batch). */
const BATCH = 200;

/** A sealed secret that could not be re-sealed: it stays under its old key. */
export interface ReencryptFailure {
  table: 'totp_factors' | 'upstream_providers';
  target: string;
  reason: SealedSecretRefusal;
}

/** What `keys reencrypt` did. */
export interface ReencryptReport {
  /** The data key everything was re-sealed under (the newest in KEYS_DIR). */
  key: string;
  resealed: number;
  failed: ReencryptFailure[];
  /** Rows still sealed under another key once done: 0 means every older data key may be deleted. */
  remaining: number;
}

/**
 * Re-seals every stored secret that is sealed under an older data key with the newest one
 * (`gatehouse keys reencrypt`), a batch per transaction, each batch recorded as `keys.reencrypt`
 * by `by` with its count. A secret that does not open (under a key no longer in KEYS_DIR, or
 * changed) is reported and left as it is. A row changed meanwhile (a new enrolment) is left to its
 * writer, who sealed it with the newest key. Rows under older keys are found by their `key_id`.
 *
 * @example
 * const report = await reencryptSealedSecrets({ ...registry, dataKeys }, cliActor());
 * // report.remaining === 0: no row needs an older data key any more
 */
export async function reencryptSealedSecrets(deps: RegistryServiceDeps & { dataKeys: DataKeyring }, by: AuditActor): Promise<ReencryptReport> {
  await deps.dataKeys.reload();
  const current = deps.dataKeys.keys().at(-1)!.kid;
  let resealed = 0;
  const failed: ReencryptFailure[] = [];
  let after: TotpFactorCursor | undefined;
  for (;;) {
    const rows = await listTotpFactorsNotUnder(deps.db, current, after, BATCH);
    if (rows.length === 0) break;
    after = rows.at(-1);
    const batch: Array<{ row: (typeof rows)[number]; jwe: string; kid: string }> = [];
    for (const row of rows) {
      const context = `totp:${row.userId}`;
      try {
        const sealed = await sealSecret(deps.dataKeys, await unsealSecret(deps.dataKeys, row.secretJwe, context), context, { reload: false });
        batch.push({ row, ...sealed });
      } catch (error) {
        if (!(error instanceof SealedSecretError)) throw error;
        failed.push({ table: 'totp_factors', target: `user:${row.userId}`, reason: error.reason });
      }
    }
    if (batch.length === 0) continue;
    resealed += await deps.db.transaction().execute(async (trx) => {
      let count = 0;
      for (const { row, jwe, kid } of batch) if (await resealTotpFactor(trx, row, jwe, kid)) count += 1;
      if (count > 0) await recordChange(deps.audit, trx, by, { action: 'keys.reencrypt', target: `data-key:${current}`, details: { table: 'totp_factors', rows: count } });
      return count;
    });
  }
  // Upstream providers' client secrets: a handful of rows, one transaction.
  const providers = await listProvidersNotUnder(deps.db, current);
  const batch: Array<{ id: string; from: string; jwe: string; kid: string }> = [];
  for (const provider of providers) {
    const context = `upstream:${provider.id}`;
    try {
      const sealed = await sealSecret(deps.dataKeys, await unsealSecret(deps.dataKeys, provider.clientSecretJwe!, context), context, { reload: false });
      batch.push({ id: provider.id, from: provider.clientSecretJwe!, ...sealed });
    } catch (error) {
      if (!(error instanceof SealedSecretError)) throw error;
      failed.push({ table: 'upstream_providers', target: `provider:${provider.id}`, reason: error.reason });
    }
  }
  if (batch.length > 0) {
    resealed += await deps.db.transaction().execute(async (trx) => {
      let count = 0;
      for (const { id, from, jwe, kid } of batch) if (await resealProviderSecret(trx, id, from, jwe, kid)) count += 1;
      if (count > 0) await recordChange(deps.audit, trx, by, { action: 'keys.reencrypt', target: `data-key:${current}`, details: { table: 'upstream_providers', rows: count } });
      return count;
    });
  }
  const remaining = (await countTotpFactorsNotUnder(deps.db, current)) + (await listProvidersNotUnder(deps.db, current)).length;
  return { key: current, resealed, failed, remaining };
}
