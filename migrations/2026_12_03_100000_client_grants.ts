import { sql, type Kysely } from 'kysely';

/** The admin API's row, resolved by each server to `<its issuer>/admin/v1` (see services/resources.service.ts). */
const ADMIN_ID = 'admin';
const ADMIN_IDENTIFIER = 'urn:gatehouse:admin-api';
const OIDC_SCOPES = new Set(['openid', 'profile', 'email', 'offline_access']);

interface OldResource {
  id: string;
  identifier: string;
  name: string | null;
  scopes: string[];
  access_token_ttl: number;
}

interface OldClient {
  client_id: string;
  scopes: string[];
  default_resource: string | null;
  is_admin: boolean;
}

/**
 * Per-client API grants. Until now a client had one flat scope list and could get a token for any
 * registered API; from here a client holds a grant per API, with the scopes it may ask for there.
 *
 * Existing clients keep what they could use:
 * - their default resource becomes a grant with the client's scopes that it offers;
 * - every other API that offers some of the client's other scopes (all of them, for a client
 *   without a default resource) becomes a grant with those scopes; a scope the default resource
 *   offers is taken as meant for it, so `read` no longer opens every API that defines `read`;
 * - only admin clients hold the admin API;
 * - an admin client holds a grant on the admin API with scope `admin`.
 * Tokens for an API the client named without sharing a scope with it (an empty-scope token, which
 * the old model handed to any client for any API) are no longer issued.
 *
 * The admin API's rows, which the CLI created under whatever issuer it computed (`…/admin/v1`),
 * become one row with the fixed id `admin` and identifier `urn:gatehouse:admin-api`; every server
 * answers for it under its own `<ISSUER>/admin/v1`. `clients.scopes` keeps only the OpenID scopes,
 * and `clients.is_admin` is dropped: holding the admin grant is what makes an admin client.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('client_grants')
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.client_id').onDelete('cascade'))
    .addColumn('resource_id', 'text', (c) => c.notNull().references('resource_servers.id').onDelete('cascade'))
    .addColumn('scopes', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('client_grants_pkey', ['client_id', 'resource_id'])
    .execute();
  await db.schema.createIndex('client_grants_resource_idx').on('client_grants').column('resource_id').execute();
  await sql`
    create trigger client_grants_bump_revision
    after insert or update or delete on client_grants
    for each statement execute function registry_bump_revision()`.execute(db);

  // The admin API: one row under a fixed id, whatever issuer the old rows were made under.
  const resources = (await sql<OldResource>`select id, identifier, name, scopes, access_token_ttl from resource_servers`.execute(db)).rows;
  const oldAdmin = resources.filter((r) => r.name === 'Gatehouse admin API' && r.identifier.endsWith('/admin/v1'));
  const adminTtl = oldAdmin[0]?.access_token_ttl ?? 300;
  await sql`
    insert into resource_servers (id, identifier, name, scopes, access_token_ttl)
    values (${ADMIN_ID}, ${ADMIN_IDENTIFIER}, 'Gatehouse admin API', ${sql.val(['admin'])}::text[], ${adminTtl})`.execute(db);
  const oldAdminIdentifiers = new Set(oldAdmin.map((r) => r.identifier));
  for (const identifier of oldAdminIdentifiers) {
    await sql`update clients set default_resource = ${ADMIN_IDENTIFIER} where default_resource = ${identifier}`.execute(db);
  }

  const others = resources.filter((r) => !oldAdminIdentifiers.has(r.identifier));
  const byIdentifier = new Map(others.map((r) => [r.identifier, r]));
  const clients = (await sql<OldClient>`select client_id, scopes, default_resource, is_admin from clients`.execute(db)).rows;
  for (const client of clients) {
    const apiScopes = client.scopes.filter((scope) => !OIDC_SCOPES.has(scope));
    const grants = new Map<string, string[]>();
    const defaultResource = client.default_resource ? byIdentifier.get(client.default_resource) : undefined;
    // A scope the default resource offers was meant for it; only the others are looked for elsewhere.
    // An admin client's `admin` was the admin API's, whatever other API defines a scope of that name.
    const adminClient = client.is_admin || client.default_resource === ADMIN_IDENTIFIER;
    const elsewhere = apiScopes.filter((scope) => !defaultResource?.scopes.includes(scope) && !(adminClient && scope === 'admin'));
    if (defaultResource) grants.set(defaultResource.id, defaultResource.scopes.filter((scope) => apiScopes.includes(scope)));
    for (const resource of others) {
      if (resource === defaultResource) continue;
      const shared = resource.scopes.filter((scope) => elsewhere.includes(scope));
      if (shared.length > 0) grants.set(resource.id, shared);
    }
    if (adminClient) {
      grants.set(ADMIN_ID, client.is_admin ? ['admin'] : []);
    }
    for (const [resourceId, scopes] of grants) {
      await sql`insert into client_grants (client_id, resource_id, scopes) values (${client.client_id}, ${resourceId}, ${sql.val(scopes)}::text[])`.execute(db);
    }
    const oidcScopes = client.scopes.filter((scope) => OIDC_SCOPES.has(scope));
    await sql`update clients set scopes = ${sql.val(oidcScopes)}::text[] where client_id = ${client.client_id}`.execute(db);
  }
  for (const resource of oldAdmin) await sql`delete from resource_servers where id = ${resource.id}`.execute(db);
  await db.schema.alterTable('clients').dropColumn('is_admin').execute();
}

/** Back to one scope list per client: every grant's scopes joined, is_admin from the admin grant. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('clients').addColumn('is_admin', 'boolean', (c) => c.notNull().defaultTo(false)).execute();
  await sql`
    update clients c set
      is_admin = exists (select 1 from client_grants g where g.client_id = c.client_id and g.resource_id = ${ADMIN_ID} and 'admin' = any(g.scopes)),
      scopes = array(select distinct s from unnest(c.scopes || coalesce((select array_agg(x) from client_grants g, unnest(g.scopes) x where g.client_id = c.client_id), '{}')) s)`.execute(db);
  await db.schema.dropTable('client_grants').execute();
}
