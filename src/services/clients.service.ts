import { randomBytes } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import { z } from 'zod';
import {
  deleteClientAndTokens,
  deleteClientGrant,
  findClientById,
  insertClient,
  lockClientRow,
  listClients as listClientRows,
  listClientsPage as listClientsPageRows,
  updateClient as updateClientRow,
  replaceClientGrants,
  updateClientAtVersion,
  upsertClientGrant,
  NO_NEWER_PROTOCOLS,
  type ClientRecord,
  type NewerProtocolFields,
} from '../registry/client.repository.js';
import {
  ADMIN_RESOURCE_ID,
  ADMIN_RESOURCE_IDENTIFIER,
  ADMIN_SCOPE,
  adminAudience,
  findResourceServer,
  type ResourceServer,
} from '../registry/resource-server.repository.js';
import { CLIENT_PROFILES, type Database } from '../registry/tables.js';
import { DEVICE_CODE_GRANT_TYPE, GRANT_TYPES, TOKEN_EXCHANGE_GRANT_TYPE } from '../config/protocol.js';
import { PRIVATE_JWK_MEMBERS } from '../keys/jwk.js';
import { recordChange, type AuditActor, type AuditWriter } from './changes.js';
import { refuseBuiltInClient } from './built-in-clients.js';
import { digestClientSecret, generateClientSecret } from './client-secrets.js';
import { NotFoundError, PreconditionFailedError, ValidationError, type FieldError } from './errors.js';
import { OIDC_SCOPES, parseInput, redirectUri, resourceIdentifier, scopeString } from './validation.js';

export const AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'] as const;
const SECRET_METHODS = new Set(['client_secret_basic', 'client_secret_post']);

const jwks = z
  .object({ keys: z.array(z.record(z.string(), z.unknown())).min(1, 'must hold at least one key').max(10) })
  .superRefine((set, ctx) => {
    set.keys.forEach((key, index) => {
      if (typeof key.kty !== 'string') ctx.addIssue({ code: 'custom', path: ['keys', index], message: 'each key needs a kty' });
      const leaked = [...PRIVATE_JWK_MEMBERS].filter((member) => member in key);
      if (leaked.length > 0) {
        ctx.addIssue({ code: 'custom', path: ['keys', index], message: `must be a public key (found private member ${leaked.join(', ')})` });
      }
    });
  });

/** A grant in a request body: the API (identifier or id) and the scopes the client may ask for there. */
const grantInput = z.strictObject({
  resource: z.string().min(1).max(2048),
  scope: scopeString.optional(),
});

const clientFields = z.strictObject({
  client_name: z.string().trim().min(1, 'must not be empty').max(200),
  redirect_uris: z.array(redirectUri).max(32),
  post_logout_redirect_uris: z.array(redirectUri).max(32),
  grant_types: z.array(z.enum(GRANT_TYPES, { error: `must be one of ${GRANT_TYPES.join(', ')}` })).min(1).max(GRANT_TYPES.length),
  token_endpoint_auth_method: z.enum(AUTH_METHODS, { error: `must be one of ${AUTH_METHODS.join(', ')}` }),
  scope: scopeString,
  default_resource: z.string().min(1).nullable(),
  grants: z.array(grantInput).max(100),
  jwks: jwks.nullable(),
  logo_uri: z.url({ protocol: /^https$/, error: 'must be an absolute https URL' }).nullable(),
  first_party: z.boolean(),
  require_mfa: z.boolean().describe('sign-ins for this client need a second factor (acr urn:gatehouse:acr:mfa); default false'),
  backchannel_logout_uri: redirectUri
    .nullable()
    .describe('OpenID Connect Back-Channel Logout 1.0: where logout tokens are posted when a person signs out (https, or http on a loopback address)'),
  backchannel_logout_session_required: z.boolean().describe('logout tokens carry the session id (sid); needs backchannel_logout_uri; default false'),
  dpop_bound_access_tokens: z.boolean().describe('RFC 9449: every token request needs a DPoP proof and every access token is DPoP-bound; default false'),
  require_pushed_authorization_requests: z.boolean().describe('RFC 9126: authorization requests only through the pushed authorization request endpoint; default false'),
  require_signed_request_object: z.boolean().describe('RFC 9101: request objects must be signed with one of the client keys (jwks); default false'),
  profile: z
    .enum(CLIENT_PROFILES, { error: `must be one of ${CLIENT_PROFILES.join(', ')} (or null)` })
    .nullable()
    .describe(
      'a security profile the client is held to; default none. fapi2: the FAPI 2.0 Security Profile (docs/par-jar-fapi2.md): ' +
        'token_endpoint_auth_method private_key_jwt, each jwks key naming its alg (PS256, ES256 or EdDSA), ' +
        'require_pushed_authorization_requests and dpop_bound_access_tokens true (implied; false is refused), no device_code or token-exchange grant; ' +
        'its ID tokens and access tokens are signed ES256 (or PS256)',
    ),
  may_act: z
    .array(resourceIdentifier)
    .max(20)
    .describe('RFC 8693: the APIs (identifiers) whose access tokens this client may exchange as subject tokens; needs the token-exchange grant'),
  admin: z.boolean(),
});

