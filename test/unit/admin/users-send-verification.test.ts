import { describe, expect, it } from 'vitest';
import { ApiError } from '../../../src/admin/problem.js';
import type { AdminRouteDeps } from '../../../src/admin/route.js';
import { userRoutes } from '../../../src/admin/users.routes.js';

/*
 * POST /admin/v1/users with send_verification on a server that cannot send mail (production without
 * SMTP_URL: the mailer's `available` is false): refused with 409 mail_unavailable before anything
 * is created (the handler touches no database: any use of `db` would throw here).
 */
describe('send_verification without mail', () => {
  const untouchable = new Proxy({}, { get: () => { throw new Error('the database was used'); } });
  const deps = (available: boolean | undefined) =>
    ({
      db: untouchable,
      services: untouchable,
      by: () => ({ actor: 'admin:test' }),
      ...(available === undefined ? {} : { mail: { mailer: { available, send: () => undefined, close: async () => undefined }, compose: () => { throw new Error('composed'); }, issuer: 'https://id.example.test', brandName: 'Gatehouse' } }),
    }) as unknown as AdminRouteDeps;
  const create = (d: AdminRouteDeps) => userRoutes(d).find((route) => route.method === 'post' && route.path === '/users')!;

  it.each([
    ['a mailer that cannot send', false],
    ['no mailer at all', undefined],
  ] as const)('answers 409 mail_unavailable with %s, creating nothing', async (_label, available) => {
    const route = create(deps(available));
    const ctx = { set: () => undefined, state: {} } as never;
    const refused = await Promise.resolve()
      .then(() => route.handler(ctx, { body: { email: 'ada@example.test', password: 'a long enough password 42', send_verification: true } } as never))
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(refused).toBeInstanceOf(ApiError);
    expect(refused).toMatchObject({ status: 409, code: 'mail_unavailable' });
  });
});
