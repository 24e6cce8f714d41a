import * as oauth from 'oauth4webapi';
import { BASE, type Settings } from './settings.js';
import { createStore } from './store.js';

/**
 * Signing in to the console: authorization code with PKCE (S256) and DPoP (RFC 9449), as the public
 * client gatehouse-console, through Gatehouse's own sign-in pages (password or passkey, then the
 * second factor the console's client requires).
 *
 * Tokens live in this module's memory only, never in localStorage or sessionStorage: a script that
 * runs in the page could use them while it runs, but cannot carry them away for later, and the
 * DPoP key that every call must be signed with is a non-extractable WebCrypto key. The price: a
 * reload signs in again (silently while the Gatehouse session lasts). sessionStorage holds only
 * the PKCE verifier and state between leaving for the sign-in page and coming back, and the time
 * of the last activity (for the idle timeout across a reload): neither is a credential.
 */

const FLOW_KEY = 'gatehouse-console:flow';
const ACTIVE_KEY = 'gatehouse-console:active-at';
/** Refresh this long before the access token expires. */
const REFRESH_EARLY_MS = 30_000;

export type AuthState =
  | { status: 'starting' }
  | { status: 'signed-in'; subject: string }
  | { status: 'signed-out'; reason: 'idle' | 'signed-out' | 'expired' }
  | { status: 'failed'; message: string };

export const authState = createStore<AuthState>({ status: 'starting' });

interface Tokens {
  accessToken: string;
  refreshToken: string | undefined;
  idToken: string | undefined;
  expiresAt: number;
}

let settings: Settings;
let as: oauth.AuthorizationServer | undefined;
let client: oauth.Client;
let dpop: oauth.DPoPHandle | undefined;
let tokens: Tokens | undefined;
let refreshing: Promise<void> | undefined;
/** The person signed in: the `sub` of the ID token the sign-in returned (as oauth4webapi validated it). */
let subject = '';

const insecure = () => (settings.issuer.startsWith('http:') ? { [oauth.allowInsecureRequests]: true } : {});

async function server(): Promise<oauth.AuthorizationServer> {
  if (as) return as;
  const issuer = new URL(settings.issuer);
  as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure() }));
  return as;
}

/** The DPoP key of this page: made once, never extractable, gone with the page. */
async function dpopHandle(): Promise<oauth.DPoPHandle> {
  dpop ??= oauth.DPoP(client, await oauth.generateKeyPair('ES256', { extractable: false }));
  return dpop;
}

/** When the tokens were last got (a sign-in or a refresh), and when the console last told the server it is in use. */
let refreshedAt = 0;
let keptAliveAt = 0;

function keep(response: oauth.TokenEndpointResponse): void {
  refreshedAt = Date.now();
  tokens = {
    accessToken: response.access_token,
    refreshToken: response.refresh_token ?? tokens?.refreshToken,
    idToken: response.id_token ?? tokens?.idToken,
    expiresAt: Date.now() + (response.expires_in ?? 60) * 1000,
  };
}

/** Leaves for the sign-in page; comes back to `returnTo` (a console path). `fresh`: the person must sign in again (after the idle timeout). */
export async function signIn(returnTo: string, fresh = false): Promise<void> {
  const server_ = await server();
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  sessionStorage.setItem(FLOW_KEY, JSON.stringify({ verifier, state, returnTo }));
  sessionStorage.removeItem(ACTIVE_KEY);
  const url = new URL(server_.authorization_endpoint ?? `${settings.issuer}/auth`);
  url.search = new URLSearchParams({
    client_id: settings.client_id,
    redirect_uri: settings.redirect_uri,
    response_type: 'code',
    scope: 'openid admin',
    resource: settings.resource,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    ...(fresh ? { prompt: 'login' } : {}),
  }).toString();
  location.assign(url.href);
}