/** Create: every field optional but the name. */
export const clientCreateSchema = clientFields.partial().required({ client_name: true });
export type ClientCreateInput = z.input<typeof clientCreateSchema>;

/** Update (PATCH): any field but `admin`, which is fixed at creation (the admin grant can be given or taken like any other). */
export const clientUpdateSchema = clientFields.omit({ admin: true }).partial();
export type ClientUpdateInput = z.input<typeof clientUpdateSchema>;

/** One grant, as `clients grant` takes it. */
export const grantSchema = grantInput;
/** The body of `PUT /admin/v1/clients/{id}/grants/{resource}`. */
export const grantBodySchema = grantInput.omit({ resource: true });

/**
 * What the registry needs besides the database: where it is, the key secrets are digested with,
 * and the audit writer every change is recorded with, in the change's transaction.
 */
export interface ClientServiceDeps {
  db: Kysely<Database>;
  issuer: string;
  digestKey: Buffer;
  audit: AuditWriter;
}

type Db = Kysely<Database> | Transaction<Database>;

/** What the cross-field rules look at: a client as it would be stored. */
type ClientShape = Pick<ClientRecord, 'redirectUris' | 'grantTypes' | 'tokenEndpointAuthMethod' | 'jwks'> & NewerProtocolFields;

/** The newer-protocol fields of a body over a base (a client's current values, or the defaults for a new one). */
function newerProtocolShape(
  data: Partial<Pick<z.output<typeof clientFields>, NewerProtocolField>>,
  base: NewerProtocolFields,
): NewerProtocolFields {
  const profile = data.profile !== undefined ? data.profile : base.profile;
  // What a profile implies is true unless the body itself says otherwise (then checkProfileRules refuses it).
  const implied = (given: boolean | undefined, current: boolean) => given ?? (profile === 'fapi2' ? true : current);
  return {
    backchannelLogoutUri: data.backchannel_logout_uri !== undefined ? data.backchannel_logout_uri : base.backchannelLogoutUri,
    backchannelLogoutSessionRequired: data.backchannel_logout_session_required ?? base.backchannelLogoutSessionRequired,
    dpopBoundAccessTokens: implied(data.dpop_bound_access_tokens, base.dpopBoundAccessTokens),
    requirePushedAuthorizationRequests: implied(data.require_pushed_authorization_requests, base.requirePushedAuthorizationRequests),
    requireSignedRequestObject: data.require_signed_request_object ?? base.requireSignedRequestObject,
    profile,
    mayAct: data.may_act !== undefined ? [...new Set(data.may_act)] : base.mayAct,
  };
}

type NewerProtocolField =
  | 'backchannel_logout_uri'
  | 'backchannel_logout_session_required'
  | 'dpop_bound_access_tokens'
  | 'require_pushed_authorization_requests'
  | 'require_signed_request_object'
  | 'profile'
  | 'may_act';

/** The newer-protocol columns of a client row, from its shape. */
function newerProtocolColumns(shape: ClientShape) {
  return {
    backchannel_logout_uri: shape.backchannelLogoutUri,
    backchannel_logout_session_required: shape.backchannelLogoutSessionRequired,
    dpop_bound_access_tokens: shape.dpopBoundAccessTokens,
    require_pushed_authorization_requests: shape.requirePushedAuthorizationRequests,
    require_signed_request_object: shape.requireSignedRequestObject,
    profile: shape.profile,
    may_act: [...shape.mayAct],
  };
}

/** The algorithms FAPI 2.0 lets a client sign with (client assertions, request objects, DPoP proofs), of those Gatehouse verifies. */
export const FAPI2_CLIENT_ALGS = ['PS256', 'ES256', 'EdDSA'] as const;

/**
 * The rules of a security profile (the FAPI 2.0 Security Profile for `fapi2`, docs/par-jar-fapi2.md):
 * what it requires of the client's other fields, as field errors. A fapi2 client authenticates with
 * private_key_jwt (mutual TLS is not offered, so that is the only method the profile leaves), pushes
 * its authorization requests (PAR) and gets DPoP-bound tokens (both true unless the body says
 * false, which is refused), and its keys each name the algorithm they sign with, one the profile
 * allows: oidc-provider then verifies nothing else with them. The authorization code grant is the
 * profile's flow (client credentials and refresh tokens go with it); the device flow (no redirect,
 * no PAR) and token exchange (whose tokens the profile key does not sign) do not.
 */
