import type { Context } from 'koa';
import { z } from 'zod';
import type { ClientRecord } from '../registry/client.repository.js';
import {
  clientCreateSchema,
  clientToJson,
  clientUpdateSchema,
  createClient,
  deleteClient,
  getClient,
  listClientsPage,
  rotateClientSecret,
  updateClient,
} from '../services/clients.service.js';
import { idParam, pageQuery, textParam } from './params.js';
import { ApiError } from './problem.js';
import { AUTH_ERRORS, BODY_ERRORS, defineRoute, type AdminRoute, type AdminRouteDeps } from './route.js';
import { clientCreatedOut, clientOut, clientPage, clientSecretOut } from './schemas.js';

export const etagOf = (client: ClientRecord) => `W/"${client.version}"`;

/** The version an If-Match header names, if it names one of ours. */
function ifMatchVersion(header: string | undefined): number | undefined {
  if (!header) return undefined;
  // A version no client can have (more digits than an integer column holds) is just as stale.
  const match = /^(?:W\/)?"(\d{1,9})"$/.exec(header.trim());
  if (!match) throw new ApiError(412, 'precondition_failed', 'If-Match does not match the current version: read the client again');
  return Number(match[1]);
}

/** The path parameter of every client route (the document calls it client_id). */
export const clientParams = z.object({ id: idParam('the client_id') });

/** Clients: list with a cursor and a name filter, create, get, PATCH (If-Match), delete, rotate the secret. */
export function clientRoutes(deps: AdminRouteDeps): AdminRoute[] {
  const { db, services, changed, by } = deps;
  const secretShownOnce = (ctx: Context, client: ClientRecord, clientSecret: string | undefined) => {
    ctx.set('ETag', etagOf(client));
    ctx.body = { ...clientToJson(client), ...(clientSecret ? { client_secret: clientSecret } : {}) };
  };
  return [
    defineRoute({
      method: 'get',
      path: '/clients',
      operationId: 'listClients',
      tag: 'clients',
      summary: 'List clients',
      description: 'One page of clients, by client_id; `next_cursor` reads the next. Secrets are never listed.',
      query: pageQuery('name', 'only clients whose name contains this').extend({
        q: textParam('a search box: only clients whose name contains this (any case) or whose client_id is exactly this'),
      }),
      responses: { 200: { description: 'One page', body: clientPage }, 400: 'A query parameter is not valid: errors[] names it', ...AUTH_ERRORS },
      async handler(ctx, { query }) {
        const { limit, cursor, name, q } = query;
        const page = await listClientsPage(db, { limit, cursor, name, q });
        ctx.body = { data: page.items.map(clientToJson), next_cursor: page.nextCursor };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/clients',
      operationId: 'createClient',
      tag: 'clients',
      summary: 'Create a client',
      description:
        'Registers a client from RFC 7591 metadata (plus `default_resource`, `grants`, `first_party` and `require_mfa`). A confidential client gets a `client_secret`, shown in this answer only.',
      body: clientCreateSchema,
      responses: {
        201: { description: 'Created: the stored metadata, and the secret this once', body: clientCreatedOut, headers: ['Location', 'ETag'] },
        400: 'Invalid body: errors[] names each field',
        404: 'The admin API resource is missing (run gatehouse migrate)',
        409: 'Conflict with an existing entry',
        ...BODY_ERRORS,
        ...AUTH_ERRORS,
      },
      async handler(ctx, { body }) {
        const { client, clientSecret } = await createClient(services, by(ctx), body);
        await changed();
        ctx.status = 201;
        ctx.set('Location', `/admin/v1/clients/${client.clientId}`);
        secretShownOnce(ctx, client, clientSecret);
      },
    }),
    defineRoute({
      method: 'get',
      path: '/clients/:id',
      docPath: '/clients/{client_id}',
      operationId: 'getClient',
      tag: 'clients',
      summary: 'Get a client',
      description: 'The stored metadata of one client (never its secret), with its version as ETag.',
      params: clientParams,
      responses: { 200: { description: 'Found', body: clientOut, headers: ['ETag'] }, 404: 'No such client', ...AUTH_ERRORS },
      async handler(ctx, { params }) {
        const client = await getClient(db, params.id);
        ctx.set('ETag', etagOf(client));
        ctx.body = clientToJson(client);
      },
    }),
    defineRoute({
      method: 'patch',
      path: '/clients/:id',
      docPath: '/clients/{client_id}',
      operationId: 'updateClient',
      tag: 'clients',
      summary: 'Update the fields given',
      description:
        'Changes the fields the body names. With If-Match, only the version read: a stale one gets 412 and nothing is written. A switch to a secret-based method issues a secret, shown this once.',
      params: clientParams,
      headers: z.object({ 'If-Match': z.string().optional().describe('the ETag of the client as read; a stale one gets 412') }),
      body: clientUpdateSchema,
      responses: {
        200: { description: 'Updated (with client_secret when one was issued)', body: clientCreatedOut, headers: ['ETag'] },
        400: 'Invalid body: errors[] names each field',
        404: 'No such client',
        409: 'The built-in client gatehouse-account (the account page\'s) cannot be changed',
        412: 'The client changed since it was read',
        ...BODY_ERRORS,
        ...AUTH_ERRORS,
      },
      async handler(ctx, { params, headers, body }) {
        const ifVersion = ifMatchVersion(headers['If-Match']);
        const { client, clientSecret } = await updateClient(services, by(ctx), params.id, body, { ...(ifVersion !== undefined ? { ifVersion } : {}) });
        await changed();
        // A switch to a secret-based method issues a secret: shown this once, as on create.
        secretShownOnce(ctx, client, clientSecret);
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/clients/:id',
      docPath: '/clients/{client_id}',
      operationId: 'deleteClient',
      tag: 'clients',
      summary: 'Delete a client',
      description: 'Deletes the client with its grants and refresh tokens.',
      params: clientParams,
      responses: { 204: { description: 'Deleted' }, 404: 'No such client', 409: 'The built-in client gatehouse-account (the account page\'s) cannot be changed', ...AUTH_ERRORS },
      async handler(ctx, { params }) {
        await deleteClient(services, by(ctx), params.id);
        await changed();
        ctx.status = 204;
      },
    }),
    defineRoute({
      method: 'post',
      path: '/clients/:id/secret',
      docPath: '/clients/{client_id}/secret',
      operationId: 'rotateClientSecret',
      tag: 'clients',
      summary: 'Rotate the client secret; the new one is shown this once',
      description: 'Issues a new secret for a confidential client; the old one stops working at once.',
      params: clientParams,
      responses: {
        200: { description: 'Rotated (the ETag is the client\'s new version)', body: clientSecretOut, headers: ['ETag'] },
        400: 'The client has no secret',
        404: 'No such client',
        409: 'The built-in client gatehouse-account (the account page\'s) cannot be changed',
        ...AUTH_ERRORS,
      },
      async handler(ctx, { params }) {
        const { client, clientSecret } = await rotateClientSecret(services, by(ctx), params.id);
        await changed();
        ctx.set('ETag', etagOf(client));
        ctx.body = { client_id: client.clientId, client_secret: clientSecret };
      },
    }),
  ];
}
