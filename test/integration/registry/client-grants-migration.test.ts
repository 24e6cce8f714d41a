import { sql } from 'kysely';
import { Migrator } from 'kysely/migration';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../../migrations/index.js';
import { findClientById } from '../../../src/registry/client.repository.js';
import type { RegistryDatabase } from '../../../src/registry/database.js';
import { migrateToLatest } from '../../../src/registry/migrate.js';
import { ADMIN_RESOURCE_ID, ADMIN_RESOURCE_IDENTIFIER } from '../../../src/registry/resource-server.repository.js';
import { REGISTRY_ENGINES } from '../../fixtures/registry-engines.js';

const BEFORE_GRANTS = '2026_11_23_140000_create_audit_log';

/**
 * The client-grants migration on a registry made by the migrations before it, with the rows the
 * old model wrote: flat scope lists, default resources, admin clients and the admin API's rows
 * that the CLI created under the issuer it computed.
 */
describe.each(REGISTRY_ENGINES)('client grants migration on $name', (engine) => {
  let registry: RegistryDatabase;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    ({ registry, cleanup } = await engine.open());
    const migrator = new Migrator({ db: registry.db, provider: { getMigrations: () => Promise.resolve(MIGRATIONS) } });
    const { error } = await migrator.migrateTo(BEFORE_GRANTS);
    if (error) throw error;
    const db = registry.db;
    const resource = (id: string, identifier: string, scopes: string[], name: string | null = null, ttl = 600) =>
      sql`insert into resource_servers (id, identifier, name, scopes, access_token_ttl) values (${id}, ${identifier}, ${name}, ${sql.val(scopes)}::text[], ${ttl})`.execute(db);
    await resource('orders', 'https://orders.example.test', ['read', 'write']);
    await resource('billing', 'https://billing.example.test', ['read', 'pay']);
    await resource('unrelated', 'https://unrelated.example.test', ['other']);
    // An API that also defines a scope named admin: only the admin API's admin made admins.
    await resource('ops', 'https://ops.example.test', ['admin', 'deploy']);
    // Two admin API rows, made by CLIs that computed different issuers (the old bug).
    await resource('old-admin-1', 'http://localhost:3000/admin/v1', ['admin'], 'Gatehouse admin API', 300);
    await resource('old-admin-2', 'http://localhost:3101/admin/v1', ['admin'], 'Gatehouse admin API', 300);
    const client = (id: string, scopes: string[], defaultResource: string | null, isAdmin = false) =>
      sql`insert into clients (client_id, client_name, token_endpoint_auth_method, grant_types, scopes, default_resource, is_admin)
          values (${id}, ${id}, 'client_secret_basic', ${sql.val(['client_credentials'])}::text[], ${sql.val(scopes)}::text[], ${defaultResource}, ${isAdmin})`.execute(db);
    await client('svc-orders', ['read'], 'https://orders.example.test');
    await client('svc-orders-and-pay', ['read', 'pay'], 'https://orders.example.test');
    await client('svc-default-no-shared', ['openid'], 'https://orders.example.test');
    await client('svc-flat', ['openid', 'read', 'pay'], null);
    await client('admin-1', ['admin'], 'http://localhost:3000/admin/v1', true);
    await client('admin-2', ['admin', 'write'], 'http://localhost:3101/admin/v1', true);
    await client('not-admin-with-admin-scope', ['openid', 'admin'], null);
    await migrateToLatest(db);
  }, 60_000);
  afterAll(async () => {
    await cleanup?.();
  }, 60_000);

  const grantsOf = async (clientId: string) => {
    const client = await findClientById(registry.db, clientId);
    expect(client, clientId).toBeDefined();
    return Object.fromEntries((client?.grants ?? []).map((grant) => [grant.resource, [...grant.scopes].sort()]));
  };

  it('turns a default resource and the scopes it offers into a grant, and keeps only OpenID scopes on the client', async () => {
    // billing offers `read` too: the old flat list opened it; the grant does not.
    expect(await grantsOf('svc-orders')).toEqual({ 'https://orders.example.test': ['read'] });
    // A scope only another API offers was meant for that API: kept there.
    expect(await grantsOf('svc-orders-and-pay')).toEqual({ 'https://billing.example.test': ['pay'], 'https://orders.example.test': ['read'] });
    expect((await findClientById(registry.db, 'svc-orders'))?.scopes).toEqual([]);
    // A default resource is a grant even when no scope was shared with it (it named the API).
    expect(await grantsOf('svc-default-no-shared')).toEqual({ 'https://orders.example.test': [] });
    expect((await findClientById(registry.db, 'svc-default-no-shared'))?.scopes).toEqual(['openid']);
  });

  it('grants a client without a default resource each API that offers some of its scopes, and nothing else', async () => {
    expect(await grantsOf('svc-flat')).toEqual({ 'https://billing.example.test': ['pay', 'read'], 'https://orders.example.test': ['read'] });
    expect((await findClientById(registry.db, 'svc-flat'))?.scopes).toEqual(['openid']);
  });

  it('merges the admin API rows into one, and admin clients hold its grant', async () => {
    const admins = await sql<{ id: string; identifier: string }>`select id, identifier from resource_servers where scopes = '{admin}'`.execute(registry.db);
    expect(admins.rows).toEqual([{ id: ADMIN_RESOURCE_ID, identifier: ADMIN_RESOURCE_IDENTIFIER }]);
    for (const id of ['admin-1', 'admin-2']) {
      const client = await findClientById(registry.db, id);
      expect(client?.admin, id).toBe(true);
      expect(client?.defaultResource).toBe(ADMIN_RESOURCE_IDENTIFIER);
      expect((await grantsOf(id))[ADMIN_RESOURCE_IDENTIFIER]).toEqual(['admin']);
    }
    // admin-2's `write` was an orders scope: kept as a grant there, as the old model allowed it.
    expect((await grantsOf('admin-2'))['https://orders.example.test']).toEqual(['write']);
    // Their `admin` was the admin API's: the ops API, which defines an admin scope too, is not granted.
    expect(await grantsOf('admin-1')).toEqual({ [ADMIN_RESOURCE_IDENTIFIER]: ['admin'] });
    expect(Object.keys(await grantsOf('admin-2')).sort()).toEqual(['https://orders.example.test', ADMIN_RESOURCE_IDENTIFIER]);
  });

  it('never makes a client an admin because its scope list said admin', async () => {
    const client = await findClientById(registry.db, 'not-admin-with-admin-scope');
    expect(client?.admin).toBe(false);
    // The flat list's `admin` could only ever be used at an ordinary API that defines it.
    expect(await grantsOf('not-admin-with-admin-scope')).toEqual({ 'https://ops.example.test': ['admin'] });
  });

  it('drops clients.is_admin and keeps every client and resource server', async () => {
    const columns = await sql<{ column_name: string }>`select column_name from information_schema.columns where table_name = 'clients'`.execute(registry.db);
    expect(columns.rows.map((row) => row.column_name)).not.toContain('is_admin');
    const clients = await sql<{ n: number }>`select count(*)::int as n from clients`.execute(registry.db);
    expect(clients.rows[0]?.n).toBe(7);
    const resources = await sql<{ identifier: string }>`select identifier from resource_servers order by identifier`.execute(registry.db);
    expect(resources.rows.map((row) => row.identifier)).toEqual([
      'https://billing.example.test',
      'https://ops.example.test',
      'https://orders.example.test',
      'https://unrelated.example.test',
      ADMIN_RESOURCE_IDENTIFIER,
    ]);
  });
});
