import { createLocalJWKSet, decodeJwt, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import { errors, type AsymmetricSigningAlgorithm, type JWK, type Provider } from 'oidc-provider';
import { sessionEnded, type AccountRecord } from '../accounts/account-record.js';
import { ACCESS_TOKEN_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT_TYPE } from '../config/protocol.js';
import { publicJwk } from '../keys/jwk.js';
import { SIGNING_ALGS } from '../keys/key-store.js';
import type { ClientRecord } from '../registry/client.repository.js';
import type { RegistryCache } from '../registry/registry-cache.js';
import { ADMIN_RESOURCE_IDENTIFIER, adminAudience } from '../registry/resource-server.repository.js';
import { API_KEY_CLIENT_ID } from '../services/built-in-clients.js';
import { OIDC_SCOPES } from '../services/validation.js';
import type { SubjectTokenHandler } from './api-key-exchange.js';
import { rethrowUnreachable } from './upstream.js';

/*
 * RFC 8693 token exchange between services (issue 18; docs/token-exchange.md): a confidential client
 * presents a person's JWT access token that this server issued for an API the client may act on
 * (its may_act list) and gets an access token for another API it holds a grant for, whose `sub` is
 * still the person and whose `act` names the client (RFC 8693 §4.1). One SubjectTokenHandler in the
 * token-exchange grant's map (api-key-exchange.ts, registerTokenExchange), for subject_token_type
 * urn:ietf:params:oauth:token-type:access_token.
 */

/** The actor claim (RFC 8693 §4.1): who acts, and who acted before them in a chain of exchanges. */
export interface ActClaim {
  sub: string;
  act?: ActClaim;
}

/**
 * The claims an exchanged access token carries beyond oidc-provider's own, by token. Read by the
 * provider's `extraTokenClaims` (configuration.ts, exchangedTokenClaims), which every access token
 * passes through: only a token this exchange made is in it.
 */
const exchangedClaims = new WeakMap<object, { act: ActClaim }>();

/** The `extraTokenClaims` of oidc-provider's configuration: `act` for a token made by this exchange, nothing for any other. */
export function exchangedTokenClaims(_ctx: unknown, token: object): Promise<{ act: ActClaim } | undefined> {
  return Promise.resolve(exchangedClaims.get(token));
}

export interface AccessTokenExchangeDeps {
  issuer: string;
  /** The provider's keys, private JWKs (the public halves are used): every key it publishes, so tokens signed by a retired one still verify while it is published. */
  jwks: readonly JWK[];
  /** The registry's clients and APIs (cached). */
  cache: Pick<RegistryCache, 'getClient' | 'getResourceServer'>;
  /** The person a subject token is for (accounts service). */
  accounts: { findById(id: string): Promise<AccountRecord | undefined> };
  signingAlg: AsymmetricSigningAlgorithm;
  /** Milliseconds since the epoch; Date.now unless given. */
  now?: () => number;
}

const isOidcScope = (scope: string) => (OIDC_SCOPES as readonly string[]).includes(scope);
const words = (value: unknown): string[] => (typeof value === 'string' ? [...new Set(value.split(' ').filter(Boolean))] : []);
const refuse = (description: string): never => {
  throw new errors.InvalidRequest(description);
};

/** An act claim as found in a verified token of this server: `{ sub, act? }` all the way down, else undefined. */
function actClaimOf(value: unknown, depth = 0): ActClaim | undefined {
  if (depth > 8 || typeof value !== 'object' || value === null) return undefined;
  const { sub, act } = value as { sub?: unknown; act?: unknown };
  if (typeof sub !== 'string') return undefined;
  const previous = act === undefined ? undefined : actClaimOf(act, depth + 1);
  return previous ? { sub, act: previous } : { sub };
}

/** Why a subject token did not verify, in words for the client that presented it. */
function verificationFailure(error: unknown, token: string, issuer: string): string {
  if (error instanceof joseErrors.JWTExpired) return 'the subject_token has expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === 'iss') return 'the subject_token was not issued by this server';
    if (error.claim === 'nbf' || error.claim === 'iat') return 'the subject_token is not valid yet';
    if (error.claim === 'typ') return 'the subject_token is not a JWT access token (typ at+jwt)';
    return `the subject_token's ${error.claim} claim is invalid`;
  }
  let claimedIssuer: unknown;
  try {
    claimedIssuer = decodeJwt(token).iss;
  } catch {
    return 'the subject_token is not a JWT access token of this server';
  }
  if (claimedIssuer !== issuer) return 'the subject_token was not issued by this server';
  if (error instanceof joseErrors.JWSSignatureVerificationFailed || error instanceof joseErrors.JWKSNoMatchingKey) {
    return "the subject_token's signature does not verify with this server's keys";
  }
  return 'the subject_token is not a JWT access token of this server';
}

