import { errors, type AsymmetricSigningAlgorithm, type Provider, type TokenEndpointGrantContext } from 'oidc-provider';
import { ACCESS_TOKEN_TOKEN_TYPE, API_KEY_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT_TYPE } from '../config/protocol.js';
import type { ApiKeyForExchange } from '../registry/api-key.repository.js';
import { ADMIN_RESOURCE_IDENTIFIER } from '../registry/resource-server.repository.js';
import { apiKeyDigest, looksLikeApiKey } from '../services/api-keys.service.js';
import { API_KEY_CLIENT_ID } from '../services/built-in-clients.js';
import { OIDC_SCOPES } from '../services/validation.js';
import { invalidGrantSaying, rethrowUnreachable, supplyClientId, TooManyAttempts } from './upstream.js';

/*
 * RFC 8693 token exchange at the token endpoint (CONTRACT, "Personal API keys"; docs/api-keys.md).
 * One grant handler for the grant type, which dispatches on subject_token_type: each type a server
 * accepts is one SubjectTokenHandler in the map given to registerTokenExchange. Personal API keys
 * are the first; exchanging an access token (issue 18) is another entry beside it. A missing or
 * unknown subject_token_type is invalid_request (RFC 8693 §2.2.2).
 */

/** The parameters of a token-exchange request (RFC 8693 §2.1). */
export interface TokenExchangeParameters {
  subject_token?: string | undefined;
  subject_token_type?: string | undefined;
  requested_token_type?: string | undefined;
  actor_token?: string | undefined;
  actor_token_type?: string | undefined;
  audience?: string | undefined;
}

export type TokenExchangeContext = TokenEndpointGrantContext<TokenExchangeParameters>;

/** Serves the exchanges of one subject_token_type: answers the token response, or throws an OAuth error. */
export type SubjectTokenHandler = (ctx: TokenExchangeContext) => Promise<void>;

/** Every parameter RFC 8693 §2.1 defines; oidc-provider drops any other from the request (and refuses one given twice). */
const EXCHANGE_PARAMETERS = ['subject_token', 'subject_token_type', 'requested_token_type', 'actor_token', 'actor_token_type', 'audience', 'resource', 'scope'] as const;

/**
 * Registers the token-exchange grant with a handler per subject_token_type.
 *
 * @example
 * registerTokenExchange(provider, new Map([[API_KEY_TOKEN_TYPE, apiKeyExchange(deps)]]));
 */
export function registerTokenExchange(provider: Provider, handlers: ReadonlyMap<string, SubjectTokenHandler>): void {
  provider.registerGrantType<TokenExchangeParameters>(
    TOKEN_EXCHANGE_GRANT_TYPE,
    async (ctx) => {
      const { subject_token: subjectToken, subject_token_type: type } = ctx.oidc.params;
      if (type === undefined) throw new errors.InvalidRequest("missing required parameter 'subject_token_type'");
      const handler = handlers.get(type);
      if (!handler) {
        throw new errors.InvalidRequest(`unsupported subject_token_type: this server exchanges ${[...handlers.keys()].join(', ')}`);
      }
      if (subjectToken === undefined) throw new errors.InvalidRequest("missing required parameter 'subject_token'");
      // An exchanged token is never DPoP-bound: a client whose tokens must be (dpop_bound_access_tokens)
      // is refused here rather than handed a bearer token it was promised would never exist.
      if (ctx.oidc.client.dpopBoundAccessTokens) {
        throw invalidGrantSaying('this client must use DPoP-bound tokens, and token exchange issues bearer tokens only');
      }
      await handler(ctx);
    },
    EXCHANGE_PARAMETERS,
  );
}

/** Failed exchanges counted per client IP (interactions/login-limiter.ts, kind `api_key`). */
export interface ExchangeFailureLimiter {
  check(ip: string): Promise<{ allowed: true } | { allowed: false; retryAfterSeconds: number }>;
  recordFailure(ip: string): Promise<void>;
}

export interface ApiKeyExchangeDeps {
  /** The key with this digest, its person and its API (registry/api-key.repository.ts, prepareFindApiKeyForExchange). */
  findKey(digest: string): Promise<ApiKeyForExchange | undefined>;
  /** Records a use (at most once per LAST_USED_INTERVAL_MS per key). */
  touch(id: string, at: Date, notBefore: Date): Promise<void>;
  failures?: ExchangeFailureLimiter | undefined;
  signingAlg: AsymmetricSigningAlgorithm;
  /** Milliseconds since the epoch; Date.now unless given. */
  now?: () => number;
}

/** Tokens from an API key live at most this long (seconds), whatever the API's own TTL. */
export const MAX_API_KEY_TOKEN_TTL = 3600;
/** last_used_at is written at most this often per key. */
export const LAST_USED_INTERVAL_MS = 60_000;

const isOidcScope = (scope: string) => (OIDC_SCOPES as readonly string[]).includes(scope);

/**
 * The exchange of a personal API key (subject_token_type urn:gatehouse:params:oauth:token-type:api-key)
 * for an RS256 JWT access token whose `sub` is the key's person, `aud` the key's API, and whose
 * scopes are those asked for (all the key's when none are), each of them the key's and still
 * defined by the API. The key is found by its SHA-256 digest (one indexed read: no argon2, no
 * per-request key derivation). Refused: a subject_token that is no key, an unknown (or revoked, or
 * regenerated) key, an expired key, a key of a disabled person or one made before their sessions were
 * ended: invalid_grant, counted against the client's IP; another API: invalid_target; another
 * scope: invalid_scope.
 */
