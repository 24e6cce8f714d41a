import type Router from '@koa/router';
import Koa from 'koa';
import compose from 'koa-compose';
import { ApiError, renderProblem } from '../admin/problem.js';
import type { Pages } from '../oidc/pages.js';
import type { Config } from '../config/load-config.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { ProviderHost } from '../oidc/provider-host.js';
import { healthRoutes, type ReadinessCheck } from './health.routes.js';
import { homeRoutes } from './home.routes.js';
import { requestLogging } from './request-logging.js';
import { retryAfterOnUnavailable } from './retry-after.js';
import { bodyLimit } from './body-limit.js';
import type { EdgeStep } from './edge-step.js';
import { hostCheck, type HostVerdict } from './host-check.js';
import { securityHeaders } from './security-headers.js';
import { discardUnreadBody } from './unread-body.js';

function routerMiddleware(router: Router): Koa.Middleware {
  const dispatch = compose([router.routes(), router.allowedMethods()]) as unknown as Koa.Middleware;
  // A method no route of the router can take (TRACE, CONNECT…) goes on to the provider's 404, as an
  // unknown path does: koa-router would answer 501 Not Implemented, a server error.
  return (ctx, next) => (router.methods.includes(ctx.method) ? dispatch(ctx, next) : next());
}

const ADMIN_PREFIX = '/admin/v1';

/** A refused Host, in the format of the route it was sent to: a problem document on the admin API, else an OAuth error. */
function refuseHost(ctx: Koa.Context, refused: NonNullable<HostVerdict>): void {
  if (ctx.path === ADMIN_PREFIX || ctx.path.startsWith(`${ADMIN_PREFIX}/`)) {
    renderProblem(ctx, new ApiError(refused.status, refused.status === 421 ? 'misdirected_request' : 'bad_request', refused.description));
  } else {
    ctx.status = refused.status;
    ctx.body = { error: 'invalid_request', error_description: refused.description };
  }
}

/**
 * The Koa app: request ids and logging, security headers, body limits, health endpoints, then the
 * provider for everything else.
 *
 * @example
 * const app = createApp({ config, logger, host, readiness });
 * app.listen(config.port);
 */
export function createApp(deps: {
  config: Config;
  logger: Logger;
  host: ProviderHost;
  pages: Pages;
  /** Gatehouse's own routes (interactions, admin), mounted before the provider. */
  routers: readonly Router[];
  readiness: readonly ReadinessCheck[];
  /** True once shutdown has begun: every answer then closes its connection. */
  draining?: () => boolean;
  /** Counted for every request; served at GET /metrics unless `metricsOnOwnPort` or in production. */
  metrics?: Metrics;
  metricsOnOwnPort?: boolean;
}): Koa {
  const { config, logger, host } = deps;
  // Behind TRUST_PROXY the client IP is the X-Forwarded-For entry PROXY_HOPS from the right (Koa
  // keeps the last maxIpsCount entries and takes the first of them): each proxy of ours appends
  // the address it was reached from, so anything further left was written by the client.
  const app = new Koa({ proxy: config.trustProxy, maxIpsCount: config.proxyHops, keys: [...config.cookieKeys] });
  app.silent = true;
  app.on('error', (error: Error) => {
    logger.warn({ err: { message: error.message } }, 'response stream error');
  });

  const draining = deps.draining;
  // During shutdown each keep-alive connection gets one more answer, marked to close, so a client
  // never sends on a connection the server is about to drop.
  const closeWhenDraining: EdgeStep = {
    after(ctx) {
      if (draining?.()) ctx.set('Connection', 'close');
    },
  };
  // The last step listed runs first: the unread body is seen to after everything else set its headers.
  app.use(requestLogging(logger, deps.metrics, [discardUnreadBody(), closeWhenDraining, retryAfterOnUnavailable, securityHeaders({ hsts: config.issuer.startsWith('https:') })]));
  // One dispatch by path: Gatehouse's own routes run only for their own paths, and everything
  // else (the token endpoint above all) goes to the provider without passing through them.
  const health = routerMiddleware(healthRoutes(deps.readiness));
  const stylesheet: Koa.Middleware = async (ctx, next) => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
    ctx.type = 'text/css';
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = deps.pages.stylesheet;
  };
  const script = (body: () => string): Koa.Middleware => async (ctx, next) => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
    ctx.type = 'text/javascript';
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = body();
  };
  const scripts: Record<string, Koa.Middleware> = {
    '/assets/webauthn.js': script(() => deps.pages.webauthnScript),
    '/assets/passkey.js': script(() => deps.pages.passkeyScript),
  };
  const routes = deps.routers.map((router) => ({ prefix: router.opts.prefix ?? '', middleware: routerMiddleware(router) }));
  // The body limit, in the OAuth error format, guards the provider only: the admin API and the
  // sign-in pages read bodies themselves under the same limit, refusing a larger one in their own
  // formats (a problem document, a page). What they do not answer still reaches the provider.
  const limit = bodyLimit(config.bodyLimitBytes);
  // `/` and the GET of a path nobody serves: a page for people (JSON for clients), see home.routes.ts.
  const home = homeRoutes({ pages: deps.pages, issuer: config.issuer });
  const provider: Koa.Middleware = (ctx, next) => {
    if (limit.before(ctx)) return Promise.resolve();
    return host.middleware(ctx, next).then(() => {
      limit.after(ctx);
      home.notFound(ctx);
    });
  };
  const { metrics } = deps;
  // Never on the main port in production (loadConfig requires METRICS_PORT there).
  const metricsRoute: Koa.Middleware | undefined =
    metrics && !deps.metricsOnOwnPort && !config.production
      ? async (ctx, next) => {
          if (ctx.method !== 'GET') return next();
          ctx.type = metrics.registry.contentType;
          ctx.set('Cache-Control', 'no-store');
          ctx.body = await metrics.registry.metrics();
        }
      : undefined;
  const ownRoute = (path: string): Koa.Middleware | undefined => {
    if (path === '/healthz' || path === '/readyz') return health;
    if (path === '/metrics') return metricsRoute;
    if (path === '/assets/gatehouse.css') return stylesheet;
    if (path === '/') return home.root;
    if (Object.hasOwn(scripts, path)) return scripts[path];
    return routes.find(({ prefix }) => path === prefix || path.startsWith(`${prefix}/`))?.middleware;
  };
  // The Host is pinned to the issuer's on every route (see hostCheck), except the three an
  // orchestrator or a scraper reaches by the pod's address, which build no URL from the request.
  const checkHost = hostCheck(config.issuer);
  const unpinned = new Set(['/healthz', '/readyz', '/metrics']);
  const refusedHost = (ctx: Koa.Context): boolean => {
    const refused = checkHost(ctx);
    if (refused) refuseHost(ctx, refused);
    return refused !== undefined;
  };
  // What those three do not answer (another method) goes on to the provider: checked then.
  const unpinnedToProvider: Koa.Middleware = (ctx, next) => (refusedHost(ctx) ? Promise.resolve() : provider(ctx, next));
  app.use((ctx, next) => {
    const pinned = !unpinned.has(ctx.path);
    if (pinned && refusedHost(ctx)) return Promise.resolve();
    const own = ownRoute(ctx.path);
    // A route that does not answer (wrong method, unknown sub-path) falls through to the provider,
    // which answers 404/405 in the OAuth error format.
    const toProvider = pinned ? provider : unpinnedToProvider;
    return own ? own(ctx, () => toProvider(ctx, next)) : toProvider(ctx, next);
  });
  return app;
}
