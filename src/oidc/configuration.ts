import { CONSOLE_CLIENT_ID } from '../services/built-in-clients.js';
import { createConsoleActivity } from '../services/console-activity.js';
import type { Kysely } from 'kysely';
import { errors, type AsymmetricSigningAlgorithm, type Configuration, type ErrorOut, type JWK, type KoaContextWithOIDC, type Session } from 'oidc-provider';
import { sessionEnded, type AccountRecord } from '../accounts/account-record.js';
import { ACR_VALUES } from '../accounts/authentication-context.js';
import type { AuditSink, AuditWriter } from '../audit/audit-log.js';
import type { Config } from '../config/load-config.js';
import { SIGNING_ALGS, type Fapi2SigningAlg } from '../keys/key-store.js';
import type { RegistryCache } from '../registry/registry-cache.js';
import type { Database } from '../registry/tables.js';
import type { EphemeralStore } from '../store/ephemeral-store.js';
import { createAdapterFactory } from './adapters/index.js';
import { exchangedTokenClaims } from './access-token-exchange.js';
import type { ExchangeFailureLimiter } from './api-key-exchange.js';
import { deviceFlowFeature, type DeviceCodeFailureLimiter, type DevicePollPacer } from './device-flow.js';
import { findLatestGrantId } from './adapters/durable-adapter.js';
import { takeReadAheadAccount } from './adapters/rotation-scope.js';
import { mfaInteractionPolicy } from './mfa-policy.js';
import { clientNameOf, errorPageData, pageLocaleOf } from './error-page.js';
import { pageCsp, type Pages } from './pages.js';
import { createTranslator } from '../ui/i18n.js';
import { fapi2ClientMetadata, fapi2Feature } from './fapi2.js';
import { registrationFeatures } from './registration.js';
import { dpopFeature } from './dpop.js';
import { createResourceIndicators } from './resource-indicators.js';
import { AUTHENTICATION_CLAIMS, EXTERNAL_SIGNING, providerSigningKey, rethrowUnreachable } from './upstream.js';

/** Signs the browser session out in this request: the login prompt follows, and the stored session is replaced. */
function endBrowserSession(session: Session): void {
  for (const key of ['accountId', 'loginTs', 'amr', 'acr', 'authorizations', 'transient'] as const) Reflect.deleteProperty(session, key);
  session.resetIdentifier();
}

/** How the provider finds a signed-in person (the accounts service satisfies it). */
export interface AccountLookup {
  findById(id: string): Promise<AccountRecord | undefined>;
}

/** What the provider configuration is built from. */
export interface ProviderDeps {
  config: Config;
  cache: RegistryCache;
  store: EphemeralStore;
  db: Kysely<Database>;
  accounts: AccountLookup;
  pages: Pages;
  /** Private JWKs, signing key first. */
  jwks: JWK[];
  /** The algorithm of the active key that signs for clients of profile fapi2 (PS256 or ES256); none: such clients are refused. */
  fapi2SigningAlg?: Fapi2SigningAlg | undefined;
  /** Keys client-secret digests (keys/client-secret.key). */
  digestKey: Buffer;
  /** Where the clients service records the changes made through the provider (dynamic registration), in their transactions. */
  auditWriter: AuditWriter;
  /** Where security events (refresh token reuse) are recorded. */
  audit?: AuditSink | undefined;
  /** Failed API key exchanges per client IP (oidc/api-key-exchange.ts); none: not limited. */
  apiKeyFailures?: ExchangeFailureLimiter | undefined;
  /** The device flow (oidc/device-flow.ts): wrong user codes per client IP, and one poll per interval per device code; none: not limited. */
  deviceCodeFailures?: DeviceCodeFailureLimiter | undefined;
  devicePolls?: DevicePollPacer | undefined;
}

/** What the provider signs and verifies with: the algorithms Gatehouse's keys take. */
const ASYMMETRIC_ALGS: AsymmetricSigningAlgorithm[] = [...SIGNING_ALGS];

/** Claims a user's scopes release, in the ID token and at userinfo. */
export function accountClaims(account: AccountRecord) {
  return {
    sub: account.id,
    name: account.name ?? undefined,
    updated_at: Math.floor(account.updatedAt.getTime() / 1000),
    email: account.email,
    email_verified: account.emailVerified,
  };
}

/**
 * oidc-provider's configuration. Lifetimes are in seconds; access tokens for resource servers
 * take the resource's own TTL.
 */
