import type { Context } from 'koa';
import { Provider, type AsymmetricSigningAlgorithm } from 'oidc-provider';
import type { AuditSink } from '../audit/audit-log.js';
import { ACCESS_TOKEN_TOKEN_TYPE } from '../config/protocol.js';
import { auditRefreshTokenReuse } from '../audit/security-events.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { prepareFindApiKeyForExchange, touchApiKey } from '../registry/api-key.repository.js';
import { createSecretVerifier } from '../services/client-secrets.js';
import { withAccountClient } from './account-client.js';
import { accessTokenExchange } from './access-token-exchange.js';
import { enableTokenExchange } from './api-key-exchange.js';
import { buildConfiguration, type ProviderDeps } from './configuration.js';
import { deviceFlowGate, pacePolls } from './device-flow.js';
import { registrationAnswers } from './registration.js';
import { endSessionWithoutSession, selfSubmittingPageCsp } from './self-submitting-pages.js';
import { rewriteProtocolErrors } from './token-errors.js';
import type { BackchannelLogoutQueue } from './backchannel-logout.js';
import { compareClientSecretsWith, deferBackchannelLogout, ignoreResumeQuery, isBodyTooLarge, isRefreshTokenReuse, outboundFetch, rememberBuiltClients } from './upstream.js';

const PROVIDER_ERROR_EVENTS = [
  'server_error',
  'authorization.error',
  'backchannel.error',
  'jwks.error',
  'discovery.error',
  'end_session.error',
  'grant.error',
  'introspection.error',
  'pushed_authorization_request.error',
  'registration_create.error',
  'registration_delete.error',
  'registration_read.error',
  'registration_update.error',
  'revocation.error',
  'userinfo.error',
] as const;

interface ErrorLike {
  name?: string;
  message?: string;
  error?: string;
  error_description?: string;
  error_detail?: string;
  status?: number;
  statusCode?: number;
  stack?: string;
  cause?: unknown;
}

/** Changes Gatehouse makes to the provider's answers, in order, once the provider has answered (provider-host.ts). */
export function answerRewrites(config: Pick<ProviderDeps['config'], 'registrationEnabled'>): Array<(ctx: Context) => void | Promise<void>> {
  return [rewriteProtocolErrors, ...(config.registrationEnabled ? [registrationAnswers] : [])];
}

/**
 * Builds the oidc-provider instance: the protocol engine Gatehouse configures but does not
 * re-implement. Client secrets are verified against their stored HMAC digest.
 *
 * @example
 * const provider = createProvider({ config, cache, store, jwks, digestKey, logger });
 */
export function createProvider(
  input: ProviderDeps & { logger: Logger; audit?: AuditSink | undefined; metrics?: Metrics | undefined; backchannelLogout: BackchannelLogoutQueue },
): Provider {
  // The account page's client (gatehouse-account) is built in: every client lookup of the provider sees it.
  const deps = { ...input, cache: withAccountClient(input.cache, input.config.issuer) };
  // Outgoing requests (a jwks_uri, a logout token) go out as oidc-provider makes them, but for a
  // back-channel logout delivery's timeout and loopback rule (oidc/upstream.ts, outboundFetch).
  const provider = new Provider(deps.config.issuer, { ...buildConfiguration(deps), fetch: outboundFetch() });
  provider.proxy = deps.config.trustProxy;
  provider.use(ignoreResumeQuery(provider.pathFor('authorization')));
  // Pages that submit themselves (form_post) run under a CSP with their script's hash; a browser
  // with no session is not given one by /session/end.
  provider.use(selfSubmittingPageCsp(provider.pathFor('authorization')));
  provider.use(endSessionWithoutSession(provider));
  // The device flow (RFC 8628): wrong user codes on /device limited per IP, `interval` announced, polls paced (slow_down).
  provider.use(deviceFlowGate({ provider, pages: deps.pages, limiter: deps.deviceCodeFailures, pollIntervalSeconds: deps.config.deviceFlow.pollIntervalSeconds }));
  if (deps.devicePolls) pacePolls(provider, deps.devicePolls);

  rememberBuiltClients(provider, deps.cache);

  // Back-channel logout tokens are queued and delivered after the answer, never awaited by a sign-out
  // (oidc/backchannel-logout.ts); a receiver on this machine is reached only outside production.
  deferBackchannelLogout(provider, deps.backchannelLogout.enqueue, { allowLoopback: !deps.config.production });

  // Personal API keys exchanged for access tokens (RFC 8693), without client authentication; and a
  // person's access token exchanged by a service acting for them (access-token-exchange.ts).
  const signingAlg = (deps.jwks[0]?.alg ?? 'RS256') as AsymmetricSigningAlgorithm;
  enableTokenExchange(
    provider,
    {
      findKey: prepareFindApiKeyForExchange(deps.db),
      touch: (id, at, notBefore) => touchApiKey(deps.db, id, at, notBefore),
      failures: deps.apiKeyFailures,
      signingAlg,
    },
    [[ACCESS_TOKEN_TOKEN_TYPE, accessTokenExchange({ issuer: deps.config.issuer, jwks: deps.jwks, cache: deps.cache, accounts: deps.accounts, signingAlg })]],
  );

  // The stored "secret" is a digest; compare what the client presented against it, in constant time.
  compareClientSecretsWith(provider, createSecretVerifier(deps.digestKey));

  const emitter: NodeJS.EventEmitter = provider;
  for (const event of PROVIDER_ERROR_EVENTS) {
    emitter.on(event, (ctx: { state?: { requestId?: string; entityTooLarge?: boolean } } | undefined, error: ErrorLike) => {
      // oidc-provider reads bodies itself (56 KiB at most) and calls an oversized one a parse failure.
      if (ctx?.state && isBodyTooLarge(error)) {
        ctx.state.entityTooLarge = true;
      }
      const fields = {
        event,
        requestId: ctx?.state?.requestId,
        error: error?.error ?? error?.name,
        error_description: error?.error_description ?? error?.message,
        ...(error?.error_detail ? { error_detail: error.error_detail } : {}),
      };
      if (event === 'server_error') {
        deps.logger.error({ ...fields, err: { message: error?.message, stack: error?.stack } }, 'provider server error');
      } else {
        deps.logger.info(fields, 'protocol error');
      }
    });
  }
  const { metrics } = deps;
  if (metrics) {
    type TokenContext = { oidc?: { params?: { grant_type?: unknown }; client?: { clientId: string } } };
    const grantOf = (ctx: TokenContext) => (typeof ctx.oidc?.params?.grant_type === 'string' ? ctx.oidc.params.grant_type : 'other');
    emitter.on('grant.success', (ctx: TokenContext) => metrics.tokenIssued(grantOf(ctx), ctx.oidc?.client?.clientId ?? 'unknown'));
    emitter.on('grant.error', (ctx: TokenContext, error: ErrorLike) => metrics.tokenError(grantOf(ctx), error?.error ?? 'server_error'));
  }
  // A spent refresh token presented again is a security event: the family is revoked and recorded.
  if (deps.audit) emitter.on('grant.error', auditRefreshTokenReuse(deps.audit, isRefreshTokenReuse));
  return provider;
}
