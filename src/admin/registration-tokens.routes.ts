import { z } from 'zod';
import {
  createInitialAccessTokenFromInput,
  initialAccessTokenCreateSchema,
  initialAccessTokenToJson,
  listInitialAccessTokens,
  revokeInitialAccessToken,
} from '../services/registration.service.js';
import { idParam } from './params.js';
import { AUTH_ERRORS, BODY_ERRORS, defineRoute, type AdminRoute, type AdminRouteDeps } from './route.js';
import { registrationTokenCreatedOut, registrationTokenList } from './schemas.js';

/** Initial access tokens of dynamic registration: listed by an id derived from the stored token, never a value. */
export function registrationTokenRoutes(deps: AdminRouteDeps): AdminRoute[] {
  const { db, config, services, by } = deps;
  return [
    defineRoute({
      method: 'get',
      path: '/registration-tokens',
      operationId: 'listRegistrationTokens',
      tag: 'registration',
      summary: 'List the initial access tokens of dynamic registration (ids and times, never a token)',
      description: 'Every stored initial access token, by an id derived from it (SHA-256): the token itself is shown only when minted.',
      responses: { 200: { description: 'Every stored token', body: registrationTokenList }, ...AUTH_ERRORS },
      async handler(ctx) {
        ctx.body = { data: (await listInitialAccessTokens(db)).map(initialAccessTokenToJson) };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/registration-tokens',
      operationId: 'createRegistrationToken',
      tag: 'registration',
      summary: 'Mint an initial access token; shown this once',
      description: 'A token that lets one party register clients at the registration endpoint until it expires.',
      body: initialAccessTokenCreateSchema,
      responses: {
        201: { description: 'Minted (Location names it for DELETE)', body: registrationTokenCreatedOut, headers: ['Location'] },
        400: 'Invalid body, or expires_in above REGISTRATION_TOKEN_MAX_TTL_SECONDS',
        ...BODY_ERRORS,
        ...AUTH_ERRORS,
      },
      async handler(ctx, { body }) {
        const issued = await createInitialAccessTokenFromInput({ ...services, maxTtl: config.registrationTokenMaxTtlSeconds }, by(ctx), body);
        const expiresAt = issued.expiresAt.toISOString();
        ctx.status = 201;
        ctx.set('Location', `/admin/v1/registration-tokens/${issued.id}`);
        ctx.body = { id: issued.id, initial_access_token: issued.token, expires_at: expiresAt };
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/registration-tokens/:id',
      operationId: 'revokeRegistrationToken',
      tag: 'registration',
      summary: 'Revoke an initial access token by its listed id: /reg refuses it from then on',
      description: 'The registration endpoint refuses the token from then on; clients it registered stay.',
      params: z.object({ id: idParam('the id the list gives (32 hex digits), never the token') }),
      responses: { 204: { description: 'Revoked' }, 404: 'No token has this id', ...AUTH_ERRORS },
      async handler(ctx, { params }) {
        const id = params.id;
        await revokeInitialAccessToken(services, by(ctx), id);
        ctx.status = 204;
      },
    }),
  ];
}