export function buildConfiguration(deps: ProviderDeps): Configuration {
  const { config, store, db, pages, jwks, digestKey } = deps;
  // Every registry read the provider makes answers 503 temporarily_unavailable when PostgreSQL is gone.
  const databaseGone = rethrowUnreachable('database');
  // The cache answers a hit with the same promise every time: it is guarded once, not on every
  // lookup (a token request makes several).
  const guarded = new WeakMap<Promise<unknown>, Promise<unknown>>();
  const guard = <T>(lookup: Promise<T>): Promise<T> => {
    let answer = guarded.get(lookup) as Promise<T> | undefined;
    if (!answer) guarded.set(lookup, (answer = lookup.catch(databaseGone)));
    return answer;
  };
  const cache: RegistryCache = {
    ...deps.cache,
    getClient: (clientId) => guard(deps.cache.getClient(clientId)),
    getResourceServer: (identifier) => guard(deps.cache.getResourceServer(identifier)),
  };
  const accounts = { findById: (id: string) => deps.accounts.findById(id).catch(databaseGone) };
  const signingAlg = (jwks[0]?.alg ?? 'RS256') as AsymmetricSigningAlgorithm;
  const secureCookies = config.issuer.startsWith('https:');
  const isFirstParty = async (clientId: string) => (await cache.getClient(clientId))?.firstParty === true;

  return {
    // The adapters answer DependencyUnavailable themselves (guardAdapter): they get the plain cache.
    adapter: createAdapterFactory({ cache: deps.cache, store, db, clients: { db, issuer: config.issuer, digestKey, audit: deps.auditWriter }, idTokenSigningAlg: signingAlg, fapi2SigningAlg: deps.fapi2SigningAlg }),
    jwks: { keys: jwks.map(providerSigningKey) },
    cookies: {
      keys: [...config.cookieKeys],
      long: { signed: true, httpOnly: true, sameSite: 'lax', secure: secureCookies },
      short: { signed: true, httpOnly: true, sameSite: 'lax', secure: secureCookies },
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
    // The ID token carries every claim its scopes allow (not only what userinfo would not give).
    conformIdTokenClaims: false,
    // acr_values_supported: the levels a sign-in reaches (accounts/authentication-context.ts).
    acrValues: [...ACR_VALUES],
    // acr and amr ride in every ID token (see AUTHENTICATION_CLAIMS); userinfo never has them.
    claims: {
      openid: ['sub', ...AUTHENTICATION_CLAIMS],
      profile: ['name', 'updated_at'],
      email: ['email', 'email_verified'],
    },
    // Browsers may call the token, userinfo and revocation endpoints only from the origins of a
    // client's registered redirect URIs, and only public (SPA) clients use the token endpoint so.
    clientBasedCORS(ctx, origin, client) {
      if (origin === 'null') return false;
      const registered = client.redirectUris?.some((uri) => URL.parse(uri)?.origin === origin) ?? false;
      return registered && (ctx.oidc.route === 'userinfo' || client.clientAuthMethod === 'none');
    },
    features: {
      devInteractions: { enabled: false },
      externalSigningSupport: EXTERNAL_SIGNING,
      clientCredentials: { enabled: true },
      // A client learns about, and may revoke, only its own tokens (oidc-provider's default would let
      // any confidential client introspect any token; answered as inactive instead).
      introspection: { enabled: true, allowedPolicy: (_ctx, client, token) => token.clientId === client.clientId },
      revocation: {
        enabled: true,
        allowedPolicy(_ctx, client, token) {
          if (token.clientId === client.clientId) return true;
          // RFC 7009 §2.1: refuse a confidential client; a public one is told nothing.
          if (client.clientAuthMethod === 'none') return false;
          throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
        },
      },
      userinfo: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource(ctx, form) {
          const target = ctx.oidc.params?.post_logout_redirect_uri;
          ctx.set('Content-Security-Policy', pageCsp(typeof target === 'string' ? [target] : []));
          ctx.type = 'html';
          const locale = pageLocaleOf(ctx);
          const t = createTranslator(locale);
          ctx.body = pages.render('logout', { title: t('logout.title'), form, clientName: clientNameOf(ctx, t, pages.brand.name), locale });
        },
        postLogoutSuccessSource(ctx) {
          ctx.set('Content-Security-Policy', pageCsp());
          ctx.type = 'html';
          const locale = pageLocaleOf(ctx);
          const t = createTranslator(locale);
          ctx.body = pages.render('logged-out', { title: t('loggedout.title'), clientName: clientNameOf(ctx, t, pages.brand.name), locale });
        },
      },
      resourceIndicators: createResourceIndicators({ cache, issuer: config.issuer, signingAlg: () => signingAlg, fapi2SigningAlg: deps.fapi2SigningAlg }),
      // DPoP (RFC 9449): nonces shared by every node, DPOP_REQUIRE_NONCE, replay refused (oidc/dpop.ts).
      dPoP: dpopFeature({ digestKey, requireNonce: config.dpopRequireNonce }),
      ...registrationFeatures(config.registrationEnabled),
      // The newer protocols (issue 18; docs/device-flow.md, backchannel-logout.md, dpop.md, par-jar-fapi2.md).
      // The device authorization grant (RFC 8628) with Gatehouse's /device pages (oidc/device-flow.ts).
      deviceFlow: deviceFlowFeature({ pages }),
      backchannelLogout: { enabled: true },
      pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: config.requirePar, allowUnregisteredRedirectUris: false },
      requestObjects: { enabled: true, requireSignedRequestObject: false },
      // FAPI 2.0 Security Profile for clients of profile fapi2 (oidc/fapi2.ts).
      ...fapi2Feature(),
    },
    // A client's profile (as gatehouse_profile), and what FAPI 2.0 asks of a fapi2 client's metadata (oidc/fapi2.ts).
    extraClientMetadata: fapi2ClientMetadata(deps.fapi2SigningAlg),
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
      // Login, consent, and the mfa_required check on the login prompt (oidc/mfa-policy.ts).
      policy: mfaInteractionPolicy({ cache, config, consoleActivity: createConsoleActivity(deps.store, config.consoleIdleTimeoutSeconds) }),
    },
    async findAccount(ctx, sub) {
      // On a refresh the account was read with the refresh token (see durable-adapter.ts).
      const readAhead = takeReadAheadAccount(ctx, sub);
      const account = readAhead.found ? readAhead.record : await accounts.findById(sub);
      // A browser session of a person who is gone, disabled, or changed their password since signing
      // in is over: they sign in again (prompt=none gets login_required).
      const session = ctx.oidc?.session;
      if (session?.accountId === sub && (!account || account.disabled || sessionEnded(account, session.loginTs))) {
        endBrowserSession(session);
        return undefined;
      }
      if (!account || account.disabled) return undefined;
      return {
        accountId: account.id,
        claims: () => accountClaims(account),
      };
    },
    // `act` in the access tokens of a token exchange between services (access-token-exchange.ts); no other token has extra claims.
    extraTokenClaims: exchangedTokenClaims,
    // Refresh tokens are not tied to the browser session: a Redis flush signs people out of
    // Gatehouse but every app keeps working.
    expiresWithSession: () => false,
    async issueRefreshToken(_ctx, client, code) {
      if (!client.grantTypeAllowed('refresh_token')) return false;
      return code.scopes.has('offline_access') || (await isFirstParty(client.clientId));
    },
    rotateRefreshToken: () => true,
    // Consent lives in PostgreSQL: found by account and client even when the session that gave it is gone.
    // First-party clients get their grant without a consent page.
    async loadExistingGrant(ctx: KoaContextWithOIDC) {
      const { oidc } = ctx;
      const client = oidc.client;
      const accountId = oidc.session?.accountId;
      if (!client || !accountId) return undefined;
      const grantId = oidc.result?.consent?.grantId || oidc.session?.grantIdFor(client.clientId) || (await findLatestGrantId(db, accountId, client.clientId).catch(databaseGone));
      const existing = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
      if (!(await isFirstParty(client.clientId))) return existing;
      const grant = existing ?? new oidc.provider.Grant({ clientId: client.clientId, accountId });
      grant.addOIDCScope([...(oidc.requestParamOIDCScopes ?? [])].join(' '));
      for (const [indicator, server] of Object.entries(oidc.resourceServers ?? {})) {
        grant.addResourceScope(indicator, server.scope);
      }
      await grant.save();
      return grant;
    },
    ttl: {
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 600,
      AuthorizationCode: 60,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 600,
      IdToken: 3600,
      Grant: 365 * 24 * 3600,
      Interaction: 3600,
      // The console's refresh tokens die after CONSOLE_IDLE_TIMEOUT_SECONDS unused (each refresh rotates it).
      RefreshToken: (_ctx, _token, client) => (client.clientId === CONSOLE_CLIENT_ID ? config.consoleIdleTimeoutSeconds : 30 * 24 * 3600),
      Session: 14 * 24 * 3600,
      DeviceCode: config.deviceFlow.codeTtlSeconds,
      BackchannelAuthenticationRequest: 600,
      PreAuthorizedCode: 600,
    },
    // People read this page: a sentence for them (naming the app when known), the code beneath (oidc/error-page.ts).
    renderError: (ctx, out: ErrorOut, error) => {
      ctx.type = 'html';
      ctx.set('Cache-Control', 'no-store');
      ctx.set('Content-Security-Policy', pageCsp());
      ctx.body = pages.render('error', errorPageData(ctx, out, error, pages.brand.name));
    },
  };
}
