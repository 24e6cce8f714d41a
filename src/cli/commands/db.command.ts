import type { Command } from 'commander';
import { createAuditWriter } from '../../audit/audit-log.js';
import type { Config } from '../../config/load-config.js';
import { loadAuditKeyring } from '../../keys/audit-key.js';
import { openCliDatabase, type RegistryDatabase } from '../../registry/database.js';
import { roleNameProblem, runtimePasswordProblem } from '../../services/database-roles.names.js';
import { planDatabaseRoles, type DatabaseRolesOptions } from '../../services/database-roles.plan.js';
import { applyDatabaseRoles } from '../../services/database-roles.service.js';
import { cliActor } from '../cli-audit.js';
import { cliLogger } from '../context.js';
import { databaseRolesScript } from '../db-roles/roles-script.js';
import { scramSha256Verifier } from '../db-roles/scram-verifier.js';
import { group, handle, str, takesPasswordOnStdin, type CliRuntime, type Values } from '../define.js';
import { printResult, readStdinPassword, UsageError, type CliIo } from '../output.js';

/** What the db commands need from the CLI: its output, the configuration and a way to open the registry. */
export interface DbCommandDeps {
  io: CliIo;
  json: boolean;
  config: Config;
  /** Opens the registry DATABASE_URL names, without migrating it. */
  openDatabase(): Promise<RegistryDatabase>;
}

const PASSWORD_FLAG = '--runtime-password-stdin';

interface RolesArgs {
  owner: string;
  runtime: string;
  passwordStdin: boolean;
  sqlOnly: boolean;
}

/** The options of db roles, checked: two valid, different role names. */
function checkRolesArgs(values: Values): RolesArgs {
  const owner = str(values, 'owner');
  const runtime = str(values, 'runtime');
  if (owner === undefined || runtime === undefined) throw new UsageError('db roles needs --owner NAME and --runtime NAME');
  for (const [flag, name] of [['--owner', owner], ['--runtime', runtime]] as const) {
    const problem = roleNameProblem(name);
    // JSON-quoted: whatever was typed stays on one line.
    if (problem) throw new UsageError(`${flag}: ${JSON.stringify(name)} ${problem}`);
  }
  if (owner === runtime) throw new UsageError('--owner and --runtime must name two different roles');
  return { owner, runtime, passwordStdin: values['runtime-password-stdin'] === true, sqlOnly: values.sql === true };
}

/**
 * `gatehouse db roles --owner NAME --runtime NAME [--runtime-password-stdin] [--sql]`: creates the
 * schema owner and the server's runtime role, gives the owner every schema object and the runtime
 * role only what the server needs (see planDatabaseRoles), in one transaction recorded in the audit
 * log. With --sql it changes nothing and prints the same statements as a psql script. Returns the exit code.
 */
async function dbRoles(deps: DbCommandDeps, values: Values): Promise<number> {
  const { io, json, config } = deps;
  const parsed = checkRolesArgs(values);
  if (!config.databaseUrl) throw new Error('db roles needs DATABASE_URL: the embedded database (PGlite) has no roles to set up');

  const options: DatabaseRolesOptions = { owner: parsed.owner, runtime: parsed.runtime };
  if (parsed.passwordStdin) {
    const password = await readStdinPassword(io, PASSWORD_FLAG, "runtime role's password");
    const problem = runtimePasswordProblem(password);
    if (problem) throw new UsageError(`${PASSWORD_FLAG}: the password ${problem}`);
    options.runtimePasswordVerifier = scramSha256Verifier(password);
  }

  const registry = await deps.openDatabase();
  try {
    if (parsed.sqlOnly) {
      // Read only: a dry run cannot change anything, whatever the plan's queries were.
      const script = await registry.db
        .transaction()
        .setAccessMode('read only')
        .execute(async (trx) => databaseRolesScript(trx, await planDatabaseRoles(trx, options)));
      if (json) printResult(io, true, { sql: script });
      else io.stdout(script);
      return 0;
    }
    const auditKeys = await loadAuditKeyring(config.keysDir, { generateIfMissing: !config.production });
    const plan = await applyDatabaseRoles({ db: registry.db, audit: createAuditWriter(auditKeys) }, cliActor(), options);
    const out = {
      status: 'applied',
      database: plan.database,
      schema: plan.schema,
      owner: plan.owner,
      runtime: plan.runtime,
      created: plan.create,
      runtime_password_set: options.runtimePasswordVerifier !== undefined,
      reassigned: plan.reassign,
      read_write: plan.readWrite,
      append_only: plan.appendOnly,
      read_only: plan.readOnly,
      sequences: plan.sequences,
    };
    const note = `Run migrations as ${plan.owner} from now on (DATABASE_URL=postgres://${plan.owner}@…) and the server as ${plan.runtime}; run db roles again after a migration that adds an append-only table.`;
    printResult(io, json, out, json ? undefined : note);
    return 0;
  } finally {
    await registry.close();
  }
}

const ROLES_HELP = `
Run as a superuser, after migrate: creates the schema owner, which owns every table and runs the
migrations from then on, and the runtime role the server connects as: SELECT, INSERT, UPDATE and
DELETE on the registry's tables, INSERT and SELECT only on audit_log, SELECT on the migration
tables, no DDL. Names are a-z, 0-9 and _; the runtime role's password, if any, is read from
standard input (on a terminal: asked for, not shown). Running it again re-asserts the same grants.
--sql prints the statements as a psql script and changes nothing.
  gatehouse db roles --owner gatehouse_owner --runtime gatehouse_runtime --runtime-password-stdin < app-password.txt
`;

/** `gatehouse db roles`: the database roles the server and the migrations run as (PostgreSQL only). */
export function dbCommand(runtime: CliRuntime): Command {
  const db = group('db', 'set up the PostgreSQL roles Gatehouse runs as');
  const roles = db
    .command('roles')
    .summary('create the schema owner and the least-privilege runtime role')
    .usage('--owner NAME --runtime NAME [options]')
    .description('Creates the schema owner and the least-privilege runtime role, in one transaction recorded in the audit log.')
    .option('--owner <NAME>', 'the role that owns the schema and runs the migrations')
    .option('--runtime <NAME>', 'the role the server connects as')
    .option(PASSWORD_FLAG, "read the runtime role's password from standard input (on a terminal: asked for, not shown)")
    .option('--sql', 'print the statements as a psql script and change nothing')
    .addHelpText('after', ROLES_HELP)
    .action(
      handle(runtime, (ctx, values) =>
        dbRoles({ io: ctx.io, json: ctx.json, config: ctx.config, openDatabase: () => openCliDatabase(ctx.config, cliLogger(ctx.io)) }, values),
      ),
    );
  takesPasswordOnStdin(roles, { flag: PASSWORD_FLAG, what: "the runtime role's password" });
  return db;
}
