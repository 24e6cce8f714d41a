// The single-page app: oidc-client-ts (the global `oidc`, loaded by index.html) does the
// authorization code flow with PKCE against Gatehouse, refreshes with the rotating refresh token,
// and signs out; the app calls the orders API with the access token. Tokens are DPoP-bound (RFC 9449)
// to a key the browser cannot export. See README.md beside this file.

const { IndexedDbDPoPStore, UserManager, WebStorageStateStore } = oidc;

/** @type {{ issuer: string, clientId: string, apiUrl: string, scope: string }} */
const config = await (await fetch('/config.json')).json();

const userManager = new UserManager({
  authority: config.issuer,
  client_id: config.clientId, // a public client: no secret, PKCE (S256) is what protects the code
  redirect_uri: `${location.origin}/callback`,
  silent_redirect_uri: `${location.origin}/silent-callback`,
  post_logout_redirect_uri: `${location.origin}/signed-out`,
  response_type: 'code',
  scope: config.scope,
  // Tokens live in this tab's sessionStorage: gone when the tab closes, never shared between tabs
  // (two tabs refreshing one rotating refresh token would trip Gatehouse's reuse detection).
  userStore: new WebStorageStateStore({ store: sessionStorage }),
  // The access token is for the orders API (the client's default resource), not for userinfo: the
  // ID token already carries the profile.
  loadUserInfo: false,
  // Refresh shortly (60 s) before the access token expires, with the refresh token.
  automaticSilentRenew: true,
  // Sign-out revokes the refresh token itself (see signOut below), not with revokeTokensOnSignout.
  // DPoP (RFC 9449): an ECDSA P-256 key pair made with WebCrypto as non-extractable (no script, not
  // even this one, can read the private key) and kept in IndexedDB; every token request carries a
  // proof signed with it, so the access and refresh tokens are bound to it: stolen from storage, they
  // are useless elsewhere. bind_authorization_code: the authorization request names the key
  // (dpop_jkt), so the code too is redeemable only with it. Sign-out forgets the key.
  dpop: { store: new IndexedDbDPoPStore(), bind_authorization_code: true },
});

const $ = (id) => document.getElementById(id);

/** One line in the activity list: what was done, how it went, and what came back. */
function log(action, outcome, detail, extra = {}) {
  const item = document.createElement('li');
  item.dataset.action = action;
  item.dataset.outcome = outcome;
  for (const [key, value] of Object.entries(extra)) item.dataset[key] = String(value);
  item.textContent = `${action}: ${outcome}${detail ? ` · ${detail}` : ''}`;
  $('log').append(item);
}

/** Runs one button's work, logging a thrown error (oidc-client-ts's ErrorResponse carries `error`). */
async function attempt(action, work) {
  try {
    await work();
  } catch (error) {
    const code = error?.error ?? error?.name ?? 'error';
    log(action, 'error', `${code}${error?.message && error.message !== code ? `: ${error.message}` : ''}`, { error: code });
  }
  await render();
}

async function render() {
  const user = await userManager.getUser();
  const signedIn = Boolean(user && !user.expired);
  $('who').textContent = signedIn
    ? `Signed in as ${user.profile.name ?? user.profile.sub} · access token for ${user.scope} · expires in ${user.expires_in} s`
    : 'Signed out';
  $('who').dataset.sub = signedIn ? user.profile.sub : '';
  $('sign-in').disabled = signedIn;
  $('call-api').disabled = false; // without a token too: the API answers 401
  $('place-order').disabled = false;
  $('refresh').disabled = false; // without a refresh token, signinSilent tries the Gatehouse session
  $('renew-session').disabled = false;
  $('sign-out').disabled = !signedIn;
}

/**
 * Calls the API with the current access token (if any); shows the status and, on a refusal, the
 * RFC 6750 / RFC 9449 challenge. A DPoP-bound token goes with the DPoP scheme and a fresh proof for
 * this method and URL (with `ath`, the token's hash), signed with the app's key.
 */
