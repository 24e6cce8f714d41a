/**
 * An HTTP API protected by Gatehouse: it verifies each request's access token by itself, from the
 * issuer's published keys (no call to Gatehouse per request), and enforces one scope per route.
 *
 *     ISSUER=http://localhost:3000 AUDIENCE=https://api.example.com PORT=4000 \
 *       node examples/resource-server/resource-server.ts
 *
 * See README.md beside this file.
 */
import type { Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import Router from '@koa/router';
import coBody from 'co-body';
import Koa, { type Context, type Middleware } from 'koa';
import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, createRemoteJWKSet, EmbeddedJWK, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';

export interface ResourceServerOptions {
  /** Gatehouse's issuer URL, exactly as tokens carry it in `iss` (no trailing slash). */
  issuer: string;
  /** This API's identifier, as registered with `gatehouse resources create --identifier`: the tokens' `aud`. */
  audience: string;
  /** Where the issuer publishes its keys; `${issuer}/jwks` unless given. */
  jwksUri?: string;
  /** Browser origins (e.g. a single-page app's) that may call this API; none unless given. */
  allowedOrigins?: readonly string[];
  /** Leeway for `exp` between this machine's clock and Gatehouse's, in seconds; 0 unless given. */
  clockToleranceSeconds?: number;
  /**
   * This API's own origin as its callers address it (`https://api.example.com`), which DPoP proofs
   * name in `htu`; the request's own protocol and Host unless given: set it behind a proxy.
   */
  publicOrigin?: string;
}

/** Who is calling: what a verified access token says. */
export interface Caller {
  /** The person (authorization code) or the client itself (client credentials). */
  subject: string;
  clientId: string;
  scopes: readonly string[];
  /** A DPoP-bound token's key: the JWK SHA-256 thumbprint in `cnf.jkt` (RFC 9449 §6.1); undefined for a plain bearer token. */
  jkt: string | undefined;
  claims: JWTPayload;
}

export interface ApiState {
  caller?: Caller;
}

export interface Order {
  id: number;
  item: string;
  quantity: number;
  placedBy: string;
}

/** The realm named in every `WWW-Authenticate` challenge. */
export const REALM = 'orders';

/** The algorithms a DPoP proof may be signed with (asymmetric only; Gatehouse accepts the same). */
export const DPOP_ALGS = ['ES256', 'Ed25519', 'EdDSA'] as const;

/** How far a DPoP proof's `iat` may be from this machine's clock, in seconds (RFC 9449 §11.1: short). */
export const DPOP_PROOF_WINDOW_SECONDS = 60;

// RFC 6750 §2.1 and RFC 9449 §7.1: `Bearer` or `DPoP` (any case), one space, a token68.
const CREDENTIALS = /^(Bearer|DPoP) ([A-Za-z0-9\-._~+/]+=*)$/i;

/**
 * An RFC 6750 (Bearer) or RFC 9449 §7.1 (DPoP) refusal: the status, the `WWW-Authenticate`
 * challenge in the scheme the token was (or must be) sent with, and a small JSON body.
 */
class BearerError extends Error {
  readonly status: 400 | 401 | 403;
  readonly code: 'invalid_request' | 'invalid_token' | 'insufficient_scope' | 'invalid_dpop_proof' | undefined;
  readonly description: string;
  readonly scope: string | undefined;
  readonly scheme: 'Bearer' | 'DPoP';

  constructor(status: BearerError['status'], code: BearerError['code'], description: string, options: { scope?: string | undefined; scheme?: 'Bearer' | 'DPoP' } = {}) {
    super(description);
    this.status = status;
    this.code = code;
    this.description = description;
    this.scope = options.scope;
    this.scheme = options.scheme ?? 'Bearer';
  }

  challenge(): string {
    const params = [`realm="${REALM}"`];
    // A request with no credentials at all gets the bare challenges, one per scheme (RFC 6750 §3.1, RFC 9449 §7.1).
    if (!this.code) return `Bearer ${params.join(', ')}, DPoP ${params.join(', ')}, algs="${DPOP_ALGS.join(' ')}"`;
    params.push(`error="${this.code}"`, `error_description="${this.description}"`);
    if (this.scope) params.push(`scope="${this.scope}"`);
    if (this.scheme === 'DPoP') params.push(`algs="${DPOP_ALGS.join(' ')}"`);
    return `${this.scheme} ${params.join(', ')}`;
  }
}

/** The key set could not be fetched: not the token's fault, so not a 401 (the caller keeps its token). */
class KeySetUnavailableError extends Error {}

/** Key-fetching failures (network, timeout, not 200, not a key set) as opposed to a token no key matches. */
function isKeySetFailure(error: unknown): boolean {
  if (!(error instanceof joseErrors.JOSEError)) return true;
  return error instanceof joseErrors.JWKSTimeout || error instanceof joseErrors.JWKSInvalid || error.code === 'ERR_JOSE_GENERIC';
}

/**
 * Verifies Gatehouse access tokens (RFC 9068) against the issuer's JWKS: RS256 only, header
 * `typ: at+jwt`, `iss`, `aud` = this API, `exp`. The key set is fetched once, cached, and fetched
 * again when a token names a `kid` it does not hold (jose's `createRemoteJWKSet`), so key rotation
 * needs nothing here.
 */
export function createTokenVerifier(options: ResourceServerOptions): (token: string) => Promise<Caller> {
  const remote = createRemoteJWKSet(new URL(options.jwksUri ?? `${options.issuer}/jwks`));
  const getKey: JWTVerifyGetKey = async (header, token) => {
    try {
      return await remote(header, token);
    } catch (error) {
      throw isKeySetFailure(error) ? new KeySetUnavailableError('the issuer keys could not be fetched', { cause: error }) : error;
    }
  };
  return async (token) => {
    const { payload } = await jwtVerify(token, getKey, {
      issuer: options.issuer,
      audience: options.audience,
      typ: 'at+jwt',
      algorithms: ['RS256'],
      requiredClaims: ['exp', 'sub', 'client_id'],
      clockTolerance: options.clockToleranceSeconds ?? 0,
    });
    const cnf = payload.cnf as { jkt?: unknown } | undefined;
    return {
      subject: String(payload.sub),
      clientId: String(payload.client_id),
      scopes: typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : [],
      jkt: typeof cnf?.jkt === 'string' ? cnf.jkt : undefined,
      claims: payload,
    };
  };
}

/** Answers BearerError and KeySetUnavailableError as RFC 6750 (and 503) responses; rethrows the rest. */
const bearerErrors: Middleware<ApiState> = async (ctx, next) => {
  try {
    await next();
  } catch (error) {
    if (error instanceof BearerError) {
      ctx.status = error.status;
      ctx.set('WWW-Authenticate', error.challenge());
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { error: error.code ?? 'unauthorized', error_description: error.description, ...(error.scope ? { scope: error.scope } : {}) };
    } else if (error instanceof KeySetUnavailableError) {
      ctx.status = 503;
      ctx.set('Retry-After', '5');
      ctx.body = { error: 'temporarily_unavailable', error_description: 'the access token cannot be verified right now' };
    } else {
      throw error;
    }
  }
};

/**
 * Remembers DPoP proof ids (`jti`) for as long as a proof with that id could be accepted, so that each
 * proof is used once (RFC 9449 §11.1). In memory: one process. Several replicas of an API need a
 * shared cache (Redis `SET key 1 NX EX`), or a nonce per request.
 */
export function createReplayCache(windowSeconds = DPOP_PROOF_WINDOW_SECONDS): { firstUse(jti: string, nowSeconds: number): boolean } {
  const seen = new Map<string, number>();
  return {
    firstUse(jti, nowSeconds) {
      // Forget what can no longer be replayed (Map keeps insertion order: the oldest first).
      for (const [old, until] of seen) {
        if (until > nowSeconds) break;
        seen.delete(old);
      }
      if (seen.has(jti)) return false;
      seen.set(jti, nowSeconds + 2 * windowSeconds);
      return true;
    },
  };
}

/**
 * Checks the DPoP proof of a request that presents a DPoP-bound access token (RFC 9449 §4.3, §7.1):
 * a `dpop+jwt` signed with the public key in its own header (an asymmetric algorithm, a public key),
 * for this method (`htm`) and URL without query and fragment (`htu`), made within the window around
 * now (`iat`), used once (`jti`), for this token (`ath` = SHA-256 of it), by the key the token is
 * bound to (the key's thumbprint = the token's `cnf.jkt`).
 */
async function checkProof(proof: string, expected: { htm: string; htu: string; token: string; jkt: string }, replays: ReturnType<typeof createReplayCache>): Promise<void> {
  const refuse = (description: string) => new BearerError(401, 'invalid_dpop_proof', description, { scheme: 'DPoP' });
  let verified;
  try {
    verified = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: [...DPOP_ALGS] });
  } catch {
    throw refuse('the DPoP proof is not a valid dpop+jwt signed with the key in its header');
  }
  const { payload, protectedHeader } = verified;
  const now = Math.floor(Date.now() / 1000);
  if (typeof payload.iat !== 'number' || Math.abs(now - payload.iat) > DPOP_PROOF_WINDOW_SECONDS) throw refuse('the DPoP proof is not recent');
  if (payload.htm !== expected.htm) throw refuse('the DPoP proof is for another method');
  const htu = typeof payload.htu === 'string' ? URL.parse(payload.htu) : null;
  if (htu) {
    htu.search = '';
    htu.hash = '';
  }
  if (htu?.href !== expected.htu) throw refuse('the DPoP proof is for another URL');
  if (payload.ath !== createHash('sha256').update(expected.token).digest('base64url')) throw refuse('the DPoP proof is not for this access token');
  if (!protectedHeader.jwk || (await calculateJwkThumbprint(protectedHeader.jwk)) !== expected.jkt) {
    throw new BearerError(401, 'invalid_token', 'the access token is bound to another key than the DPoP proof', { scheme: 'DPoP' });
  }
  if (typeof payload.jti !== 'string' || payload.jti.length === 0 || payload.jti.length > 256) throw refuse('the DPoP proof has no jti');
  if (!replays.firstUse(payload.jti, now)) throw refuse('the DPoP proof was used before');
}

