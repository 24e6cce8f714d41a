import type { Kysely } from 'kysely';
import * as oidc from 'openid-client';
import type { DataKeyring } from '../keys/data-key.js';
import type { Database } from '../registry/tables.js';
import { findUpstreamProvider, listUpstreamProviders, type UpstreamProvider } from '../registry/upstream.repository.js';
import type { EphemeralStore } from '../store/ephemeral-store.js';
import { unsealSecret } from './sealed-secrets.js';
import { discoverUpstream, IssuerCheckError, UPSTREAM_TIMEOUT_SECONDS } from './upstream-oidc.js';
import type { UpstreamIdentity } from './upstream-links.service.js';
import { upstreamSecretContext } from './upstream-providers.service.js';

/** Ephemeral-store models (design §2.3): the state of a redirect to a provider, and its validated result. */
export const UPSTREAM_AUTH = 'UpstreamAuth';
export const UPSTREAM_RESULT = 'UpstreamResult';
const UPSTREAM_AUTH_TTL_SECONDS = 600;
const UPSTREAM_RESULT_TTL_SECONDS = 300;
/** How long a provider's discovered configuration is reused (dropped at once when the provider changes). */
const CONFIG_TTL_MS = 3_600_000;
/** After a failed discovery, how long the login page does not try again in the background (a start still does). */
const BACKGROUND_RETRY_MS = 30_000;

/** How a sign-in with a provider failed (design §6.4): the page says what to do, the audit row says which. */
export type UpstreamFailureKind = 'provider_unreachable' | 'provider_error' | 'invalid_response' | 'expired' | 'disabled_provider';

export class UpstreamSignInError extends Error {
  readonly kind: UpstreamFailureKind;
  /** The provider, when known (its id and display name). */
  readonly provider: { id: string; name: string } | undefined;
  /** The interaction the sign-in belongs to, when known (the page links back to it). */
  readonly uid: string | undefined;
  /** The provider's own error code (`access_denied`), when it answered with one. */
  readonly upstreamError: string | undefined;

  constructor(
    kind: UpstreamFailureKind,
    message: string,
    context: { provider?: { id: string; name: string } | undefined; uid?: string | undefined; upstreamError?: string | undefined; cause?: unknown } = {},
  ) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.name = 'UpstreamSignInError';
    this.kind = kind;
    this.provider = context.provider;
    this.uid = context.uid;
    this.upstreamError = context.upstreamError;
  }

  /** 502 when the provider could not be reached, 400 otherwise. */
  get status(): 400 | 502 {
    return this.kind === 'provider_unreachable' ? 502 : 400;
  }
}

export interface UpstreamSignInDeps {
  db: Kysely<Database>;
  dataKeys: DataKeyring;
  store: EphemeralStore;
  /** Gatehouse's issuer: the redirect URI registered at every provider is `<issuer>/upstream/callback`. */
  issuer: string;
  production: boolean;
  timeoutSeconds?: number;
}

/** What the callback hands over to the interaction: whose sign-in, and who the provider says it is. */
export interface UpstreamCallbackResult {
  uid: string;
  identity: UpstreamIdentity;
}

export interface UpstreamSignIn {
  /** The one redirect URI to register at every provider. */
  readonly redirectUri: string;
  /** The enabled providers, for the login page. */
  enabledProviders(): Promise<UpstreamProvider[]>;
  /**
   * The origins the login page's forms may be redirected to (CSP form-action): each provider's
   * authorization endpoint origin when its configuration is known, else its issuer's origin (and
   * its discovery is started, so the next page knows).
   */
  formTargets(providers: readonly UpstreamProvider[]): string[];
  /** An enabled provider by id (refused with disabled_provider otherwise). */
  provider(id: string): Promise<UpstreamProvider>;
  /** The authorization URL for this interaction (PKCE S256, state, nonce kept once in the store). */
  start(provider: UpstreamProvider, uid: string): Promise<URL>;
  /** Takes the state once, exchanges the code with PKCE and checks the ID token (iss, aud, nonce, signature). */
  callback(currentUrl: URL): Promise<UpstreamCallbackResult>;
  /** The result of the callback for this interaction, taken once. */
  takeResult(uid: string): Promise<UpstreamIdentity | undefined>;
}

const isString = (value: unknown): value is string => typeof value === 'string';

