import { z } from 'zod';
import {
  createUser,
  deleteUser,
  getUser,
  listUsersPage,
  updateUserFields,
  userToJson,
  userUpdateSchema,
} from '../services/users.service.js';
import { idParam, pageQuery } from './params.js';
import { AUTH_ERRORS, BODY_ERRORS, defineRoute, type AdminRoute, type AdminRouteDeps } from './route.js';
import { userCreateBody, userOut, userPage } from './schemas.js';
import { ApiError } from './problem.js';
import { sendVerificationLink } from '../services/email-verification.service.js';

const userParams = z.object({ id: idParam("the user's id") });

/** People: list with a cursor and an email filter, create, get, PATCH (name, flags, password), delete. */
export function userRoutes(deps: AdminRouteDeps): AdminRoute[] {
  const { db, services, by } = deps;
  return [
    defineRoute({
      method: 'get',
      path: '/users',
      operationId: 'listUsers',
      tag: 'users',
      summary: 'List users',
      description: 'One page of users; `next_cursor` reads the next. Password hashes are never listed.',
      query: pageQuery('email', 'only users whose email contains this'),
      responses: { 200: { description: 'One page', body: userPage }, 400: 'A query parameter is not valid: errors[] names it', ...AUTH_ERRORS },
      async handler(ctx, { query }) {
        const { limit, cursor, email } = query;
        const page = await listUsersPage(db, { limit, cursor, email });
        ctx.body = { data: page.items.map(userToJson), next_cursor: page.nextCursor };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/users',
      operationId: 'createUser',
      tag: 'users',
      summary: 'Create a user',
      description: 'Creates a person who signs in with this email and password (stored as an argon2id hash, never shown). With send_verification, mails them a link that confirms their address.',
      body: userCreateBody,
      responses: {
        201: { description: 'Created', body: userOut, headers: ['Location'] },
        400: 'Invalid body (a weak password, an email that is not one): errors[] names each field',
        409: 'A user with this email exists (conflict); or send_verification while the server cannot send mail, production without SMTP_URL (mail_unavailable): nothing was created',
        ...BODY_ERRORS,
        ...AUTH_ERRORS,
      },
      async handler(ctx, { body }) {
        const { send_verification: sendVerification, ...fields } = body;
        // Refused before anything is created: a link that cannot be sent is never pretended.
        if (sendVerification && !deps.mail?.mailer.available) throw new ApiError(409, 'mail_unavailable', 'no mail can be sent from this server (SMTP_URL is not set): nothing was created');
        const user = await createUser(services, by(ctx), fields);
        if (sendVerification && deps.mail) await sendVerificationLink({ db, audit: services.audit, mail: deps.mail }, by(ctx), user.id);
        ctx.status = 201;
        ctx.set('Location', `/admin/v1/users/${user.id}`);
        ctx.body = userToJson(user);
      },
    }),
    defineRoute({
      method: 'get',
      path: '/users/:id',
      operationId: 'getUser',
      tag: 'users',
      summary: 'Get a user',
      description: 'One user, by id.',
      params: userParams,
      responses: { 200: { description: 'Found', body: userOut }, 404: 'No such user', ...AUTH_ERRORS },
      async handler(ctx, { params }) {
        ctx.body = userToJson(await getUser(db, params.id));
      },
    }),
    defineRoute({
      method: 'patch',
      path: '/users/:id',
      operationId: 'updateUser',
      tag: 'users',
      summary: 'Update the fields given',
      description:
        "Changes the name, the disabled or verified flag, or the password. A password change ends the person's browser sessions, consents and refresh tokens, and disabling ends the sessions, unless keep_sessions is true.",
      params: userParams,
      body: userUpdateSchema,
      responses: {
        200: { description: 'Updated', body: userOut },
        400: 'Invalid body: errors[] names each field',
        404: 'No such user',
        409: 'A console administrator may not take their own admin role away or disable themselves (conflict, errors[] names the field): nothing was changed',
        ...BODY_ERRORS,
        ...AUTH_ERRORS,
      },
      async handler(ctx, { params, body }) {
        // A password change ends the person's sessions, consents and refresh tokens (unless kept).
        const user = await updateUserFields(services, by(ctx), params.id, body);
        // Their apps are told (back-channel logout), as the change ended the sessions.
        if (body.keep_sessions !== true && (body.password !== undefined || body.disabled === true)) await deps.sessionsEnded?.(user.id);
        ctx.body = userToJson(user);
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/users/:id',
      operationId: 'deleteUser',
      tag: 'users',
      summary: 'Delete a user',
      description: 'Deletes the person with their grants, refresh tokens and second factors.',
      params: userParams,
      responses: { 204: { description: 'Deleted' }, 404: 'No such user', 409: 'A console administrator may not delete themselves (conflict): nothing was deleted', ...AUTH_ERRORS },
      async handler(ctx, { params }) {
        await deleteUser(services, by(ctx), params.id);
        await deps.sessionsEnded?.(params.id);
        ctx.status = 204;
      },
    }),
  ];
}
