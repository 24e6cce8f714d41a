import { Command } from 'commander';
import { sealLegacyAuditChain } from '../../audit/audit-log.js';
import { loadAuditKeyring } from '../../keys/audit-key.js';
import { KeyStoreError } from '../../keys/key-store.js';
import { openCliDatabase } from '../../registry/database.js';
import { migrateToLatest } from '../../registry/migrate.js';
import { cliLogger } from '../context.js';
import { handle, type CliRuntime } from '../define.js';
import { printResult } from '../output.js';

/** `gatehouse migrate`: brings the registry's schema up to date (production never migrates by itself). */
export function migrateCommand(runtime: CliRuntime): Command {
  return new Command('migrate')
    .summary('bring the registry\'s schema up to date')
    .description('Runs the migrations the registry has not had yet (production never migrates by itself).')
    .action(
      handle(runtime, async ({ io, config, json }) => {
        const registry = await openCliDatabase(config, cliLogger(io));
        try {
          const applied = await migrateToLatest(registry.db);
          // An upgraded log's unkeyed rows are sealed by a keyed row after them (needs the audit key).
          const auditKeys = await loadAuditKeyring(config.keysDir, { generateIfMissing: !config.production }).catch((error: unknown) => {
            if (!(error instanceof KeyStoreError)) throw error;
            io.stderr(`gatehouse: note: ${error.message}; until then the audit log's rows are not keyed\n`);
            return undefined;
          });
          const sealed = auditKeys ? await sealLegacyAuditChain(registry.db, auditKeys) : false;
          printResult(io, json, { applied, status: applied.length > 0 ? 'migrated' : 'up to date', ...(sealed ? { audit_log: 'unkeyed rows sealed' } : {}) });
        } finally {
          await registry.close();
        }
      }),
    );
}