/**
 * Gatehouse as a relying party of upstream OpenID providers, with openid-client 6
 * (docs/design/sign-in-methods.md §6.2): code flow with PKCE, state and nonce; one redirect URI;
 * discovery cached per provider for an hour (a change of the provider drops it). Every failure is an
 * UpstreamSignInError of a kind the page and the audit log name.
 *
 * @example
 * const upstream = createUpstreamSignIn({ db, dataKeys, store, issuer: config.issuer, production: config.production });
 * ctx.redirect((await upstream.start(await upstream.provider('example-sso'), uid)).href);
 */
export function createUpstreamSignIn(deps: UpstreamSignInDeps): UpstreamSignIn {
  const { store } = deps;
  const redirectUri = `${deps.issuer}/upstream/callback`;
  const configs = new Map<string, { version: string; at: number; config: Promise<oidc.Configuration> }>();
  const known = new Map<string, { version: string; authorizationOrigin: string }>();
  // Providers whose discovery failed lately: a login page does not ask them again on every view.
  const failedAt = new Map<string, number>();

  const versionOf = (provider: UpstreamProvider) => `${provider.updatedAt.getTime()}|${provider.issuer}|${provider.clientId}|${provider.keyId ?? ''}`;
  const brief = (provider: UpstreamProvider) => ({ id: provider.id, name: provider.name });

  function configFor(provider: UpstreamProvider): Promise<oidc.Configuration> {
    const version = versionOf(provider);
    const cached = configs.get(provider.id);
    if (cached && cached.version === version && Date.now() - cached.at < CONFIG_TTL_MS) return cached.config;
    const config = (async () => {
      const secret = provider.clientSecretJwe ? await unsealSecret(deps.dataKeys, provider.clientSecretJwe, upstreamSecretContext(provider.id)) : undefined;
      return discoverUpstream(provider.issuer, { clientId: provider.clientId, clientSecret: secret }, { production: deps.production, timeoutSeconds: deps.timeoutSeconds ?? UPSTREAM_TIMEOUT_SECONDS });
    })();
    configs.set(provider.id, { version, at: Date.now(), config });
    config.then(
      (resolved) => {
        const endpoint = resolved.serverMetadata().authorization_endpoint;
        if (endpoint) known.set(provider.id, { version, authorizationOrigin: new URL(endpoint).origin });
      },
      // A failed discovery is not kept: the next sign-in tries again.
      () => {
        failedAt.set(provider.id, Date.now());
        if (configs.get(provider.id)?.config === config) configs.delete(provider.id);
      },
    );
    return config;
  }

  async function configOrFail(provider: UpstreamProvider, uid: string | undefined): Promise<oidc.Configuration> {
    try {
      return await configFor(provider);
    } catch (error) {
      if (error instanceof IssuerCheckError && error.code !== 'issuer_unreachable') {
        throw new UpstreamSignInError('invalid_response', `the provider's metadata is not usable (${error.code})`, { provider: brief(provider), uid, cause: error });
      }
      throw new UpstreamSignInError('provider_unreachable', 'the provider could not be reached', { provider: brief(provider), uid, cause: error });
    }
  }

  return {
    redirectUri,

    enabledProviders() {
      return listUpstreamProviders(deps.db, { enabledOnly: true });
    },

    formTargets(providers) {
      return providers.map((provider) => {
        const seen = known.get(provider.id);
        if (seen && seen.version === versionOf(provider)) return seen.authorizationOrigin;
        // Learnt in the background for the next page; a failure now is the start's to report.
        if (Date.now() - (failedAt.get(provider.id) ?? 0) >= BACKGROUND_RETRY_MS) configFor(provider).catch(() => undefined);
        return new URL(provider.issuer).origin;
      });
    },

    async provider(id) {
      const provider = await findUpstreamProvider(deps.db, id);
      if (!provider || !provider.enabled) throw new UpstreamSignInError('disabled_provider', 'there is no such provider, or it is turned off');
      return provider;
    },

    async start(provider, uid) {
      const config = await configOrFail(provider, uid);
      const codeVerifier = oidc.randomPKCECodeVerifier();
      const state = oidc.randomState();
      const nonce = oidc.randomNonce();
      await store.upsert(UPSTREAM_AUTH, state, { providerId: provider.id, uid, codeVerifier, nonce }, UPSTREAM_AUTH_TTL_SECONDS);
      return oidc.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope: provider.scopes.join(' '),
        code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      });
    },

    async callback(currentUrl) {
      const state = currentUrl.searchParams.get('state');
      // The state names the sign-in: taken once, whoever races (a replayed callback finds it spent).
      const pending = state && state.length <= 256 ? await store.find(UPSTREAM_AUTH, state) : undefined;
      if (!state || !pending || pending.consumed || (await store.consume(UPSTREAM_AUTH, state)).result !== 'consumed') {
        throw new UpstreamSignInError('expired', 'the sign-in with the provider is unknown, expired or already used');
      }
      await store.destroy(UPSTREAM_AUTH, state);
      const { providerId, uid, codeVerifier, nonce } = pending;
      if (!isString(providerId) || !isString(uid) || !isString(codeVerifier) || !isString(nonce)) {
        throw new UpstreamSignInError('expired', 'the sign-in with the provider is unknown, expired or already used');
      }
      const provider = await findUpstreamProvider(deps.db, providerId);
      if (!provider || !provider.enabled) throw new UpstreamSignInError('disabled_provider', 'the provider was removed or turned off', { uid });
      const config = await configOrFail(provider, uid);
      let claims: oidc.IDToken | undefined;
      try {
        // The redirect URI sent at the token endpoint is the registered one, whatever Host the browser used.
        const url = new URL(redirectUri);
        url.search = currentUrl.search;
        const tokens = await oidc.authorizationCodeGrant(config, url, { pkceCodeVerifier: codeVerifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true });
        claims = tokens.claims();
      } catch (error) {
        throw classify(error, brief(provider), uid);
      }
      if (!claims || !isString(claims.sub) || claims.sub.length > 255) {
        throw new UpstreamSignInError('invalid_response', 'the provider sent no usable ID token', { provider: brief(provider), uid });
      }
      const identity: UpstreamIdentity = {
        providerId: provider.id,
        iss: claims.iss,
        sub: claims.sub,
        email: isString(claims.email) && claims.email.length <= 254 ? claims.email : null,
        emailVerified: claims.email_verified === true,
        name: isString(claims.name) ? claims.name.slice(0, 200) : null,
      };
      await store.upsert(UPSTREAM_RESULT, uid, { ...identity }, UPSTREAM_RESULT_TTL_SECONDS);
      return { uid, identity };
    },

    async takeResult(uid) {
      const found = await store.find(UPSTREAM_RESULT, uid);
      if (!found || found.consumed || (await store.consume(UPSTREAM_RESULT, uid)).result !== 'consumed') return undefined;
      await store.destroy(UPSTREAM_RESULT, uid);
      const { providerId, iss, sub, email, emailVerified, name } = found;
      if (!isString(providerId) || !isString(iss) || !isString(sub)) return undefined;
      return { providerId, iss, sub, email: isString(email) ? email : null, emailVerified: emailVerified === true, name: isString(name) ? name : null };
    },
  };
}

