import Router from '@koa/router';
import type { JSONWebKeySet } from 'jose';
import type { AuditWriter } from '../audit/audit-log.js';
import type { EmailMailDeps } from '../services/email-verification.service.js';
import type { Config } from '../config/load-config.js';
import type { RegistryDatabase } from '../registry/database.js';
import type { RegistryCache } from '../registry/registry-cache.js';
import { requireAdmin, type AdminCaller } from './admin-auth.js';
import type { EphemeralStore } from '../store/ephemeral-store.js';
import { createConsoleActivity } from '../services/console-activity.js';
import { auditRoutes } from './audit.routes.js';
import { clientGrantRoutes } from './client-grants.routes.js';
import { clientRoutes } from './clients.routes.js';
import { guardRoute } from './guard.js';
import { buildOpenApi } from './openapi.js';
import { ApiError, problemDetails } from './problem.js';
import { registrationTokenRoutes } from './registration-tokens.routes.js';
import { resourceRoutes } from './resources.routes.js';
import { defineRoute, type AdminRoute, type AdminRouteDeps, type PeopleAccessDeps } from './route.js';
import { openApiDocumentOut } from './schemas.js';
import { userRoutes } from './users.routes.js';
import { meRoutes } from './me.routes.js';
import { apiKeyRoutes } from './api-keys.routes.js';
import { providerRoutes } from './providers.routes.js';
import { keyRoutes } from './keys.routes.js';
import { peopleRoutes } from './people.routes.js';
import { overviewRoutes } from './overview.routes.js';
import type { AuditChainMonitor } from '../audit/audit-chain-monitor.js';
import type { CounterWindow } from '../observability/counter-window.js';
import type { DataKeyring } from '../keys/data-key.js';

/** Who a change through the admin API is recorded as: the console's person, or the admin client. */
export function actorOf(caller: AdminCaller | undefined): string {
  if (caller?.personId) return `person:${caller.personId}`;
  return `admin:${caller?.clientId ?? 'unknown'}`;
}

/** Every route of the admin API but the document's, in the document's order. */
export function adminApiRoutes(deps: AdminRouteDeps): AdminRoute[] {
  return [...meRoutes(deps), ...clientRoutes(deps), ...clientGrantRoutes(deps), ...resourceRoutes(deps), ...userRoutes(deps), ...apiKeyRoutes(deps), ...peopleRoutes(deps), ...providerRoutes(deps), ...registrationTokenRoutes(deps), ...auditRoutes(deps), ...overviewRoutes(deps), ...keyRoutes(deps)];
}

/** GET /openapi.json: the document generated from the routes' declarations, itself declared. */
function openApiRoute(document: Record<string, unknown>): AdminRoute {
  return defineRoute({
    method: 'get',
    path: '/openapi.json',
    operationId: 'getOpenApiDocument',
    tag: 'meta',
    summary: 'This document',
    description: 'The OpenAPI 3.1 description of the admin API, generated from the declarations of its routes. No token needed.',
    public: true,
    responses: { 200: { description: 'The document', body: openApiDocumentOut } },
    handler(ctx) {
      ctx.body = document;
    },
  });
}

/** The admin API's OpenAPI document: generated from the declarations of `routes` and of the document's own route. */
export function buildAdminDocument(issuer: string, routes: readonly AdminRoute[]): Record<string, unknown> {
  return buildOpenApi(issuer, [openApiRoute({}), ...routes]);
}

/**
 * The admin REST API under /admin/v1: clients and their grants, resources and users (list with a
 * cursor and a filter, create, get, PATCH, delete), client secret rotation, registration tokens,
 * the audit log, and its OpenAPI document. Each route declares its inputs and answers (see
 * route.ts); every call but the document needs an admin access token; every refusal is a problem
 * document. In test mode (NODE_ENV=test) every answer is checked against its declaration.
 *
 * @example
 * app.use(createAdminRoutes({ config, registry, cache, jwks: () => host.publicJwks, digestKey, audit }).routes());
 */
export function createAdminRoutes(deps: {
  config: Config;
  registry: RegistryDatabase;
  cache: RegistryCache;
  jwks: () => JSONWebKeySet;
  digestKey: Buffer;
  audit: AuditWriter;
  /** The data keys upstream providers' client secrets are sealed with. */
  dataKeys: DataKeyring;
  /** Mail for `send_verification` on POST /users (the server's mailer); without it that option is refused. */
  mail?: EmailMailDeps;
  /** Ends a person's stored sessions and tells their apps, after a change that ended them (see AdminRouteDeps). */
  sessionsEnded?: (accountId: string) => Promise<void>;
  /** The ephemeral store: the DPoP proofs of console calls (so none is used twice) and the console's last activity per person. */
  store: Pick<EphemeralStore, 'insertIfAbsent' | 'upsert' | 'find'>;
  /** Reloads this node's signing keys after the API changed them (the provider host's); absent: at the next KEYS_POLL_MS. */
  keysChanged?: () => Promise<unknown>;
  /** A person's sessions, consents' tokens and grants as the People routes read them (see PeopleAccessDeps). */
  people?: PeopleAccessDeps;
  /** The audit chain's verification (cached, bounded) for GET /audit/verification and the overview. */
  auditChain: AuditChainMonitor;
  /** Tokens this node issued over the last hour, from the metrics (GET /overview). */
  tokensIssued: CounterWindow;
}): Router {
  const { config, cache } = deps;
  const db = deps.registry.db;
  const routeDeps: AdminRouteDeps = {
    config,
    db,
    cache,
    services: { db, issuer: config.issuer, digestKey: deps.digestKey, audit: deps.audit },
    providerServices: { db, audit: deps.audit, dataKeys: deps.dataKeys, production: config.production, timeoutSeconds: config.upstreamTimeoutSeconds },
    // A change is seen at once by this node (others see it within REGISTRY_POLL_MS).
    changed: () => cache.refresh().catch(() => undefined),
    // Who makes a change, as the services record it (in the change's transaction): the admin client, with the request.
    // A console call is the person's (person:<id>); an admin client's own token is the client's (admin:<client_id>).
    by: (ctx) => ({ actor: actorOf(ctx.state.admin), requestId: ctx.state.requestId ?? null, ip: ctx.ip }),
    mail: deps.mail,
    sessionsEnded: deps.sessionsEnded,
    signingKeys: {
      deps: { keysDir: config.keysDir, withRegistry: (run) => run({ db, audit: deps.audit }) },
      reload: deps.keysChanged ?? (() => Promise.resolve()),
    },
    people: deps.people,
    auditChain: deps.auditChain,
    tokensIssued: deps.tokensIssued,
  };
  const routes = adminApiRoutes(routeDeps);
  const document = buildAdminDocument(config.issuer, routes);
  const authenticate = requireAdmin({ issuer: config.issuer, jwks: deps.jwks, cache, registry: deps.registry, replay: deps.store, activity: createConsoleActivity(deps.store, config.consoleIdleTimeoutSeconds) });
  const guard = { authenticate, bodyLimitBytes: config.bodyLimitBytes, verifyResponses: config.nodeEnv === 'test' };

  const router = new Router({ prefix: '/admin/v1' });
  router.use(problemDetails);
  for (const route of [openApiRoute(document), ...routes]) {
    router.register(route.path, [route.method.toUpperCase()], [guardRoute(route, guard)]);
  }
  // Anything else under /admin/v1 is a problem document too (after the token check, as before).
  router.all('/{*rest}', authenticate, async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  }, () => {
    throw new ApiError(404, 'not_found', 'no such admin endpoint');
  });
  return router;
}
