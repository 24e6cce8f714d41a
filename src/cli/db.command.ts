import { parseArgs } from 'node:util';
import { createAuditWriter } from '../audit/audit-log.js';
import type { Config } from '../config/load-config.js';
import { loadAuditKeyring } from '../keys/audit-key.js';
import type { RegistryDatabase } from '../registry/database.js';
import {
  databaseRolesScript,
  planDatabaseRoles,
  roleNameProblem,
  runtimePasswordProblem,
  scramSha256Verifier,
  type DatabaseRolesOptions,
} from '../registry/database-roles.js';
import { applyDatabaseRoles } from '../services/database-roles.service.js';
import { cliActor } from './cli-audit.js';
import { printResult, readStdinPassword, UsageError, type CliIo } from './output.js';

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

function parseRolesArgs(args: string[]): RolesArgs {
  // Never echo what may be a password typed where it does not belong.
  if (args.some((arg) => /^--[^=]*password/.test(arg) && arg !== PASSWORD_FLAG)) {
    throw new UsageError(`passwords are never taken as arguments: pipe the runtime role's password to ${PASSWORD_FLAG}`);
  }
  let values: { owner?: string; runtime?: string; 'runtime-password-stdin'?: boolean; sql?: boolean };
  try {
    const parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        json: { type: 'boolean' },
        sql: { type: 'boolean' },
        owner: { type: 'string' },
        runtime: { type: 'string' },
        'runtime-password-stdin': { type: 'boolean' },
      },
    });
    if (parsed.positionals.length > 0) throw new UsageError(`db roles takes no arguments but its options (a password goes to ${PASSWORD_FLAG})`);
    values = parsed.values;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError((error as Error).message.split('\n')[0] ?? 'bad arguments');
  }
  const { owner, runtime } = values;
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
export async function runDbCommand(deps: DbCommandDeps, sub: string | undefined, args: string[]): Promise<number> {
  const { io, json, config } = deps;
  if (sub !== 'roles') throw new UsageError(`unknown command "db ${sub ?? ''}": use db roles`);
  const parsed = parseRolesArgs(args);
  if (!config.databaseUrl) throw new Error('db roles needs DATABASE_URL: the embedded database (PGlite) has no roles to set up');

  const options: DatabaseRolesOptions = { owner: parsed.owner, runtime: parsed.runtime };
  if (parsed.passwordStdin) {
    const password = await readStdinPassword(io, PASSWORD_FLAG);
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
