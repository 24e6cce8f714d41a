import { z } from 'zod';
import { clientToJson, grantBodySchema, grantClient, revokeClientGrant } from '../services/clients.service.js';
import { etagOf } from './clients.routes.js';
import { idParam } from './params.js';
import { AUTH_ERRORS, BODY_ERRORS, defineRoute, type AdminRoute, type AdminRouteDeps } from './route.js';
import { clientOut } from './schemas.js';

const grantParams = z.object({
  id: idParam('the client_id'),
  resource: idParam("the API's identifier (URL-encoded) or id"),
});

/**
 * A client's grants: PUT sets the client's grant at one API (every scope it offers unless `scope`
 * says), DELETE takes it.
 */
export function clientGrantRoutes(deps: AdminRouteDeps): AdminRoute[] {
  const { services, changed, by } = deps;
  return [
    defineRoute({
      method: 'put',
      path: '/clients/:id/grants/:resource',
      docPath: '/clients/{client_id}/grants/{resource}',
      operationId: 'putClientGrant',
      tag: 'clients',
      summary: 'Give the client a grant at this API, or replace its scopes there (every scope the API offers unless scope says)',
      description: 'A client gets tokens only for APIs it holds a grant for, and only that grant\'s scopes.',
      params: grantParams,
      body: grantBodySchema,
      responses: {
        200: { description: 'The client with its grants', body: clientOut, headers: ['ETag'] },
        400: 'Unknown API, or a scope it does not offer',
        404: 'No such client',
        409: 'The built-in client gatehouse-account (the account page\'s) cannot be changed',
        ...BODY_ERRORS,
        ...AUTH_ERRORS,
      },
      async handler(ctx, { params, body }) {
        // As sent: grantClient parses it (unique scope tokens) as it does for the CLI.
        const scope = body.scope;
        const client = await grantClient(services, by(ctx), params.id, { resource: params.resource, ...(scope !== undefined ? { scope } : {}) });
        await changed();
        ctx.set('ETag', etagOf(client));
        ctx.body = clientToJson(client);
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/clients/:id/grants/:resource',
      docPath: '/clients/{client_id}/grants/{resource}',
      operationId: 'deleteClientGrant',
      tag: 'clients',
      summary: "Take the client's grant at this API away (not its default resource's)",
      description: 'The client gets no more tokens for this API; tokens already issued run out.',
      params: grantParams,
      responses: {
        200: { description: 'The client with its grants', body: clientOut, headers: ['ETag'] },
        400: "The API is the client's default resource",
        404: 'No such client, API or grant',
        409: 'The built-in client gatehouse-account (the account page\'s) cannot be changed',
        ...AUTH_ERRORS,
      },
      async handler(ctx, { params }) {
        const client = await revokeClientGrant(services, by(ctx), params.id, params.resource);
        await changed();
        ctx.set('ETag', etagOf(client));
        ctx.body = clientToJson(client);
      },
    }),
  ];
}