function checkProfileRules(client: ClientShape, errors: FieldError[]): void {
  if (client.profile !== 'fapi2') return;
  if (client.tokenEndpointAuthMethod !== 'private_key_jwt') {
    errors.push({ field: 'token_endpoint_auth_method', message: 'profile fapi2 needs private_key_jwt (FAPI 2.0 allows it or mutual TLS, which Gatehouse does not offer)' });
  }
  if (!client.requirePushedAuthorizationRequests) {
    errors.push({ field: 'require_pushed_authorization_requests', message: 'must be true for profile fapi2 (FAPI 2.0 requires pushed authorization requests)' });
  }
  if (!client.dpopBoundAccessTokens) {
    errors.push({ field: 'dpop_bound_access_tokens', message: 'must be true for profile fapi2 (FAPI 2.0 requires sender-constrained tokens: DPoP here)' });
  }
  const outside = client.grantTypes.filter((grant) => grant === DEVICE_CODE_GRANT_TYPE || grant === TOKEN_EXCHANGE_GRANT_TYPE);
  if (outside.length > 0) {
    errors.push({ field: 'grant_types', message: `profile fapi2 does not take ${outside.join(', ')}: FAPI 2.0 is the authorization code flow with PAR (and client credentials)` });
  }
  client.jwks?.keys.forEach((key, index) => {
    if (!(FAPI2_CLIENT_ALGS as readonly unknown[]).includes(key.alg)) {
      errors.push({ field: `jwks.keys.${index}.alg`, message: `profile fapi2 needs each key to name its alg, one of ${FAPI2_CLIENT_ALGS.join(', ')}` });
    }
  });
}

const isOidcScope = (scope: string) => (OIDC_SCOPES as readonly string[]).includes(scope);

/** Rules that involve more than one field: checked on create and on the merged update. */
function checkClientRules(client: ClientShape): void {
  const errors: FieldError[] = [];
  const grants = new Set(client.grantTypes);
  if (grants.has('authorization_code') && client.redirectUris.length === 0) {
    errors.push({ field: 'redirect_uris', message: 'the authorization_code grant needs at least one redirect URI' });
  }
  if (grants.has('refresh_token') && !grants.has('authorization_code') && !grants.has(DEVICE_CODE_GRANT_TYPE)) {
    errors.push({ field: 'grant_types', message: 'refresh_token is only issued with the authorization_code or device_code grant' });
  }
  if (client.tokenEndpointAuthMethod === 'none') {
    if (grants.has('client_credentials')) {
      errors.push({ field: 'token_endpoint_auth_method', message: 'none (a public client) cannot use client_credentials' });
    }
    if (grants.has(TOKEN_EXCHANGE_GRANT_TYPE)) {
      errors.push({ field: 'token_endpoint_auth_method', message: 'none (a public client) cannot use token exchange: the acting client must authenticate' });
    }
    if (!grants.has('authorization_code') && !grants.has(DEVICE_CODE_GRANT_TYPE)) {
      errors.push({ field: 'token_endpoint_auth_method', message: 'none (a public client) needs the authorization_code grant with PKCE, or the device_code grant' });
    }
  }
  if (client.tokenEndpointAuthMethod === 'private_key_jwt' && !client.jwks) {
    errors.push({ field: 'jwks', message: 'private_key_jwt needs the client public keys (jwks)' });
  }
  if (client.backchannelLogoutSessionRequired && !client.backchannelLogoutUri) {
    errors.push({ field: 'backchannel_logout_session_required', message: 'needs backchannel_logout_uri' });
  }
  if (client.requireSignedRequestObject && !client.jwks) {
    errors.push({ field: 'require_signed_request_object', message: 'needs the client public keys (jwks) to verify request objects with' });
  }
  if (client.mayAct.length > 0 && !grants.has(TOKEN_EXCHANGE_GRANT_TYPE)) {
    errors.push({ field: 'may_act', message: `needs the ${TOKEN_EXCHANGE_GRANT_TYPE} grant` });
  }
  checkProfileRules(client, errors);
  if (errors.length > 0) throw new ValidationError(errors);
}

/** The OpenID scopes a sign-in client gets when it is created without a scope. */
function defaultOidcScopes(grantTypes: string[]): string[] {
  const scopes: string[] = [];
  if (grantTypes.includes('authorization_code')) scopes.push('openid', 'profile', 'email');
  if (grantTypes.includes('refresh_token')) scopes.push('offline_access');
  return scopes;
}

/**
 * Finds the API a grant or default resource names: its identifier or id; the admin API also by
 * this server's `<ISSUER>/admin/v1`.
 */
async function findGrantable(db: Db, issuer: string, name: string): Promise<ResourceServer | undefined> {
  return findResourceServer(db, name === adminAudience(issuer) ? ADMIN_RESOURCE_IDENTIFIER : name);
}

