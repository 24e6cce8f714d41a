import { randomBytes, randomUUID } from 'node:crypto';
import { Kysely, PostgresDialect, sql } from 'kysely';
import { Migrator, type Migration } from 'kysely/migration';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../../migrations/index.js';
import { appendAudit, tailAudit, verifyAuditChain } from '../../../src/audit/audit-log.js';
import { scramSha256Verifier } from '../../../src/cli/db-roles/scram-verifier.js';
import { loadAuditKeyring } from '../../../src/keys/audit-key.js';
import { migrateToLatest, migrationState } from '../../../src/registry/migrate.js';
import type { Database } from '../../../src/registry/tables.js';
import { cliJson, expectOneLineError, runCliCapture } from '../../fixtures/cli.js';
import { createCliEnv } from '../../fixtures/cli-env.js';
import { createTestDatabase, type TestDatabase } from '../../fixtures/database.js';
import { TEST_DATABASE_URL } from '../../fixtures/env.js';
import { recordSecret } from '../../fixtures/log-capture.js';
import { startTestServer, tokenRequest, type TestServer } from '../../fixtures/server.js';

type Json = Record<string, unknown>;

/** The registry's tables and what the runtime role may do to each (has_table_privilege, in this order). */
const TABLE_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'];
const READ_WRITE = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'];
const EXPECTED_RUNTIME_PRIVILEGES: Record<string, string[]> = {
  api_keys: READ_WRITE,
  audit_log: ['SELECT', 'INSERT'],
  client_grants: READ_WRITE,
  clients: READ_WRITE,
  email_links: READ_WRITE,
  kysely_migration: ['SELECT'],
  kysely_migration_lock: ['SELECT'],
  oidc_durable: READ_WRITE,
  passkeys: READ_WRITE,
  recovery_codes: READ_WRITE,
  registry_revision: READ_WRITE,
  resource_servers: READ_WRITE,
  sign_ins: READ_WRITE,
  totp_factors: READ_WRITE,
  upstream_links: READ_WRITE,
  upstream_providers: READ_WRITE,
  users: READ_WRITE,
};

/** The URL of `url`'s database for another role (the local PostgreSQL trusts 127.0.0.1; the password is sent all the same). */
function asRole(url: string, role: string, password?: string): string {
  const u = new URL(url);
  u.username = role;
  u.password = password ?? '';
  return u.toString();
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}

function kyselyFor(url: string): Kysely<Database> {
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 2 }) }) });
}

/**
 * Runs one statement in a transaction that is rolled back whatever happens, and returns its
 * SQLSTATE, or 'succeeded': a statement that should have been refused undoes itself.
 */
async function attempt(client: pg.Client, statement: string): Promise<string> {
  await client.query('begin');
  try {
    await client.query(statement);
    return 'succeeded';
  } catch (error) {
    return String((error as { code?: unknown }).code);
  } finally {
    await client.query('rollback');
  }
}

/** Every table of the schema and what `role` may do to it. */
async function runtimePrivileges(admin: pg.Client, role: string): Promise<Record<string, string[]>> {
  const { rows } = await admin.query<{ table: string; privileges: string[] }>(
    `select c.relname as table,
            array(select p from unnest($2::text[]) with ordinality u(p, n)
                  where has_table_privilege($1, c.oid, p) order by n) as privileges
     from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'f')
     order by c.relname`,
    [role, TABLE_PRIVILEGES],
  );
  return Object.fromEntries(rows.map((row) => [row.table, row.privileges]));
}

/** Owner of every table, sequence and function in the schema, by name. */
async function owners(admin: pg.Client): Promise<Record<string, string>> {
  const { rows } = await admin.query<{ name: string; owner: string }>(
    `select c.relname as name, pg_get_userbyid(c.relowner) as owner
     from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
     union all
     select p.proname || '()', pg_get_userbyid(p.proowner)
     from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'public'`,
  );
  return Object.fromEntries(rows.map((row) => [row.name, row.owner]));
}