/**
 * Requires a valid access token; puts its caller in `ctx.state.caller`. A token bound to a DPoP key
 * (`cnf.jkt`) must come with the `DPoP` scheme and a valid proof of that key; sent as `Bearer` it
 * is refused (a stolen bound token is useless without the key).
 */
function authenticate(verify: (token: string) => Promise<Caller>, options: { publicOrigin: string | undefined }): Middleware<ApiState> {
  const replays = createReplayCache();
  return async (ctx, next) => {
    const header = ctx.get('Authorization');
    if (!header || !/^(Bearer|DPoP)(\s|$)/i.test(header)) throw new BearerError(401, undefined, 'an access token is required');
    const [, scheme = '', token] = CREDENTIALS.exec(header) ?? [];
    const dpop = scheme.toLowerCase() === 'dpop';
    if (!token) throw new BearerError(400, 'invalid_request', 'the Authorization header is malformed', { scheme: dpop ? 'DPoP' : 'Bearer' });
    let caller: Caller;
    try {
      caller = await verify(token);
    } catch (error) {
      if (error instanceof KeySetUnavailableError) throw error;
      const as = { scheme: dpop ? ('DPoP' as const) : ('Bearer' as const) };
      if (error instanceof joseErrors.JWTExpired) throw new BearerError(401, 'invalid_token', 'the access token has expired', as);
      if (error instanceof joseErrors.JOSEError) throw new BearerError(401, 'invalid_token', 'the access token is not valid for this API', as);
      throw error;
    }
    if (caller.jkt && !dpop) throw new BearerError(401, 'invalid_token', 'this access token is DPoP-bound: send it with the DPoP scheme and a DPoP proof', { scheme: 'DPoP' });
    if (dpop) {
      if (!caller.jkt) throw new BearerError(401, 'invalid_token', 'this access token is not DPoP-bound: send it with the Bearer scheme');
      const proofs = ctx.req.headersDistinct.dpop ?? [];
      if (proofs.length !== 1) throw new BearerError(400, 'invalid_request', 'send exactly one DPoP header with a DPoP-bound access token', { scheme: 'DPoP' });
      const htu = new URL(ctx.path, options.publicOrigin ?? `${ctx.protocol}://${ctx.host}`).href;
      await checkProof(proofs[0]!, { htm: ctx.method, htu, token, jkt: caller.jkt }, replays);
    }
    ctx.state.caller = caller;
    await next();
  };
}