/** A client's grants while a change is worked out: by resource id. */
type GrantMap = Map<string, { resource: ResourceServer; scopes: string[] }>;

/** Checks that every scope is offered by the API; the error names the field. */
function checkOffered(resource: ResourceServer, scopes: readonly string[], field: string, errors: FieldError[]): void {
  const missing = scopes.filter((scope) => !resource.scopes.includes(scope));
  if (missing.length > 0) errors.push({ field, message: `not offered by ${resource.identifier}: ${missing.join(' ')}` });
}

/** Reads a `grants` list from a body: each API must exist, once, and offer every scope asked. */
async function readGrants(db: Db, issuer: string, input: ReadonlyArray<z.output<typeof grantInput>>, errors: FieldError[]): Promise<GrantMap> {
  const grants: GrantMap = new Map();
  for (const [index, grant] of input.entries()) {
    const resource = await findGrantable(db, issuer, grant.resource);
    if (!resource) {
      errors.push({ field: `grants.${index}.resource`, message: `${grant.resource} is not a registered resource server` });
      continue;
    }
    if (grants.has(resource.id)) {
      errors.push({ field: `grants.${index}.resource`, message: `${resource.identifier} is granted more than once` });
      continue;
    }
    const scopes = grant.scope ?? [...resource.scopes];
    checkOffered(resource, scopes, `grants.${index}.scope`, errors);
    grants.set(resource.id, { resource, scopes });
  }
  return grants;
}

/** The grants a stored client holds, as a GrantMap to change. */
async function currentGrants(db: Db, client: ClientRecord): Promise<GrantMap> {
  const grants: GrantMap = new Map();
  for (const grant of client.grants) {
    const resource = await findResourceServer(db, grant.resourceId);
    if (resource) grants.set(resource.id, { resource, scopes: [...grant.scopes] });
  }
  return grants;
}

/**
 * Works out a client's OpenID scopes, default resource and grants from a create or update body.
 * `scope` mixes both kinds, as it always has: its OpenID scopes are the client's own, the rest is
 * the grant at the default resource (a client without one must name the API in `grants`).
 */
async function resolveAuthorization(
  db: Db,
  issuer: string,
  input: { scope: string[] | undefined; defaultResource: string | null | undefined; grants: ReadonlyArray<z.output<typeof grantInput>> | undefined },
  base: { oidcScopes: string[]; defaultResource: string | null; grants: GrantMap; isNew: boolean },
): Promise<{ oidcScopes: string[]; defaultResource: ResourceServer | null; grants: GrantMap }> {
  const errors: FieldError[] = [];
  const grants = input.grants !== undefined ? await readGrants(db, issuer, input.grants, errors) : new Map(base.grants);
  const oidcScopes = input.scope !== undefined ? input.scope.filter(isOidcScope) : base.oidcScopes;
  const apiScopes = input.scope?.filter((scope) => !isOidcScope(scope)) ?? [];
  const defaultName = input.defaultResource !== undefined ? input.defaultResource : base.defaultResource;
  let defaultResource: ResourceServer | null = null;
  if (defaultName !== null) {
    defaultResource = (await findGrantable(db, issuer, defaultName)) ?? null;
    if (!defaultResource) errors.push({ field: 'default_resource', message: `${defaultName} is not a registered resource server` });
  }
  if (defaultResource) {
    const held = grants.get(defaultResource.id);
    if (input.scope !== undefined) {
      checkOffered(defaultResource, apiScopes, 'scope', errors);
      grants.set(defaultResource.id, { resource: defaultResource, scopes: [...new Set([...(input.grants !== undefined ? (held?.scopes ?? []) : []), ...apiScopes])] });
    } else if (!held) {
      if (base.isNew) {
        // A client created for an API without a scope list may ask for every scope the API offers.
        grants.set(defaultResource.id, { resource: defaultResource, scopes: [...defaultResource.scopes] });
      } else {
        errors.push({
          field: input.grants !== undefined ? 'grants' : 'default_resource',
          message: `the default resource ${defaultResource.identifier} must be one of the client's grants (grant it, or give its scopes with scope)`,
        });
      }
    }
  } else if (apiScopes.length > 0) {
    errors.push({
      field: 'scope',
      message: `${apiScopes.join(' ')}: API scopes are granted per API: name the API (default_resource) or list it in grants`,
    });
  }
  if (errors.length > 0) throw new ValidationError(errors);
  return { oidcScopes, defaultResource, grants };
}

/** Checks a may_act list: each entry a registered API, never the admin API (its tokens are never exchanged). */
async function checkMayAct(db: Db, issuer: string, mayAct: readonly string[] | undefined): Promise<void> {
  if (mayAct === undefined) return;
  const errors: FieldError[] = [];
  for (const [index, identifier] of mayAct.entries()) {
    const resource = await findGrantable(db, issuer, identifier);
    if (!resource) errors.push({ field: `may_act.${index}`, message: `${identifier} is not a registered resource server` });
    else if (resource.id === ADMIN_RESOURCE_ID) errors.push({ field: `may_act.${index}`, message: 'tokens for the admin API are never exchanged' });
  }
  if (errors.length > 0) throw new ValidationError(errors);
}