/** openid-client's errors, as the kinds the page tells apart. */
function classify(error: unknown, provider: { id: string; name: string }, uid: string): UpstreamSignInError {
  if (error instanceof oidc.AuthorizationResponseError) {
    const upstreamError = /^[\x20-\x7e]{1,64}$/.test(error.error) ? error.error : 'invalid';
    return new UpstreamSignInError('provider_error', `the provider answered ${upstreamError}`, { provider, uid, upstreamError, cause: error });
  }
  if (error instanceof oidc.ResponseBodyError) {
    const upstreamError = /^[\x20-\x7e]{1,64}$/.test(error.error) ? error.error : 'invalid';
    return new UpstreamSignInError('invalid_response', `the provider's token endpoint answered ${upstreamError}`, { provider, uid, upstreamError, cause: error });
  }
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && code.startsWith('OAUTH_')) {
    // Which check failed, for the audit row: the code, and the claim it was about (aud, nonce, iss).
    // (openid-client's ClientError wraps oauth4webapi's error, whose cause names the claim.)
    const wrapped = (error as { cause?: { claim?: unknown; cause?: { claim?: unknown } } }).cause;
    const claim = wrapped?.claim ?? wrapped?.cause?.claim;
    const upstreamError = typeof claim === 'string' && /^[a-z_]{1,32}$/.test(claim) ? `${code}:${claim}` : code;
    return new UpstreamSignInError('invalid_response', `the provider's answer did not pass the checks (${upstreamError})`, { provider, uid, upstreamError, cause: error });
  }
  // Network errors, timeouts and answers that are not JSON: the provider is not there to talk to.
  return new UpstreamSignInError('provider_unreachable', 'the provider could not be reached', { provider, uid, cause: error });
}