async function rolesNamed(admin: pg.Client, names: string[]): Promise<string[]> {
  const { rows } = await admin.query<{ rolname: string }>('select rolname from pg_roles where rolname = any($1) order by rolname', [names]);
  return rows.map((row) => row.rolname);
}

async function revision(admin: pg.Client): Promise<number> {
  const { rows } = await admin.query<{ revision: string }>('select revision from registry_revision where id = 1');
  return Number(rows[0]?.revision);
}

/** Recomputes a stored SCRAM verifier from a password, with the verifier's own salt and iteration count. */
function verifierMatches(stored: string, password: string): boolean {
  const match = /^SCRAM-SHA-256\$(\d+):([^$]+)\$/.exec(stored);
  if (!match) return false;
  return scramSha256Verifier(password, { iterations: Number(match[1]), salt: Buffer.from(match[2]!, 'base64') }) === stored;
}

async function storedPassword(admin: pg.Client, role: string): Promise<string | null> {
  const { rows } = await admin.query<{ rolpassword: string | null }>('select rolpassword from pg_authid where rolname = $1', [role]);
  return rows[0]?.rolpassword ?? null;
}

describe('gatehouse db roles: least privilege for the database', () => {
  // Roles are cluster-wide: names of this run's own, dropped at the end.
  const suffix = `${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const OWNER = `gh_owner_${suffix}`;
  const RUNTIME = `gh_app_${suffix}`;
  const SCRIPT_OWNER = `gh_sowner_${suffix}`;
  const SCRIPT_RUNTIME = `gh_sapp_${suffix}`;
  const SCRAM_ROLE = `gh_scram_${suffix}`;
  const ALL_ROLES = [OWNER, RUNTIME, SCRIPT_OWNER, SCRIPT_RUNTIME, SCRAM_ROLE];
  const PASSWORD = randomBytes(24).toString('base64url');

  let env: Record<string, string>;
  let dispose: (() => Promise<void>) | undefined;
  let admin: pg.Client;
  let second: TestDatabase | undefined;
  let server: TestServer | undefined;
  const opened: Array<{ end(): Promise<void> }> = [];
  const destroyLater: Array<Kysely<Database>> = [];

  const rolesArgs = (owner = OWNER, runtime = RUNTIME) => ['db', 'roles', '--owner', owner, '--runtime', runtime];
  const runtimeUrl = () => asRole(env.DATABASE_URL!, RUNTIME, PASSWORD);

  beforeAll(async () => {
    recordSecret(PASSWORD);
    const cliEnv = await createCliEnv('db-roles');
    env = cliEnv.env;
    dispose = cliEnv.dispose;
    admin = await connect(env.DATABASE_URL!);
    // As PostgreSQL 14 and older have it: anyone may create objects in public (15 revoked that by default).
    await admin.query('grant create on schema public to public');
    const migrated = await cliJson<{ applied: string[] }>(['migrate'], env);
    expect(migrated.applied).toEqual(Object.keys(MIGRATIONS));
  });

  afterAll(async () => {
    await server?.close();
    for (const db of destroyLater) await db.destroy().catch(() => undefined);
    for (const client of opened) await client.end().catch(() => undefined);
    await admin?.end().catch(() => undefined);
    // Dropping the databases drops what the roles own and were granted in them; then the roles can go.
    await dispose?.();
    await second?.drop();
    const cluster = await connect(TEST_DATABASE_URL);
    try {
      for (const role of ALL_ROLES) await cluster.query(`drop role if exists ${cluster.escapeIdentifier(role)}`);
    } finally {
      await cluster.end();
    }
  });

  it('refuses bad names, one role for both and passwords as arguments: exit 2, one line, nothing created', async () => {
    const cases: Array<{ args: string[]; stdin?: string; mentions: RegExp }> = [
      { args: ['db', 'roles', '--owner', 'Gatehouse', '--runtime', RUNTIME], mentions: /--owner: "Gatehouse" must be 1 to 63 characters of a-z/ },
      { args: ['db', 'roles', '--owner', OWNER, '--runtime', 'app"; drop table clients; --'], mentions: /--runtime: .* must be 1 to 63 characters/ },
      { args: ['db', 'roles', '--owner', OWNER, '--runtime', `x${'y'.repeat(63)}`], mentions: /--runtime: .* must be 1 to 63 characters/ },
      { args: ['db', 'roles', '--owner', 'pg_gatehouse', '--runtime', RUNTIME], mentions: /--owner: .* must not start with pg_/ },
      { args: ['db', 'roles', '--owner', 'public', '--runtime', RUNTIME], mentions: /--owner: .* reserved/ },
      { args: ['db', 'roles', '--owner', OWNER, '--runtime', OWNER], mentions: /two different roles/ },
      { args: ['db', 'roles', '--owner', OWNER], mentions: /needs --owner NAME and --runtime NAME/ },
      { args: ['db', 'roles', '--owner', OWNER, '--runtime', RUNTIME, '--runtime-password', 'hunter2-hunter2'], mentions: /never taken as arguments/ },
      { args: ['db', 'roles', '--owner', OWNER, '--runtime', RUNTIME, '--runtime-password-stdin', 'hunter2-hunter2'], mentions: /takes no arguments/ },
      { args: ['db', 'roles', '--owner', OWNER, '--runtime', RUNTIME, '--runtime-password-stdin'], stdin: 'pässwörd-ünicode\n', mentions: /printable ASCII/ },
      { args: ['db', 'roles', '--owner', OWNER, '--runtime', RUNTIME, '--runtime-password-stdin'], stdin: '', mentions: /standard input is empty/ },
      { args: ['db', 'grants'], mentions: /use db roles/ },
    ];
    for (const { args, stdin, mentions } of cases) {
      const result = await runCliCapture([...args, '--json'], env, stdin === undefined ? {} : { stdin });
      const line = expectOneLineError(result, mentions, 2);
      expect(line).not.toMatch(/hunter2/);
    }
    expect(await rolesNamed(admin, ALL_ROLES)).toEqual([]);
  });

  it('refuses while migrations are pending (exit 1, one line) and creates nothing', async () => {
    second = await createTestDatabase();
    const result = await runCliCapture([...rolesArgs(), '--json'], { ...env, DATABASE_URL: second.url });
    expectOneLineError(result, new RegExp(`${Object.keys(MIGRATIONS).length} migration\\(s\\) are pending .* run gatehouse migrate first, then db roles`), 1);
    expect(await rolesNamed(admin, ALL_ROLES)).toEqual([]);
  });

  it('creates both roles, gives the owner every object and the runtime role least privilege; running it again succeeds and changes nothing', async () => {
    const first = await cliJson<Json>([...rolesArgs(), '--runtime-password-stdin'], env, { stdin: `${PASSWORD}\n` });
    expect(first).toMatchObject({
      status: 'applied',
      schema: 'public',
      owner: OWNER,
      runtime: RUNTIME,
      created: [OWNER, RUNTIME],
      runtime_password_set: true,
      read_write: ['api_keys', 'client_grants', 'clients', 'email_links', 'oidc_durable', 'passkeys', 'recovery_codes', 'registry_revision', 'resource_servers', 'sign_ins', 'totp_factors', 'upstream_links', 'upstream_providers', 'users'],
      append_only: ['audit_log'],
      read_only: ['kysely_migration', 'kysely_migration_lock'],
      sequences: [],
    });
    expect(first.reassigned).toEqual(expect.arrayContaining(['table:audit_log', 'table:clients', 'table:kysely_migration', 'function:registry_bump_revision()']));
    const privilegesAfterFirst = await runtimePrivileges(admin, RUNTIME);
    const storedAfterFirst = await storedPassword(admin, RUNTIME);

    // Drift since the first run (a hand-made grant, a table made by someone else) is undone by the second.
    await admin.query(`grant truncate on clients to ${admin.escapeIdentifier(RUNTIME)}`);
    await admin.query(`grant update, delete on audit_log to ${admin.escapeIdentifier(RUNTIME)}`);
    await admin.query(`alter table users owner to postgres`);
    expect((await runtimePrivileges(admin, RUNTIME)).audit_log).toEqual(['SELECT', 'INSERT', 'UPDATE', 'DELETE']);

    // Twice: the roles exist, so nothing is created; only the drifted table is reassigned.
    const again = await cliJson<Json>(rolesArgs(), env);
    expect(again).toMatchObject({ status: 'applied', created: [], reassigned: ['table:users'], runtime_password_set: false });

    expect(await runtimePrivileges(admin, RUNTIME)).toEqual(EXPECTED_RUNTIME_PRIVILEGES);
    expect(privilegesAfterFirst).toEqual(EXPECTED_RUNTIME_PRIVILEGES);
    expect(await runtimePrivileges(admin, OWNER)).toEqual(Object.fromEntries(Object.keys(EXPECTED_RUNTIME_PRIVILEGES).map((t) => [t, TABLE_PRIVILEGES])));
    const owned = await owners(admin);
    expect(Object.keys(owned)).toEqual(expect.arrayContaining(['clients', 'audit_log', 'audit_log_seq_seq', 'kysely_migration', 'registry_bump_revision()']));
    expect(Object.entries(owned).filter(([, owner]) => owner !== OWNER)).toEqual([]);

    const { rows: roles } = await admin.query<Json>(
      `select rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls,
              (select count(*)::int from pg_auth_members m where m.member = r.oid) as memberships
       from pg_roles r where rolname = any($1) order by rolname`,
      [[OWNER, RUNTIME]],
    );
    const plain = { rolcanlogin: true, rolsuper: false, rolcreaterole: false, rolcreatedb: false, rolreplication: false, rolbypassrls: false, memberships: 0 };
    expect(roles).toEqual([
      { rolname: RUNTIME, ...plain },
      { rolname: OWNER, ...plain },
    ].sort((a, b) => a.rolname.localeCompare(b.rolname)));

    const { rows: schema } = await admin.query<Json>(
      `select has_schema_privilege($1, 'public', 'CREATE') as runtime_creates, has_schema_privilege($1, 'public', 'USAGE') as runtime_uses,
              has_schema_privilege($2, 'public', 'CREATE') as owner_creates,
              exists (select 1 from pg_namespace n, aclexplode(n.nspacl) a
                      where n.nspname = 'public' and a.grantee = 0 and a.privilege_type = 'CREATE') as public_creates`,
      [RUNTIME, OWNER],
    );
    expect(schema[0]).toEqual({ runtime_creates: false, runtime_uses: true, owner_creates: true, public_creates: false });

    // The password from stdin is stored as a verifier of it (set by the first run, kept by the second).
    const stored = await storedPassword(admin, RUNTIME);
    expect(stored).toMatch(/^SCRAM-SHA-256\$4096:/);
    expect(stored).toBe(storedAfterFirst);
    expect(verifierMatches(stored ?? '', PASSWORD)).toBe(true);
    expect(verifierMatches(stored ?? '', `${PASSWORD}x`)).toBe(false);
    expect(await storedPassword(admin, OWNER)).toBeNull();

    // Both runs are in the audit log, without the password or its verifier.
    const audit = await cliJson<Array<{ action: string; actor: string; target: string; details: Json }>>(['audit', 'tail'], env);
    const records = audit.filter((row) => row.action === 'db.roles');
    expect(records).toHaveLength(2);
    expect(records[0]).toMatchObject({ actor: expect.stringMatching(/^cli:/), target: `database:${new URL(env.DATABASE_URL!).pathname.slice(1)}` });
    expect(records[0]!.details).toMatchObject({ owner: OWNER, runtime: RUNTIME, created: [OWNER, RUNTIME], runtime_password_set: true });
    expect(records[1]!.details).toMatchObject({ created: [], reassigned: ['table:users'], runtime_password_set: false });
    expect(JSON.stringify(audit)).not.toContain('SCRAM');
    expect(await cliJson(['audit', 'verify'], env)).toMatchObject({ ok: true });
  });

  it('refuses an existing role that is privileged or a member of the owner, changing nothing', async () => {
    const result = await runCliCapture([...rolesArgs('postgres', RUNTIME), '--json'], env);
    expectOneLineError(result, /role postgres is the one running this command|role postgres exists with SUPERUSER/, 1);

    await admin.query(`grant ${admin.escapeIdentifier(OWNER)} to ${admin.escapeIdentifier(RUNTIME)}`);
    try {
      const member = await runCliCapture([...rolesArgs(), '--json'], env);
      expectOneLineError(member, new RegExp(`role ${RUNTIME} is a member of ${OWNER}`), 1);
    } finally {
      await admin.query(`revoke ${admin.escapeIdentifier(OWNER)} from ${admin.escapeIdentifier(RUNTIME)}`);
    }
    expect(await runtimePrivileges(admin, RUNTIME)).toEqual(EXPECTED_RUNTIME_PRIVILEGES);
  });

  it('--sql prints the same plan as a psql script and changes nothing; the script sets up the same roles', async () => {
    const env2 = { ...env, DATABASE_URL: second!.url };
    await cliJson(['migrate'], env2);
    const dry = await runCliCapture(rolesArgs(SCRIPT_OWNER, SCRIPT_RUNTIME).concat('--sql'), env2);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stderr).toBe('');
    const script = dry.stdout;
    expect(script).toMatch(/^-- Gatehouse database roles/);
    expect(script).toContain(`CREATE ROLE "${SCRIPT_OWNER}" LOGIN`);
    expect(script).toContain(`ALTER TABLE "public"."audit_log" OWNER TO "${SCRIPT_OWNER}"`);
    expect(script).toContain(`GRANT SELECT, INSERT ON TABLE "public"."audit_log" TO "${SCRIPT_RUNTIME}"`);
    expect(script).toContain(`ALTER DEFAULT PRIVILEGES FOR ROLE "${SCRIPT_OWNER}" IN SCHEMA "public" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "${SCRIPT_RUNTIME}"`);
    expect(script.trimEnd().endsWith('COMMIT;')).toBe(true);
    expect(await rolesNamed(admin, [SCRIPT_OWNER, SCRIPT_RUNTIME])).toEqual([]);

    // For roles already set up, the plan has nothing to create or reassign, and --json wraps the script.
    const settled = await cliJson<{ sql: string }>(rolesArgs().concat('--sql'), env);
    expect(settled.sql).not.toMatch(/CREATE ROLE|OWNER TO/);
    expect(settled.sql).toContain(`REVOKE ALL ON ALL TABLES IN SCHEMA "public" FROM "${RUNTIME}"`);

    // Run by psql's rules (one simple query, its own transaction), twice.
    const admin2 = await connect(second!.url);
    opened.push(admin2);
    await admin2.query(script);
    await admin2.query(script);
    expect(await runtimePrivileges(admin2, SCRIPT_RUNTIME)).toEqual(EXPECTED_RUNTIME_PRIVILEGES);
    expect(Object.entries(await owners(admin2)).filter(([, owner]) => owner !== SCRIPT_OWNER)).toEqual([]);
    const script2 = await connect(asRole(second!.url, SCRIPT_RUNTIME));
    opened.push(script2);
    expect(await attempt(script2, 'delete from audit_log')).toBe('42501');
    expect(await attempt(script2, 'drop table clients')).toBe('42501');
  });

  it('computes SCRAM-SHA-256 verifiers exactly as PostgreSQL does', async () => {
    const password = randomBytes(18).toString('base64');
    recordSecret(password);
    // PostgreSQL hashes this one itself: the verifier from the same salt and iterations must be the same.
    await admin.query(`set password_encryption = 'scram-sha-256'`);
    await admin.query(`create role ${admin.escapeIdentifier(SCRAM_ROLE)} nologin password ${admin.escapeLiteral(password)}`);
    const byPostgres = await storedPassword(admin, SCRAM_ROLE);
    expect(byPostgres).toMatch(/^SCRAM-SHA-256\$\d+:/);
    expect(verifierMatches(byPostgres ?? '', password)).toBe(true);
    expect(verifierMatches(byPostgres ?? '', password.slice(1))).toBe(false);
  });

  it('the runtime role reads and writes the registry (the revision trigger fires) and appends to the audit log', async () => {
    const client = await connect(runtimeUrl());
    opened.push(client);
    const before = await revision(admin);
    const clientId = `roles-${randomUUID()}`;
    const inserted = await client.query(
      `insert into clients (client_id, client_name, token_endpoint_auth_method, grant_types) values ($1, 'roles test', 'none', '{authorization_code}')`,
      [clientId],
    );
    expect(inserted.rowCount).toBe(1);
    expect((await client.query('select client_name from clients where client_id = $1', [clientId])).rows).toEqual([{ client_name: 'roles test' }]);
    expect((await client.query(`update clients set client_name = 'renamed' where client_id = $1`, [clientId])).rowCount).toBe(1);
    expect((await client.query('delete from clients where client_id = $1', [clientId])).rowCount).toBe(1);
    // One bump per statement, by the trigger function running for the runtime role (the delete
    // also runs its cascade to client_grants: one more).
    expect(await revision(admin)).toBe(before + 4);

    const db = kyselyFor(runtimeUrl());
    destroyLater.push(db);
    const auditKeys = await loadAuditKeyring(env.KEYS_DIR!, { generateIfMissing: false });
    const record = await appendAudit(db, auditKeys, { actor: 'system', action: 'roles.test', target: clientId });
    const tail = await tailAudit(db, { limit: 1 });
    expect(tail.map((row) => row.seq)).toEqual([record.seq]);
    expect(await verifyAuditChain(db, auditKeys)).toMatchObject({ ok: true });

    // What the server does at start outside production: read the migration state, find nothing pending, change nothing.
    expect(await migrationState(db)).toEqual({ pending: [], unknown: [] });
    expect(await migrateToLatest(db)).toEqual([]);
  });

  it('a runtime role facing pending migrations fails with a line saying to migrate as the owner', async () => {
    const fresh = await createTestDatabase();
    try {
      const setup = await connect(fresh.url);
      await setup.query('revoke create on schema public from public').finally(() => setup.end());
      const db = kyselyFor(asRole(fresh.url, RUNTIME, PASSWORD));
      try {
        expect((await migrationState(db)).pending).toEqual(Object.keys(MIGRATIONS));
        await expect(migrateToLatest(db)).rejects.toThrow(/permission denied .*run gatehouse migrate as the schema owner/);
      } finally {
        await db.destroy();
      }
    } finally {
      await fresh.drop();
    }
  });

  it('the runtime role is refused DDL, TRUNCATE, SET ROLE and any change to the audit log (SQLSTATE 42501)', async () => {
    const client = await connect(runtimeUrl());
    opened.push(client);
    expect(Number((await client.query('select count(*) from audit_log')).rows[0].count)).toBeGreaterThan(0);
    const statements = [
      'update audit_log set actor = actor',
      'delete from audit_log',
      'truncate audit_log',
      'drop table audit_log',
      'alter table audit_log disable trigger all',
      'drop table clients',
      'alter table clients add column note text',
      'truncate clients',
      'create index on clients (client_name)',
      'create table gatehouse_intruder (id int)',
      'create table public.gatehouse_intruder (id int)',
      'create function gatehouse_intruder() returns int language sql as $$ select 1 $$',
      `insert into kysely_migration (name, timestamp) values ('9999_intruder', now()::text)`,
      'delete from kysely_migration',
      `set role ${client.escapeIdentifier(OWNER)}`,
    ];
    const outcomes: Record<string, string> = {};
    for (const statement of statements) outcomes[statement] = await attempt(client, statement);
    expect(outcomes).toEqual(Object.fromEntries(statements.map((statement) => [statement, '42501'])));
    expect(await cliJson(['audit', 'verify'], env)).toMatchObject({ ok: true });
  });

  it('migrations run as the owner, and what they create gets the runtime grants by default (TRUNCATE and DDL still refused)', async () => {
    const ownerDb = kyselyFor(asRole(env.DATABASE_URL!, OWNER));
    destroyLater.push(ownerDb);
    const future: Migration = {
      async up(db) {
        await sql`create table future_items (id serial primary key, note text not null)`.execute(db);
      },
      async down(db) {
        await sql`drop table future_items`.execute(db);
      },
    };
    const migrator = new Migrator({
      db: ownerDb,
      provider: { getMigrations: () => Promise.resolve({ ...MIGRATIONS, '9999_12_31_000000_roles_test_future': future }) },
    });
    const up = await migrator.migrateToLatest();
    expect(up.error).toBeUndefined();
    expect(up.results?.map((result) => [result.migrationName, result.status])).toEqual([['9999_12_31_000000_roles_test_future', 'Success']]);
    try {
      expect((await runtimePrivileges(admin, RUNTIME)).future_items).toEqual(READ_WRITE);
      const client = await connect(runtimeUrl());
      opened.push(client);
      // A serial column draws from its sequence: the default privileges on sequences let it.
      expect((await client.query(`insert into future_items (note) values ('x') returning id`)).rows).toEqual([{ id: 1 }]);
      expect(await attempt(client, 'truncate future_items')).toBe('42501');
      expect(await attempt(client, 'drop table future_items')).toBe('42501');
    } finally {
      const down = await migrator.migrateDown();
      expect(down.error).toBeUndefined();
    }
    expect(await migrationState(ownerDb)).toEqual({ pending: [], unknown: [] });
  });

  it('a server connected as the runtime role starts, issues client-credentials tokens and takes CLI and admin API writes', async () => {
    server = await startTestServer({ name: 'db-roles', env: { DATABASE_URL: runtimeUrl() } });
    expect(server.env.DATABASE_URL).toBe(runtimeUrl());
    const base = server.server.url;

    const before = await revision(admin);
    const { resource, clientId, clientSecret } = await server.serviceClient();
    expect(await revision(admin)).toBeGreaterThan(before);
    await server.server.cache.refresh();
    const issued = await tokenRequest(base, { grant_type: 'client_credentials', resource, scope: 'read' }, { clientId, clientSecret });
    expect(issued.status, JSON.stringify(issued.body)).toBe(200);
    expect(typeof issued.body.access_token).toBe('string');

    const adminClient = await server.cli<{ client_id: string; client_secret: string }>('clients', 'create', '--name', `roles admin ${suffix}`, '--admin');
    recordSecret(adminClient.client_secret);
    await server.server.cache.refresh();
    const adminToken = await tokenRequest(base, { grant_type: 'client_credentials', scope: 'admin' }, { clientId: adminClient.client_id, clientSecret: adminClient.client_secret });
    expect(adminToken.status, JSON.stringify(adminToken.body)).toBe(200);

    const beforeAdmin = await revision(admin);
    const identifier = `https://roles-${suffix}.example.test`;
    const created = await fetch(`${base}/admin/v1/resources`, {
      method: 'POST',
      headers: { authorization: `Bearer ${String(adminToken.body.access_token)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ identifier, scope: 'read' }),
    });
    expect(created.status, await created.clone().text()).toBe(201);
    expect(await revision(admin)).toBeGreaterThan(beforeAdmin);
    const { rows } = await admin.query<{ actor: string }>(`select actor from audit_log where action = 'resource.create' and details->'after'->>'identifier' = $1`, [identifier]);
    expect(rows).toEqual([{ actor: `admin:${adminClient.client_id}` }]);
    expect(server.logs.text()).not.toMatch(/migrations applied|permission denied/);
  });
});
