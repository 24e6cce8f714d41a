import { z } from 'zod';
import {
  createProvider,
  deleteProvider,
  getProvider,
  listProviders,
  providerCreateSchema,
  providerToJson,
  providerUpdateSchema,
  updateProvider,
} from '../services/upstream-providers.service.js';
import { AUTH_ERRORS, BODY_ERRORS, defineRoute, type AdminRoute, type AdminRouteDeps } from './route.js';
import { providerList, providerOut } from './schemas.js';

const providerParams = z.object({ id: z.string().max(64).describe("the provider's id (a-z, 0-9 and -)") });

/** Upstream OpenID providers: list, create, get, PATCH, delete. The client secret goes in, never out. */
export function providerRoutes(deps: AdminRouteDeps): AdminRoute[] {
  const { db, by } = deps;
  return [
    defineRoute({
      method: 'get',
      path: '/providers',
      operationId: 'listProviders',
      tag: 'providers',
      summary: 'List upstream providers',
      description: 'Every upstream OpenID provider, enabled or not (never a client secret: `client_secret_set` says whether one is stored).',
      responses: { 200: { description: 'The providers', body: providerList }, ...AUTH_ERRORS },
      async handler(ctx) {
        ctx.body = { data: (await listProviders(db)).map(providerToJson) };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/providers',
      operationId: 'createProvider',
      tag: 'providers',
      summary: 'Register an upstream provider',
      description:
        'Registers a generic OpenID Connect provider by its issuer (https; its discovery document must answer, name the same issuer and offer the code flow with S256). Register `<issuer>/upstream/callback` as the redirect URI there. The client secret is stored sealed and never returned.',
      body: providerCreateSchema,
      responses: {
        201: { description: 'Created', body: providerOut, headers: ['Location'] },
        400: 'Invalid body, or the issuer cannot be used: errors[] names each field',
        409: 'A provider with this id exists',
        ...BODY_ERRORS,
        ...AUTH_ERRORS,
      },
      async handler(ctx, { body }) {
        const provider = await createProvider(deps.providerServices, by(ctx), body);
        ctx.status = 201;
        ctx.set('Location', `/admin/v1/providers/${provider.id}`);
        ctx.body = providerToJson(provider);
      },
    }),
    defineRoute({
      method: 'get',
      path: '/providers/:id',
      operationId: 'getProvider',
      tag: 'providers',
      summary: 'Get an upstream provider',
      description: 'One upstream provider, by id (never its client secret).',
      params: providerParams,
      responses: { 200: { description: 'Found', body: providerOut }, 404: 'No such provider', ...AUTH_ERRORS },
      async handler(ctx, { params }) {
        ctx.body = providerToJson(await getProvider(db, params.id));
      },
    }),
    defineRoute({
      method: 'patch',
      path: '/providers/:id',
      operationId: 'updateProvider',
      tag: 'providers',
      summary: 'Update the fields given',
      description: 'Changes what is given: a new issuer or client id is checked as at registration; `client_secret` replaces the secret (null removes it); `enabled: false` takes the provider off the login page.',
      params: providerParams,
      body: providerUpdateSchema,
      responses: {
        200: { description: 'Updated', body: providerOut },
        400: 'Invalid body, or the issuer cannot be used: errors[] names each field',
        404: 'No such provider',
        ...BODY_ERRORS,
        ...AUTH_ERRORS,
      },
      async handler(ctx, { params, body }) {
        ctx.body = providerToJson(await updateProvider(deps.providerServices, by(ctx), params.id, body));
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/providers/:id',
      operationId: 'deleteProvider',
      tag: 'providers',
      summary: 'Delete an upstream provider',
      description: 'Deletes the provider and every link of a person to it (recorded with how many links went). People who had no other way in can no longer sign in.',
      params: providerParams,
      responses: { 204: { description: 'Deleted' }, 404: 'No such provider', ...AUTH_ERRORS },
      async handler(ctx, { params }) {
        await deleteProvider(deps.providerServices, by(ctx), params.id);
        ctx.status = 204;
      },
    }),
  ];
}
