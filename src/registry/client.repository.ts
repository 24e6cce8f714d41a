import { sql, type Kysely, type Transaction } from 'kysely';
import { containsPattern } from './like.js';
import { hasNul } from './text.js';
import { ADMIN_RESOURCE_ID, ADMIN_SCOPE } from './resource-server.repository.js';
import type { ClientProfile, ClientRow, ClientRowUpdate, Database, NewClientRow, StoredJwks } from './tables.js';

type Db = Kysely<Database> | Transaction<Database>;

/** A client's grant at one API: the scopes it may ask for there. */
export interface ClientGrant {
  resourceId: string;
  /** The API's identifier as stored (the admin API's is `urn:gatehouse:admin-api`). */
  resource: string;
  scopes: readonly string[];
}

/** A registered OAuth client as the registry keeps it (the secret only as a digest). */
export interface ClientRecord {
  clientId: string;
  clientName: string;
  secretDigest: string | null;
  tokenEndpointAuthMethod: string;
  grantTypes: string[];
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  /** The OpenID Connect scopes it may ask for (API scopes are per grant). */
  scopes: string[];
  defaultResource: string | null;
  /** The APIs it may get tokens for, with the scopes it may ask for at each, by identifier. */
  grants: readonly ClientGrant[];
  jwks: StoredJwks | null;
  logoUri: string | null;
  firstParty: boolean;
  /** Sign-ins for it need a second factor (acr urn:gatehouse:acr:mfa). */
  requireMfa: boolean;
  /** Where logout tokens are posted when a person's session with this client ends (none: not notified). */
  backchannelLogoutUri: string | null;
  /** Logout tokens carry the session's `sid`. */
  backchannelLogoutSessionRequired: boolean;
  /** Its access tokens are DPoP-bound (RFC 9449): a token request without a proof is refused. */
  dpopBoundAccessTokens: boolean;
  /** Authorization requests only as pushed authorization requests (RFC 9126). */
  requirePushedAuthorizationRequests: boolean;
  /** Request objects must be signed with one of its registered keys (RFC 9101). */
  requireSignedRequestObject: boolean;
  /** The security profile it is held to ('fapi2'), or none. */
  profile: ClientProfile | null;
  /** The APIs (identifiers) whose access tokens it may exchange as subject tokens (RFC 8693). */
  mayAct: readonly string[];
  /** Holds the admin API's grant with scope `admin`. */
  admin: boolean;
  version: number;
  secretRotatedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** The newer protocols' fields of a client record (back-channel logout, DPoP, PAR, JAR, profile, may_act). */
export type NewerProtocolFields = Pick<
  ClientRecord,
  'backchannelLogoutUri' | 'backchannelLogoutSessionRequired' | 'dpopBoundAccessTokens' | 'requirePushedAuthorizationRequests' | 'requireSignedRequestObject' | 'profile' | 'mayAct'
>;

/** A client that takes part in none of the newer protocols: every client before them, a new one unless told, the built-in ones. */
export const NO_NEWER_PROTOCOLS: Readonly<NewerProtocolFields> = Object.freeze({
  backchannelLogoutUri: null,
  backchannelLogoutSessionRequired: false,
  dpopBoundAccessTokens: false,
  requirePushedAuthorizationRequests: false,
  requireSignedRequestObject: false,
  profile: null,
  mayAct: Object.freeze([]),
});

export function toClientRecord(row: ClientRow, grants: readonly ClientGrant[]): ClientRecord {
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
    grants,
    jwks: row.jwks,
    logoUri: row.logo_uri,
    firstParty: row.first_party,
    requireMfa: row.require_mfa,
    backchannelLogoutUri: row.backchannel_logout_uri,
    backchannelLogoutSessionRequired: row.backchannel_logout_session_required,
    dpopBoundAccessTokens: row.dpop_bound_access_tokens,
    requirePushedAuthorizationRequests: row.require_pushed_authorization_requests,
    requireSignedRequestObject: row.require_signed_request_object,
    profile: row.profile,
    mayAct: Object.freeze([...row.may_act]),
    admin: grants.some((grant) => grant.resourceId === ADMIN_RESOURCE_ID && grant.scopes.includes(ADMIN_SCOPE)),
    version: row.version,
    secretRotatedAt: row.secret_rotated_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** The grants of these clients, by client id, each list in identifier order. */
async function grantsOf(db: Db, clientIds: string[]): Promise<Map<string, ClientGrant[]>> {
  const found = new Map<string, ClientGrant[]>();
  if (clientIds.length === 0) return found;
  const rows = await db
    .selectFrom('client_grants as g')
    .innerJoin('resource_servers as r', 'r.id', 'g.resource_id')
    .select(['g.client_id', 'g.resource_id', 'r.identifier', 'g.scopes'])
    .where('g.client_id', 'in', clientIds)
    .orderBy('r.identifier')
    .execute();
  for (const row of rows) {
    const list = found.get(row.client_id) ?? [];
    list.push(Object.freeze({ resourceId: row.resource_id, resource: row.identifier, scopes: Object.freeze([...row.scopes]) }));
    found.set(row.client_id, list);
  }
  return found;
}

async function toRecords(db: Db, rows: ClientRow[]): Promise<ClientRecord[]> {
  const grants = await grantsOf(db, rows.map((row) => row.client_id));
  return rows.map((row) => toClientRecord(row, Object.freeze(grants.get(row.client_id) ?? [])));
}

async function toRecord(db: Db, row: ClientRow | undefined): Promise<ClientRecord | undefined> {
  return row && (await toRecords(db, [row]))[0];
}

export async function insertClient(db: Db, row: NewClientRow): Promise<ClientRecord> {
  const inserted = await db.insertInto('clients').values(row).returningAll().executeTakeFirstOrThrow();
  return toClientRecord(inserted, []);
}

/** Locks the client's row for the rest of the transaction; false when there is no such client. */
export async function lockClientRow(db: Transaction<Database>, clientId: string): Promise<boolean> {
  if (hasNul(clientId)) return false;
  const row = await db.selectFrom('clients').select('client_id').where('client_id', '=', clientId).forUpdate().executeTakeFirst();
  return row !== undefined;
}

export async function findClientById(db: Db, clientId: string): Promise<ClientRecord | undefined> {
  if (hasNul(clientId)) return undefined;
  const row = await db.selectFrom('clients').selectAll().where('client_id', '=', clientId).executeTakeFirst();
  return toRecord(db, row);
}

export async function listClients(db: Db): Promise<ClientRecord[]> {
  const rows = await db.selectFrom('clients').selectAll().orderBy('created_at').orderBy('client_id').execute();
  return toRecords(db, rows);
}

export async function updateClient(db: Db, clientId: string, update: ClientRowUpdate): Promise<ClientRecord | undefined> {
  const row = await db
    .updateTable('clients')
    .set((eb) => ({ ...update, version: eb('version', '+', 1), updated_at: new Date() }))
    .where('client_id', '=', clientId)
    .returningAll()
    .executeTakeFirst();
  return toRecord(db, row);
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
  options: { limit: number; after?: string | undefined; nameContains?: string | undefined; search?: string | undefined },
): Promise<ClientRecord[]> {
  if (hasNul(options.after) || hasNul(options.nameContains) || hasNul(options.search)) return [];
  let query = db.selectFrom('clients').selectAll().orderBy('client_id').limit(options.limit);
  if (options.after) query = query.where('client_id', '>', options.after);
  if (options.nameContains) query = query.where('client_name', 'ilike', containsPattern(options.nameContains));
  // A person's search box: part of the name, or the whole client_id (as a log or a token shows it).
  const search = options.search;
  if (search) query = query.where((eb) => eb.or([eb('client_name', 'ilike', containsPattern(search)), eb('client_id', '=', search)]));
  return toRecords(db, await query.execute());
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
  return toRecord(db, row);
}

/** Deletes a client and every grant and refresh token issued to it, in the caller's transaction or one of its own. */
export async function deleteClientAndTokens(db: Db, clientId: string): Promise<boolean> {
  const run = async (trx: Transaction<Database>) => {
    await trx.deleteFrom('oidc_durable').where('client_id', '=', clientId).execute();
    const result = await trx.deleteFrom('clients').where('client_id', '=', clientId).executeTakeFirst();
    return result.numDeletedRows > 0n;
  };
  return db.isTransaction ? run(db as Transaction<Database>) : db.transaction().execute(run);
}

/** Sets the client's grant at one API (made or replaced). */
export async function upsertClientGrant(db: Db, clientId: string, resourceId: string, scopes: readonly string[]): Promise<void> {
  await db
    .insertInto('client_grants')
    .values({ client_id: clientId, resource_id: resourceId, scopes: [...scopes] })
    .onConflict((oc) => oc.columns(['client_id', 'resource_id']).doUpdateSet({ scopes: [...scopes], updated_at: new Date() }))
    .execute();
}

/** Removes the client's grant at one API; false when it held none. */
export async function deleteClientGrant(db: Db, clientId: string, resourceId: string): Promise<boolean> {
  const result = await db.deleteFrom('client_grants').where('client_id', '=', clientId).where('resource_id', '=', resourceId).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

/** Replaces every grant of the client with these. */
export async function replaceClientGrants(db: Db, clientId: string, grants: ReadonlyArray<{ resourceId: string; scopes: readonly string[] }>): Promise<void> {
  await db.deleteFrom('client_grants').where('client_id', '=', clientId).execute();
  if (grants.length === 0) return;
  await db
    .insertInto('client_grants')
    .values(grants.map((grant) => ({ client_id: clientId, resource_id: grant.resourceId, scopes: [...grant.scopes] })))
    .execute();
}

/** Keeps in every grant at this API only the scopes it still offers. */
export async function pruneGrantScopes(db: Db, resourceId: string, offered: readonly string[]): Promise<void> {
  await sql`
    update client_grants set
      scopes = array(select scope from unnest(scopes) as scope where scope = any(${sql.val([...offered])}::text[])),
      updated_at = now()
    where resource_id = ${resourceId} and not (scopes <@ ${sql.val([...offered])}::text[])`.execute(db);
}
