import { randomUUID } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import { z } from 'zod';
import { countClientsWithDefaultResource, pruneGrantScopes } from '../registry/client.repository.js';
import {
  ADMIN_RESOURCE_ID,
  deleteResourceServer,
  findResourceServer,
  insertResourceServer,
  listResourceServers,
  listResourceServersPage,
  updateResourceServer,
  type ResourceServer,
} from '../registry/resource-server.repository.js';
import { listGrantsAtResource, type ResourceGrantHolder } from '../registry/resource-grants.repository.js';
import type { Database } from '../registry/tables.js';
import { recordChange, type AuditActor, type RegistryServiceDeps } from './changes.js';
import { ConflictError, isUniqueViolation, NotFoundError, ValidationError } from './errors.js';
import { OIDC_SCOPES, parseInput, resourceIdentifier, scopeString } from './validation.js';

export const DEFAULT_ACCESS_TOKEN_TTL = 600;

const resourceScopes = scopeString.superRefine((scopes, ctx) => {
  for (const scope of scopes) {
    if ((OIDC_SCOPES as readonly string[]).includes(scope)) {
      ctx.addIssue({ code: 'custom', message: `"${scope}" is an OpenID Connect scope; a resource server cannot define it` });
    }
  }
});

const ttl = z.number().int('must be a whole number of seconds').min(1).max(86_400, 'must be at most 86400 seconds (one day)');

export const resourceCreateSchema = z.strictObject({
  identifier: resourceIdentifier,
  name: z.string().min(1).max(200).optional(),
  scope: resourceScopes.optional(),
  access_token_ttl: ttl.optional(),
});
export type ResourceCreateInput = z.input<typeof resourceCreateSchema>;

export const resourceUpdateSchema = z.strictObject({
  name: z.string().min(1).max(200).nullable().optional(),
  scope: resourceScopes.optional(),
  access_token_ttl: ttl.optional(),
});
export type ResourceUpdateInput = z.input<typeof resourceUpdateSchema>;

/** The wire form of a resource server (snake_case, scopes space-separated). */
export function resourceToJson(resource: ResourceServer) {
  return {
    id: resource.id,
    identifier: resource.identifier,
    name: resource.name,
    scope: resource.scopes.join(' '),
    access_token_ttl: resource.accessTokenTtl,
    created_at: resource.createdAt.toISOString(),
    updated_at: resource.updatedAt.toISOString(),
  };
}

