import type { Context } from 'koa';
import { Provider } from 'oidc-provider';
import type { AuditSink } from '../audit/audit-log.js';
import { auditRefreshTokenReuse } from '../audit/security-events.js';
import type { Logger } from '../observability/logger.js';
import type { ClientRecord } from '../registry/client.repository.js';
import type { RegistryCache } from '../registry/registry-cache.js';
import type { Metrics } from '../observability/metrics.js';
import { createSecretVerifier } from '../services/client-secrets.js';
import { buildConfiguration, type ProviderDeps } from './configuration.js';
import { registrationAnswers } from './registration.js';
import { ignoreResumeQuery } from './resume-query.js';
import { endSessionWithoutSession, selfSubmittingPageCsp } from './self-submitting-pages.js';
import { rewriteProtocolErrors } from './token-errors.js';

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

type ProviderClient = NonNullable<Awaited<ReturnType<Provider['Client']['find']>>>;

/**
 * oidc-provider builds a Client from the adapter's metadata and, to tell whether it built one from
 * the same metadata before, serialises and hashes all of it on every request that names a client.
 * The registry cache hands out the same record until the client changes (or the cache is dropped):
 * the Client built while that record was current is kept for it, and the next request takes it
 * without the hash. A changed client is a new record, so it is built afresh.
 */
export function rememberBuiltClients(provider: Provider, cache: RegistryCache): void {
  const Client = provider.Client;
  const build = Client.find.bind(Client);
  const built = new WeakMap<ClientRecord, ProviderClient>();
  Client.find = async (id: string) => {
    let record: ClientRecord | undefined;
    try {
      record = typeof id === 'string' && id.length > 0 ? await cache.getClient(id) : undefined;
    } catch {
      // Left to the provider's own lookup below, whose adapter answers an outage as 503.
    }
    const known = record && built.get(record);
    if (known) return known;
    const client = await build(id);
    if (record && client) built.set(record, client);
    return client;
  };
}

/**
 * Builds the oidc-provider instance: the protocol engine Gatehouse configures but does not
 * re-implement. Client secrets are verified against their stored HMAC digest.
 *
 * @example
 * const provider = createProvider({ config, cache, store, jwks, digestKey, logger });
 */
export function createProvider(deps: ProviderDeps & { logger: Logger; audit?: AuditSink | undefined; metrics?: Metrics | undefined }): Provider {
  const provider = new Provider(deps.config.issuer, buildConfiguration(deps));
  provider.proxy = deps.config.trustProxy;
  provider.use(ignoreResumeQuery(provider.pathFor('authorization')));
  // Pages that submit themselves (form_post) run under a CSP with their script's hash; a browser
  // with no session is not given one by /session/end.
  provider.use(selfSubmittingPageCsp(provider.pathFor('authorization')));
  provider.use(endSessionWithoutSession(provider));

  rememberBuiltClients(provider, deps.cache);

  // The stored "secret" is a digest; compare what the client presented against it, in constant time.
  const verifySecret = createSecretVerifier(deps.digestKey);
  provider.Client.prototype.compareClientSecret = function compareClientSecret(this: { clientSecret?: string }, actual: string) {
    return Promise.resolve(verifySecret(actual, this.clientSecret));
  };

  const emitter: NodeJS.EventEmitter = provider;
  for (const event of PROVIDER_ERROR_EVENTS) {
    emitter.on(event, (ctx: { state?: { requestId?: string; entityTooLarge?: boolean } } | undefined, error: ErrorLike) => {
      // oidc-provider reads bodies itself (56 KiB at most) and calls an oversized one a parse failure.
      if (ctx?.state && (error?.cause as { message?: string } | undefined)?.message === 'request entity too large') {
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
  if (deps.audit) emitter.on('grant.error', auditRefreshTokenReuse(deps.audit));
  return provider;
}
