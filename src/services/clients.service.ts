import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import {
  deleteClientAndTokens,
  findClientById,
  insertClient,
  listClients as listClientRows,
  listClientsPage as listClientsPageRows,
  updateClient as updateClientRow,
  updateClientAtVersion,
  type ClientRecord,
} from '../registry/client.repository.js';
import { findResourceServer, listResourceServers } from '../registry/resource-server.repository.js';
import type { Database, StoredJwks } from '../registry/tables.js';
import { digestClientSecret, generateClientSecret } from './client-secrets.js';
import { NotFoundError, PreconditionFailedError, ValidationError, type FieldError } from './errors.js';
import { ADMIN_SCOPE, ensureAdminResource } from './resources.service.js';
import { OIDC_SCOPES, parseInput, redirectUri, scopeString } from './validation.js';

export const GRANT_TYPES = ['authorization_code', 'client_credentials', 'refresh_token'] as const;
export const AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'] as const;
const SECRET_METHODS = new Set(['client_secret_basic', 'client_secret_post']);
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'];

const jwks = z
  .object({ keys: z.array(z.record(z.string(), z.unknown())).min(1, 'must hold at least one key').max(10) })
  .superRefine((set, ctx) => {
    set.keys.forEach((key, index) => {
      if (typeof key.kty !== 'string') ctx.addIssue({ code: 'custom', path: ['keys', index], message: 'each key needs a kty' });
      const leaked = PRIVATE_JWK_MEMBERS.filter((member) => member in key);
      if (leaked.length > 0) {
        ctx.addIssue({ code: 'custom', path: ['keys', index], message: `must be a public key (found private member ${leaked.join(', ')})` });
      }
    });
  });

const clientFields = z.strictObject({
  client_name: z.string().trim().min(1, 'must not be empty').max(200),
  redirect_uris: z.array(redirectUri).max(32),
  post_logout_redirect_uris: z.array(redirectUri).max(32),
  grant_types: z.array(z.enum(GRANT_TYPES, { error: `must be one of ${GRANT_TYPES.join(', ')}` })).min(1).max(3),
  token_endpoint_auth_method: z.enum(AUTH_METHODS, { error: `must be one of ${AUTH_METHODS.join(', ')}` }),
  scope: scopeString,
  default_resource: z.string().min(1).nullable(),
  jwks: jwks.nullable(),
  logo_uri: z.url({ protocol: /^https$/, error: 'must be an absolute https URL' }).nullable(),
  first_party: z.boolean(),
  admin: z.boolean(),
});

/** Create: every field optional but the name. */
export const clientCreateSchema = clientFields.partial().required({ client_name: true });
export type ClientCreateInput = z.input<typeof clientCreateSchema>;

/** Update (PATCH): any field but `admin`, which is fixed at creation. */
export const clientUpdateSchema = clientFields.omit({ admin: true }).partial();
export type ClientUpdateInput = z.input<typeof clientUpdateSchema>;

/** What the registry needs besides the database: where it is and the key secrets are digested with. */
export interface ClientServiceDeps {
  db: Kysely<Database>;
  issuer: string;
  digestKey: Buffer;
}

interface ClientShape {
  redirectUris: string[];
  grantTypes: string[];
  tokenEndpointAuthMethod: string;
  scopes: string[];
  defaultResource: string | null;
  jwks: StoredJwks | null;
}

/** Rules that involve more than one field, or the registry: checked on create and on the merged update. */
async function checkClientRules(db: Kysely<Database>, client: ClientShape): Promise<void> {
  const errors: FieldError[] = [];
  const grants = new Set(client.grantTypes);
  if (grants.has('authorization_code') && client.redirectUris.length === 0) {
    errors.push({ field: 'redirect_uris', message: 'the authorization_code grant needs at least one redirect URI' });
  }
  if (grants.has('refresh_token') && !grants.has('authorization_code')) {
    errors.push({ field: 'grant_types', message: 'refresh_token is only issued with the authorization_code grant' });
  }
  if (client.tokenEndpointAuthMethod === 'none') {
    if (grants.has('client_credentials')) {
      errors.push({ field: 'token_endpoint_auth_method', message: 'none (a public client) cannot use client_credentials' });
    }
    if (!grants.has('authorization_code')) {
      errors.push({ field: 'token_endpoint_auth_method', message: 'none (a public client) needs the authorization_code grant with PKCE' });
    }
  }
  if (client.tokenEndpointAuthMethod === 'private_key_jwt' && !client.jwks) {
    errors.push({ field: 'jwks', message: 'private_key_jwt needs the client public keys (jwks)' });
  }
  const resources = await listResourceServers(db);
  if (client.defaultResource && !resources.some((r) => r.identifier === client.defaultResource)) {
    errors.push({ field: 'default_resource', message: `${client.defaultResource} is not a registered resource server` });
  }
  const known = new Set<string>([...OIDC_SCOPES, ...resources.flatMap((r) => r.scopes)]);
  const unknown = client.scopes.filter((scope) => !known.has(scope));
  if (unknown.length > 0) {
    errors.push({ field: 'scope', message: `not defined by any registered resource server: ${unknown.join(' ')}` });
  }
  if (errors.length > 0) throw new ValidationError(errors);
}

