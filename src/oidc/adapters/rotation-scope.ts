import { AsyncLocalStorage } from 'node:async_hooks';
import type { Middleware } from 'koa';

/** A refresh token oidc-provider asked to consume, not yet written. */
interface DeferredConsume {
  id: string;
  /** Consumes it on its own: used when no successor was saved in the same request. */
  settle(): Promise<void>;
}

const requests = new AsyncLocalStorage<{ deferred?: DeferredConsume | undefined }>();

/**
 * Koa middleware that gives each request a place to defer a refresh token's consumption to, so
 * that rotation (spend the old token, store its successor) is one SQL statement: a crash between
 * the two can never leave a family with a spent token and no successor. oidc-provider consumes
 * the old token and saves the new one back to back in the same request; whatever is still
 * deferred when the request ends (no successor was saved) is consumed on its own then.
 *
 * @example
 * app.use(rotationScope());   // before the provider
 */
export function rotationScope(): Middleware {
  return (ctx, next) => {
    if (ctx.method !== 'POST') return next();
    const scope: { deferred?: DeferredConsume | undefined } = {};
    return requests.run(scope, async () => {
      try {
        await next();
      } finally {
        const left = scope.deferred;
        scope.deferred = undefined;
        if (left) await left.settle();
      }
    });
  };
}

/** Defers a consumption to the next save in this request; false when there is no request scope (or one is already waiting). */
export function deferConsume(entry: DeferredConsume): boolean {
  const scope = requests.getStore();
  if (!scope || scope.deferred) return false;
  scope.deferred = entry;
  return true;
}

/** The deferred consumption of this request, if any, taken out so it is written once. */
export function takeDeferredConsume(): string | undefined {
  const scope = requests.getStore();
  const id = scope?.deferred?.id;
  if (scope) scope.deferred = undefined;
  return id;
}
