import type { Kysely, Transaction } from 'kysely';
import type { AuditActor, AuditWriter } from '../audit/audit-log.js';
import type { Database } from '../registry/tables.js';

export type { AuditActor, AuditWriter };

/**
 * What a service that changes the registry needs: the database, and the audit writer its changes
 * are recorded with. Every change is recorded by the service that makes it, in the transaction
 * that makes it, as the actor its caller names: the CLI, the admin API and dynamic registration
 * record nothing themselves.
 */
export interface RegistryServiceDeps {
  db: Kysely<Database>;
  audit: AuditWriter;
}

/** A change as its audit row names it: `client.create` of `client:<id>`, with before/after snapshots. */
export interface Change {
  action: string;
  target: string;
  details?: Record<string, unknown> | undefined;
}

/**
 * Appends the change's audit row in the change's own transaction: the last step of it, after the
 * change is written (see AuditWriter). If it throws, the transaction and the change roll back.
 */
export async function recordChange(audit: AuditWriter, trx: Transaction<Database>, by: AuditActor, change: Change): Promise<void> {
  await audit.append(trx, {
    actor: by.actor,
    action: change.action,
    target: change.target,
    requestId: by.requestId ?? null,
    ip: by.ip ?? null,
    details: change.details ?? {},
  });
}
