/**
 * A service calling an API protected by Gatehouse: it gets client-credentials access tokens
 * (`client_secret_basic`), keeps one until shortly before it expires, and sends it as a Bearer token.
 *
 *     ISSUER=http://localhost:3000 CLIENT_ID=… CLIENT_SECRET=… SCOPE=read:orders \
 *       API_URL=http://localhost:4000/orders node examples/service-client/service-client.ts
 *
 * See README.md beside this file.
 */
import { fileURLToPath } from 'node:url';

export interface TokenSourceOptions {
  /** Gatehouse's issuer URL: the token endpoint is read from its discovery document. Or give `tokenEndpoint`. */
  issuer?: string;
  /** The token endpoint itself (skips discovery). */
  tokenEndpoint?: string;
  clientId: string;
  clientSecret: string;
  /** Space-separated scopes to ask for; without it the token carries none. */
  scope?: string;
  /** The API (RFC 8707 resource indicator); needed when the client has no default resource. */
  resource?: string;
  /** Refresh when less than this many seconds of the token's life remain (30 unless given)… */
  refreshMarginSeconds?: number;
  /** …or less than this share of its lifetime (0.1 unless given), whichever comes first; never past half its life. */
  refreshMarginRatio?: number;
  /** For tests and instrumentation: the fetch to use and the clock (milliseconds). */
  fetch?: typeof fetch;
  now?: () => number;
}

export interface TokenSource {
  /** A valid access token: the cached one, or a new one when it is close to expiry. Concurrent callers share one request. */
  getToken(): Promise<string>;
  /** Forgets the cached token (e.g. after the API answered `invalid_token`). */
  invalidate(): void;
}

/** The token endpoint refused (an OAuth error such as `invalid_client`), or answered something unexpected. */
export class TokenRequestError extends Error {
  readonly status: number;
  readonly error: string;

  constructor(status: number, error: string, description?: string) {
    super(`token request failed: ${status} ${error}${description ? ` (${description})` : ''}`);
    this.status = status;
    this.error = error;
  }
}

interface CachedToken {
  accessToken: string;
  /** When to get a new one, and when it stops being usable (ms, on the source's clock). */
  refreshAt: number;
  expiresAt: number;
}

/** How many seconds before expiry a token of this lifetime is replaced. */
export function refreshMargin(lifetimeSeconds: number, marginSeconds = 30, marginRatio = 0.1): number {
  return Math.min(Math.max(marginSeconds, lifetimeSeconds * marginRatio), lifetimeSeconds / 2);
}

/**
 * Client credentials with a cache: one token request per token lifetime, not one per API call.
 *
 * @example
 * ```ts
 * const tokens = createTokenSource({ issuer: 'http://localhost:3000', clientId, clientSecret, scope: 'read:orders' });
 * const response = await callApi(tokens, 'http://localhost:4000/orders');
 * ```
 */
