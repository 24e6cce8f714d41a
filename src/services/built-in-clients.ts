import type { ClientRecord } from '../registry/client.repository.js';
import { ConflictError } from './errors.js';

/**
 * The account page's own client (docs/design/sign-in-methods.md §7.3): `/account` signs people in,
 * and asks them to sign in again before sensitive changes, with an ordinary authorization request
 * of this client, so every sign-in method, the second factor and the limits apply unchanged.
 */
export const ACCOUNT_CLIENT_ID = 'gatehouse-account';

/** Where the account page's authorization requests come back to, under the issuer. */
export const ACCOUNT_CALLBACK_PATH = '/account/callback';

/** Whether `clientId` names a client Gatehouse builds itself (never a registry row). */
export function isBuiltInClientId(clientId: string): boolean {
  return clientId === ACCOUNT_CLIENT_ID;
}

/**
 * Refuses a change to a built-in client, naming it: the CLI and the admin API cannot create,
 * change, grant, rotate or delete one (ConflictError on `client_id`: 409 / exit 1).
 */
export function refuseBuiltInClient(clientId: string): void {
  if (isBuiltInClientId(clientId)) {
    throw new ConflictError('client_id', `${clientId} is built into Gatehouse (the account page's own client): it cannot be created, changed or deleted`);
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
    admin: false,
    version: 0,
    secretRotatedAt: null,
    createdAt: since,
    updatedAt: since,
  };
}
