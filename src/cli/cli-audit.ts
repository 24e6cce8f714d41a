import os from 'node:os';
import type { AuditActor, AuditWriter } from '../audit/audit-log.js';
import type { AuditKeyring } from '../keys/audit-key.js';
import type { RegistryDatabase } from '../registry/database.js';

/**
 * The registry as CLI commands get it: with the audit keys of KEYS_DIR, read when first needed, and
 * the audit writer over them that the services record every change with (in the change's transaction).
 */
export interface CliRegistry extends RegistryDatabase {
  auditKeys(): Promise<AuditKeyring>;
  audit: AuditWriter;
}

/** Who runs the CLI, as the audit log names them: `cli:<os user>` (`cli:uid-<n>` when the user has no name). */
export function cliActor(): AuditActor {
  try {
    return { actor: `cli:${os.userInfo().username}` };
  } catch {
    return { actor: `cli:uid-${process.getuid?.() ?? 'unknown'}` };
  }
}