/**
 * Scopes a client gets when it is created without --scope: the OpenID scopes for sign-in clients
 * and every scope of its default resource.
 */
async function defaultScopes(db: Kysely<Database>, grantTypes: string[], defaultResource: string | null): Promise<string[]> {
  const scopes: string[] = [];
  if (grantTypes.includes('authorization_code')) scopes.push('openid', 'profile', 'email');
  if (grantTypes.includes('refresh_token')) scopes.push('offline_access');
  if (defaultResource) scopes.push(...((await findResourceServer(db, defaultResource))?.scopes ?? []));
  return scopes;
}

/**
 * 128 random bits, base64url, never starting with "-": a command line takes such an id for an option
 * (`gatehouse clients get -x…` is a usage error), and one id in 64 would start with it.
 */
export function newClientId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

/** The wire form of a client: RFC 7591 metadata names, never the secret or its digest. */
export function clientToJson(client: ClientRecord) {
  return {
    client_id: client.clientId,
    client_name: client.clientName,
    redirect_uris: client.redirectUris,
    post_logout_redirect_uris: client.postLogoutRedirectUris,
    grant_types: client.grantTypes,
    token_endpoint_auth_method: client.tokenEndpointAuthMethod,
    scope: client.scopes.join(' '),
    default_resource: client.defaultResource,
    jwks: client.jwks,
    logo_uri: client.logoUri,
    first_party: client.firstParty,
    admin: client.admin,
    client_id_issued_at: Math.floor(client.createdAt.getTime() / 1000),
    created_at: client.createdAt.toISOString(),
    updated_at: client.updatedAt.toISOString(),
  };
}

export type ClientJson = ReturnType<typeof clientToJson>;

/** A created client, with its secret when it has one: the only time the secret is seen. */
export interface CreatedClient {
  client: ClientRecord;
  clientSecret: string | undefined;
}

export async function createClient(deps: ClientServiceDeps, input: unknown): Promise<CreatedClient> {
  const data = parseInput(clientCreateSchema, input);
  // One transaction: a refused admin client leaves no admin resource behind.
  return deps.db.transaction().execute(async (db) => {
    const admin = data.admin ?? false;
    const redirectUris = data.redirect_uris ?? [];
    let grantTypes: string[] = data.grant_types ?? (redirectUris.length > 0 ? ['authorization_code'] : ['client_credentials']);
    let defaultResource = data.default_resource ?? null;
    let scopes = data.scope ?? (await defaultScopes(db, grantTypes, defaultResource));
    if (admin) {
      // An admin client is a service: client credentials, scope admin, the admin API as its default audience.
      const adminResource = await ensureAdminResource(db, deps.issuer);
      grantTypes = [...new Set([...grantTypes, 'client_credentials'])];
      scopes = [...new Set([...scopes, ADMIN_SCOPE])];
      defaultResource ??= adminResource.identifier;
    }
    const method = data.token_endpoint_auth_method ?? (data.jwks ? 'private_key_jwt' : 'client_secret_basic');
    const shape: ClientShape = {
      redirectUris,
      grantTypes,
      tokenEndpointAuthMethod: method,
      scopes,
      defaultResource,
      jwks: data.jwks ?? null,
    };
    await checkClientRules(db, shape);
    const clientSecret = SECRET_METHODS.has(method) ? generateClientSecret() : undefined;
    const client = await insertClient(db, {
      client_id: newClientId(),
      client_name: data.client_name,
      secret_digest: clientSecret ? digestClientSecret(deps.digestKey, clientSecret) : null,
      token_endpoint_auth_method: method,
      grant_types: grantTypes,
      redirect_uris: redirectUris,
      post_logout_redirect_uris: data.post_logout_redirect_uris ?? [],
      scopes,
      default_resource: defaultResource,
      jwks: shape.jwks ? JSON.stringify(shape.jwks) : null,
      logo_uri: data.logo_uri ?? null,
      first_party: data.first_party ?? false,
      is_admin: admin,
    });
    return { client, clientSecret };
  });
}

