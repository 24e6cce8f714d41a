import type { Kysely, Transaction } from 'kysely';
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
