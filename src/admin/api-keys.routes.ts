import { z } from 'zod';
import { apiKeyCreateSchema, apiKeyToJson, createApiKey, listApiKeys, revokeApiKey } from '../services/api-keys.service.js';
import { idParam } from './params.js';
import { AUTH_ERRORS, BODY_ERRORS, defineRoute, type AdminRoute, type AdminRouteDeps } from './route.js';
import { apiKeyCreatedOut, apiKeyList } from './schemas.js';

const userParams = z.object({ id: idParam("the user's id") });
const keyParams = z.object({ id: idParam("the user's id"), keyId: idParam("the key's id, from the list") });

/** A person's personal API keys (docs/api-keys.md): list, create (the key shown once), revoke. */
export function apiKeyRoutes(deps: AdminRouteDeps): AdminRoute[] {
  const { db, services, by } = deps;
  return [
    defineRoute({
      method: 'get',
      path: '/users/:id/api-keys',
      operationId: 'listApiKeys',
      tag: 'users',
      summary: "List a person's API keys",
      description: 'Label, prefix, API, scopes, expiry and last use of each key, oldest first; never a key or its digest.',
      params: userParams,
      responses: { 200: { description: 'Every key of the person', body: apiKeyList }, 404: 'No such user', ...AUTH_ERRORS },
      async handler(ctx, { params }) {
        ctx.body = { data: (await listApiKeys(db, params.id)).map(apiKeyToJson) };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/users/:id/api-keys',
      operationId: 'createApiKey',
      tag: 'users',
      summary: 'Make an API key for a person; shown this once',
      description:
        'A key for one registered API (never the admin API) and scopes that API defines (none unless `scope`); `expires_in` in seconds (60 to 366 days; none: until revoked). The key is exchanged at the token endpoint (RFC 8693) for access tokens whose sub is the person.',
      params: userParams,
      body: apiKeyCreateSchema,
      responses: {
        201: { description: 'Made (Location names it for DELETE)', body: apiKeyCreatedOut, headers: ['Location'] },
        400: 'Invalid body (an unknown API, a scope it does not define, a label too long): errors[] names each field',
        404: 'No such user',
        409: 'The person has the most keys allowed (50)',
        ...BODY_ERRORS,
        ...AUTH_ERRORS,
      },
      async handler(ctx, { params, body }) {
        const { key, apiKey } = await createApiKey(services, by(ctx), params.id, body);
        ctx.status = 201;
        ctx.set('Location', `/admin/v1/users/${encodeURIComponent(params.id)}/api-keys/${key.id}`);
        ctx.body = { ...apiKeyToJson(key), user_id: key.userId, api_key: apiKey };
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/users/:id/api-keys/:keyId',
      operationId: 'revokeApiKey',
      tag: 'users',
      summary: "Revoke one of a person's API keys",
      description: 'The token endpoint refuses the key from then on; tokens already issued with it run out within their lifetime (at most an hour).',
      params: keyParams,
      responses: { 204: { description: 'Revoked' }, 404: 'No such user or key', ...AUTH_ERRORS },
      async handler(ctx, { params }) {
        await revokeApiKey(services, by(ctx), params.id, params.keyId);
        ctx.status = 204;
      },
    }),
  ];
}
