import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('resource_servers')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('identifier', 'text', (c) => c.notNull().unique())
    .addColumn('name', 'text')
    .addColumn('scopes', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn('access_token_ttl', 'integer', (c) => c.notNull().check(sql`access_token_ttl between 1 and 86400`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('clients')
    .addColumn('client_id', 'text', (c) => c.primaryKey())
    .addColumn('client_name', 'text', (c) => c.notNull())
    .addColumn('secret_digest', 'text')
    .addColumn('token_endpoint_auth_method', 'text', (c) => c.notNull())
    .addColumn('grant_types', sql`text[]`, (c) => c.notNull())
    .addColumn('redirect_uris', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn('post_logout_redirect_uris', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn('scopes', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn('default_resource', 'text', (c) =>
      c.references('resource_servers.identifier').onUpdate('cascade').onDelete('restrict'),
    )
    .addColumn('jwks', 'jsonb')
    .addColumn('logo_uri', 'text')
    .addColumn('first_party', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('is_admin', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('version', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('secret_rotated_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  // One counter that every change to the registry bumps, in the same statement: nodes poll it to
  // drop their client and resource caches.
  await db.schema
    .createTable('registry_revision')
    .addColumn('id', 'smallint', (c) => c.primaryKey().check(sql`id = 1`))
    .addColumn('revision', 'bigint', (c) => c.notNull())
    .execute();
  await sql`insert into registry_revision (id, revision) values (1, 0)`.execute(db);
  await sql`
    create function registry_bump_revision() returns trigger language plpgsql as $$
    begin
      update registry_revision set revision = revision + 1 where id = 1;
      return null;
    end
    $$`.execute(db);
  for (const table of ['clients', 'resource_servers']) {
    await sql`
      create trigger ${sql.raw(`${table}_bump_revision`)}
      after insert or update or delete on ${sql.table(table)}
      for each statement execute function registry_bump_revision()`.execute(db);
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('clients').execute();
  await db.schema.dropTable('resource_servers').execute();
  await db.schema.dropTable('registry_revision').execute();
  await sql`drop function registry_bump_revision()`.execute(db);
}
