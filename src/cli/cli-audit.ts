import os from 'node:os';
import { appendAudit, type AuditEntry } from '../audit/audit-log.js';
import type { AuditKeyring } from '../keys/audit-key.js';
import type { RegistryDatabase } from '../registry/database.js';

/** The registry as CLI commands get it: with the audit keys of KEYS_DIR, read when first needed. */
export interface CliRegistry extends RegistryDatabase {
  auditKeys(): Promise<AuditKeyring>;
}

/** The change was made, but its audit record could not be written. */
export class AuditWriteError extends Error {
  constructor(action: string, cause: unknown) {
    super(`${action} was done, but its audit record could not be written: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'AuditWriteError';
  }
}

/** Who runs the CLI, as the audit log names them: `cli:<os user>` (`cli:uid-<n>` when the user has no name). */
export function cliActor(): string {
  try {
    return `cli:${os.userInfo().username}`;
  } catch {
    return `cli:uid-${process.getuid?.() ?? 'unknown'}`;
  }
}

/**
 * Records a change the CLI made, then shows its result. The result is shown even when the record
 * fails (it may hold a secret shown only once); the failure is then thrown as an AuditWriteError.
 */
export async function recordCliChange(registry: CliRegistry, entry: Omit<AuditEntry, 'actor'>, show: () => void): Promise<void> {
  let failure: unknown;
  try {
    await appendAudit(registry.db, await registry.auditKeys(), { ...entry, actor: cliActor() });
  } catch (error) {
    failure = error;
  }
  show();
  if (failure !== undefined) throw new AuditWriteError(entry.action, failure);
}

/** PostgreSQL's undefined_table: the registry has not been migrated yet. */
export function isUndefinedTable(error: unknown): boolean {
  const cause = error instanceof AuditWriteError ? error.cause : error;
  return typeof cause === 'object' && cause !== null && (cause as { code?: unknown }).code === '42P01';
}
