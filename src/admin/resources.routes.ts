import { z } from 'zod';
import {
  createResource,
  deleteResource,
  getResource,
  listResourceGrantsPage,
  listResourcesPage,
  resourceGrantToJson,
  resourceCreateSchema,
  resourceToJson,
  resourceUpdateSchema,
  updateResource,
} from '../services/resources.service.js';
import { idParam, pageQuery } from './params.js';
import { AUTH_ERRORS, BODY_ERRORS, defineRoute, type AdminRoute, type AdminRouteDeps } from './route.js';
import { resourceGrantPage, resourceOut, resourcePage } from './schemas.js';

const resourceParams = z.object({ id: idParam("the resource server's id or its identifier (URL-encoded)") });

/** Resource servers (APIs): list with a cursor and a filter, create, get, PATCH, delete; the grants clients hold at one. */
export function resourceRoutes(deps: AdminRouteDeps): AdminRoute[] {
  const { db, services, changed, by } = deps;
  return [
    defineRoute({
      method: 'get',
      path: '/resources',
      operationId: 'listResources',
      tag: 'resources',
      summary: 'List resource servers',
      description: 'One page of resource servers (APIs); `next_cursor` reads the next.',
      query: pageQuery('filter', 'only resources whose identifier or name contains this'),
      responses: { 200: { description: 'One page', body: resourcePage }, 400: 'A query parameter is not valid: errors[] names it', ...AUTH_ERRORS },
      async handler(ctx, { query }) {
        const { limit, cursor, filter } = query;
        const page = await listResourcesPage(db, { limit, cursor, filter });
        ctx.body = { data: page.items.map(resourceToJson), next_cursor: page.nextCursor };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/resources',
      operationId: 'createResource',
      tag: 'resources',
      summary: 'Register a resource server',
      description: 'Registers an API by its identifier (RFC 8707 `resource`), with the scopes it offers and the lifetime of its access tokens.',
      body: resourceCreateSchema,
      responses: {
        201: { description: 'Created', body: resourceOut, headers: ['Location'] },
        400: 'Invalid body: errors[] names each field',
        409: 'A resource server with this identifier exists',
        ...BODY_ERRORS,
        ...AUTH_ERRORS,
      },
      async handler(ctx, { body }) {
        const resource = await createResource(services, by(ctx), body);
        await changed();
        ctx.status = 201;
        ctx.set('Location', `/admin/v1/resources/${resource.id}`);
        ctx.body = resourceToJson(resource);
      },
    }),
    defineRoute({
      method: 'get',
      path: '/resources/:id',
      operationId: 'getResource',
      tag: 'resources',
      summary: 'Get a resource server',
      description: 'One resource server, by id or identifier.',
      params: resourceParams,
      responses: { 200: { description: 'Found', body: resourceOut }, 404: 'No such resource server', ...AUTH_ERRORS },
      async handler(ctx, { params }) {
        ctx.body = resourceToJson(await getResource(db, params.id));
      },
    }),
    defineRoute({
      method: 'patch',
      path: '/resources/:id',
      operationId: 'updateResource',
      tag: 'resources',
      summary: 'Update the fields given',
      description: "Changes the name, scopes or token lifetime of a resource server (the admin API's scope is fixed).",
      params: resourceParams,
      body: resourceUpdateSchema,
      responses: {
        200: { description: 'Updated', body: resourceOut },
        400: 'Invalid body: errors[] names each field',
        404: 'No such resource server',
        ...BODY_ERRORS,
        ...AUTH_ERRORS,
      },
      async handler(ctx, { params, body }) {
        const resource = await updateResource(services, by(ctx), params.id, body);
        await changed();
        ctx.body = resourceToJson(resource);
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/resources/:id',
      operationId: 'deleteResource',
      tag: 'resources',
      summary: 'Delete a resource server',
      description: 'Deletes a resource server and the grants clients hold there (not the admin API, nor a client\'s default resource).',
      params: resourceParams,
      responses: { 204: { description: 'Deleted' }, 400: 'The admin API, or a resource a client still needs', 404: 'No such resource server', ...AUTH_ERRORS },
      async handler(ctx, { params }) {
        await deleteResource(services, by(ctx), params.id);
        await changed();
        ctx.status = 204;
      },
    }),
    defineRoute({
      method: 'get',
      path: '/resources/:id/grants',
      operationId: 'listResourceGrants',
      tag: 'resources',
      summary: 'List the grants clients hold at this API',
      description:
        'One page of the clients that hold a grant at this API, with the scopes each may ask for there, in client_id order; `next_cursor` reads the next. Change one with PUT or DELETE /clients/{client_id}/grants/{resource}.',
      params: resourceParams,
      query: pageQuery('filter', 'only clients whose name or client_id contains this'),
      responses: {
        200: { description: 'One page', body: resourceGrantPage },
        400: 'A query parameter is not valid: errors[] names it',
        404: 'No such resource server',
        ...AUTH_ERRORS,
      },
      async handler(ctx, { params, query }) {
        const { limit, cursor, filter } = query;
        const page = await listResourceGrantsPage(db, params.id, { limit, cursor, filter });
        ctx.body = { data: page.items.map(resourceGrantToJson), next_cursor: page.nextCursor };
      },
    }),
  ];
}