/** Registers a resource server; recorded as `resource.create` by `by`, in the same transaction. */
export async function createResource(deps: RegistryServiceDeps, by: AuditActor, input: unknown): Promise<ResourceServer> {
  const data = parseInput(resourceCreateSchema, input);
  try {
    return await deps.db.transaction().execute(async (trx) => {
      const created = await insertResourceServer(trx, {
        id: randomUUID(),
        identifier: data.identifier,
        name: data.name ?? null,
        scopes: data.scope ?? [],
        access_token_ttl: data.access_token_ttl ?? DEFAULT_ACCESS_TOKEN_TTL,
      });
      await recordChange(deps.audit, trx, by, { action: 'resource.create', target: `resource:${created.id}`, details: { after: resourceToJson(created) } });
      return created;
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw new ConflictError('identifier', `a resource server ${data.identifier} is already registered`);
    throw error;
  }
}

export async function getResource(db: Kysely<Database> | Transaction<Database>, idOrIdentifier: string): Promise<ResourceServer> {
  const found = await findResourceServer(db, idOrIdentifier);
  if (!found) throw new NotFoundError(`resource server ${idOrIdentifier}`);
  return found;
}

/** The resource server, its row locked until the transaction ends: two changes of it run one after the other. */
async function lockResource(trx: Transaction<Database>, idOrIdentifier: string): Promise<ResourceServer> {
  const found = await findResourceServer(trx, idOrIdentifier, { forUpdate: true });
  if (!found) throw new NotFoundError(`resource server ${idOrIdentifier}`);
  return found;
}

export function listResources(db: Kysely<Database>): Promise<ResourceServer[]> {
  return listResourceServers(db);
}

/** Changes a resource server; recorded as `resource.update` with it before and after. */
export async function updateResource(deps: RegistryServiceDeps, by: AuditActor, idOrIdentifier: string, input: unknown): Promise<ResourceServer> {
  const data = parseInput(resourceUpdateSchema, input);
  return deps.db.transaction().execute(async (trx) => {
    const existing = await lockResource(trx, idOrIdentifier);
    if (existing.id === ADMIN_RESOURCE_ID && data.scope !== undefined) {
      throw new ValidationError([{ field: 'scope', message: "the admin API's scope is fixed (admin)" }]);
    }
    const updated = await updateResourceServer(trx, existing.id, {
      ...(data.name !== undefined ? { name: data.name } : {}),
      ...(data.scope !== undefined ? { scopes: data.scope } : {}),
      ...(data.access_token_ttl !== undefined ? { access_token_ttl: data.access_token_ttl } : {}),
    });
    if (!updated) throw new NotFoundError(`resource server ${idOrIdentifier}`);
    // A scope the API no longer offers leaves every grant: offered again later, it is not granted again by itself.
    if (data.scope !== undefined) await pruneGrantScopes(trx, existing.id, updated.scopes);
    await recordChange(deps.audit, trx, by, {
      action: 'resource.update',
      target: `resource:${updated.id}`,
      details: { before: resourceToJson(existing), after: resourceToJson(updated) },
    });
    return updated;
  });
}

/** Deletes a resource server and every grant at it; recorded as `resource.delete` with what it was. */
export async function deleteResource(deps: RegistryServiceDeps, by: AuditActor, idOrIdentifier: string): Promise<void> {
  await deps.db.transaction().execute(async (trx) => {
    const existing = await lockResource(trx, idOrIdentifier);
    if (existing.id === ADMIN_RESOURCE_ID) {
      throw new ValidationError([{ field: 'identifier', message: 'the admin API cannot be deleted (take its grant from clients instead)' }]);
    }
    const users = await countClientsWithDefaultResource(trx, existing.identifier);
    if (users > 0) {
      throw new ValidationError([
        { field: 'identifier', message: `${existing.identifier} is the default resource of ${users} client(s); change them first` },
      ]);
    }
    // Its grants go with it (client_grants cascades), in the same statement.
    if (!(await deleteResourceServer(trx, existing.id))) throw new NotFoundError(`resource server ${idOrIdentifier}`);
    await recordChange(deps.audit, trx, by, { action: 'resource.delete', target: `resource:${existing.id}`, details: { before: resourceToJson(existing) } });
  });
}

/** One page of resource servers (cursor = the last id seen), optionally filtered by identifier or name. */
export async function listResourcesPage(db: Kysely<Database>, options: { limit: number; cursor?: string | undefined; filter?: string | undefined }) {
  const rows = await listResourceServersPage(db, { limit: options.limit + 1, after: options.cursor, contains: options.filter });
  const items = rows.slice(0, options.limit);
  return { items, nextCursor: rows.length > options.limit ? (items.at(-1)?.id ?? null) : null };
}

/** The wire form of a grant a client holds at an API (scopes space-separated). */
export function resourceGrantToJson(grant: ResourceGrantHolder) {
  return {
    client_id: grant.clientId,
    client_name: grant.clientName,
    scope: grant.scopes.join(' '),
    created_at: grant.createdAt.toISOString(),
    updated_at: grant.updatedAt.toISOString(),
  };
}

/**
 * One page of the grants clients hold at an API (by id or identifier; cursor = the last client id
 * seen), optionally only clients whose name or id contains `filter`. NotFoundError for no such API.
 */
export async function listResourceGrantsPage(
  db: Kysely<Database>,
  idOrIdentifier: string,
  options: { limit: number; cursor?: string | undefined; filter?: string | undefined },
): Promise<{ resource: ResourceServer; items: ResourceGrantHolder[]; nextCursor: string | null }> {
  const resource = await getResource(db, idOrIdentifier);
  const rows = await listGrantsAtResource(db, resource.id, { limit: options.limit + 1, after: options.cursor, contains: options.filter });
  const items = rows.slice(0, options.limit);
  return { resource, items, nextCursor: rows.length > options.limit ? (items.at(-1)?.clientId ?? null) : null };
}