async function writeGrants(db: Db, clientId: string, grants: GrantMap): Promise<void> {
  await replaceClientGrants(
    db,
    clientId,
    [...grants.values()].map((grant) => ({ resourceId: grant.resource.id, scopes: grant.scopes })),
  );
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
  const atDefault = client.grants.find((grant) => grant.resource === client.defaultResource);
  return {
    client_id: client.clientId,
    client_name: client.clientName,
    redirect_uris: client.redirectUris,
    post_logout_redirect_uris: client.postLogoutRedirectUris,
    grant_types: client.grantTypes,
    token_endpoint_auth_method: client.tokenEndpointAuthMethod,
    // The OpenID scopes and the grant at the default resource, as `scope` has always said.
    scope: [...client.scopes, ...(atDefault?.scopes ?? [])].join(' '),
    default_resource: client.defaultResource,
    grants: client.grants.map((grant) => ({ resource: grant.resource, scope: grant.scopes.join(' ') })),
    jwks: client.jwks,
    logo_uri: client.logoUri,
    first_party: client.firstParty,
    require_mfa: client.requireMfa,
    backchannel_logout_uri: client.backchannelLogoutUri,
    backchannel_logout_session_required: client.backchannelLogoutSessionRequired,
    dpop_bound_access_tokens: client.dpopBoundAccessTokens,
    require_pushed_authorization_requests: client.requirePushedAuthorizationRequests,
    require_signed_request_object: client.requireSignedRequestObject,
    profile: client.profile,
    may_act: [...client.mayAct],
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

/** The client as stored now, grants included. */
async function reread(db: Db, clientId: string): Promise<ClientRecord> {
  const client = await findClientById(db, clientId);
  if (!client) throw new NotFoundError(`client ${clientId}`);
  return client;
}

/** Creates a client; recorded as `client.create` by `by`, in the same transaction. */
/**
 * Reads a create body as far as no database is needed: its fields parsed, the defaults filled in
 * (grant types, auth method, what a profile implies) and the rules between fields checked.
 * Throws ValidationError naming each field.
 */
function readNewClient(input: unknown) {
  const data = parseInput(clientCreateSchema, input);
  const admin = data.admin ?? false;
  const redirectUris = data.redirect_uris ?? [];
  let grantTypes: string[] = data.grant_types ?? (redirectUris.length > 0 ? ['authorization_code'] : ['client_credentials']);
  if (admin) grantTypes = [...new Set([...grantTypes, 'client_credentials'])];
  const method = data.token_endpoint_auth_method ?? (data.jwks ? 'private_key_jwt' : 'client_secret_basic');
  const shape: ClientShape = { redirectUris, grantTypes, tokenEndpointAuthMethod: method, jwks: data.jwks ?? null, ...newerProtocolShape(data, NO_NEWER_PROTOCOLS) };
  checkClientRules(shape);
  return { data, admin, redirectUris, grantTypes, method, shape };
}

/** The shape an update body gives a stored client: the body's fields over the client's. */
function mergeClientUpdate(existing: ClientRecord, data: z.output<typeof clientUpdateSchema>): ClientShape {
  return {
    redirectUris: data.redirect_uris ?? existing.redirectUris,
    grantTypes: data.grant_types ?? existing.grantTypes,
    tokenEndpointAuthMethod: data.token_endpoint_auth_method ?? existing.tokenEndpointAuthMethod,
    jwks: data.jwks !== undefined ? data.jwks : existing.jwks,
    ...newerProtocolShape(data, existing),
  };
}

/**
 * The checks of a create body that need no database (each field, then the rules between fields),
 * exactly as createClient makes them before it looks up any API: throws ValidationError naming each
 * field. What the grants, default resource and may_act name is checked against the registry on create.
 * The console's client form is held to these rules (test/unit/console/client-form-rules.test.ts).
 */
export function checkNewClient(input: unknown): void {
  readNewClient(input);
}

/** As checkNewClient, for an update body of the stored client `existing` (updateClient's checks before the registry's). */
export function checkClientUpdate(existing: ClientRecord, input: unknown): void {
  checkClientRules(mergeClientUpdate(existing, parseInput(clientUpdateSchema, input)));
}

export async function createClient(deps: ClientServiceDeps, by: AuditActor, input: unknown): Promise<CreatedClient> {
  const { data, admin, redirectUris, grantTypes, method, shape } = readNewClient(input);
  return deps.db.transaction().execute(async (db) => {
    await checkMayAct(db, deps.issuer, data.may_act);
    // An admin client is a service: client credentials, the admin API's grant, the admin API as its default audience.
    const defaultResource = data.default_resource ?? (admin ? ADMIN_RESOURCE_IDENTIFIER : null);
    const authorization = await resolveAuthorization(
      db,
      deps.issuer,
      { scope: data.scope, defaultResource, grants: data.grants },
      { oidcScopes: defaultOidcScopes(grantTypes), defaultResource: null, grants: new Map(), isNew: true },
    );
    if (admin) {
      const adminApi = await findResourceServer(db, ADMIN_RESOURCE_ID);
      if (!adminApi) throw new NotFoundError('the admin API resource (run gatehouse migrate)');
      const held = authorization.grants.get(ADMIN_RESOURCE_ID)?.scopes ?? [];
      authorization.grants.set(ADMIN_RESOURCE_ID, { resource: adminApi, scopes: [...new Set([...held, ADMIN_SCOPE])] });
    }
    const clientSecret = SECRET_METHODS.has(method) ? generateClientSecret() : undefined;
    const clientId = newClientId();
    await insertClient(db, {
      client_id: clientId,
      client_name: data.client_name,
      secret_digest: clientSecret ? digestClientSecret(deps.digestKey, clientSecret) : null,
      token_endpoint_auth_method: method,
      grant_types: grantTypes,
      redirect_uris: redirectUris,
      post_logout_redirect_uris: data.post_logout_redirect_uris ?? [],
      scopes: authorization.oidcScopes,
      default_resource: authorization.defaultResource?.identifier ?? null,
      jwks: shape.jwks ? JSON.stringify(shape.jwks) : null,
      logo_uri: data.logo_uri ?? null,
      first_party: data.first_party ?? false,
      require_mfa: data.require_mfa ?? false,
      ...newerProtocolColumns(shape),
    });
    await writeGrants(db, clientId, authorization.grants);
    const client = await reread(db, clientId);
    await recordChange(deps.audit, db, by, { action: 'client.create', target: `client:${clientId}`, details: { after: clientToJson(client) } });
    return { client, clientSecret };
  });
}

export async function getClient(db: Db, clientId: string): Promise<ClientRecord> {
  const client = await findClientById(db, clientId);
  if (!client) throw new NotFoundError(`client ${clientId}`);
  return client;
}

export function listClients(db: Kysely<Database>): Promise<ClientRecord[]> {
  return listClientRows(db);
}

/**
 * Applies a partial update. Switching to a secret-based auth method from one without a secret
 * issues a secret, returned once; switching away drops the stored digest. Recorded as
 * `client.update` with the client before and after.
 */
export async function updateClient(
  deps: ClientServiceDeps,
  by: AuditActor,
  clientId: string,
  input: unknown,
  options: { ifVersion?: number } = {},
): Promise<CreatedClient> {
  refuseBuiltInClient(clientId);
  const data = parseInput(clientUpdateSchema, input);
  return deps.db.transaction().execute(async (db) => {
    const existing = await lockClient(db, clientId);
    const merged = mergeClientUpdate(existing, data);
    checkClientRules(merged);
    await checkMayAct(db, deps.issuer, data.may_act);
    const authorization = await resolveAuthorization(
      db,
      deps.issuer,
      { scope: data.scope, defaultResource: data.default_resource, grants: data.grants },
      { oidcScopes: existing.scopes, defaultResource: existing.defaultResource, grants: await currentGrants(db, existing), isNew: false },
    );
    const needsSecret = SECRET_METHODS.has(merged.tokenEndpointAuthMethod);
    const clientSecret = needsSecret && !existing.secretDigest ? generateClientSecret() : undefined;
    if (options.ifVersion !== undefined && options.ifVersion !== existing.version) throw new PreconditionFailedError(`client ${clientId}`);
    const changes = {
      ...(data.client_name !== undefined ? { client_name: data.client_name } : {}),
      ...(data.post_logout_redirect_uris !== undefined ? { post_logout_redirect_uris: data.post_logout_redirect_uris } : {}),
      ...(data.logo_uri !== undefined ? { logo_uri: data.logo_uri } : {}),
      ...(data.first_party !== undefined ? { first_party: data.first_party } : {}),
      ...(data.require_mfa !== undefined ? { require_mfa: data.require_mfa } : {}),
      redirect_uris: merged.redirectUris,
      grant_types: merged.grantTypes,
      token_endpoint_auth_method: merged.tokenEndpointAuthMethod,
      scopes: authorization.oidcScopes,
      default_resource: authorization.defaultResource?.identifier ?? null,
      jwks: merged.jwks ? JSON.stringify(merged.jwks) : null,
      ...newerProtocolColumns(merged),
      ...(clientSecret ? { secret_digest: digestClientSecret(deps.digestKey, clientSecret), secret_rotated_at: new Date() } : {}),
      ...(!needsSecret ? { secret_digest: null } : {}),
    };
    // Written only at the version that was read: a concurrent update in between makes this one fail.
    const updated = await updateClientAtVersion(db, clientId, existing.version, changes);
    if (!updated) {
      if (options.ifVersion !== undefined) throw new PreconditionFailedError(`client ${clientId}`);
      throw new NotFoundError(`client ${clientId}`);
    }
    await writeGrants(db, clientId, authorization.grants);
    const client = await reread(db, clientId);
    await recordChange(deps.audit, db, by, {
      action: 'client.update',
      target: `client:${clientId}`,
      details: { before: clientToJson(existing), after: clientToJson(client), ...(clientSecret ? { secret_issued: true } : {}) },
    });
    return { client, clientSecret };
  });
}

/**
 * Gives the client a grant at one API, or replaces the scopes of the grant it holds there. Without
 * a scope list it may ask for every scope the API offers now.
 */
export async function grantClient(deps: ClientServiceDeps, by: AuditActor, clientId: string, input: unknown): Promise<ClientRecord> {
  refuseBuiltInClient(clientId);
  const data = parseInput(grantSchema, input);
  return deps.db.transaction().execute(async (db) => {
    const client = await lockClient(db, clientId);
    const errors: FieldError[] = [];
    const grants = await readGrants(db, deps.issuer, [data], errors);
    if (errors.length > 0) throw new ValidationError(errors.map((error) => ({ ...error, field: error.field.replace(/^grants\.0\./, '') })));
    for (const grant of grants.values()) await upsertClientGrant(db, client.clientId, grant.resource.id, grant.scopes);
    await touchClient(db, client.clientId);
    const after = await reread(db, client.clientId);
    await recordGrantChange(deps.audit, db, by, 'client.grant', data.resource, client, after);
    return after;
  });
}

/** Takes the client's grant at one API away; its default resource cannot be (change that first). */
export async function revokeClientGrant(deps: ClientServiceDeps, by: AuditActor, clientId: string, resourceName: string): Promise<ClientRecord> {
  refuseBuiltInClient(clientId);
  return deps.db.transaction().execute(async (db) => {
    const client = await lockClient(db, clientId);
    const resource = await findGrantable(db, deps.issuer, resourceName);
    if (!resource) throw new NotFoundError(`resource server ${resourceName}`);
    if (client.defaultResource === resource.identifier) {
      throw new ValidationError([
        { field: 'resource', message: `${resource.identifier} is the client's default resource: change or clear its default resource first` },
      ]);
    }
    if (!(await deleteClientGrant(db, client.clientId, resource.id))) throw new NotFoundError(`grant of client ${clientId} at ${resource.identifier}`);
    await touchClient(db, client.clientId);
    const after = await reread(db, client.clientId);
    await recordGrantChange(deps.audit, db, by, 'client.revoke_grant', resourceName, client, after);
    return after;
  });
}

/** A grant change's row: the API as the caller named it, and the client's grants before and after. */
async function recordGrantChange(
  audit: AuditWriter,
  db: Transaction<Database>,
  by: AuditActor,
  action: 'client.grant' | 'client.revoke_grant',
  resource: string,
  before: ClientRecord,
  after: ClientRecord,
): Promise<void> {
  await recordChange(audit, db, by, {
    action,
    target: `client:${after.clientId}`,
    details: { resource, before: clientToJson(before).grants, after: clientToJson(after).grants },
  });
}

/**
 * Reads the client for a change, holding its row until the transaction ends: every change of a
 * client and its grants takes this lock first, so two changes are applied one after the other,
 * each on what the other wrote (no deadlock, no grant removed from under a new default resource).
 */
async function lockClient(db: Transaction<Database>, clientId: string): Promise<ClientRecord> {
  if (!(await lockClientRow(db, clientId))) throw new NotFoundError(`client ${clientId}`);
  return getClient(db, clientId);
}

/** A grant change is a change of the client: its version moves (ETags, the provider's client cache). */
async function touchClient(db: Db, clientId: string): Promise<void> {
  await updateClientRow(db, clientId, {});
}

/** Deletes the client and revokes its grants and refresh tokens; recorded as `client.delete` with what it was. */
export async function deleteClient(deps: Pick<ClientServiceDeps, 'db' | 'audit'>, by: AuditActor, clientId: string): Promise<void> {
  refuseBuiltInClient(clientId);
  await deps.db.transaction().execute(async (db) => {
    const before = await lockClient(db, clientId);
    if (!(await deleteClientAndTokens(db, clientId))) throw new NotFoundError(`client ${clientId}`);
    await recordChange(deps.audit, db, by, { action: 'client.delete', target: `client:${clientId}`, details: { before: clientToJson(before) } });
  });
}

/** One page of clients (cursor = the last client_id seen), optionally filtered by name, or by name or client_id (`q`). */
export async function listClientsPage(
  db: Kysely<Database>,
  options: { limit: number; cursor?: string | undefined; name?: string | undefined; q?: string | undefined },
) {
  const rows = await listClientsPageRows(db, { limit: options.limit + 1, after: options.cursor, nameContains: options.name, search: options.q });
  const items = rows.slice(0, options.limit);
  return { items, nextCursor: rows.length > options.limit ? (items.at(-1)?.clientId ?? null) : null };
}

/** Replaces a confidential client's secret; the old one stops working at once. Recorded as `client.secret_rotate`. */
export async function rotateClientSecret(deps: ClientServiceDeps, by: AuditActor, clientId: string): Promise<CreatedClient> {
  refuseBuiltInClient(clientId);
  return deps.db.transaction().execute(async (db) => {
    const existing = await lockClient(db, clientId);
    if (!SECRET_METHODS.has(existing.tokenEndpointAuthMethod)) {
      throw new ValidationError([
        { field: 'token_endpoint_auth_method', message: `a ${existing.tokenEndpointAuthMethod} client has no secret to rotate` },
      ]);
    }
    const clientSecret = generateClientSecret();
    const updated = await updateClientRow(db, clientId, {
      secret_digest: digestClientSecret(deps.digestKey, clientSecret),
      secret_rotated_at: new Date(),
    });
    if (!updated) throw new NotFoundError(`client ${clientId}`);
    await recordChange(deps.audit, db, by, {
      action: 'client.secret_rotate',
      target: `client:${clientId}`,
      details: { secret_rotated_at: updated.secretRotatedAt?.toISOString() ?? null },
    });
    return { client: updated, clientSecret };
  });
}

/**
 * What a client registering itself (RFC 7591/7592) may say about itself: no audience, grants,
 * first-party or admin standing, and no require_mfa (an administrator's policy for the client; a
 * client that wants a second factor asks for it per request, acr_values=urn:gatehouse:acr:mfa).
 */
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
    backchannel_logout_uri: true,
    backchannel_logout_session_required: true,
    dpop_bound_access_tokens: true,
    require_pushed_authorization_requests: true,
    require_signed_request_object: true,
  })
  .partial()
  .required({ client_name: true });

