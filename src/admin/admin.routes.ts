import Router from '@koa/router';
import coBody from 'co-body';
import type { Context } from 'koa';
import type { JSONWebKeySet } from 'jose';
import { auditToJson, tailAudit, type AuditActor, type AuditWriter } from '../audit/audit-log.js';
import type { Config } from '../config/load-config.js';
import type { RegistryDatabase } from '../registry/database.js';
import type { RegistryCache } from '../registry/registry-cache.js';
import type { ClientRecord } from '../registry/client.repository.js';
import {
  clientToJson,
  createClient,
  deleteClient,
  getClient,
  grantBodySchema,
  grantClient,
  listClientsPage,
  revokeClientGrant,
  rotateClientSecret,
  updateClient,
} from '../services/clients.service.js';
import {
  createResource,
  deleteResource,
  getResource,
  listResourcesPage,
  resourceToJson,
  updateResource,
} from '../services/resources.service.js';
import { parseInput } from '../services/validation.js';
import {
  createInitialAccessTokenFromInput,
  initialAccessTokenToJson,
  listInitialAccessTokens,
  revokeInitialAccessToken,
} from '../services/registration.service.js';
import { createUser, deleteUser, getUser, listUsersPage, updateUserFields, userToJson } from '../services/users.service.js';
import { requireAdmin } from './admin-auth.js';
import { buildOpenApi } from './openapi.js';
import { ApiError, problemDetails } from './problem.js';

const MAX_LIMIT = 200;

/** Reads a JSON object body; anything else is refused before it reaches a service. */
async function jsonBody(ctx: Context, limitBytes: number): Promise<Record<string, unknown>> {
  if (!ctx.is('application/json')) throw new ApiError(415, 'unsupported_media_type', 'send the body as application/json');
  let body: unknown;
  try {
    body = await coBody.json(ctx.req, { limit: limitBytes, strict: true });
  } catch (error) {
    if ((error as { status?: number }).status === 413) throw new ApiError(413, 'body_too_large', `the body is larger than ${limitBytes} bytes`);
    throw new ApiError(400, 'invalid_json', 'the body is not valid JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ApiError(400, 'validation_failed', 'the body must be a JSON object', { errors: [{ field: 'body', message: 'must be a JSON object' }] });
  }
  return body as Record<string, unknown>;
}

const MAX_QUERY_LENGTH = 256;

const badQuery = (field: string, message: string) =>
  new ApiError(400, 'validation_failed', `${field} is not valid`, { errors: [{ field, message }] });

/**
 * One query parameter as given: undefined when absent or empty; refused when repeated, longer than
 * 256 characters or carrying a NUL byte (PostgreSQL text cannot hold one). A client's mistake is a
 * 400 naming the field here, never a database error later.
 */
function queryValue(ctx: Context, name: string): string | undefined {
  const value = ctx.query[name];
  if (Array.isArray(value)) throw badQuery(name, 'must be given once');
  if (value === undefined || value === '') return undefined;
  if (value.length > MAX_QUERY_LENGTH) throw badQuery(name, `must be at most ${MAX_QUERY_LENGTH} characters`);
  if (value.includes('\u0000')) throw badQuery(name, 'must not contain a NUL character');
  return value;
}

function pageQuery(ctx: Context, filter: string): { limit: number; cursor: string | undefined; filter: string | undefined } {
  const rawLimit = queryValue(ctx, 'limit');
  const limit = rawLimit === undefined ? 50 : /^\d{1,3}$/.test(rawLimit) ? Number(rawLimit) : Number.NaN;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw badQuery('limit', `must be a whole number from 1 to ${MAX_LIMIT}`);
  return { limit, cursor: queryValue(ctx, 'cursor'), filter: queryValue(ctx, filter) };
}

/** RFC 3339 date-times and plain dates, years 0001 to 9999 (PostgreSQL holds more, JavaScript and people less). */
const TIME = /^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:[Zz]|[+-]\d{2}:\d{2})?)?$/;

/** A point in time from a query parameter, or a 400 naming it. */
function timeQuery(field: string, value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const date = TIME.test(value) ? new Date(value) : undefined;
  if (!date || Number.isNaN(date.getTime()) || value.startsWith('0000')) {
    throw badQuery(field, 'must be an ISO 8601 date or time from year 0001 to 9999, such as 2026-01-31T12:00:00Z');
  }
  return date;
}

/** A cursor that is a sequence number: digits only, at most 2^53 - 1. */
function seqCursor(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const seq = /^\d{1,16}$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(seq)) throw badQuery('cursor', 'must be the next_cursor of a previous page');
  return seq;
}