/** The callback: checks the state, redeems the code with its verifier and a DPoP proof, and goes where the sign-in started. */
async function finishSignIn(): Promise<string> {
  const flow = JSON.parse(sessionStorage.getItem(FLOW_KEY) ?? 'null') as { verifier: string; state: string; returnTo: string } | null;
  sessionStorage.removeItem(FLOW_KEY);
  if (!flow) throw new Error('this sign-in was not started here: start again');
  const server_ = await server();
  const params = oauth.validateAuthResponse(server_, client, new URL(location.href), flow.state);
  const request = () =>
    oauth.authorizationCodeGrantRequest(server_, client, oauth.None(), params, settings.redirect_uri, flow.verifier, {
      DPoP: dpop,
      additionalParameters: { resource: settings.resource },
      ...insecure(),
    });
  await dpopHandle();
  let response = await request();
  let result: oauth.TokenEndpointResponse;
  try {
    result = await oauth.processAuthorizationCodeResponse(server_, client, response);
  } catch (error) {
    // A server that asks for a DPoP nonce (DPOP_REQUIRE_NONCE) gets one more try, now with it.
    if (!oauth.isDPoPNonceError(error)) throw error;
    response = await request();
    result = await oauth.processAuthorizationCodeResponse(server_, client, response);
  }
  keep(result);
  subject = oauth.getValidatedIdTokenClaims(result)?.sub ?? '';
  return flow.returnTo.startsWith(`${BASE}/`) || flow.returnTo === BASE ? flow.returnTo : `${BASE}/`;
}

/** A new access token with the refresh token (rotated by the server); signed out when it no longer works. */
async function refresh(): Promise<void> {
  const refreshToken = tokens?.refreshToken;
  if (!refreshToken) throw new Error('no refresh token');
  const server_ = await server();
  const request = () => oauth.refreshTokenGrantRequest(server_, client, oauth.None(), refreshToken, { DPoP: dpop, additionalParameters: { resource: settings.resource }, ...insecure() });
  try {
    keep(await oauth.processRefreshTokenResponse(server_, client, await request()));
  } catch (error) {
    if (!oauth.isDPoPNonceError(error)) throw error;
    keep(await oauth.processRefreshTokenResponse(server_, client, await request()));
  }
}

/** The current access token, refreshed first when it is about to expire. */
async function currentAccessToken(): Promise<string> {
  if (!tokens) throw new SignedOutError();
  if (tokens.expiresAt - Date.now() < REFRESH_EARLY_MS) {
    refreshing ??= refresh().finally(() => {
      refreshing = undefined;
    });
    try {
      await refreshing;
    } catch {
      drop();
      authState.set({ status: 'signed-out', reason: 'expired' });
      throw new SignedOutError();
    }
  }
  return tokens.accessToken;
}

/** Thrown by a call made while nobody is signed in. */
export class SignedOutError extends Error {
  constructor() {
    super('signed out');
    this.name = 'SignedOutError';
  }
}

/**
 * A call to the admin API with the access token and a fresh DPoP proof for it. On a 401 the token is
 * refreshed once and the call made again.
 */
export async function authorizedFetch(request: Request): Promise<Response> {
  const body = request.body ? await request.clone().arrayBuffer() : undefined;
  const send = async () =>
    oauth
      .protectedResourceRequest(await currentAccessToken(), request.method, new URL(request.url), new Headers(request.headers), body, {
        DPoP: await dpopHandle(),
        ...insecure(),
      })
      // oauth4webapi throws on an answer with a WWW-Authenticate challenge (401, 403): the answer is what the console reads.
      .catch((error: unknown) => {
        if (error instanceof oauth.WWWAuthenticateChallengeError) return error.response;
        throw error;
      });
  let response = await send();
  if (response.status === 401 && tokens?.refreshToken) {
    if (tokens) tokens.expiresAt = 0;
    response = await send();
  }
  return response;
}

function drop(): void {
  tokens = undefined;
}

/** Ends the console's tokens at the server (the refresh token is revoked) and forgets them. */
async function revokeTokens(): Promise<void> {
  const refreshToken = tokens?.refreshToken;
  drop();
  if (!refreshToken) return;
  try {
    const server_ = await server();
    await oauth.processRevocationResponse(await oauth.revocationRequest(server_, client, oauth.None(), refreshToken, insecure()));
  } catch {
    // Signing out goes on: the token dies unused after the idle timeout anyway.
  }
}

