import { errors, type AsymmetricSigningAlgorithm, type KoaContextWithOIDC, type ResourceServer as ProviderResourceServer } from 'oidc-provider';
import type { ClientRecord } from '../registry/client.repository.js';
import type { RegistryCache } from '../registry/registry-cache.js';
import type { ResourceServer } from '../registry/resource-server.repository.js';
import { OIDC_SCOPES } from '../services/validation.js';

type Client = NonNullable<KoaContextWithOIDC['oidc']['client']>;

const isOidcScope = (scope: string) => (OIDC_SCOPES as readonly string[]).includes(scope);

const MAX_REMEMBERED_SCOPE_PARAMETERS = 32;

interface Answer {
  info: ProviderResourceServer;
  /** The scopes the client may have (its registry record's). */
  allowed: readonly string[];
  /** Scope parameters of client-credentials requests already found valid for this pair. */
  validScopeParameters: Set<string>;
}

/**
 * The `features.resourceIndicators` policy: registered resource servers get RS256 (or the active
 * key's algorithm) JWT access tokens with their own TTL; client credentials must name a resource
 * (or have a default) and may ask only for scopes that the resource offers and the client is allowed.
 */
export function createResourceIndicators(deps: { cache: RegistryCache; signingAlg: () => AsymmetricSigningAlgorithm }) {
  const { cache } = deps;
  // The answer for a resource and a client changes only when one of them does (the cache then hands
  // out new records): built once per pair, with the scope parameters already found valid for it.
  // Frozen: oidc-provider copies what it needs out of it, and must not change what the next request gets.
  const answers = new WeakMap<object, WeakMap<object, Answer>>();
  const alg = deps.signingAlg();

  function answerFor(resource: ResourceServer, record: ClientRecord | undefined): Answer {
    let forResource = answers.get(resource);
    if (!forResource) answers.set(resource, (forResource = new WeakMap()));
    const key = record ?? resource;
    let answer = forResource.get(key);
    if (!answer) {
      const allowed: readonly string[] = record?.scopes ?? [];
      const info: ProviderResourceServer = {
        scope: resource.scopes.filter((scope) => allowed.includes(scope)).join(' '),
        audience: resource.identifier,
        accessTokenTTL: resource.accessTokenTtl,
        accessTokenFormat: 'jwt',
        jwt: Object.freeze({ sign: Object.freeze({ alg }) }),
      };
      answer = { info: Object.freeze(info), allowed, validScopeParameters: new Set() };
      forResource.set(key, answer);
    }
    return answer;
  }

  /** Client credentials may ask only for scopes the resource offers and the client is allowed. */
  function checkRequestedScopes(ctx: KoaContextWithOIDC, resource: ResourceServer, answer: Answer): void {
    const parameter = ctx.oidc.params?.scope;
    const requested = typeof parameter === 'string' ? parameter : '';
    if (answer.validScopeParameters.has(requested)) return;
    for (const scope of requested.split(' ')) {
      if (scope === '' || isOidcScope(scope)) continue;
      if (!resource.scopes.includes(scope)) {
        throw new errors.InvalidScope(`scope "${scope}" is not offered by ${resource.identifier}`, scope);
      }
      if (!answer.allowed.includes(scope)) {
        throw new errors.InvalidScope(`scope "${scope}" is not allowed to this client`, scope);
      }
    }
    // A client sends the same few scope parameters over and over; a bounded set of them is kept.
    if (answer.validScopeParameters.size < MAX_REMEMBERED_SCOPE_PARAMETERS) answer.validScopeParameters.add(requested);
  }

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
    const answer = answerFor(resource, await cache.getClient(client.clientId));
    if (ctx.oidc.params?.grant_type === 'client_credentials') checkRequestedScopes(ctx, resource, answer);
    return answer.info;
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
