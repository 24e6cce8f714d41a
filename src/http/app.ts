import type Router from '@koa/router';
import Koa from 'koa';
import compose from 'koa-compose';
import type { Pages } from '../oidc/pages.js';
import type { Config } from '../config/load-config.js';
import type { Logger } from '../observability/logger.js';
import type { ProviderHost } from '../oidc/provider-host.js';
import { healthRoutes, type ReadinessCheck } from './health.routes.js';
import { requestLogging } from './request-logging.js';
import { bodyLimit, securityHeaders } from './security-headers.js';

/** Runs `middleware` only for paths that `match`; every other request goes straight on. */
function only(match: (path: string) => boolean, middleware: Koa.Middleware): Koa.Middleware {
  return (ctx, next) => (match(ctx.path) ? middleware(ctx, next) : next());
}

function routerMiddleware(router: Router): Koa.Middleware {
  return compose([router.routes(), router.allowedMethods()]) as unknown as Koa.Middleware;
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
}): Koa {
  const { config, logger, host } = deps;
  const app = new Koa({ proxy: config.trustProxy, keys: [...config.cookieKeys] });
  app.silent = true;
  app.on('error', (error: Error) => {
    logger.warn({ err: { message: error.message } }, 'response stream error');
  });

  app.use(requestLogging(logger));
  app.use(securityHeaders({ hsts: config.issuer.startsWith('https:') }));
  app.use(bodyLimit(config.bodyLimitBytes));
  // Gatehouse's own routes run only for their own paths: the token endpoint never pays for matching them.
  app.use(only((path) => path === '/healthz' || path === '/readyz', routerMiddleware(healthRoutes(deps.readiness))));
  app.use(
    only(
      (path) => path === '/assets/gatehouse.css',
      (ctx, next) => {
        if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
        ctx.type = 'text/css';
        ctx.set('Cache-Control', 'public, max-age=3600');
        ctx.body = deps.pages.stylesheet;
      },
    ),
  );
  for (const router of deps.routers) {
    const prefix = router.opts.prefix ?? '';
    app.use(only((path) => path === prefix || path.startsWith(`${prefix}/`), routerMiddleware(router)));
  }
  app.use(host.middleware);
  return app;
}
