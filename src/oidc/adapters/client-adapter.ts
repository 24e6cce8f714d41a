import type { Adapter, AdapterPayload, ClientAuthMethod } from 'oidc-provider';
import type { ClientRecord } from '../../registry/client.repository.js';
import type { RegistryCache } from '../../registry/registry-cache.js';
import { OIDC_SCOPES } from '../../services/validation.js';

class ReadOnlyModelError extends Error {
  constructor() {
    super('clients are managed through the Gatehouse registry (CLI or admin API), not through oidc-provider');
    this.name = 'ReadOnlyModelError';
  }
}

/**
 * Client metadata as oidc-provider expects it. `client_secret` carries the stored digest:
 * the provider's compareClientSecret is replaced to verify against it (see provider.ts).
 */
export function toProviderMetadata(client: ClientRecord): AdapterPayload {
  const oidcScopes = client.scopes.filter((scope) => (OIDC_SCOPES as readonly string[]).includes(scope));
  const authorizationCode = client.grantTypes.includes('authorization_code');
  return {
    client_id: client.clientId,
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
  };
}

/** The Client model: read from the registry through the cache, never written by the provider. */
export function createClientAdapter(cache: RegistryCache): Adapter {
  const refuse = () => Promise.reject(new ReadOnlyModelError());
  return {
    async find(id: string) {
      const client = await cache.getClient(id);
      return client ? toProviderMetadata(client) : undefined;
    },
    upsert: refuse,
    destroy: refuse,
    findByUid: () => Promise.resolve(undefined),
    findByUserCode: () => Promise.resolve(undefined),
    consume: refuse,
    revokeByGrantId: () => Promise.resolve(undefined),
  };
}
