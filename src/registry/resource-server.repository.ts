import type { Kysely, Transaction } from 'kysely';
import { containsPattern } from './like.js';
import { hasNul } from './text.js';
import type { Database, NewResourceServerRow, ResourceServerRow, ResourceServerRowUpdate } from './tables.js';

type Db = Kysely<Database> | Transaction<Database>;

/**
 * The admin API's row (made by the client-grants migration): a fixed id and a reserved identifier
 * that no `resources create` can take (identifiers there are http(s) URLs). Each server answers for
 * it under its own `<ISSUER>/admin/v1`, so nothing stored depends on the issuer a CLI computed.
 */
export const ADMIN_RESOURCE_ID = 'admin';
export const ADMIN_RESOURCE_IDENTIFIER = 'urn:gatehouse:admin-api';
export const ADMIN_SCOPE = 'admin';

/** The audience of admin API tokens at a server with this issuer. */
export const adminAudience = (issuer: string) => `${issuer}/admin/v1`;

/** A registered resource server (API) that receives JWT access tokens. */
export interface ResourceServer {
  id: string;
  identifier: string;
  name: string | null;
  scopes: string[];
  accessTokenTtl: number;
  createdAt: Date;
  updatedAt: Date;
}

export function toResourceServer(row: ResourceServerRow): ResourceServer {
  return {
    id: row.id,
    identifier: row.identifier,
    name: row.name,
    scopes: row.scopes,
    accessTokenTtl: row.access_token_ttl,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export async function insertResourceServer(db: Db, row: NewResourceServerRow): Promise<ResourceServer> {
  return toResourceServer(await db.insertInto('resource_servers').values(row).returningAll().executeTakeFirstOrThrow());
}

export async function findResourceServer(db: Db, idOrIdentifier: string, options: { forUpdate?: boolean } = {}): Promise<ResourceServer | undefined> {
  if (hasNul(idOrIdentifier)) return undefined;
  const query = db
    .selectFrom('resource_servers')
    .selectAll()
    .where((eb) => eb.or([eb('id', '=', idOrIdentifier), eb('identifier', '=', idOrIdentifier)]));
  // forUpdate: in a transaction, the row stays as read until it commits (a change's "before" is the truth).
  const row = await (options.forUpdate ? query.forUpdate() : query).executeTakeFirst();
  return row && toResourceServer(row);
}

export async function listResourceServers(db: Db): Promise<ResourceServer[]> {
  const rows = await db.selectFrom('resource_servers').selectAll().orderBy('created_at').orderBy('id').execute();
  return rows.map(toResourceServer);
}

export async function updateResourceServer(
  db: Db,
  id: string,
  update: ResourceServerRowUpdate,
): Promise<ResourceServer | undefined> {
  const row = await db
    .updateTable('resource_servers')
    .set({ ...update, updated_at: new Date() })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
  return row && toResourceServer(row);
}

export async function deleteResourceServer(db: Db, id: string): Promise<boolean> {
  const result = await db.deleteFrom('resource_servers').where('id', '=', id).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

/** One page of resource servers in id order, after a given id, optionally filtered by identifier or name. */
export async function listResourceServersPage(
  db: Db,
  options: { limit: number; after?: string | undefined; contains?: string | undefined },
): Promise<ResourceServer[]> {
  if (hasNul(options.after) || hasNul(options.contains)) return [];
  let query = db.selectFrom('resource_servers').selectAll().orderBy('id').limit(options.limit);
  if (options.after) query = query.where('id', '>', options.after);
  const text = options.contains;
  if (text) {
    const pattern = containsPattern(text);
    query = query.where((eb) => eb.or([eb('identifier', 'ilike', pattern), eb('name', 'ilike', pattern)]));
  }
  return (await query.execute()).map(toResourceServer);
}

