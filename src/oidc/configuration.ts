import type { AsymmetricSigningAlgorithm, Configuration, ErrorOut, JWK } from 'oidc-provider';
import type { Config } from '../config/load-config.js';
import type { RegistryCache } from '../registry/registry-cache.js';
import type { EphemeralStore } from '../store/ephemeral-store.js';
import { createAdapterFactory } from './adapters/index.js';
import { createResourceIndicators } from './resource-indicators.js';

/** What the provider configuration is built from. */
export interface ProviderDeps {
  config: Config;
  cache: RegistryCache;
  store: EphemeralStore;
  /** Private JWKs, signing key first. */
  jwks: JWK[];
}

const ASYMMETRIC_ALGS: AsymmetricSigningAlgorithm[] = ['RS256', 'PS256', 'ES256', 'EdDSA'];

/**
 * oidc-provider's configuration. Lifetimes are in seconds; access tokens for resource servers
 * take the resource's own TTL.
 */
export function buildConfiguration(deps: ProviderDeps): Configuration {
  const { config, cache, store, jwks } = deps;
  const signingAlg = (jwks[0]?.alg ?? 'RS256') as AsymmetricSigningAlgorithm;

  return {
    adapter: createAdapterFactory({ cache, store }),
    jwks: { keys: jwks },
    cookies: {
      keys: [...config.cookieKeys],
      long: { signed: true, httpOnly: true, sameSite: 'lax' },
      short: { signed: true, httpOnly: true, sameSite: 'lax' },
    },
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'],
    enabledJWA: {
      clientAuthSigningAlgValues: ASYMMETRIC_ALGS,
      idTokenSigningAlgValues: ASYMMETRIC_ALGS,
      requestObjectSigningAlgValues: ASYMMETRIC_ALGS,
      userinfoSigningAlgValues: ASYMMETRIC_ALGS,
      introspectionSigningAlgValues: ASYMMETRIC_ALGS,
      authorizationSigningAlgValues: ASYMMETRIC_ALGS,
    },
    clientDefaults: {
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: signingAlg,
    },
    responseTypes: ['code'],
    pkce: { required: () => true },
    scopes: ['openid', 'profile', 'email', 'offline_access'],
    claims: {
      openid: ['sub'],
      profile: ['name', 'updated_at'],
      email: ['email', 'email_verified'],
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      resourceIndicators: createResourceIndicators({ cache, signingAlg: () => signingAlg }),
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    findAccount: () => Promise.resolve(undefined),
    ttl: {
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 600,
      AuthorizationCode: 60,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 600,
      IdToken: 3600,
      Grant: 14 * 24 * 3600,
      Interaction: 3600,
      RefreshToken: 14 * 24 * 3600,
      Session: 14 * 24 * 3600,
      DeviceCode: 600,
      BackchannelAuthenticationRequest: 600,
      PreAuthorizedCode: 600,
    },
    renderError: (ctx, out) => {
      ctx.type = 'html';
      ctx.body = renderErrorPage(out);
    },
  };
}

const escapeHtml = (value: unknown) =>
  String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function renderErrorPage(out: ErrorOut): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign-in error</title></head>
<body><main><h1>Something went wrong</h1>
<p><strong>${escapeHtml(out.error)}</strong></p>
<p>${escapeHtml(out.error_description)}</p>
</main></body></html>`;
}
