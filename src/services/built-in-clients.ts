import { TOKEN_EXCHANGE_GRANT_TYPE } from '../config/protocol.js';
import { NO_NEWER_PROTOCOLS, type ClientRecord } from '../registry/client.repository.js';
import { ADMIN_RESOURCE_ID, ADMIN_RESOURCE_IDENTIFIER, ADMIN_SCOPE } from '../registry/resource-server.repository.js';
import { ConflictError } from './errors.js';

/**
 * The account page's own client (docs/design/sign-in-methods.md §7.3): `/account` signs people in,
 * and asks them to sign in again before sensitive changes, with an ordinary authorization request
 * of this client, so every sign-in method, the second factor and the limits apply unchanged.
 */
export const ACCOUNT_CLIENT_ID = 'gatehouse-account';

/** Where the account page's authorization requests come back to, under the issuer. */
export const ACCOUNT_CALLBACK_PATH = '/account/callback';

/**
 * The client personal API keys are exchanged through (docs/api-keys.md): the token endpoint takes a
 * key without client authentication, and oidc-provider serves every token request for a client, so
 * such a request is served as this public client's (oidc/upstream.ts, supplyClientId).
 */
export const API_KEY_CLIENT_ID = 'gatehouse-api-keys';

/**
 * The console's own client (docs/console.md): the single-page app at `<issuer>/console` signs
 * administrators in with code + PKCE and DPoP, and calls the admin API with their access token.
 */
export const CONSOLE_CLIENT_ID = 'gatehouse-console';

/** Where the console's authorization requests come back to, and where its sign-out returns, under the issuer. */
export const CONSOLE_CALLBACK_PATH = '/console/callback';
export const CONSOLE_SIGNED_OUT_PATH = '/console/signed-out';

/** Whether `clientId` names a client Gatehouse builds itself (never a registry row). */
export function isBuiltInClientId(clientId: string): boolean {
  return clientId === ACCOUNT_CLIENT_ID || clientId === API_KEY_CLIENT_ID || clientId === CONSOLE_CLIENT_ID;
}

const BUILT_IN_WHAT: Record<string, string> = {
  [ACCOUNT_CLIENT_ID]: "the account page's own client",
  [API_KEY_CLIENT_ID]: 'the client personal API keys are exchanged through',
  [CONSOLE_CLIENT_ID]: "the console's own client",
};

/**
 * Refuses a change to a built-in client, naming it: the CLI and the admin API cannot create,
 * change, grant, rotate or delete one (ConflictError on `client_id`: 409 / exit 1).
 */
export function refuseBuiltInClient(clientId: string): void {
  if (isBuiltInClientId(clientId)) {
    const what = BUILT_IN_WHAT[clientId] ?? 'a built-in client';
    throw new ConflictError('client_id', `${clientId} is built into Gatehouse (${what}): it cannot be created, changed or deleted`);
  }
}

/**
 * What stands where a client's secret digest would: not a digest (services/client-secrets.ts), so no
 * presented secret ever matches it.
 */
const NO_SECRET = 'none: the account page never redeems its codes';

/**
 * The account page's client for this issuer: first-party (no consent page), authorization code with
 * PKCE only, its one redirect URI `<issuer>/account/callback`, OpenID scope only, no API grants.
 * Built from the issuer, so no migration has to know it. The account page never redeems the code
 * it gets (the browser session is what it reads), so nobody may: the client authenticates with a
 * secret that does not exist (client_secret_basic against NO_SECRET), and the token endpoint
 * refuses every request of it as invalid_client, even one that carries a leaked code and its verifier.
 */
export function accountClientRecord(issuer: string): ClientRecord {
  const since = new Date('2026-12-08T00:00:00Z');
  return {
    clientId: ACCOUNT_CLIENT_ID,
    clientName: 'your Gatehouse account',
    secretDigest: NO_SECRET,
    tokenEndpointAuthMethod: 'client_secret_basic',
    grantTypes: ['authorization_code'],
    redirectUris: [`${issuer.replace(/\/$/, '')}${ACCOUNT_CALLBACK_PATH}`],
    postLogoutRedirectUris: [],
    scopes: ['openid'],
    defaultResource: null,
    grants: [],
    jwks: null,
    logoUri: null,
    firstParty: true,
    requireMfa: false,
    ...NO_NEWER_PROTOCOLS,
    admin: false,
    version: 0,
    secretRotatedAt: null,
    createdAt: since,
    updatedAt: since,
  };
}

/**
 * The API-key client for this issuer: public (`none`), the token-exchange grant only, no redirect
 * URI, no scopes, no API grants: what its tokens may carry is decided by the key alone
 * (oidc/api-key-exchange.ts), never by a grant of this client.
 */
export function apiKeyClientRecord(): ClientRecord {
  const since = new Date('2026-12-09T00:00:00Z');
  return {
    clientId: API_KEY_CLIENT_ID,
    clientName: 'personal API keys',
    secretDigest: null,
    tokenEndpointAuthMethod: 'none',
    grantTypes: [TOKEN_EXCHANGE_GRANT_TYPE],
    redirectUris: [],
    postLogoutRedirectUris: [],
    scopes: [],
    defaultResource: null,
    grants: [],
    jwks: null,
    logoUri: null,
    firstParty: false,
    requireMfa: false,
    ...NO_NEWER_PROTOCOLS,
    admin: false,
    version: 0,
    secretRotatedAt: null,
    createdAt: since,
    updatedAt: since,
  };
}

/**
 * The console's client for this issuer: public (`none`: a single-page app keeps no secret), first-party
 * (no consent page), authorization code with PKCE and refresh tokens, its access tokens DPoP-bound, a
 * second factor required at every sign-in (require_mfa), its one redirect URI `<issuer>/console/callback`,
 * and the admin API's grant with scope `admin`. Holding the grant is not enough: the admin API takes a
 * person's token only while that person holds the admin role (admin/admin-auth.ts).
 */
export function consoleClientRecord(issuer: string): ClientRecord {
  const since = new Date('2026-12-11T00:00:00Z');
  const base = issuer.replace(/\/$/, '');
  return {
    clientId: CONSOLE_CLIENT_ID,
    clientName: 'Gatehouse console',
    secretDigest: null,
    tokenEndpointAuthMethod: 'none',
    grantTypes: ['authorization_code', 'refresh_token'],
    redirectUris: [`${base}${CONSOLE_CALLBACK_PATH}`],
    postLogoutRedirectUris: [`${base}${CONSOLE_SIGNED_OUT_PATH}`],
    scopes: ['openid'],
    defaultResource: ADMIN_RESOURCE_IDENTIFIER,
    grants: [{ resourceId: ADMIN_RESOURCE_ID, resource: ADMIN_RESOURCE_IDENTIFIER, scopes: [ADMIN_SCOPE] }],
    jwks: null,
    logoUri: null,
    firstParty: true,
    requireMfa: true,
    ...NO_NEWER_PROTOCOLS,
    dpopBoundAccessTokens: true,
    admin: false,
    version: 0,
    secretRotatedAt: null,
    createdAt: since,
    updatedAt: since,
  };
}
