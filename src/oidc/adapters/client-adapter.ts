import { errors, type Adapter, type AdapterPayload, type ClientAuthMethod } from 'oidc-provider';
import type { AuditActor } from '../../audit/audit-log.js';
import type { Fapi2SigningAlg } from '../../keys/key-store.js';
import type { ClientRecord } from '../../registry/client.repository.js';
import type { RegistryCache } from '../../registry/registry-cache.js';
import { deleteClient, saveRegisteredClient, type ClientServiceDeps } from '../../services/clients.service.js';
import { NotFoundError, ValidationError } from '../../services/errors.js';
import { OIDC_SCOPES } from '../../services/validation.js';
import { issuedClientSecret } from '../upstream.js';

/**
 * The provider metadata (oidc-provider's `extraClientMetadata`, oidc/fapi2.ts) that carries a
 * client's profile from the registry to oidc-provider. Not `profile`: oidc-provider takes every extra
 * metadata from registration requests too, and a profile is an administrator's to set (a
 * registration that names this one is refused; `profile` there is ignored as unknown metadata).
 */
export const PROVIDER_PROFILE_METADATA = 'gatehouse_profile';

/**
 * Client metadata as oidc-provider expects it. `client_secret` carries the stored digest:
 * the provider's compareClientSecret is replaced to verify against it (see provider.ts).
 * A client of profile fapi2 is served as FAPI 2.0 asks whatever else it holds (oidc/fapi2.ts checks
 * it again when oidc-provider builds it): PAR and DPoP-bound access tokens, and ID tokens signed
 * `fapi2SigningAlg` (PS256 or ES256).
 */
export function toProviderMetadata(client: ClientRecord, fapi2SigningAlg?: Fapi2SigningAlg): AdapterPayload {
  const oidcScopes = client.scopes.filter((scope) => (OIDC_SCOPES as readonly string[]).includes(scope));
  const authorizationCode = client.grantTypes.includes('authorization_code');
  return {
    client_id: client.clientId,
    client_id_issued_at: Math.floor(client.createdAt.getTime() / 1000),
    client_name: client.clientName,
    ...(client.secretDigest ? { client_secret: client.secretDigest } : {}),
    token_endpoint_auth_method: client.tokenEndpointAuthMethod as ClientAuthMethod,
    grant_types: client.grantTypes,
    response_types: authorizationCode ? ['code'] : [],
    redirect_uris: client.redirectUris,
    post_logout_redirect_uris: client.postLogoutRedirectUris,
    ...(oidcScopes.length > 0 ? { scope: oidcScopes.join(' ') } : {}),
    ...(client.jwks ? { jwks: client.jwks as AdapterPayload['jwks'] } : {}),
    ...(client.logoUri ? { logo_uri: client.logoUri } : {}),
    ...(client.backchannelLogoutUri
      ? { backchannel_logout_uri: client.backchannelLogoutUri, backchannel_logout_session_required: client.backchannelLogoutSessionRequired }
      : {}),
    dpop_bound_access_tokens: client.dpopBoundAccessTokens,
    require_pushed_authorization_requests: client.requirePushedAuthorizationRequests,
    require_signed_request_object: client.requireSignedRequestObject,
    ...(client.profile === 'fapi2'
      ? {
          [PROVIDER_PROFILE_METADATA]: client.profile,
          require_pushed_authorization_requests: true,
          dpop_bound_access_tokens: true,
          ...(fapi2SigningAlg ? { id_token_signed_response_alg: fapi2SigningAlg } : {}),
        }
      : {}),
  };
}

/** Client metadata the registry keeps, under oidc-provider's (RFC 7591) names. */
const KEPT = [
  'client_name',
  'redirect_uris',
  'post_logout_redirect_uris',
  'grant_types',
  'token_endpoint_auth_method',
  'scope',
  'jwks',
  'logo_uri',
  'backchannel_logout_uri',
  'backchannel_logout_session_required',
  'dpop_bound_access_tokens',
  'require_pushed_authorization_requests',
  'require_signed_request_object',
] as const;

/**
 * Metadata that does not change how the client is served: the registration endpoint's own
 * bookkeeping, what follows from grant_types (response_types), and text shown about the client
 * elsewhere, which Gatehouse does not keep and leaves out of its answer (RFC 7591 §3.2.1 lets a
 * server replace requested metadata as long as the answer says what was registered).
 */
const NOT_KEPT_HARMLESS = new Set(['client_id', 'client_secret', 'client_id_issued_at', 'client_secret_expires_at', 'response_types', 'client_uri', 'policy_uri', 'tos_uri', 'contacts']);

/** What oidc-provider fills in for every client Gatehouse serves: a registration may repeat these values, not change them. */
const SERVED_DEFAULTS: Record<string, unknown> = {
  application_type: 'web',
  subject_type: 'public',
  require_auth_time: false,
  tls_client_certificate_bound_access_tokens: false,
  authorization_details_types: [],
};

