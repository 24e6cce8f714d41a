import type { Kysely, Transaction } from 'kysely';
import { containsPattern } from './like.js';
import { hasNul } from './text.js';
import type { ClientRow, ClientRowUpdate, Database, NewClientRow, StoredJwks } from './tables.js';

type Db = Kysely<Database> | Transaction<Database>;

/** A registered OAuth client as the registry keeps it (the secret only as a digest). */
export interface ClientRecord {
  clientId: string;
  clientName: string;
  secretDigest: string | null;
  tokenEndpointAuthMethod: string;
  grantTypes: string[];
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  scopes: string[];
  defaultResource: string | null;
  jwks: StoredJwks | null;
  logoUri: string | null;
  firstParty: boolean;
  admin: boolean;
  version: number;
  secretRotatedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export function toClientRecord(row: ClientRow): ClientRecord {
  return {
    clientId: row.client_id,
    clientName: row.client_name,
    secretDigest: row.secret_digest,
    tokenEndpointAuthMethod: row.token_endpoint_auth_method,
    grantTypes: row.grant_types,
    redirectUris: row.redirect_uris,
    postLogoutRedirectUris: row.post_logout_redirect_uris,
    scopes: row.scopes,
    defaultResource: row.default_resource,
    jwks: row.jwks,
    logoUri: row.logo_uri,
    firstParty: row.first_party,
    admin: row.is_admin,
    version: row.version,
    secretRotatedAt: row.secret_rotated_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export async function insertClient(db: Db, row: NewClientRow): Promise<ClientRecord> {
  return toClientRecord(await db.insertInto('clients').values(row).returningAll().executeTakeFirstOrThrow());
}

export async function findClientById(db: Db, clientId: string): Promise<ClientRecord | undefined> {
  if (hasNul(clientId)) return undefined;
  const row = await db.selectFrom('clients').selectAll().where('client_id', '=', clientId).executeTakeFirst();
  return row && toClientRecord(row);
}

export async function listClients(db: Db): Promise<ClientRecord[]> {
  const rows = await db.selectFrom('clients').selectAll().orderBy('created_at').orderBy('client_id').execute();
  return rows.map(toClientRecord);
}

export async function updateClient(db: Db, clientId: string, update: ClientRowUpdate): Promise<ClientRecord | undefined> {
  const row = await db
    .updateTable('clients')
    .set((eb) => ({ ...update, version: eb('version', '+', 1), updated_at: new Date() }))
    .where('client_id', '=', clientId)
    .returningAll()
    .executeTakeFirst();
  return row && toClientRecord(row);
}

export async function deleteClient(db: Db, clientId: string): Promise<boolean> {
  const result = await db.deleteFrom('clients').where('client_id', '=', clientId).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

export async function countClientsWithDefaultResource(db: Db, identifier: string): Promise<number> {
  const row = await db
    .selectFrom('clients')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('default_resource', '=', identifier)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

export async function readRegistryRevision(db: Db): Promise<string> {
  const row = await db.selectFrom('registry_revision').select('revision').where('id', '=', 1).executeTakeFirstOrThrow();
  return String(row.revision);
}

/** One page of clients in client_id order, after a given id, optionally only names containing a text. */
export async function listClientsPage(
  db: Db,
  options: { limit: number; after?: string | undefined; nameContains?: string | undefined },
): Promise<ClientRecord[]> {
  if (hasNul(options.after) || hasNul(options.nameContains)) return [];
  let query = db.selectFrom('clients').selectAll().orderBy('client_id').limit(options.limit);
  if (options.after) query = query.where('client_id', '>', options.after);
  if (options.nameContains) query = query.where('client_name', 'ilike', containsPattern(options.nameContains));
  return (await query.execute()).map(toClientRecord);
}

/** Updates only if the row is still at the expected version: undefined when it is not (or is gone). */
export async function updateClientAtVersion(
  db: Db,
  clientId: string,
  version: number,
  update: ClientRowUpdate,
): Promise<ClientRecord | undefined> {
  const row = await db
    .updateTable('clients')
    .set((eb) => ({ ...update, version: eb('version', '+', 1), updated_at: new Date() }))
    .where('client_id', '=', clientId)
    .where('version', '=', version)
    .returningAll()
    .executeTakeFirst();
  return row && toClientRecord(row);
}

/** Deletes a client and every grant and refresh token issued to it. */
export async function deleteClientAndTokens(db: Kysely<Database>, clientId: string): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    await trx.deleteFrom('oidc_durable').where('client_id', '=', clientId).execute();
    const result = await trx.deleteFrom('clients').where('client_id', '=', clientId).executeTakeFirst();
    return result.numDeletedRows > 0n;
  });
}