export async function getClient(db: Kysely<Database>, clientId: string): Promise<ClientRecord> {
  const client = await findClientById(db, clientId);
  if (!client) throw new NotFoundError(`client ${clientId}`);
  return client;
}

export function listClients(db: Kysely<Database>): Promise<ClientRecord[]> {
  return listClientRows(db);
}

/**
 * Applies a partial update. Switching to a secret-based auth method from one without a secret
 * issues a secret, returned once; switching away drops the stored digest.
 */
export async function updateClient(
  deps: ClientServiceDeps,
  clientId: string,
  input: unknown,
  options: { ifVersion?: number } = {},
): Promise<CreatedClient> {
  const data = parseInput(clientUpdateSchema, input);
  const existing = await getClient(deps.db, clientId);
  const merged: ClientShape = {
    redirectUris: data.redirect_uris ?? existing.redirectUris,
    grantTypes: data.grant_types ?? existing.grantTypes,
    tokenEndpointAuthMethod: data.token_endpoint_auth_method ?? existing.tokenEndpointAuthMethod,
    scopes: data.scope ?? existing.scopes,
    defaultResource: data.default_resource !== undefined ? data.default_resource : existing.defaultResource,
    jwks: data.jwks !== undefined ? data.jwks : existing.jwks,
  };
  await checkClientRules(deps.db, merged);
  const needsSecret = SECRET_METHODS.has(merged.tokenEndpointAuthMethod);
  const clientSecret = needsSecret && !existing.secretDigest ? generateClientSecret() : undefined;
  if (options.ifVersion !== undefined && options.ifVersion !== existing.version) throw new PreconditionFailedError(`client ${clientId}`);
  const changes = {
    ...(data.client_name !== undefined ? { client_name: data.client_name } : {}),
    ...(data.post_logout_redirect_uris !== undefined ? { post_logout_redirect_uris: data.post_logout_redirect_uris } : {}),
    ...(data.logo_uri !== undefined ? { logo_uri: data.logo_uri } : {}),
    ...(data.first_party !== undefined ? { first_party: data.first_party } : {}),
    redirect_uris: merged.redirectUris,
    grant_types: merged.grantTypes,
    token_endpoint_auth_method: merged.tokenEndpointAuthMethod,
    scopes: merged.scopes,
    default_resource: merged.defaultResource,
    jwks: merged.jwks ? JSON.stringify(merged.jwks) : null,
    ...(clientSecret ? { secret_digest: digestClientSecret(deps.digestKey, clientSecret), secret_rotated_at: new Date() } : {}),
    ...(!needsSecret ? { secret_digest: null } : {}),
  };
  // Written only at the version that was read: a concurrent update in between makes this one fail.
  const updated = await updateClientAtVersion(deps.db, clientId, existing.version, changes);
  if (!updated) {
    if (options.ifVersion !== undefined) throw new PreconditionFailedError(`client ${clientId}`);
    throw new NotFoundError(`client ${clientId}`);
  }
  return { client: updated, clientSecret };
}

/** Deletes the client and revokes its grants and refresh tokens. */
export async function deleteClient(db: Kysely<Database>, clientId: string): Promise<void> {
  if (!(await deleteClientAndTokens(db, clientId))) throw new NotFoundError(`client ${clientId}`);
}

/** One page of clients (cursor = the last client_id seen), optionally filtered by name. */
export async function listClientsPage(db: Kysely<Database>, options: { limit: number; cursor?: string | undefined; name?: string | undefined }) {
  const rows = await listClientsPageRows(db, { limit: options.limit + 1, after: options.cursor, nameContains: options.name });
  const items = rows.slice(0, options.limit);
  return { items, nextCursor: rows.length > options.limit ? (items.at(-1)?.clientId ?? null) : null };
}

