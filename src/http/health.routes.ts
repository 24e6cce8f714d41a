import Router from '@koa/router';

/** Something /readyz asks: a name and a check that rejects when the dependency is down. */
export interface ReadinessCheck {
  name: string;
  check: () => Promise<void>;
}

/** /healthz: the process answers. /readyz: every dependency answers, else 503 naming the failing ones. */
export function healthRoutes(checks: readonly ReadinessCheck[]): Router {
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    const results = await Promise.all(
      checks.map(async ({ name, check }) => {
        try {
          await check();
          return [name, 'ok'] as const;
        } catch {
          return [name, 'unavailable'] as const;
        }
      }),
    );
    const failing = results.filter(([, state]) => state !== 'ok').map(([name]) => name);
    ctx.set('Cache-Control', 'no-store');
    ctx.status = failing.length === 0 ? 200 : 503;
    ctx.body = {
      status: failing.length === 0 ? 'ready' : 'unavailable',
      checks: Object.fromEntries(results),
      ...(failing.length > 0 ? { failing } : {}),
    };
  });
  return router;
}
