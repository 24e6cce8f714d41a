/**
 * Telling an outage of a backing service (the registry database, the ephemeral store) from every
 * other error, so that callers answer 503 with Retry-After instead of 500. oidc-provider's own form
 * of that answer, DependencyUnavailable, is in oidc/upstream.ts.
 */

/** Which backing service a request needed and could not reach. */
export type Dependency = 'database' | 'store';

/** Node's socket errors, as pg and ioredis pass them on. */
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);

/** What pg, pg-pool and ioredis say when the server is gone, not when a query is wrong. */
const GONE_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error',
  'Connection is closed',
  "Stream isn't writeable",
  'Reached the max retries per request limit',
  'Command timed out',
  'Query read timeout',
  'connect ETIMEDOUT',
];

/**
 * True when `error` says a backing service could not be reached (refused, reset, timed out, shut
 * down), or was caused by such an error (oidc/upstream.ts's DependencyUnavailable keeps it as its
 * cause), as opposed to a bug or a refused query. SQLSTATE class 08 is "connection exception",
 * 57P01–57P03 the server shutting down or not yet accepting connections, 53300 too many connections.
 */
export function isUnreachable(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, message, name, cause } = error as { code?: unknown; message?: unknown; name?: unknown; cause?: unknown };
  if (typeof code === 'string' && (SOCKET_CODES.has(code) || code.startsWith('08') || /^57P0[123]$/.test(code) || code === '53300')) return true;
  if (name === 'MaxRetriesPerRequestError') return true;
  if (typeof message === 'string' && GONE_MESSAGES.some((gone) => message.includes(gone))) return true;
  return cause !== undefined && cause !== error && isUnreachable(cause);
}

/** What a 503 tells the caller to wait before retrying, in seconds (RFC 9110 Retry-After). */
export const RETRY_AFTER_SECONDS = '5';
