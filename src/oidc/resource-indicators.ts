import { errors, type AsymmetricSigningAlgorithm, type KoaContextWithOIDC, type ResourceServer as ProviderResourceServer } from 'oidc-provider';
import type { ClientGrant, ClientRecord } from '../registry/client.repository.js';
import type { RegistryCache } from '../registry/registry-cache.js';
import { ADMIN_RESOURCE_IDENTIFIER, adminAudience, type ResourceServer } from '../registry/resource-server.repository.js';
import { OIDC_SCOPES } from '../services/validation.js';

type Client = NonNullable<KoaContextWithOIDC['oidc']['client']>;

const isOidcScope = (scope: string) => (OIDC_SCOPES as readonly string[]).includes(scope);

const MAX_REMEMBERED_SCOPE_PARAMETERS = 32;

interface Answer {
  info: ProviderResourceServer;
  /** The scopes the client may have at this API: its grant's, as far as the API still offers them. */
  granted: readonly string[];
  /** Scope parameters of client-credentials requests already found valid for this pair. */
  validScopeParameters: Set<string>;
}

/** The API a token is for: the registry's record and the audience its tokens carry. */
interface Target {
  resource: ResourceServer;
  audience: string;
}

const nonOidcScopes = (parameter: unknown): string[] =>
  typeof parameter === 'string' ? parameter.split(' ').filter((scope) => scope !== '' && !isOidcScope(scope)) : [];

/**
 * The `features.resourceIndicators` policy, which is where the authorization model is enforced:
 * a client gets a token only for an API it holds a grant for (else `invalid_target`), with only
 * scopes of that grant that the API offers (asking for another is `invalid_scope`, whatever other
 * APIs the client holds it at). Tokens are RS256 (or the active key's algorithm) JWTs with the API's
 * own TTL; a client of profile fapi2 has them signed with the profile key's PS256 or ES256. The
 * admin API is stored as `urn:gatehouse:admin-api` and answered for under this server's
 * `<issuer>/admin/v1`.
 */