/** The explicit sign-out: tokens revoked, then Gatehouse's own sign-out (RP-initiated logout), back to /console/signed-out. */
export async function signOut(): Promise<void> {
  const idToken = tokens?.idToken;
  await revokeTokens();
  sessionStorage.removeItem(ACTIVE_KEY);
  const server_ = await server();
  const url = new URL(server_.end_session_endpoint ?? `${settings.issuer}/session/end`);
  url.search = new URLSearchParams({
    client_id: settings.client_id,
    post_logout_redirect_uri: settings.post_logout_redirect_uri,
    ...(idToken ? { id_token_hint: idToken } : {}),
  }).toString();
  location.assign(url.href);
}

/** Marks activity now: the idle timeout counts from the last one. */
function touch(): void {
  sessionStorage.setItem(ACTIVE_KEY, String(Date.now()));
}

function idleFor(): number {
  const at = Number(sessionStorage.getItem(ACTIVE_KEY) ?? Number.NaN);
  return Number.isFinite(at) ? Date.now() - at : 0;
}

/**
 * While the person is active, the server hears of it at least every quarter of the idle timeout: an
 * admin API call (which renews the server's record of console activity) and, past half the timeout
 * since the tokens were got, a refresh first (the refresh token lives the idle timeout unused). So
 * someone typing a long form without saving is not signed out by the server meanwhile.
 */
function keepAlive(): void {
  const now = Date.now();
  if (!tokens || now - keptAliveAt < settings.idle_timeout_seconds * 250) return;
  keptAliveAt = now;
  if (now - refreshedAt > settings.idle_timeout_seconds * 500) tokens.expiresAt = 0;
  void authorizedFetch(new Request(new URL('/admin/v1/me', location.origin))).catch(() => undefined);
}

/** After idle_timeout_seconds without a key press, click or touch, the console signs out (tokens revoked) and says why. */
function watchIdle(): void {
  let last = 0;
  const onActivity = () => {
    // At most one write a second, however fast the events come.
    if (Date.now() - last > 1000) {
      last = Date.now();
      touch();
      keepAlive();
    }
  };
  for (const type of ['keydown', 'pointerdown', 'wheel', 'touchstart'] as const) addEventListener(type, onActivity, { passive: true, capture: true });
  touch();
  keptAliveAt = Date.now();
  const timer = setInterval(() => {
    if (idleFor() >= settings.idle_timeout_seconds * 1000) {
      clearInterval(timer);
      void revokeTokens().then(() => authState.set({ status: 'signed-out', reason: 'idle' }));
    }
  }, Math.min(5000, settings.idle_timeout_seconds * 250));
}

/**
 * Starts the console's session: on /console/callback finishes a sign-in; on /console/signed-out
 * shows that; anywhere else leaves for the sign-in page (with prompt=login when the last activity in
 * this tab is older than the idle timeout). Answers the path to show once signed in.
 */
export async function startSession(current: Settings): Promise<string | undefined> {
  settings = current;
  client = { client_id: settings.client_id, token_endpoint_auth_method: 'none', dpop_bound_access_tokens: true };
  const path = location.pathname;
  try {
    if (path === `${BASE}/signed-out`) {
      authState.set({ status: 'signed-out', reason: 'signed-out' });
      return undefined;
    }
    if (path === `${BASE}/callback`) {
      const returnTo = await finishSignIn();
      authState.set({ status: 'signed-in', subject });
      watchIdle();
      return returnTo;
    }
    const expired = idleFor() >= settings.idle_timeout_seconds * 1000;
    await signIn(`${path}${location.search}`, expired);
    return undefined;
  } catch (error) {
    authState.set({ status: 'failed', message: error instanceof Error ? error.message : 'the sign-in failed' });
    return undefined;
  }
}
