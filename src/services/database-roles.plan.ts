import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import { DEFAULT_MIGRATION_LOCK_TABLE, DEFAULT_MIGRATION_TABLE } from 'kysely/migration';
import { migrationState } from '../registry/migrate.js';
import type { Database } from '../registry/tables.js';
import { roleNameProblem } from './database-roles.names.js';

export type Db = Kysely<Database> | Transaction<Database>;

/**
 * Append-only tables: the runtime role may INSERT and SELECT, never UPDATE, DELETE or TRUNCATE.
 * Default privileges cannot tell such a table from any other, so a migration that adds one must
 * also add it here, and `gatehouse db roles` must run again after it (see README, Operations).
 */
export const APPEND_ONLY_TABLES: readonly string[] = ['audit_log'];

/** Kysely's bookkeeping: the runtime role reads it (to tell whether migrations are pending), nothing more. */
export const MIGRATION_TABLES: readonly string[] = [DEFAULT_MIGRATION_TABLE, DEFAULT_MIGRATION_LOCK_TABLE];

/** What the runtime role may do to every other table, and by default to every table the owner creates. */
const RUNTIME_TABLE_PRIVILEGES = sql.raw('SELECT, INSERT, UPDATE, DELETE');

/** The database is not in a state where the roles can be set up; nothing was changed. */
export class DatabaseRolesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatabaseRolesError';
  }
}

export interface DatabaseRolesOptions {
  /** Owns the schema objects and runs the migrations. */
  owner: string;
  /** What the server connects as: data only, the audit log append-only. */
  runtime: string;
  /** Set as the runtime role's password when given (scramSha256Verifier); otherwise its password is left as it is. */
  runtimePasswordVerifier?: string | undefined;
}

/** One statement of the plan and why it is there (the comment above it in the SQL script). */
export interface RolesStatement {
  comment: string;
  query: RawBuilder<unknown>;
}

/** What `gatehouse db roles` does to one database, worked out from its catalog. */
export interface DatabaseRolesPlan {
  database: string;
  schema: string;
  owner: string;
  runtime: string;
  /** The roles that do not exist yet. */
  create: string[];
  /** Objects the owner does not own yet, as `table:clients`, `function:registry_bump_revision()`. */
  reassign: string[];
  /** Tables the runtime role may SELECT, INSERT, UPDATE and DELETE. */
  readWrite: string[];
  /** Tables it may only SELECT and INSERT. */
  appendOnly: string[];
  /** Tables it may only SELECT. */
  readOnly: string[];
  /** Sequences it may use (not those of identity columns, which need no grant). */
  sequences: string[];
  statements: RolesStatement[];
}

interface RoleRow {
  rolname: string;
  rolsuper: boolean;
  rolcreaterole: boolean;
  rolcreatedb: boolean;
  rolreplication: boolean;
  rolbypassrls: boolean;
  rolcanlogin: boolean;
}

interface RelationRow {
  kind: string;
  name: string;
  owner: string;
  /** A sequence that belongs to a serial or identity column: it follows its table's owner. */
  column_owned: boolean;
}

interface RoutineRow {
  kind: string;
  name: string;
  /** pg_get_function_identity_arguments: the argument types as PostgreSQL spells them. */
  args: string;
  owner: string;
}

const RELATION_KINDS: Record<string, string> = {
  r: 'TABLE',
  p: 'TABLE',
  v: 'VIEW',
  m: 'MATERIALIZED VIEW',
  f: 'FOREIGN TABLE',
  S: 'SEQUENCE',
};

/** Refuses roles that would give the server (or the migrations) more than the plan grants. */
function checkExistingRoles(roles: RoleRow[], options: DatabaseRolesOptions, user: string, memberships: string[], databaseOwner: string): void {
  for (const name of [options.owner, options.runtime]) {
    if (name === user) throw new DatabaseRolesError(`role ${name} is the one running this command: name two roles made for Gatehouse`);
  }
  for (const role of roles) {
    const powers = [
      role.rolsuper && 'SUPERUSER',
      role.rolcreaterole && 'CREATEROLE',
      role.rolcreatedb && 'CREATEDB',
      role.rolreplication && 'REPLICATION',
      role.rolbypassrls && 'BYPASSRLS',
    ].filter((power): power is string => typeof power === 'string');
    if (powers.length > 0) {
      throw new DatabaseRolesError(`role ${role.rolname} exists with ${powers.join(', ')}: name a role without them (or a new one)`);
    }
  }
  if (memberships.length > 0) {
    throw new DatabaseRolesError(
      `role ${options.runtime} is a member of ${memberships.join(', ')} and would have its privileges: revoke that membership or name another runtime role`,
    );
  }
  if (databaseOwner === options.runtime) {
    throw new DatabaseRolesError(`role ${options.runtime} owns this database: the runtime role must not own anything`);
  }
}

