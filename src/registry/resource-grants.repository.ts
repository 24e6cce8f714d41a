import type { Kysely, Transaction } from 'kysely';
import { containsPattern } from './like.js';
import { hasNul } from './text.js';
import type { Database } from './tables.js';

type Db = Kysely<Database> | Transaction<Database>;

/** A grant one client holds at an API, seen from the API: who holds it and the scopes it may ask for. */
export interface ResourceGrantHolder {
  clientId: string;
  clientName: string;
  scopes: readonly string[];
  createdAt: Date;
  updatedAt: Date;
}

/**
 * The grants clients hold at one API (by its id), in client_id order, `limit` of them after the
 * client id `after`; `contains` keeps those whose client name or id contains it (case ignored).
 */
export async function listGrantsAtResource(
  db: Db,
  resourceId: string,
  options: { limit: number; after?: string | undefined; contains?: string | undefined },
): Promise<ResourceGrantHolder[]> {
  if (hasNul(options.after) || hasNul(options.contains)) return [];
  let query = db
    .selectFrom('client_grants as g')
    .innerJoin('clients as c', 'c.client_id', 'g.client_id')
    .select(['g.client_id', 'c.client_name', 'g.scopes', 'g.created_at', 'g.updated_at'])
    .where('g.resource_id', '=', resourceId)
    .orderBy('g.client_id')
    .limit(options.limit);
  if (options.after) query = query.where('g.client_id', '>', options.after);
  if (options.contains) {
    const pattern = containsPattern(options.contains);
    query = query.where((eb) => eb.or([eb('c.client_name', 'ilike', pattern), eb('g.client_id', 'ilike', pattern)]));
  }
  const rows = await query.execute();
  return rows.map((row) => ({
    clientId: row.client_id,
    clientName: row.client_name,
    scopes: Object.freeze([...row.scopes]),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  }));
}
