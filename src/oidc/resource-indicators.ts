import { errors, type AsymmetricSigningAlgorithm, type KoaContextWithOIDC, type ResourceServer as ProviderResourceServer } from 'oidc-provider';
import type { RegistryCache } from '../registry/registry-cache.js';
import { OIDC_SCOPES } from '../services/validation.js';

type Client = NonNullable<KoaContextWithOIDC['oidc']['client']>;

const isOidcScope = (scope: string) => (OIDC_SCOPES as readonly string[]).includes(scope);

function requestedScopes(ctx: KoaContextWithOIDC): string[] {
  const scope = ctx.oidc.params?.scope;
  return typeof scope === 'string' ? scope.split(' ').filter(Boolean) : [];
}

/**
 * The `features.resourceIndicators` policy: registered resource servers get RS256 (or the active
 * key's algorithm) JWT access tokens with their own TTL; client credentials must name a resource
 * (or have a default) and may ask only for scopes that the resource offers and the client is allowed.
 */
export function createResourceIndicators(deps: { cache: RegistryCache; signingAlg: () => AsymmetricSigningAlgorithm }) {
  const { cache } = deps;
  // The answer for a resource and a client changes only when one of them does (the cache then hands
  // out new records): built once per pair. Copied out, since oidc-provider may write to it.
  const infoOf = new WeakMap<object, WeakMap<object, ProviderResourceServer>>();

  async function defaultResource(ctx: KoaContextWithOIDC, client: Client, oneOf?: readonly string[]) {
    if (oneOf) return oneOf;
    const record = await cache.getClient(client.clientId);
    if (record?.defaultResource) return record.defaultResource;
    if (ctx.oidc.params?.grant_type === 'client_credentials') {
      throw new errors.InvalidTarget('the resource parameter is required: this client has no default resource');
    }
    return undefined;
  }

  async function getResourceServerInfo(
    ctx: KoaContextWithOIDC,
    resourceIndicator: string,
    client: Client,
  ): Promise<ProviderResourceServer> {
    const resource = await cache.getResourceServer(resourceIndicator);
    if (!resource) throw new errors.InvalidTarget(`${resourceIndicator} is not a registered resource server`);
    const record = await cache.getClient(client.clientId);
    const allowed: readonly string[] = record?.scopes ?? [];

    if (ctx.oidc.params?.grant_type === 'client_credentials') {
      for (const scope of requestedScopes(ctx)) {
        if (isOidcScope(scope)) continue;
        if (!resource.scopes.includes(scope)) {
          throw new errors.InvalidScope(`scope "${scope}" is not offered by ${resourceIndicator}`, scope);
        }
        if (!allowed.includes(scope)) {
          throw new errors.InvalidScope(`scope "${scope}" is not allowed to this client`, scope);
        }
      }
    }

    let forResource = infoOf.get(resource);
    if (!forResource) infoOf.set(resource, (forResource = new WeakMap()));
    const key = record ?? resource;
    let info = forResource.get(key);
    if (!info) {
      info = {
        scope: resource.scopes.filter((scope) => allowed.includes(scope)).join(' '),
        audience: resource.identifier,
        accessTokenTTL: resource.accessTokenTtl,
        accessTokenFormat: 'jwt',
      };
      forResource.set(key, info);
    }
    return { ...info, jwt: { sign: { alg: deps.signingAlg() } } };
  }

  return {
    enabled: true,
    defaultResource,
    getResourceServerInfo,
    // A client with a default resource gets access tokens for it without naming it again; any other
    // client names the API at the token endpoint (RFC 8707), else its access token is for userinfo.
    async useGrantedResource(ctx: KoaContextWithOIDC) {
      const clientId = ctx.oidc.client?.clientId;
      return Boolean(clientId && (await cache.getClient(clientId))?.defaultResource);
    },
  };
}