const etagOf = (client: ClientRecord) => `W/"${client.version}"`;

/** The version an If-Match header names, if it names one of ours. */
function ifMatchVersion(ctx: Context): number | undefined {
  const header = ctx.get('If-Match');
  if (!header) return undefined;
  // A version no client can have (more digits than an integer column holds) is just as stale.
  const match = /^(?:W\/)?"(\d{1,9})"$/.exec(header.trim());
  if (!match) throw new ApiError(412, 'precondition_failed', 'If-Match does not match the current version: read the client again');
  return Number(match[1]);
}

/**
 * The admin REST API under /admin/v1: clients, resources and users (list with a cursor and a
 * filter, create, get, PATCH, delete), client secret rotation, and its OpenAPI document. Every call
 * needs an admin access token; every refusal is a problem document.
 *
 * @example
 * app.use(createAdminRoutes({ config, registry, cache, jwks: () => host.publicJwks, digestKey }).routes());
 */
export function createAdminRoutes(deps: {
  config: Config;
  registry: RegistryDatabase;
  cache: RegistryCache;
  jwks: () => JSONWebKeySet;
  digestKey: Buffer;
  audit: AuditWriter;
}): Router {
  const { config, cache } = deps;
  const db = deps.registry.db;
  const services = { db, issuer: config.issuer, digestKey: deps.digestKey, audit: deps.audit };
  const router = new Router({ prefix: '/admin/v1' });
  const openapi = buildOpenApi(config.issuer);
  // A change is seen at once by this node (others see it within REGISTRY_POLL_MS).
  const changed = () => cache.refresh().catch(() => undefined);
  // Who makes a change, as the services record it (in the change's transaction): the admin client, with the request.
  const by = (ctx: Context): AuditActor => ({ actor: `admin:${ctx.state.admin?.clientId ?? 'unknown'}`, requestId: ctx.state.requestId ?? null, ip: ctx.ip });

  router.use(problemDetails);
  router.get('/openapi.json', (ctx) => {
    ctx.body = openapi;
  });
  router.use(requireAdmin({ issuer: config.issuer, jwks: deps.jwks, cache }));
  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  });

  // Clients
  router.get('/clients', async (ctx) => {
    const { limit, cursor, filter } = pageQuery(ctx, 'name');
    const page = await listClientsPage(db, { limit, cursor, name: filter });
    ctx.body = { data: page.items.map(clientToJson), next_cursor: page.nextCursor };
  });
  router.post('/clients', async (ctx) => {
    const { client, clientSecret } = await createClient(services, by(ctx), await jsonBody(ctx, config.bodyLimitBytes));
    await changed();
    ctx.status = 201;
    ctx.set('ETag', etagOf(client));
    ctx.set('Location', `/admin/v1/clients/${client.clientId}`);
    ctx.body = { ...clientToJson(client), ...(clientSecret ? { client_secret: clientSecret } : {}) };
  });
  router.get('/clients/:id', async (ctx) => {
    const client = await getClient(db, ctx.params.id ?? '');
    ctx.set('ETag', etagOf(client));
    ctx.body = clientToJson(client);
  });
  router.patch('/clients/:id', async (ctx) => {
    const ifVersion = ifMatchVersion(ctx);
    const { client, clientSecret } = await updateClient(services, by(ctx), ctx.params.id ?? '', await jsonBody(ctx, config.bodyLimitBytes), { ...(ifVersion !== undefined ? { ifVersion } : {}) });
    await changed();
    ctx.set('ETag', etagOf(client));
    // A switch to a secret-based method issues a secret: shown this once, as on create.
    ctx.body = { ...clientToJson(client), ...(clientSecret ? { client_secret: clientSecret } : {}) };
  });
  // Grants: PUT sets the client's grant at one API (every scope it offers unless `scope` says), DELETE takes it.
  router.put('/clients/:id/grants/:resource', async (ctx) => {
    const body = parseInput(grantBodySchema, await jsonBody(ctx, config.bodyLimitBytes));
    const scope = body.scope?.join(' ');
    const client = await grantClient(services, by(ctx), ctx.params.id ?? '', { resource: ctx.params.resource ?? '', ...(scope !== undefined ? { scope } : {}) });
    await changed();
    ctx.set('ETag', etagOf(client));
    ctx.body = clientToJson(client);
  });
  router.delete('/clients/:id/grants/:resource', async (ctx) => {
    const client = await revokeClientGrant(services, by(ctx), ctx.params.id ?? '', ctx.params.resource ?? '');
    await changed();
    ctx.set('ETag', etagOf(client));
    ctx.body = clientToJson(client);
  });
  router.delete('/clients/:id', async (ctx) => {
    await deleteClient(services, by(ctx), ctx.params.id ?? '');
    await changed();
    ctx.status = 204;
  });
  router.post('/clients/:id/secret', async (ctx) => {
    const { client, clientSecret } = await rotateClientSecret(services, by(ctx), ctx.params.id ?? '');
    await changed();
    ctx.body = { client_id: client.clientId, client_secret: clientSecret };
  });

  // Resources
  router.get('/resources', async (ctx) => {
    const { limit, cursor, filter } = pageQuery(ctx, 'filter');
    const page = await listResourcesPage(db, { limit, cursor, filter });
    ctx.body = { data: page.items.map(resourceToJson), next_cursor: page.nextCursor };
  });
  router.post('/resources', async (ctx) => {
    const resource = await createResource(services, by(ctx), await jsonBody(ctx, config.bodyLimitBytes));
    await changed();
    ctx.status = 201;
    ctx.set('Location', `/admin/v1/resources/${resource.id}`);
    ctx.body = resourceToJson(resource);
  });
  router.get('/resources/:id', async (ctx) => {
    ctx.body = resourceToJson(await getResource(db, ctx.params.id ?? ''));
  });
  router.patch('/resources/:id', async (ctx) => {
    const resource = await updateResource(services, by(ctx), ctx.params.id ?? '', await jsonBody(ctx, config.bodyLimitBytes));
    await changed();
    ctx.body = resourceToJson(resource);
  });
  router.delete('/resources/:id', async (ctx) => {
    await deleteResource(services, by(ctx), ctx.params.id ?? '');
    await changed();
    ctx.status = 204;
  });

  // Users
  router.get('/users', async (ctx) => {
    const { limit, cursor, filter } = pageQuery(ctx, 'email');
    const page = await listUsersPage(db, { limit, cursor, email: filter });
    ctx.body = { data: page.items.map(userToJson), next_cursor: page.nextCursor };
  });
  router.post('/users', async (ctx) => {
    const user = await createUser(services, by(ctx), await jsonBody(ctx, config.bodyLimitBytes));
    ctx.status = 201;
    ctx.set('Location', `/admin/v1/users/${user.id}`);
    ctx.body = userToJson(user);
  });
  router.get('/users/:id', async (ctx) => {
    ctx.body = userToJson(await getUser(db, ctx.params.id ?? ''));
  });
  router.patch('/users/:id', async (ctx) => {
    const body = await jsonBody(ctx, config.bodyLimitBytes);
    ctx.body = userToJson(await updateUserFields(services, by(ctx), ctx.params.id ?? '', body));
  });
  router.delete('/users/:id', async (ctx) => {
    await deleteUser(services, by(ctx), ctx.params.id ?? '');
    ctx.status = 204;
  });

  // Initial access tokens of dynamic registration: listed by an id derived from the stored token, never a value.
  router.get('/registration-tokens', async (ctx) => {
    ctx.body = { data: (await listInitialAccessTokens(db)).map(initialAccessTokenToJson) };
  });
  router.post('/registration-tokens', async (ctx) => {
    const issued = await createInitialAccessTokenFromInput(
      { ...services, maxTtl: config.registrationTokenMaxTtlSeconds },
      by(ctx),
      await jsonBody(ctx, config.bodyLimitBytes),
    );
    const expiresAt = issued.expiresAt.toISOString();
    ctx.status = 201;
    ctx.body = { id: issued.id, initial_access_token: issued.token, expires_at: expiresAt };
  });
  router.delete('/registration-tokens/:id', async (ctx) => {
    const id = ctx.params.id ?? '';
    await revokeInitialAccessToken(services, by(ctx), id);
    ctx.status = 204;
  });

  // The audit log, oldest first: `since` (ISO time), `cursor` (the last seq seen), `limit`.
  router.get('/audit', async (ctx) => {
    const { limit, cursor, filter: since } = pageQuery(ctx, 'since');
    const sinceDate = timeQuery('since', since);
    const afterSeq = seqCursor(cursor);
    const rows = await tailAudit(db, { since: sinceDate, limit: limit + 1, afterSeq: afterSeq ?? 0 });
    const items = rows.slice(0, limit);
    ctx.body = { data: items.map(auditToJson), next_cursor: rows.length > limit ? String(items.at(-1)?.seq) : null };
  });

  // Anything else under /admin/v1 is a problem document too.
  router.all('/{*rest}', () => {
    throw new ApiError(404, 'not_found', 'no such admin endpoint');
  });
  return router;
}