export function apiKeyExchange(deps: ApiKeyExchangeDeps): SubjectTokenHandler {
  const now = deps.now ?? Date.now;
  const databaseGone = rethrowUnreachable('database');
  const jwt = Object.freeze({ sign: Object.freeze({ alg: deps.signingAlg }) });

  return async (ctx) => {
    const { params, client, provider } = ctx.oidc;
    if (client.clientId !== API_KEY_CLIENT_ID) {
      throw new errors.InvalidRequest('an API key is exchanged without client authentication');
    }
    if (params.actor_token !== undefined || params.actor_token_type !== undefined) {
      throw new errors.InvalidRequest('actor_token is not accepted with an API key');
    }
    if (params.requested_token_type !== undefined && params.requested_token_type !== ACCESS_TOKEN_TOKEN_TYPE) {
      throw new errors.InvalidRequest(`an API key is exchanged for an access token only (requested_token_type ${ACCESS_TOKEN_TOKEN_TYPE})`);
    }
    const ip = ctx.ip;
    if (deps.failures) {
      const check = await deps.failures.check(ip);
      if (!check.allowed) {
        ctx.set('Retry-After', String(check.retryAfterSeconds));
        throw new TooManyAttempts(`too many failed API key exchanges from this address: try again in ${check.retryAfterSeconds} seconds`);
      }
    }
    const refuse = async (description: string): Promise<never> => {
      await deps.failures?.recordFailure(ip);
      // A script's owner is told what is wrong with their key (it says nothing about anyone else's).
      throw invalidGrantSaying(description);
    };

    const presented = params.subject_token;
    if (!looksLikeApiKey(presented)) return refuse('the subject_token is not a Gatehouse API key (gk_ followed by 43 characters)');
    const key = await deps.findKey(apiKeyDigest(presented)).catch(databaseGone);
    if (!key) return refuse('unknown API key: it was deleted or regenerated, or never existed');
    const at = now();
    if (key.expiresAt && key.expiresAt.getTime() <= at) return refuse('the API key has expired');
    if (key.userDisabled) return refuse("the API key's owner is disabled");
    if (key.sessionsValidAfter && key.sessionsValidAfter.getTime() > key.secretIssuedAt.getTime()) {
      return refuse("the API key was made before its owner's sessions were ended (a password change, say): regenerate it");
    }

    const resource = typeof params.resource === 'string' ? params.resource : key.resourceIdentifier;
    if (resource !== key.resourceIdentifier || key.resourceIdentifier === ADMIN_RESOURCE_IDENTIFIER) {
      throw new errors.InvalidTarget(`this API key is not for ${resource}`);
    }
    const allowed = key.scopes.filter((scope) => key.resourceScopes.includes(scope));
    const requested = typeof params.scope === 'string' ? [...new Set(params.scope.split(' ').filter(Boolean))] : undefined;
    const refused = requested?.find((scope) => isOidcScope(scope) || !allowed.includes(scope));
    if (refused !== undefined) throw new errors.InvalidScope(`scope "${refused}" is not granted to this API key`, refused);
    const scope = (requested ?? allowed).join(' ');

    // No grantId: the token comes from the key, not from a consent (a Grant); oidc-provider's types
    // ask for one, its model does not (a grantId would only tie the token to a Grant that is not there).
    const properties = { client, accountId: key.userId, gty: TOKEN_EXCHANGE_GRANT_TYPE, ...(scope ? { scope } : {}) };
    const token = new provider.AccessToken(properties as ConstructorParameters<Provider['AccessToken']>[0]);
    token.resourceServer = new provider.ResourceServer(key.resourceIdentifier, {
      scope: allowed.join(' '),
      audience: key.resourceIdentifier,
      accessTokenTTL: Math.min(key.accessTokenTtl, MAX_API_KEY_TOKEN_TTL),
      accessTokenFormat: 'jwt',
      jwt,
    });
    ctx.oidc.entity('AccessToken', token);
    const value = await token.save();

    if (!key.lastUsedAt || at - key.lastUsedAt.getTime() >= LAST_USED_INTERVAL_MS) {
      await deps.touch(key.id, new Date(at), new Date(at - LAST_USED_INTERVAL_MS)).catch(databaseGone);
    }
    ctx.body = {
      access_token: value,
      issued_token_type: ACCESS_TOKEN_TOKEN_TYPE,
      token_type: token.tokenType,
      expires_in: token.expiration,
      ...(token.scope ? { scope: token.scope } : {}),
    };
  };
}

/**
 * Token exchange on this provider, with personal API keys: the grant, its handlers, and the built-in
 * client an API-key request without client authentication is served as. `others` adds the handlers
 * of further subject_token_types (access tokens between services: access-token-exchange.ts).
 *
 * @example
 * enableTokenExchange(provider, { findKey, touch, failures, signingAlg }, [[ACCESS_TOKEN_TOKEN_TYPE, accessTokenExchange(deps)]]);
 */
export function enableTokenExchange(provider: Provider, apiKeys: ApiKeyExchangeDeps, others: ReadonlyArray<readonly [string, SubjectTokenHandler]> = []): void {
  registerTokenExchange(provider, new Map([[API_KEY_TOKEN_TYPE, apiKeyExchange(apiKeys)], ...others]));
  supplyClientId(provider, API_KEY_CLIENT_ID, (body) => body.grant_type === TOKEN_EXCHANGE_GRANT_TYPE && body.subject_token_type === API_KEY_TOKEN_TYPE);
}
