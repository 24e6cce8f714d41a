import type { Middleware } from 'koa';
import type { EdgeStep } from './edge-step.js';
import { isGrantType } from '../config/protocol.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { resolveRequestId } from '../observability/request-id.js';
import { matchedRoutePattern } from '../oidc/upstream.js';
import { isUnreachable, RETRY_AFTER_SECONDS } from '../services/dependency-outage.js';

declare module 'koa' {
  interface DefaultState {
    requestId?: string;
    log?: Logger;
    entityTooLarge?: boolean;
  }
}

/**
 * A request's state: its id and a child logger made on first use (at LOG_LEVEL=warn a request
 * that logs nothing makes none). A class, so the lazy getter lives on its prototype and each
 * request costs one allocation.
 */
class RequestState {
  readonly #logger: Logger;
  #child: Logger | undefined;
  entityTooLarge?: boolean;

  constructor(
    readonly requestId: string,
    logger: Logger,
  ) {
    this.#logger = logger;
  }

  get log(): Logger {
    return (this.#child ??= this.#logger.child({ requestId: this.requestId }));
  }
}

/**
 * The route a request is counted under: oidc-provider's route name (token, authorization, jwks…), a
 * Gatehouse route's pattern (/interaction/:uid/login, /admin/v1/clients/:id), or "unmatched".
 */
function routeOf(ctx: Parameters<Middleware>[0]): string {
  const oidcRoute = (ctx as { oidc?: { route?: unknown } }).oidc?.route;
  if (typeof oidcRoute === 'string') return oidcRoute;
  return matchedRoutePattern(ctx) ?? 'unmatched';
}

/** "ok" below 400, else the answer's own error code (OAuth `error`, problem `type`), never request input. */
function outcomeOf(ctx: Parameters<Middleware>[0]): string {
  if (ctx.status < 400) return 'ok';
  const body = ctx.body as { error?: unknown; type?: unknown } | undefined;
  const code = typeof body?.error === 'string' ? body.error : typeof body?.type === 'string' ? body.type.split(':').pop() : undefined;
  return typeof code === 'string' && /^[a-z_]{1,40}$/.test(code) ? code : 'error';
}

/**
 * Gives each request an id (X-Request-Id in and out) and a child logger, and logs one JSON line
 * when it ends: method, path without the query string (it may hold codes), status, duration.
 * An error that escapes everything else is logged here once, with its stack, and answered
 * without one. `steps` (security headers, the shutdown mark) run last on the way out, after the
 * error answer is set.
 */
export function requestLogging(logger: Logger, metrics?: Metrics, steps: readonly EdgeStep[] = []): Middleware {
  // Steps run inside this one middleware, not as Koa layers of their own: each layer costs a few
  // promises per request, and with async context tracking on (oidc-provider's) every promise costs.
  const after = steps.map((step) => step.after).reverse();
  return async (ctx, next) => {
    const started = process.hrtime.bigint();
    const requestId = resolveRequestId(ctx.get('X-Request-Id') || undefined);
    const state = new RequestState(requestId, logger);
    ctx.state = state;
    const log = () => state.log;
    try {
      await next();
    } catch (error) {
      const err = error as { status?: number; expose?: boolean; message?: string; stack?: string };
      if (isUnreachable(error)) {
        ctx.status = 503;
        ctx.set('Retry-After', RETRY_AFTER_SECONDS);
        ctx.body = { error: 'temporarily_unavailable', error_description: 'a backing service is unreachable: try again shortly' };
        return;
      }
      const status = typeof err.status === 'number' && err.status >= 400 && err.status < 600 ? err.status : 500;
      if (status >= 500) log().error({ err: { message: err.message, stack: err.stack }, method: ctx.method, path: ctx.path }, 'request failed');
      ctx.status = status;
      ctx.type = 'json';
      ctx.body =
        status >= 500
          ? { error: 'server_error', error_description: 'internal error' }
          : { error: 'invalid_request', error_description: err.expose && err.message ? err.message : 'bad request' };
    } finally {
      // On the way out, with the steps' headers (see securityHeaders); nothing has sent them yet
      // unless something wrote to the response itself.
      if (!ctx.headerSent) {
        ctx.res.setHeader('X-Request-Id', requestId);
        for (const step of after) step(ctx);
      }
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const route = routeOf(ctx);
      metrics?.request(route, ctx.method, ctx.status, ms / 1000);
      if (logger.isLevelEnabled('info')) {
        const oidc = (ctx as { oidc?: { client?: { clientId?: string }; params?: { grant_type?: unknown } } }).oidc;
        const clientId = oidc?.client?.clientId;
        const grant = oidc?.params?.grant_type;
        const line: Record<string, unknown> = {
          requestId,
          method: ctx.method,
          path: ctx.path,
          route,
          status: ctx.status,
          outcome: outcomeOf(ctx),
          ms: Math.round(ms * 100) / 100,
        };
        if (clientId) line.clientId = clientId;
        if (isGrantType(grant)) line.grant = grant;
        // The request id as a field of the line, not through a child logger made for one line.
        logger.info(line, 'request');
      }
    }
  };
}
