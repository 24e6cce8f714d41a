import type { Context, Middleware } from 'koa';
import { errors, type AdapterPayload, type KoaContextWithOIDC } from 'oidc-provider';
import type { AccountRecord } from '../../accounts/account-record.js';
import { RETRY_AFTER_SECONDS } from '../../services/dependency-outage.js';
import { DependencyUnavailable } from '../upstream.js';

/**
 * What one token request keeps between the adapter calls oidc-provider makes for it: the refresh
 * token rotation it defers, and the grant and account read ahead with the refresh token.
 */
export interface TokenRequestState {
  /** A refresh token oidc-provider asked to consume (by its stored id), with how to consume it on its own. */
  spent?: { id: string; consume(): Promise<void> } | undefined;
  /** Writes the rotation: spends `spent` and stores its successor, or refuses a reuse. */
  commit?: (() => Promise<void>) | undefined;
  /** Read with the refresh token in the same statement: its grant and its account, each handed out once. */
  grant?: { id: string; payload: AdapterPayload | undefined } | undefined;
  account?: { id: string; record: AccountRecord | undefined } | undefined;
}

/**
 * The request an adapter call belongs to: oidc-provider's Provider.ctx (upstream.ts,
 * currentProviderRequest). The scope hangs off that, so Gatehouse adds no second async-context
 * store (each one is paid for on every promise).
 */
export type CurrentRequest = () => object | undefined;

// On the request's context itself, under a symbol of this module: a WeakMap keyed by per-request
// objects costs the garbage collector an ephemeron per request.
const SCOPE = Symbol('gatehouse.rotationScope');
type WithScope = { [SCOPE]?: TokenRequestState | undefined };

/**
 * Makes refresh-token rotation all or nothing, around the provider's handling of a request.
 * oidc-provider consumes the old token, saves its successor, then builds the access and ID tokens
 * (an opaque access token is stored in Redis). The consume and the save are deferred here and
 * written as one SQL statement only once the request has succeeded: a crash, or a store that
 * fails after the rotation, leaves the old token valid and no successor, never a spent token
 * whose successor the client did not get. If the write finds the token already spent (a
 * concurrent reuse), the family is revoked and the answer becomes invalid_grant.
 *
 * `open` before the provider runs (a scope only for POST to the token endpoint), `close` on its
 * answer; provider-host.ts calls both from its one middleware.
 *
 * @example
 * const scope = openRotationScope(ctx, '/token');
 * await provider(ctx);
 * if (scope) await closeRotationScope(ctx, scope);
 */
export function openRotationScope(ctx: Context, tokenPath: string): TokenRequestState | undefined {
  // Only the token endpoint rotates refresh tokens.
  if (ctx.method !== 'POST' || ctx.path !== tokenPath) return undefined;
  const scope: TokenRequestState = {};
  (ctx as WithScope)[SCOPE] = scope;
  return scope;
}

/** Ends the scope; a promise only when there is a rotation to write (most token requests have none). */
export function closeRotationScope(ctx: Context, scope: TokenRequestState): Promise<void> | undefined {
  (ctx as WithScope)[SCOPE] = undefined;
  if (ctx.status !== 200 || (!scope.spent && !scope.commit)) return undefined;
  return writeRotation(ctx, scope);
}

async function writeRotation(ctx: Context, { spent, commit }: TokenRequestState): Promise<void> {
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
}

/** openRotationScope and closeRotationScope as one Koa middleware. */
export function rotationScope(tokenPath = '/token'): Middleware {
  return async (ctx, next) => {
    const scope = openRotationScope(ctx, tokenPath);
    await next();
    if (scope) await closeRotationScope(ctx, scope);
  };
}

const scopeOf = (request: object | undefined) => (request as WithScope | undefined)?.[SCOPE];

/** True inside a token request's scope: the adapters may read ahead and defer writes. */
export function inTokenRequest(request: object | undefined): boolean {
  return scopeOf(request) !== undefined;
}

/** Defers consuming a refresh token to the end of this request; false outside a request scope (or when one waits already). */
export function deferConsume(request: object | undefined, id: string, consume: () => Promise<void>): boolean {
  const scope = scopeOf(request);
  if (!scope || scope.spent || scope.commit) return false;
  scope.spent = { id, consume };
  return true;
}

/**
 * The refresh token this request deferred consuming, handed to the save of its successor, which
 * then defers the combined write with `deferCommit`.
 */
export function deferredConsume(request: object | undefined): string | undefined {
  return scopeOf(request)?.spent?.id;
}

/** Defers the rotation's single write to the end of this request (see rotationScope). */
export function deferCommit(request: object | undefined, commit: () => Promise<void>): void {
  const scope = scopeOf(request);
  if (!scope) throw new Error('deferCommit outside a request scope');
  scope.spent = undefined;
  scope.commit = commit;
}

/** Keeps what was read with a refresh token (its grant, its account) for this request's next lookups. */
export function keepReadAhead(
  request: object | undefined,
  read: { grant?: { id: string; payload: AdapterPayload | undefined }; account?: { id: string; record: AccountRecord | undefined } },
): void {
  const scope = scopeOf(request);
  if (!scope) return;
  scope.grant = read.grant;
  scope.account = read.account;
}

/**
 * What was read ahead for this request under `kind`, if it is the one asked for; handed out once, so
 * any later lookup in the request reads the database again. `found: false`: not read ahead, look it up.
 */
function takeReadAhead<K extends 'grant' | 'account'>(request: object | undefined, kind: K, id: string) {
  const scope = scopeOf(request);
  const kept = scope?.[kind];
  if (!scope || !kept || kept.id !== id) return { found: false as const };
  scope[kind] = undefined;
  return { found: true as const, kept: kept as NonNullable<TokenRequestState[K]> };
}

/** The grant read ahead for this request (see takeReadAhead). */
export function takeReadAheadGrant(request: object | undefined, id: string): { found: true; payload: AdapterPayload | undefined } | { found: false } {
  const taken = takeReadAhead(request, 'grant', id);
  return taken.found ? { found: true, payload: taken.kept.payload } : taken;
}

/** The account read ahead for this request (see takeReadAhead). */
export function takeReadAheadAccount(request: object | undefined, id: string): { found: true; record: AccountRecord | undefined } | { found: false } {
  const taken = takeReadAhead(request, 'account', id);
  return taken.found ? { found: true, record: taken.kept.record } : taken;
}