export function createResourceIndicators(deps: {
  cache: RegistryCache;
  issuer: string;
  signingAlg: () => AsymmetricSigningAlgorithm;
  /** What a client of profile fapi2 has its access tokens signed with (PS256 or ES256); none: it gets none. */
  fapi2SigningAlg?: AsymmetricSigningAlgorithm | undefined;
}) {
  const { cache } = deps;
  const adminIndicator = adminAudience(deps.issuer);
  // The answer for a resource and a client changes only when one of them does (the cache then hands
  // out new records): built once per pair, with the scope parameters already found valid for it.
  // Frozen: oidc-provider copies what it needs out of it, and must not change what the next request gets.
  const answers = new WeakMap<ResourceServer, WeakMap<ClientRecord, Answer | null>>();
  const alg = deps.signingAlg();
  const signFor = (record: ClientRecord): AsymmetricSigningAlgorithm => {
    if (record.profile !== 'fapi2') return alg;
    // The client adapter refuses such a client first; a token is never signed in an algorithm the profile forbids.
    if (!deps.fapi2SigningAlg) throw new errors.InvalidClient('this server has no PS256 or ES256 key for clients of profile fapi2');
    return deps.fapi2SigningAlg;
  };

  /** The registered API an indicator names; the admin API only by this server's own URL for it. */
  async function targetOf(indicator: string): Promise<Target | undefined> {
    if (indicator === ADMIN_RESOURCE_IDENTIFIER) return undefined;
    const stored = indicator === adminIndicator ? ADMIN_RESOURCE_IDENTIFIER : indicator;
    const resource = await cache.getResourceServer(stored);
    return resource && { resource, audience: indicator };
  }

  /** The client's answer at an API, or null when it holds no grant there. */
  function answerFor(target: Target, record: ClientRecord): Answer | null {
    let forResource = answers.get(target.resource);
    if (!forResource) answers.set(target.resource, (forResource = new WeakMap()));
    let answer = forResource.get(record);
    if (answer === undefined) {
      const grant: ClientGrant | undefined = record.grants.find((held) => held.resourceId === target.resource.id);
      if (!grant) {
        answer = null;
      } else {
        const granted = target.resource.scopes.filter((scope) => grant.scopes.includes(scope));
        const info: ProviderResourceServer = {
          scope: granted.join(' '),
          audience: target.audience,
          accessTokenTTL: target.resource.accessTokenTtl,
          accessTokenFormat: 'jwt',
          jwt: Object.freeze({ sign: Object.freeze({ alg: signFor(record) }) }),
        };
        answer = { info: Object.freeze(info), granted: Object.freeze(granted), validScopeParameters: new Set() };
      }
      forResource.set(record, answer);
    }
    return answer;
  }

  /** Client credentials may ask only for scopes the client holds at this API. */
  function checkRequestedScopes(ctx: KoaContextWithOIDC, target: Target, answer: Answer): void {
    const parameter = ctx.oidc.params?.scope;
    const requested = typeof parameter === 'string' ? parameter : '';
    if (answer.validScopeParameters.has(requested)) return;
    for (const scope of nonOidcScopes(requested)) {
      if (!answer.granted.includes(scope)) throw notGranted(scope, target);
    }
    // A client sends the same few scope parameters over and over; a bounded set of them is kept.
    if (answer.validScopeParameters.size < MAX_REMEMBERED_SCOPE_PARAMETERS) answer.validScopeParameters.add(requested);
  }

  // One answer whether the API offers the scope or not, and whether it exists or not: a client
  // learns nothing about the registry beyond its own grants.
  function notGranted(scope: string, target: Target): Error {
    return new errors.InvalidScope(`scope "${scope}" is not granted to this client at ${target.audience}`, scope);
  }

  function noGrant(indicator: string): Error {
    return new errors.InvalidTarget(`this client holds no grant for ${indicator}`);
  }

  /**
   * An authorization request's API scopes must each be granted at one of the APIs it names: the
   * person is asked to consent per API, and a scope no named API grants would be dropped silently.
   */
  async function checkAuthorizationScopes(ctx: KoaContextWithOIDC, record: ClientRecord): Promise<void> {
    const requested = nonOidcScopes(ctx.oidc.params?.scope);
    if (requested.length === 0) return;
    const parameter = ctx.oidc.params?.resource;
    const indicators = Array.isArray(parameter) ? (parameter as unknown[]) : [parameter];
    const granted = new Set<string>();
    let first: Target | undefined;
    for (const indicator of indicators) {
      const target = typeof indicator === 'string' ? await targetOf(indicator) : undefined;
      const answer = target && answerFor(target, record);
      first ??= target;
      for (const scope of answer?.granted ?? []) granted.add(scope);
    }
    const refused = requested.find((scope) => !granted.has(scope));
    if (refused !== undefined) {
      throw first ? notGranted(refused, first) : new errors.InvalidScope(`scope "${refused}" is not granted to this client`, refused);
    }
  }

  async function recordOf(client: Client): Promise<ClientRecord> {
    const record = await cache.getClient(client.clientId);
    if (!record) throw new errors.InvalidClient('client not found');
    return record;
  }

  async function defaultResource(ctx: KoaContextWithOIDC, client: Client, oneOf?: readonly string[]) {
    if (oneOf) return oneOf;
    const record = await cache.getClient(client.clientId);
    if (record?.defaultResource) return record.defaultResource === ADMIN_RESOURCE_IDENTIFIER ? adminIndicator : record.defaultResource;
    if (ctx.oidc.params?.grant_type === 'client_credentials') {
      throw new errors.InvalidTarget('the resource parameter is required: this client has no default resource');
    }
    // API scopes are granted per API: asked for without naming one, they would be dropped silently.
    const apiScopes = ctx.oidc.route === 'authorization' ? nonOidcScopes(ctx.oidc.params?.scope) : [];
    if (apiScopes.length > 0) {
      throw new errors.InvalidTarget(`scope "${apiScopes[0]}" is an API scope: name the API with the resource parameter`);
    }
    return undefined;
  }

  async function getResourceServerInfo(
    ctx: KoaContextWithOIDC,
    resourceIndicator: string,
    client: Client,
  ): Promise<ProviderResourceServer> {
    const target = await targetOf(resourceIndicator);
    if (!target) throw noGrant(resourceIndicator);
    const record = await recordOf(client);
    const answer = answerFor(target, record);
    if (!answer) throw noGrant(resourceIndicator);
    if (ctx.oidc.params?.grant_type === 'client_credentials') checkRequestedScopes(ctx, target, answer);
    else if (ctx.oidc.route === 'authorization') await checkAuthorizationScopes(ctx, record);
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