/** Requires a scope of the caller's token: 403 `insufficient_scope` naming it otherwise. */
function requireScope(scope: string): Middleware<ApiState> {
  return async (ctx, next) => {
    if (!ctx.state.caller?.scopes.includes(scope)) {
      throw new BearerError(403, 'insufficient_scope', `this request needs the ${scope} scope`, { scope, scheme: ctx.state.caller?.jkt ? 'DPoP' : 'Bearer' });
    }
    await next();
  };
}

/** CORS for the listed browser origins: the preflight, and `WWW-Authenticate` readable by scripts. */
function cors(allowedOrigins: readonly string[]): Middleware<ApiState> {
  const allowed = new Set(allowedOrigins);
  return async (ctx, next) => {
    const origin = ctx.get('Origin');
    ctx.vary('Origin');
    if (!origin || !allowed.has(origin)) {
      await next();
      return;
    }
    ctx.set('Access-Control-Allow-Origin', origin);
    ctx.set('Access-Control-Expose-Headers', 'WWW-Authenticate');
    if (ctx.method === 'OPTIONS' && ctx.get('Access-Control-Request-Method')) {
      ctx.set('Access-Control-Allow-Methods', 'GET, POST');
      ctx.set('Access-Control-Allow-Headers', 'Authorization, Content-Type, DPoP');
      ctx.set('Access-Control-Max-Age', '600');
      ctx.status = 204;
      return;
    }
    await next();
  };
}