/**
 * What the Client adapter writes with: the clients service (which records each change the client
 * makes to itself, as `registration:<client id>`, in the change's transaction), and how the
 * provider signs ID tokens for every client.
 */
export interface ClientAdapterDeps {
  cache: RegistryCache;
  clients: ClientServiceDeps;
  idTokenSigningAlg: string;
  /** How ID tokens of clients of profile fapi2 are signed (PS256 or ES256); none: there is no such key. */
  fapi2SigningAlg?: Fapi2SigningAlg | undefined;
  /** The request being served (oidc-provider's Provider.ctx): its request id and address go into the record. */
  currentRequest?: (() => { ip?: string; state?: { requestId?: unknown } } | undefined) | undefined;
}

/**
 * Refuses metadata Gatehouse could not keep, naming it, so the answer never promises what a later read
 * would not show. `idTokenSigningAlgs`: what id_token_signed_response_alg may say, the first how it is served.
 */
function refuseUnkept(metadata: AdapterPayload, idTokenSigningAlgs: readonly string[]): void {
  const served: Record<string, unknown> = { ...SERVED_DEFAULTS, id_token_signed_response_alg: idTokenSigningAlgs[0] };
  const refused = Object.entries(metadata)
    .filter(([key, value]) => value !== undefined && !(KEPT as readonly string[]).includes(key) && !NOT_KEPT_HARMLESS.has(key))
    .filter(([key, value]) => (key === 'id_token_signed_response_alg' ? !idTokenSigningAlgs.includes(value as string) : !(key in served) || JSON.stringify(value) !== JSON.stringify(served[key])))
    .map(([key]) => (key in served ? `${key} must be ${JSON.stringify(served[key])}` : `${key} is not supported`));
  if (refused.length > 0) throw new errors.InvalidClientMetadata(refused.join('; '));
}

/**
 * The Client model: read from the registry through the cache. oidc-provider writes only from the
 * registration endpoints (RFC 7591/7592, when enabled); those writes go through the clients service
 * with the CLI's rules, the secret is stored only as a digest, and this node's cache is refreshed so
 * the client works at once.
 */
export function createClientAdapter(deps: ClientAdapterDeps): Adapter {
  const { cache } = deps;
  // Who changes the client through the registration endpoints (RFC 7591/7592): the client itself.
  const registration = (clientId: string): AuditActor => {
    const request = deps.currentRequest?.();
    const requestId = request?.state?.requestId;
    return { actor: `registration:${clientId}`, requestId: typeof requestId === 'string' ? requestId : null, ip: request?.ip ?? null };
  };
  // The cache hands out the same record until the client changes: its metadata is built once.
  const metadataOf = new WeakMap<ClientRecord, AdapterPayload>();
  const readOnly = () => Promise.reject(new Error('the Client model is never consumed'));
  return {
    async find(id: string) {
      const client = await cache.getClient(id);
      if (!client) return undefined;
      let metadata = metadataOf.get(client);
      if (!metadata) metadataOf.set(client, (metadata = toProviderMetadata(client, deps.fapi2SigningAlg)));
      // A copy: oidc-provider may write to what it is given, and the next request must see the original.
      return { ...metadata };
    },

    async upsert(id: string, metadata: AdapterPayload) {
      // A fapi2 client's ID tokens are signed with the profile key: its update may say so, or leave
      // oidc-provider's default in (its stored profile puts the profile key's back).
      const profile = (await cache.getClient(id))?.profile;
      refuseUnkept(metadata, profile === 'fapi2' && deps.fapi2SigningAlg ? [deps.fapi2SigningAlg, deps.idTokenSigningAlg] : [deps.idTokenSigningAlg]);
      const input = Object.fromEntries(KEPT.filter((key) => metadata[key] !== undefined).map((key) => [key, metadata[key]]));
      // oidc-provider hands back the client_secret the adapter gave it (the digest) unless it just issued one.
      const issued = issuedClientSecret(metadata);
      try {
        await saveRegisteredClient(deps.clients, registration(id), id, input, issued);
      } catch (error) {
        // oidc-provider answers a description that starts with "redirect_uris" as invalid_redirect_uri.
        if (error instanceof ValidationError) throw new errors.InvalidClientMetadata(error.message);
        throw error;
      }
      await cache.refresh();
    },

    async destroy(id: string) {
      try {
        await deleteClient(deps.clients, registration(id), id);
      } catch (error) {
        if (!(error instanceof NotFoundError)) throw error;
      }
      await cache.refresh();
    },

    findByUid: () => Promise.resolve(undefined),
    findByUserCode: () => Promise.resolve(undefined),
    consume: readOnly,
    revokeByGrantId: () => Promise.resolve(undefined),
  };
}
