import { findUserById } from '../registry/user.repository.js';
import { ROLES } from '../services/users.service.js';
import { AUTH_ERRORS, defineRoute, type AdminRoute, type AdminRouteDeps } from './route.js';
import { meOut } from './schemas.js';

/** GET /me: who the admin API takes this token for (the console shows who is signed in). */
export function meRoutes(deps: AdminRouteDeps): AdminRoute[] {
  return [
    defineRoute({
      method: 'get',
      path: '/me',
      operationId: 'getCaller',
      tag: 'meta',
      summary: 'Who is calling',
      description: 'The admin client, or the person signed in to the console (who holds the admin role), this token stands for.',
      responses: { 200: { description: 'The caller', body: meOut }, ...AUTH_ERRORS },
      async handler(ctx) {
        const caller = ctx.state.admin;
        const person = caller?.personId ? await findUserById(deps.db, caller.personId) : undefined;
        ctx.set('Cache-Control', 'no-store');
        ctx.body = {
          client_id: caller?.clientId ?? '',
          person: person ? { id: person.id, email: person.email, name: person.name, roles: person.roles.filter((role): role is (typeof ROLES)[number] => (ROLES as readonly string[]).includes(role)) } : null,
        };
      },
    }),
  ];
}