/** Replaces a confidential client's secret; the old one stops working at once. */
export async function rotateClientSecret(deps: ClientServiceDeps, clientId: string): Promise<CreatedClient> {
  const existing = await getClient(deps.db, clientId);
  if (!SECRET_METHODS.has(existing.tokenEndpointAuthMethod)) {
    throw new ValidationError([
      { field: 'token_endpoint_auth_method', message: `a ${existing.tokenEndpointAuthMethod} client has no secret to rotate` },
    ]);
  }
  const clientSecret = generateClientSecret();
  const updated = await updateClientRow(deps.db, clientId, {
    secret_digest: digestClientSecret(deps.digestKey, clientSecret),
    secret_rotated_at: new Date(),
  });
  if (!updated) throw new NotFoundError(`client ${clientId}`);
  return { client: updated, clientSecret };
}

/** What a client registering itself (RFC 7591/7592) may say about itself: no audience, no first-party or admin standing. */
const registeredClientSchema = clientFields
  .pick({
    client_name: true,
    redirect_uris: true,
    post_logout_redirect_uris: true,
    grant_types: true,
    token_endpoint_auth_method: true,
    scope: true,
    jwks: true,
    logo_uri: true,
  })
  .partial()
  .required({ client_name: true });

const isOidcScope = (scope: string) => (OIDC_SCOPES as readonly string[]).includes(scope);

/**
 * Creates or replaces a client registered through the registration endpoint (RFC 7591/7592), under
 * the client_id the endpoint chose, with the same rules as the CLI. The client may ask only for
 * OpenID scopes; the API scopes, default resource and first-party standing an administrator gave it
 * are kept across its own updates. `issuedSecret` is a secret just issued to it (stored only as a
 * digest); without one, a secret-based client keeps the digest it has.
 */
export async function saveRegisteredClient(
  deps: ClientServiceDeps,
  clientId: string,
  input: unknown,
  issuedSecret: string | undefined,
): Promise<ClientRecord> {
  if ((input as { client_name?: unknown } | null)?.client_name === undefined) {
    throw new ValidationError([{ field: 'client_name', message: 'is required: it is the name people see when they sign in to the client' }]);
  }
  const data = parseInput(registeredClientSchema, input);
  const selfGranted = (data.scope ?? []).filter((scope) => !isOidcScope(scope));
  if (selfGranted.length > 0) {
    throw new ValidationError([
      { field: 'scope', message: `a registered client may ask only for ${OIDC_SCOPES.join(' ')}; an administrator grants API scopes (${selfGranted.join(' ')})` },
    ]);
  }
  return deps.db.transaction().execute(async (db) => {
    const existing = await findClientById(db, clientId);
    const redirectUris = data.redirect_uris ?? [];
    const grantTypes = data.grant_types ?? (redirectUris.length > 0 ? ['authorization_code'] : ['client_credentials']);
    const defaultResource = existing?.defaultResource ?? null;
    const oidcScopes = data.scope ?? (await defaultScopes(db, grantTypes, null));
    const grantedScopes = existing?.scopes.filter((scope) => !isOidcScope(scope)) ?? [];
    const method = data.token_endpoint_auth_method ?? (data.jwks ? 'private_key_jwt' : 'client_secret_basic');
    const shape: ClientShape = {
      redirectUris,
      grantTypes,
      tokenEndpointAuthMethod: method,
      scopes: [...new Set([...oidcScopes, ...grantedScopes])],
      defaultResource,
      jwks: data.jwks ?? null,
    };
    await checkClientRules(db, shape);
    let secretDigest: string | null = null;
    if (SECRET_METHODS.has(method)) {
      secretDigest = issuedSecret ? digestClientSecret(deps.digestKey, issuedSecret) : (existing?.secretDigest ?? null);
      if (!secretDigest) throw new ValidationError([{ field: 'token_endpoint_auth_method', message: `${method} needs a client secret and none was issued` }]);
    }
    const row = {
      client_name: data.client_name,
      secret_digest: secretDigest,
      token_endpoint_auth_method: method,
      grant_types: grantTypes,
      redirect_uris: redirectUris,
      post_logout_redirect_uris: data.post_logout_redirect_uris ?? [],
      scopes: shape.scopes,
      jwks: shape.jwks ? JSON.stringify(shape.jwks) : null,
      logo_uri: data.logo_uri ?? null,
    };
    if (!existing) {
      return insertClient(db, { ...row, client_id: clientId, default_resource: null, first_party: false, is_admin: false });
    }
    const rotated = issuedSecret ? { secret_rotated_at: new Date() } : {};
    const updated = await updateClientRow(db, clientId, { ...row, ...rotated });
    if (!updated) throw new NotFoundError(`client ${clientId}`);
    return updated;
  });
}
