import { TOKEN_EXCHANGE_GRANT_TYPE } from '../config/protocol.js';
import { NO_NEWER_PROTOCOLS, type ClientRecord } from '../registry/client.repository.js';
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

/** Whether `clientId` names a client Gatehouse builds itself (never a registry row). */
export function isBuiltInClientId(clientId: string): boolean {
  return clientId === ACCOUNT_CLIENT_ID || clientId === API_KEY_CLIENT_ID;
}

/**
 * Refuses a change to a built-in client, naming it: the CLI and the admin API cannot create,
 * change, grant, rotate or delete one (ConflictError on `client_id`: 409 / exit 1).
 */
export function refuseBuiltInClient(clientId: string): void {
  if (isBuiltInClientId(clientId)) {
    const what = clientId === ACCOUNT_CLIENT_ID ? "the account page's own client" : 'the client personal API keys are exchanged through';
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
