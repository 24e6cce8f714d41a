import { createAuditWriter } from '../audit/audit-log.js';
import type { Config } from '../config/load-config.js';
import { loadAuditKeyring, type AuditKeyring } from '../keys/audit-key.js';
import { createLogger } from '../observability/logger.js';
import { openCliDatabase } from '../registry/database.js';
import { migrateToLatest } from '../registry/migrate.js';
import type { CliRegistry } from './cli-audit.js';
import type { CliIo } from './output.js';

/** What a command runs with: where it writes, the configuration, and whether --json was given. */
export interface Context {
  io: CliIo;
  config: Config;
  json: boolean;
}

/** Errors only, to stderr: stdout is the command's result. */
export function cliLogger(io: CliIo) {
  return createLogger({ logLevel: 'error' }, { write: (line: string) => io.stderr(line) });
}

/** The audit keys of KEYS_DIR (made on first use outside production), read once per command. */
export function auditKeysOf(config: Config): () => Promise<AuditKeyring> {
  let keyring: Promise<AuditKeyring> | undefined;
  return () => (keyring ??= loadAuditKeyring(config.keysDir, { generateIfMissing: !config.production }));
}

/** Opens the registry (migrated first outside production), runs `run` on it and closes it. */
export async function withDatabase<T>(ctx: Context, run: (registry: CliRegistry) => Promise<T>): Promise<T> {
  const registry = await openCliDatabase(ctx.config, cliLogger(ctx.io));
  try {
    if (!ctx.config.production) await migrateToLatest(registry.db);
    const auditKeys = auditKeysOf(ctx.config);
    return await run(Object.assign(registry, { auditKeys, audit: createAuditWriter(auditKeys) }));
  } finally {
    await registry.close();
  }
}