/**
 * Creates or replaces a client registered through the registration endpoint (RFC 7591/7592), under
 * the client_id the endpoint chose, with the same rules as the CLI. The client may ask only for
 * OpenID scopes; the grants, default resource, first-party standing and require_mfa an
 * administrator gave it are kept across its own updates. `issuedSecret` is a secret just issued to it (stored only as a
 * digest); without one, a secret-based client keeps the digest it has. Recorded as `client.create`
 * or `client.update` by `by` (the client itself: `registration:<client id>`).
 */
export async function saveRegisteredClient(
  deps: ClientServiceDeps,
  by: AuditActor,
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
    // Held until the change commits: the row's before and after are the ones recorded.
    const existing = (await lockClientRow(db, clientId)) ? await findClientById(db, clientId) : undefined;
    const redirectUris = data.redirect_uris ?? [];
    const grantTypes = data.grant_types ?? (redirectUris.length > 0 ? ['authorization_code'] : ['client_credentials']);
    const method = data.token_endpoint_auth_method ?? (data.jwks ? 'private_key_jwt' : 'client_secret_basic');
    // What an administrator set (profile, may_act) is kept across the client's own updates.
    const kept = { profile: existing?.profile ?? null, mayAct: existing?.mayAct ?? [] };
    const shape: ClientShape = {
      redirectUris,
      grantTypes,
      tokenEndpointAuthMethod: method,
      jwks: data.jwks ?? null,
      ...newerProtocolShape(data, { ...NO_NEWER_PROTOCOLS, ...kept }),
    };
    checkClientRules(shape);
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
      scopes: data.scope ?? defaultOidcScopes(grantTypes),
      jwks: shape.jwks ? JSON.stringify(shape.jwks) : null,
      logo_uri: data.logo_uri ?? null,
      ...newerProtocolColumns(shape),
    };
    const target = `client:${clientId}`;
    if (!existing) {
      const created = await insertClient(db, { ...row, client_id: clientId, default_resource: null, first_party: false });
      await recordChange(deps.audit, db, by, { action: 'client.create', target, details: { after: clientToJson(created) } });
      return created;
    }
    const rotated = issuedSecret ? { secret_rotated_at: new Date() } : {};
    const updated = await updateClientRow(db, clientId, { ...row, ...rotated });
    if (!updated) throw new NotFoundError(`client ${clientId}`);
    await recordChange(deps.audit, db, by, { action: 'client.update', target, details: { before: clientToJson(existing), after: clientToJson(updated) } });
    return updated;
  });
}