export function createTokenSource(options: TokenSourceOptions): TokenSource {
  if (!options.issuer && !options.tokenEndpoint) throw new TypeError('give issuer or tokenEndpoint');
  const fetchImpl = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  // RFC 6749 §2.3.1: both are form-urlencoded before they are joined and base64-encoded.
  const basic = Buffer.from(`${encodeURIComponent(options.clientId)}:${encodeURIComponent(options.clientSecret)}`).toString('base64');
  let tokenEndpoint: Promise<string> | undefined;
  let cached: CachedToken | undefined;
  let inFlight: Promise<string> | undefined;

  function endpoint(): Promise<string> {
    if (options.tokenEndpoint) return Promise.resolve(options.tokenEndpoint);
    tokenEndpoint ??= discoverTokenEndpoint(fetchImpl, String(options.issuer)).catch((error: unknown) => {
      tokenEndpoint = undefined; // try again next time
      throw error;
    });
    return tokenEndpoint;
  }

  async function requestToken(): Promise<string> {
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    if (options.scope) form.set('scope', options.scope);
    if (options.resource) form.set('resource', options.resource);
    const requestedAt = now(); // lifetime counts from before the request: never later than Gatehouse's iat
    const response = await fetchImpl(await endpoint(), {
      method: 'POST',
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: form,
    });
    const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    if (!response.ok || typeof body.access_token !== 'string' || typeof body.expires_in !== 'number') {
      const error = typeof body.error === 'string' ? body.error : 'invalid_response';
      throw new TokenRequestError(response.status, error, typeof body.error_description === 'string' ? body.error_description : undefined);
    }
    const lifetime = body.expires_in;
    const margin = refreshMargin(lifetime, options.refreshMarginSeconds, options.refreshMarginRatio);
    cached = { accessToken: body.access_token, refreshAt: requestedAt + (lifetime - margin) * 1000, expiresAt: requestedAt + lifetime * 1000 };
    return body.access_token;
  }

  return {
    async getToken() {
      const current = cached;
      if (current && now() < current.refreshAt) return current.accessToken;
      // One request at a time: everyone who asks meanwhile waits for the same answer, and a failure is not kept.
      inFlight ??= requestToken().finally(() => {
        inFlight = undefined;
      });
      try {
        return await inFlight;
      } catch (error) {
        // Gatehouse unreachable (or 5xx) while the old token is still good: keep using it, try again
        // next call. A refusal (4xx, e.g. a rotated secret) is an answer, not an outage: it is thrown.
        const outage = !(error instanceof TokenRequestError) || error.status >= 500;
        if (outage && current && cached === current && now() < current.expiresAt) return current.accessToken;
        throw error;
      }
    },
    invalidate() {
      cached = undefined;
    },
  };
}

async function discoverTokenEndpoint(fetchImpl: typeof fetch, issuer: string): Promise<string> {
  const response = await fetchImpl(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, { headers: { accept: 'application/json' } });
  const metadata = (await response.json().catch(() => ({}))) as Record<string, unknown>;
  if (!response.ok || typeof metadata.token_endpoint !== 'string') {
    throw new Error(`discovery at ${issuer} failed (${response.status}): no token_endpoint`);
  }
  return metadata.token_endpoint;
}

/** RFC 6750 §3: the `error` of a `WWW-Authenticate: Bearer …` challenge, if any. */
export function bearerError(response: Response): string | undefined {
  return /\berror="([^"]*)"/.exec(response.headers.get('www-authenticate') ?? '')?.[1];
}

/**
 * Calls the API with the source's token. When the API answers 401 `invalid_token` (the token
 * expired early, or the keys changed), the token is dropped and the call made once more with a new
 * one; a 403 `insufficient_scope` is returned as it is, since a new token would carry the same scopes.
 * The body must be one that can be sent twice (a string, not a stream).
 */
export async function callApi(tokens: TokenSource, url: string | URL, init: RequestInit = {}, fetchImpl: typeof fetch = fetch): Promise<Response> {
  const send = async () => {
    const headers = new Headers(init.headers);
    headers.set('authorization', `Bearer ${await tokens.getToken()}`);
    return fetchImpl(url, { ...init, headers });
  };
  const response = await send();
  if (response.status !== 401 || bearerError(response) !== 'invalid_token') return response;
  await response.body?.cancel();
  tokens.invalidate();
  return send();
}

/** Reads ISSUER, CLIENT_ID, CLIENT_SECRET, SCOPE, RESOURCE and API_URL, calls the API and prints its answer. */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const { ISSUER, CLIENT_ID, CLIENT_SECRET, API_URL } = env;
  if (!ISSUER || !CLIENT_ID || !CLIENT_SECRET || !API_URL) throw new Error('set ISSUER, CLIENT_ID, CLIENT_SECRET and API_URL (SCOPE and RESOURCE are optional)');
  const tokens = createTokenSource({ issuer: ISSUER, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, scope: env.SCOPE, resource: env.RESOURCE });
  const response = await callApi(tokens, API_URL);
  process.stdout.write(`${response.status} ${await response.text()}\n`);
  if (!response.ok) process.exitCode = 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