/**
 * Works out, from the catalog and without changing anything, the statements that give the
 * registry's schema to `owner` and the least privileges the server needs to `runtime`. Refuses
 * (DatabaseRolesError) while migrations are pending, when this build does not know a migration
 * the database has, and when an existing role is privileged or a member of the owner.
 *
 * @example
 * const plan = await planDatabaseRoles(trx, { owner: 'gatehouse_owner', runtime: 'gatehouse_runtime' });
 * await applyDatabaseRolesPlan(trx, plan);
 */
export async function planDatabaseRoles(db: Db, options: DatabaseRolesOptions): Promise<DatabaseRolesPlan> {
  const { owner, runtime } = options;
  for (const name of [owner, runtime]) {
    const problem = roleNameProblem(name);
    if (problem) throw new DatabaseRolesError(`role name "${name}" ${problem}`);
  }
  if (owner === runtime) throw new DatabaseRolesError('the owner and the runtime role must be two roles');

  const state = await migrationState(db);
  if (state.unknown.length > 0) {
    throw new DatabaseRolesError(`the database has migrations this Gatehouse does not know (${state.unknown.join(', ')}): use the Gatehouse that migrated it`);
  }
  if (state.pending.length > 0) {
    throw new DatabaseRolesError(
      `${state.pending.length} migration(s) are pending (${state.pending[0]} first): run gatehouse migrate first, then db roles`,
    );
  }

  const context = await sql<{ database: string; schema: string | null; user: string; database_owner: string }>`
    select current_database() as database, current_schema() as schema, current_user as user,
           (select pg_get_userbyid(datdba) from pg_database where datname = current_database()) as database_owner`.execute(db);
  const here = context.rows[0];
  if (!here?.schema) throw new DatabaseRolesError('no schema is current (search_path is empty): set the one Gatehouse migrated into');
  const { database, schema } = here;

  const roles = (
    await sql<RoleRow>`
      select rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin
      from pg_roles where rolname in (${owner}, ${runtime})`.execute(db)
  ).rows;
  const existing = new Map(roles.map((role) => [role.rolname, role]));
  // Membership of the owner would let the runtime role SET ROLE to it; pg_write_all_data would let it rewrite the audit log.
  const memberships = existing.has(runtime)
    ? (
        await sql<{ rolname: string }>`
          select rolname from pg_roles
          where rolname in (${owner}, 'pg_write_all_data') and pg_has_role(${runtime}, oid, 'MEMBER')
          order by rolname`.execute(db)
      ).rows.map((row) => row.rolname)
    : [];
  checkExistingRoles(roles, options, here.user, memberships, here.database_owner);

  const relations = (
    await sql<RelationRow>`
      select c.relkind as kind, c.relname as name, pg_get_userbyid(c.relowner) as owner,
             exists (select 1 from pg_depend d
                     where d.classid = 'pg_class'::regclass and d.objid = c.oid
                       and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i')) as column_owned
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = ${schema} and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
        and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
      order by c.relname`.execute(db)
  ).rows;
  const routines = (
    await sql<RoutineRow>`
      select p.prokind as kind, p.proname as name, pg_get_function_identity_arguments(p.oid) as args, pg_get_userbyid(p.proowner) as owner
      from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname = ${schema} and p.prokind in ('f', 'p')
        and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
      order by p.proname, 3`.execute(db)
  ).rows;

  const id = (name: string) => sql.id(schema, name);
  const list = (names: string[]) => sql.join(names.map(id));
  const o = sql.id(owner);
  const r = sql.id(runtime);
  const s = sql.id(schema);
  const statements: RolesStatement[] = [];
  const add = (comment: string, query: RawBuilder<unknown>) => statements.push({ comment, query });

  add(
    'Changing an owner locks its table: give up after 10 s rather than queue every query of a running server behind the change.',
    sql`SET LOCAL lock_timeout = '10s'`,
  );
  const create = [owner, runtime].filter((name) => !existing.has(name));
  if (create.includes(owner)) {
    add(
      `${owner} owns the schema objects and runs the migrations. LOGIN, without a password: until one is set (psql \\password) only trust, peer or certificate authentication can log in as it.`,
      sql`DO $$BEGIN CREATE ROLE ${o} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END$$`,
    );
  }
  if (create.includes(runtime)) {
    add(
      `${runtime} is what the server connects as: no attribute beyond LOGIN, no membership.`,
      sql`DO $$BEGIN CREATE ROLE ${r} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END$$`,
    );
  } else if (existing.get(runtime)?.rolcanlogin === false) {
    add(`The server logs in as ${runtime}.`, sql`ALTER ROLE ${r} LOGIN`);
  }
  if (options.runtimePasswordVerifier !== undefined) {
    add(
      `${runtime}'s password, as a SCRAM-SHA-256 verifier computed by the CLI: the password itself never reaches the server.`,
      sql`ALTER ROLE ${r} PASSWORD ${sql.lit(options.runtimePasswordVerifier)}`,
    );
  }
  add('Both may connect, even where CONNECT was revoked from PUBLIC.', sql`GRANT CONNECT ON DATABASE ${sql.id(database)} TO ${o}, ${r}`);
  add(`${owner} creates what migrations add.`, sql`GRANT USAGE, CREATE ON SCHEMA ${s} TO ${o}`);
  add(`Nobody else creates objects in ${schema}.`, sql`REVOKE CREATE ON SCHEMA ${s} FROM PUBLIC, ${r}`);
  add(`${runtime} may look up objects in ${schema}.`, sql`GRANT USAGE ON SCHEMA ${s} TO ${r}`);

  const reassign: string[] = [];
  for (const relation of relations) {
    const kind = RELATION_KINDS[relation.kind];
    if (!kind || relation.owner === owner || relation.column_owned) continue;
    reassign.push(`${kind.toLowerCase().replace(/ /g, '_')}:${relation.name}`);
    add(`${owner} owns ${relation.name} (was ${relation.owner}); its indexes and column sequences follow.`, sql`ALTER ${sql.raw(kind)} ${id(relation.name)} OWNER TO ${o}`);
  }
  for (const routine of routines) {
    if (routine.owner === owner) continue;
    const kind = routine.kind === 'p' ? 'PROCEDURE' : 'FUNCTION';
    reassign.push(`${kind.toLowerCase()}:${routine.name}(${routine.args})`);
    // The argument types as pg_get_function_identity_arguments spells (and quotes) them.
    add(`${owner} owns ${routine.name}() (was ${routine.owner}).`, sql`ALTER ${sql.raw(kind)} ${id(routine.name)}(${sql.raw(routine.args)}) OWNER TO ${o}`);
  }

  const tables = relations.filter((relation) => relation.kind !== 'S').map((relation) => relation.name);
  const appendOnly = tables.filter((name) => APPEND_ONLY_TABLES.includes(name));
  const readOnly = tables.filter((name) => MIGRATION_TABLES.includes(name));
  const readWrite = tables.filter((name) => !appendOnly.includes(name) && !readOnly.includes(name));
  const sequences = relations.filter((relation) => relation.kind === 'S' && !relation.column_owned).map((relation) => relation.name);
  add(`Start ${runtime} from nothing on every table, so that what follows is all it has (TRUNCATE, REFERENCES and TRIGGER never).`, sql`REVOKE ALL ON ALL TABLES IN SCHEMA ${s} FROM ${r}`);
  if (readWrite.length > 0) add(`The registry's data: read and write.`, sql`GRANT ${RUNTIME_TABLE_PRIVILEGES} ON TABLE ${list(readWrite)} TO ${r}`);
  if (appendOnly.length > 0) add('Append-only: rows are added and read, never changed or removed.', sql`GRANT SELECT, INSERT ON TABLE ${list(appendOnly)} TO ${r}`);
  if (readOnly.length > 0) add(`Migration bookkeeping: read only, so that the server can tell whether migrations are pending.`, sql`GRANT SELECT ON TABLE ${list(readOnly)} TO ${r}`);
  add(`Sequences: likewise from nothing.`, sql`REVOKE ALL ON ALL SEQUENCES IN SCHEMA ${s} FROM ${r}`);
  if (sequences.length > 0) add('Sequences that serial columns or the code draw from.', sql`GRANT USAGE, SELECT ON SEQUENCE ${list(sequences)} TO ${r}`);
  add('Functions (triggers run whatever the grant; this covers functions called directly).', sql`GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA ${s} TO ${r}`);

  const defaults = sql`ALTER DEFAULT PRIVILEGES FOR ROLE ${o} IN SCHEMA ${s}`;
  add(`What migrations run as ${owner} create from now on gets the same grants: reset first…`, sql`${defaults} REVOKE ALL ON TABLES FROM ${r}`);
  add(
    `…then read and write on new tables. A new append-only table gets these too: add it to APPEND_ONLY_TABLES and run db roles after its migration.`,
    sql`${defaults} GRANT ${RUNTIME_TABLE_PRIVILEGES} ON TABLES TO ${r}`,
  );
  add('New sequences: reset…', sql`${defaults} REVOKE ALL ON SEQUENCES FROM ${r}`);
  add('…then usable.', sql`${defaults} GRANT USAGE, SELECT ON SEQUENCES TO ${r}`);
  add('New functions: executable.', sql`${defaults} GRANT EXECUTE ON FUNCTIONS TO ${r}`);

  return { database, schema, owner, runtime, create, reassign, readWrite, appendOnly, readOnly, sequences, statements };
}

/** Every statement's SQL, checked to carry no bound parameter: the script must stand on its own. */
export function compileStatements(db: Db, plan: DatabaseRolesPlan): Array<{ comment: string; text: string }> {
  return plan.statements.map(({ comment, query }) => {
    const compiled = query.compile(db);
    if (compiled.parameters.length > 0) throw new Error(`a roles statement has bound parameters: ${compiled.sql}`);
    return { comment, text: compiled.sql };
  });
}

/** Runs the plan's statements in order; give it a transaction, so that all of them happen or none. */
export async function applyDatabaseRolesPlan(trx: Transaction<Database>, plan: DatabaseRolesPlan): Promise<void> {
  for (const { text } of compileStatements(trx, plan)) await sql.raw(text).execute(trx);
}
