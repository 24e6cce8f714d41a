import { applyDatabaseRolesPlan, planDatabaseRoles, type DatabaseRolesOptions, type DatabaseRolesPlan } from './database-roles.plan.js';
import { recordChange, type AuditActor, type RegistryServiceDeps } from './changes.js';

/**
 * `gatehouse db roles`: works out the plan from the catalog, applies it and records it as
 * `db.roles` by `by`, all in one transaction (PostgreSQL's CREATE ROLE, GRANT and ALTER … OWNER are
 * transactional): the roles change and its row commit together, or neither does. The runtime
 * password is recorded only as whether one was set.
 */
export async function applyDatabaseRoles(deps: RegistryServiceDeps, by: AuditActor, options: DatabaseRolesOptions): Promise<DatabaseRolesPlan> {
  return deps.db.transaction().execute(async (trx) => {
    const planned = await planDatabaseRoles(trx, options);
    await applyDatabaseRolesPlan(trx, planned);
    await recordChange(deps.audit, trx, by, {
      action: 'db.roles',
      target: `database:${planned.database}`,
      details: {
        owner: planned.owner,
        runtime: planned.runtime,
        schema: planned.schema,
        created: planned.create,
        reassigned: planned.reassign,
        runtime_password_set: options.runtimePasswordVerifier !== undefined,
      },
    });
    return planned;
  });
}
