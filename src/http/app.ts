import Koa from 'koa';
import type { Config } from '../config/load-config.js';
import type { Logger } from '../observability/logger.js';
import type { ProviderHost } from '../oidc/provider-host.js';
import { healthRoutes, type ReadinessCheck } from './health.routes.js';
import { requestLogging } from './request-logging.js';
import { bodyLimit, securityHeaders } from './security-headers.js';

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
  const health = healthRoutes(deps.readiness);
  app.use(health.routes());
  app.use(host.middleware);
  return app;
}