/**
 * The exchange of a person's access token (subject_token_type urn:ietf:params:oauth:token-type:access_token)
 * by a confidential client acting for them. The subject token is verified with jose against the
 * provider's published keys (iss this server, typ at+jwt, exp and nbf, no clock tolerance), must be
 * a person's (not a client-credentials token) who exists, is not disabled and whose sessions were
 * not ended after it was issued, and must be for an API in the client's may_act list: otherwise
 * invalid_request (RFC 8693 §2.2.2). The target (resource or audience, else the client's default
 * resource) must be an API the client holds a grant for, never the admin API: invalid_target.
 * The scopes (those asked for, else all allowed) must be both the subject token's and the client's
 * at the target: invalid_scope. The token issued lives at most the target API's TTL and never
 * beyond the subject token's exp; its `act` names the client, over the subject token's own `act`.
 */
export function accessTokenExchange(deps: AccessTokenExchangeDeps): SubjectTokenHandler {
  const now = deps.now ?? Date.now;
  const databaseGone = rethrowUnreachable('database');
  const keys = createLocalJWKSet({ keys: deps.jwks.map((jwk) => publicJwk(jwk)) } as JSONWebKeySet);
  const jwt = Object.freeze({ sign: Object.freeze({ alg: deps.signingAlg }) });
  const adminIndicator = adminAudience(deps.issuer);
  const isAdminApi = (identifier: string) => identifier === ADMIN_RESOURCE_IDENTIFIER || identifier === adminIndicator;

  async function verifySubjectToken(token: string): Promise<JWTPayload> {
    try {
      const { payload } = await jwtVerify(token, keys, {
        issuer: deps.issuer,
        typ: 'at+jwt',
        algorithms: [...SIGNING_ALGS],
        requiredClaims: ['sub', 'exp', 'iat', 'aud', 'client_id'],
        currentDate: new Date(now()),
      });
      return payload;
    } catch (error) {
      return refuse(verificationFailure(error, token, deps.issuer));
    }
  }

  /** The person the subject token is for, still able to act: else invalid_request. */
  async function checkPerson(payload: JWTPayload & { client_id?: unknown }): Promise<string> {
    const sub = String(payload.sub);
    if (sub === payload.client_id) {
      return refuse('the subject_token is a client credentials token: only a token issued for a person is exchanged');
    }
    const account = await deps.accounts.findById(sub).catch(databaseGone);
    if (!account) return refuse("the subject_token's person no longer exists");
    if (account.disabled) return refuse("the subject_token's person is disabled");
    if (sessionEnded(account, payload.iat)) return refuse("the subject_token was issued before its person's sessions were ended");
    return sub;
  }

  /** The API the new token is for: resource (RFC 8707) or audience (RFC 8693), else the client's default resource. */
  function targetOf(params: { resource?: unknown; audience?: unknown }, record: ClientRecord): string {
    const { resource, audience } = params;
    if (Array.isArray(resource) || Array.isArray(audience)) throw new errors.InvalidTarget('name one API per exchange (one resource or audience)');
    if (typeof resource === 'string' && typeof audience === 'string' && resource !== audience) {
      throw new errors.InvalidTarget('resource and audience name different APIs: name one');
    }
    const named = typeof resource === 'string' ? resource : typeof audience === 'string' ? audience : undefined;
    const target = named ?? record.defaultResource ?? undefined;
    if (target === undefined) throw new errors.InvalidTarget('name the API with resource or audience: this client has no default resource');
    if (isAdminApi(target)) throw new errors.InvalidTarget('the admin API is never the target of a token exchange');
    return target;
  }

  return async (ctx) => {
    const { params, client, provider } = ctx.oidc;
    if (client.clientId === API_KEY_CLIENT_ID || client.clientAuthMethod === 'none') {
      throw new errors.UnauthorizedClient('only a confidential client (one that authenticates) may exchange an access token');
    }
    if (params.actor_token !== undefined || params.actor_token_type !== undefined) {
      refuse('actor_token is not accepted: the authenticated client is the actor');
    }
    if (params.requested_token_type !== undefined && params.requested_token_type !== ACCESS_TOKEN_TOKEN_TYPE) {
      refuse(`an access token is exchanged for an access token only (requested_token_type ${ACCESS_TOKEN_TOKEN_TYPE})`);
    }
    const record = await deps.cache.getClient(client.clientId).catch(databaseGone);
    if (!record) throw new errors.InvalidClient('client not found');

    const payload = await verifySubjectToken(String(params.subject_token));
    const accountId = await checkPerson(payload);
    const audiences = Array.isArray(payload.aud) ? payload.aud : [String(payload.aud)];
    for (const audience of audiences) {
      if (isAdminApi(audience)) refuse('a token for the admin API is never exchanged');
      if (!record.mayAct.includes(audience)) refuse(`wrong audience: this client may not act on tokens for ${audience}`);
    }

    const identifier = targetOf(params, record);
    const resource = await deps.cache.getResourceServer(identifier).catch(databaseGone);
    const grant = resource && record.grants.find((held) => held.resourceId === resource.id);
    if (!resource || !grant) throw new errors.InvalidTarget(`this client holds no grant for ${identifier}`);

    const subjectScopes = words(payload.scope);
    const granted = resource.scopes.filter((scope) => grant.scopes.includes(scope));
    const allowed = granted.filter((scope) => subjectScopes.includes(scope));
    const requested = typeof params.scope === 'string' ? words(params.scope) : undefined;
    for (const scope of requested ?? []) {
      if (isOidcScope(scope) || !granted.includes(scope)) throw new errors.InvalidScope(`scope "${scope}" is not granted to this client at ${identifier}`, scope);
      if (!subjectScopes.includes(scope)) throw new errors.InvalidScope(`scope "${scope}" is not in the subject_token: an exchange never widens it`, scope);
    }
    const scopes = requested ?? allowed;
    if (scopes.length === 0) throw new errors.InvalidScope(`the subject_token and this client's grant at ${identifier} have no scope in common`, '');

    // Never beyond the subject token: the person's authority ends when that token does.
    const remaining = Number(payload.exp) - Math.floor(now() / 1000);
    const ttl = Math.max(1, Math.min(resource.accessTokenTtl, remaining));
    const properties = { client, accountId, gty: TOKEN_EXCHANGE_GRANT_TYPE, scope: scopes.join(' ') };
    // No grantId, as with API keys: the token comes from the subject token, not from a consent (a Grant).
    const token = new provider.AccessToken(properties as ConstructorParameters<Provider['AccessToken']>[0]);
    token.resourceServer = new provider.ResourceServer(identifier, {
      scope: granted.join(' '),
      audience: identifier,
      accessTokenTTL: ttl,
      accessTokenFormat: 'jwt',
      jwt,
    });
    const previous = actClaimOf(payload.act);
    exchangedClaims.set(token, { act: previous ? { sub: client.clientId, act: previous } : { sub: client.clientId } });
    ctx.oidc.entity('AccessToken', token);
    const value = await token.save();

    ctx.body = {
      access_token: value,
      issued_token_type: ACCESS_TOKEN_TOKEN_TYPE,
      token_type: token.tokenType,
      expires_in: token.expiration,
      scope: token.scope,
    };
  };
}
