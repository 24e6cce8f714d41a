import { AsyncLocalStorage } from 'node:async_hooks';
import type { Middleware } from 'koa';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import { DependencyUnavailable, RETRY_AFTER_SECONDS } from '../../services/unavailable.js';

interface Scope {
  /** A refresh token oidc-provider asked to consume, with how to consume it on its own. */
  spent?: { id: string; consume(): Promise<void> } | undefined;
  /** Writes the rotation: spends `spent` and stores its successor, or refuses a reuse. */
  commit?: (() => Promise<void>) | undefined;
}

const requests = new AsyncLocalStorage<Scope>();

/**
 * Koa middleware around the provider that makes refresh-token rotation all or nothing.
 * oidc-provider consumes the old token, saves its successor, then builds the access and ID tokens
 * (an opaque access token is stored in Redis). The consume and the save are deferred here and
 * written as one SQL statement only once the request has succeeded: a crash, or a store that
 * fails after the rotation, leaves the old token valid and no successor, never a spent token
 * whose successor the client did not get. If the write finds the token already spent (a
 * concurrent reuse), the family is revoked and the answer becomes invalid_grant.
 *
 * @example
 * app.use(rotationScope(provider.pathFor('token')));   // before the provider
 */
export function rotationScope(tokenPath = '/token'): Middleware {
  return (ctx, next) => {
    // Only the token endpoint rotates refresh tokens.
    if (ctx.method !== 'POST' || ctx.path !== tokenPath) return next();
    const scope: Scope = {};
    return requests.run(scope, async () => {
      await next();
      const { spent, commit } = scope;
      scope.spent = undefined;
      scope.commit = undefined;
      if (ctx.status !== 200) return;
      try {
        if (commit) await commit();
        else if (spent) await spent.consume();
      } catch (error) {
        if (!(error instanceof errors.InvalidGrant || error instanceof DependencyUnavailable)) throw error;
        // None of the tokens built for this answer was stored as issued: replace the answer.
        ctx.status = error.statusCode;
        ctx.body = { error: error.error, error_description: error.error_description };
        if (error instanceof DependencyUnavailable) ctx.set('Retry-After', RETRY_AFTER_SECONDS);
        const { oidc } = ctx as unknown as KoaContextWithOIDC;
        oidc?.provider.emit('grant.error', ctx, error);
      }
    });
  };
}

/** Defers consuming a refresh token to the end of this request; false outside a request scope (or when one waits already). */
export function deferConsume(id: string, consume: () => Promise<void>): boolean {
  const scope = requests.getStore();
  if (!scope || scope.spent || scope.commit) return false;
  scope.spent = { id, consume };
  return true;
}

/**
 * The refresh token this request deferred consuming, handed to the save of its successor, which
 * then defers the combined write with `deferCommit`.
 */
export function deferredConsume(): string | undefined {
  return requests.getStore()?.spent?.id;
}

/** Defers the rotation's single write to the end of this request (see rotationScope). */
export function deferCommit(commit: () => Promise<void>): void {
  const scope = requests.getStore();
  if (!scope) throw new Error('deferCommit outside a request scope');
  scope.spent = undefined;
  scope.commit = commit;
}