/** The caller `authenticate` put in the state (routes run only after it). */
function callerOf(ctx: Context): Caller {
  const caller = (ctx.state as ApiState).caller;
  if (!caller) throw new Error('route without authenticate()');
  return caller;
}

function readOrder(body: unknown): { item: string; quantity: number } | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { item, quantity } = body as Record<string, unknown>;
  if (typeof item !== 'string' || item.length === 0 || item.length > 200) return undefined;
  if (typeof quantity !== 'number' || !Number.isInteger(quantity) || quantity < 1 || quantity > 1000) return undefined;
  return { item, quantity };
}

/**
 * The orders API: `GET /orders` needs `read:orders`, `POST /orders` needs `write:orders`;
 * `GET /healthz` needs nothing. Orders live in memory.
 *
 * @example
 * ```ts
 * const app = createResourceServer({ issuer: 'http://localhost:3000', audience: 'https://api.example.com' });
 * const server = app.listen(4000);
 * ```
 */
export function createResourceServer(options: ResourceServerOptions): Koa<ApiState> {
  const verify = createTokenVerifier(options);
  const authenticated = authenticate(verify, { publicOrigin: options.publicOrigin });
  const orders: Order[] = [];
  const app = new Koa<ApiState>();
  const router = new Router<ApiState>();

  router.get('/healthz', (ctx) => {
    ctx.body = { ok: true };
  });
  router.get('/orders', authenticated, requireScope('read:orders'), (ctx) => {
    const caller = callerOf(ctx);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { caller: { sub: caller.subject, client_id: caller.clientId }, orders };
  });
  router.post('/orders', authenticated, requireScope('write:orders'), async (ctx) => {
    const order = readOrder(await coBody.json(ctx, { limit: '16kb' }).catch(() => undefined));
    if (!order) {
      ctx.status = 400;
      ctx.body = { error: 'invalid_order', error_description: 'send {"item": string, "quantity": 1..1000}' };
      return;
    }
    const created: Order = { id: orders.length + 1, ...order, placedBy: callerOf(ctx).subject };
    orders.push(created);
    ctx.status = 201;
    ctx.body = created;
  });

  app.use(cors(options.allowedOrigins ?? []));
  app.use(bearerErrors);
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

/** Reads ISSUER, AUDIENCE, PORT (4000), CORS_ORIGINS (comma-separated) and PUBLIC_ORIGIN, listens, stops on SIGTERM/SIGINT. */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<Server> {
  const { ISSUER, AUDIENCE } = env;
  if (!ISSUER || !AUDIENCE) throw new Error('set ISSUER (Gatehouse URL) and AUDIENCE (this API identifier)');
  const app = createResourceServer({
    issuer: ISSUER.replace(/\/$/, ''),
    audience: AUDIENCE,
    allowedOrigins: env.CORS_ORIGINS?.split(',').map((origin) => origin.trim()).filter(Boolean),
    publicOrigin: env.PUBLIC_ORIGIN,
  });
  const server = app.listen(Number(env.PORT ?? 4000));
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : env.PORT;
  process.stdout.write(`orders API for ${AUDIENCE} on http://localhost:${port}, trusting ${ISSUER}\n`);
  const stop = () => server.close();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return server;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