async function callApi(action, path, init = {}) {
  const user = await userManager.getUser();
  const headers = new Headers(init.headers);
  const url = `${config.apiUrl}${path}`;
  if (user?.access_token && user.token_type?.toLowerCase() === 'dpop') {
    headers.set('Authorization', `DPoP ${user.access_token}`);
    headers.set('DPoP', await userManager.dpopProof(url, user, init.method ?? 'GET'));
  } else if (user?.access_token) {
    headers.set('Authorization', `Bearer ${user.access_token}`);
  }
  const response = await fetch(url, { ...init, headers });
  const body = await response.json().catch(() => ({}));
  if (response.ok) {
    log(action, 'ok', `${response.status} ${JSON.stringify(body)}`, { status: response.status });
  } else {
    const challenge = response.headers.get('WWW-Authenticate') ?? '';
    log(action, 'error', `${response.status} ${challenge}`, { status: response.status, error: body.error ?? '' });
  }
}

$('sign-in').addEventListener('click', () => attempt('sign-in', () => userManager.signinRedirect()));
$('call-api').addEventListener('click', () => attempt('call-api', () => callApi('call-api', '/orders')));
$('place-order').addEventListener('click', () =>
  attempt('place-order', () =>
    callApi('place-order', '/orders', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ item: 'tea', quantity: 2 }),
    }),
  ),
);
// With a refresh token signinSilent uses it (Gatehouse rotates it); without one it asks the
// Gatehouse session in a hidden iframe (prompt=none).
$('refresh').addEventListener('click', () =>
  attempt('refresh', async () => {
    const user = await userManager.signinSilent();
    log('refresh', 'ok', `new access token, expires in ${user?.expires_in} s`);
  }),
);
$('renew-session').addEventListener('click', () =>
  attempt('renew-session', async () => {
    const user = await userManager.signinSilent({ forceIframeAuth: true });
    log('renew-session', 'ok', `still signed in at Gatehouse as ${user?.profile.sub}`);
  }),
);
/**
 * Revokes the refresh token (RFC 7009), then signs out at Gatehouse. Gatehouse's logout ends its own
 * session, but refresh tokens outlive sessions, so an app that is done with one revokes it (which
 * ends its grant too). JWT access tokens cannot be revoked: they expire. oidc-client-ts's own
 * `revokeTokensOnSignout` is not used because it refuses a successful revocation whose empty body
 * is labelled text/plain, as Gatehouse's is (RFC 7009 says to ignore the body).
 */
async function signOut() {
  const user = await userManager.getUser();
  if (user?.refresh_token) {
    const endpoint = await userManager.metadataService.getRevocationEndpoint(false);
    const response = await fetch(endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: user.refresh_token, token_type_hint: 'refresh_token', client_id: config.clientId }),
    }).catch((error) => ({ ok: false, status: error.message }));
    // Signing out goes on regardless: the token leaves this tab's storage with the user.
    if (!response.ok) log('revoke', 'error', `refresh token not revoked (${response.status})`);
  }
  await userManager.signoutRedirect();
}

$('sign-out').addEventListener('click', () => attempt('sign-out', signOut));

userManager.events.addSilentRenewError((error) => log('automatic-renew', 'error', error.message, { error: error.error ?? '' }));

switch (location.pathname) {
  case '/silent-callback':
    // Inside the hidden iframe: hand the answer to the app's window and stop.
    await userManager.signinSilentCallback();
    break;
  case '/callback':
    await attempt('sign-in', async () => {
      const user = await userManager.signinRedirectCallback();
      log('sign-in', 'ok', `signed in as ${user.profile.sub}`);
    });
    history.replaceState(null, '', '/'); // the code is spent: keep it out of the address bar and history
    break;
  case '/signed-out':
    await attempt('sign-out', async () => {
      await userManager.signoutRedirectCallback();
      log('sign-out', 'ok', 'signed out of Gatehouse');
    });
    history.replaceState(null, '', '/');
    break;
  default:
    await render();
}
