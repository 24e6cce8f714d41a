import type { Context } from 'koa';
import type { EmailMailDeps } from '../services/email-verification.service.js';
import type { Kysely } from 'kysely';
import type { z } from 'zod';
import type { AuditActor } from '../audit/audit-log.js';
import type { AuditChainMonitor } from '../audit/audit-chain-monitor.js';
import type { CounterWindow } from '../observability/counter-window.js';
import type { Config } from '../config/load-config.js';
import type { RegistryCache } from '../registry/registry-cache.js';
import type { Database } from '../registry/tables.js';
import type { AccountBrowserSession } from '../oidc/adapters/session-index.js';
import type { grantScopes } from '../oidc/upstream.js';
import type { ClientServiceDeps } from '../services/clients.service.js';
import type { KeysServiceDeps } from '../services/keys.service.js';
import type { UpstreamProviderDeps } from '../services/upstream-providers.service.js';
import type { ProblemStatus } from './problem.js';

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** The document's tags, each with its description: every route names one. */
export const TAGS = {
  clients: 'Clients (RFC 7591 metadata names), their secrets and their grants at APIs',
  resources: 'Resource servers (APIs) and the scopes they offer',
  users: 'People who sign in, their passwords, and their personal API keys',
  providers: 'Upstream OpenID providers people may sign in with (federation); their client secrets are never returned',
  registration: 'Initial access tokens of dynamic client registration (RFC 7591)',
  audit: 'The append-only, hash-chained audit log',
  keys: 'Signing keys in KEYS_DIR, published in the JWKS: listed and rotated with an activation delay; never private key material',
  overview: 'Figures at a glance: counts, signing key ages, tokens issued in the last hour, the audit chain',
  meta: 'This document',
} as const;
export type Tag = keyof typeof TAGS;

/** Headers an answer may carry, as the document describes them. */
export const RESPONSE_HEADERS = {
  Location: { description: 'the new entry, under /admin/v1', schema: { type: 'string', format: 'uri-reference' } },
  ETag: { description: 'the version of the client (weak): send it back in If-Match to update only that version', schema: { type: 'string' } },
  'WWW-Authenticate': { description: 'Bearer challenge naming the error (RFC 6750)', schema: { type: 'string' } },
  'Retry-After': { description: 'seconds to wait before trying again', schema: { type: 'integer' } },
} as const;
export type ResponseHeader = keyof typeof RESPONSE_HEADERS;

/**
 * One answer a route may give. A success names the schema of its JSON body (none for 204); a
 * problem (4xx, 5xx) is always the problem document of its status, so it needs only a description.
 * Every header named here is sent with every answer of that status.
 */
export interface SuccessSpec {
  description: string;
  body?: z.ZodType;
  headers?: readonly ResponseHeader[];
}
export interface ProblemSpec {
  description: string;
  headers?: readonly ResponseHeader[];
}
export type Responses = { readonly [S in 200 | 201 | 204]?: SuccessSpec } & { readonly [S in ProblemStatus]?: ProblemSpec | string };

/** What a handler has besides the request: the registry, the cache, the audit log. */
export interface AdminRouteDeps {
  config: Config;
  db: Kysely<Database>;
  cache: RegistryCache;
  services: ClientServiceDeps;
  /** The upstream provider registry: the data keys client secrets are sealed with, and whether this is production. */
  providerServices: UpstreamProviderDeps;
  /** A change is seen at once by this node (others see it within REGISTRY_POLL_MS). */
  changed: () => Promise<unknown>;
  /** Who makes a change: the admin client, with the request; the services write the audit row in the change's transaction. */
  by: (ctx: Context) => AuditActor;
  /** Mail for the links the API may send (`send_verification` on POST /users); absent: none can be sent. */
  mail?: EmailMailDeps | undefined;
  /**
   * After a change that ended a person's sessions (disabled, deleted, a new password): ends their
   * stored browser sessions and tells their apps (back-channel logout). Never rejects: the change is
   * made, and a session it missed ends at its next use all the same. Absent: nothing more is done.
   */
  sessionsEnded?: ((accountId: string) => Promise<void>) | undefined;
  /** The signing keys in KEYS_DIR (changes recorded in this registry), and this node's reload of them after a change. */
  signingKeys: { deps: KeysServiceDeps; reload: () => Promise<unknown> };
  /** What the People routes read beside the registry (people.routes.ts); absent: those routes answer 503. */
  people?: PeopleAccessDeps | undefined;
  /** The audit chain's verification, cached and bounded (audit-chain-monitor.ts). */
  auditChain: AuditChainMonitor;
  /** Tokens issued by this node over the last hour, from the metrics' counter (counter-window.ts). */
  tokensIssued: CounterWindow;
}

/**
 * What the People routes need from the provider's side, handed in by the server so that the admin
 * API never loads oidc-provider: a person's browser sessions (the session index), the end of a
 * removed consent's codes and opaque tokens (the ephemeral store), and how a stored Grant reads.
 */
export interface PeopleAccessDeps {
  /** The person's live browser sessions, newest sign-in first (oidc/adapters/session-index.ts listAccountSessions). */
  listSessions: (accountId: string) => Promise<AccountBrowserSession[]>;
  /** Revokes the codes and opaque tokens issued under these grants (EphemeralStore#revokeByGrantId). */
  revokeGrants: (grantIds: readonly string[]) => Promise<void>;
  /** The scopes a stored Grant holds (oidc/upstream.ts). */
  grantScopes: typeof grantScopes;
}

type AnyObject = z.ZodObject;
type Empty = z.ZodObject<Record<never, never>>;

/** What the guard hands a handler: params, query and headers parsed; the body as sent, known to be valid. */
export interface RouteInput<P extends AnyObject, Q extends AnyObject, H extends AnyObject, B extends z.ZodType> {
  params: z.output<P>;
  query: z.output<Q>;
  headers: z.output<H>;
  body: z.input<B>;
}

/**
 * An admin route as it declares itself, in the manner of Logto's koa-guard: its inputs and every
 * answer it may give, as zod schemas. The guard validates the inputs against them, test mode checks
 * every answer against them, and the OpenAPI document is generated from them.
 */
export interface RouteSpec<P extends AnyObject = Empty, Q extends AnyObject = Empty, H extends AnyObject = Empty, B extends z.ZodType = z.ZodUndefined> {
  method: HttpMethod;
  /** The koa-router pattern under /admin/v1 (also the route label of logs and metrics). */
  path: string;
  /** The path in the document, when its parameter names differ from the pattern's (matched by position). */
  docPath?: string;
  operationId: string;
  summary: string;
  description: string;
  tag: Tag;
  /** True for the one route that needs no admin token (the document itself). */
  public?: boolean;
  params?: P;
  query?: Q;
  /** Request headers, by their canonical name (If-Match). */
  headers?: H;
  /** A JSON object body, validated by this schema (the same one its service parses). */
  body?: B;
  responses: Responses;
  handler: (ctx: Context, input: RouteInput<P, Q, H, B>) => Promise<void> | void;
}

/** A route with its types erased, as the router and the document generator take it. */
export type AdminRoute = RouteSpec<AnyObject, AnyObject, AnyObject, z.ZodType>;

/**
 * Declares a route: the handler's input is typed from the schemas.
 *
 * @example
 * defineRoute({
 *   method: 'get', path: '/users/:id', operationId: 'getUser', tag: 'users',
 *   summary: 'Get a user', description: 'One user, by id.',
 *   params: z.object({ id: z.string() }),
 *   responses: { 200: { description: 'Found', body: userOut }, 404: 'No such user', ...AUTH_ERRORS },
 *   async handler(ctx, { params }) { ctx.body = userToJson(await getUser(db, params.id)); },
 * });
 */
export function defineRoute<P extends AnyObject = Empty, Q extends AnyObject = Empty, H extends AnyObject = Empty, B extends z.ZodType = z.ZodUndefined>(
  spec: RouteSpec<P, Q, H, B>,
): AdminRoute {
  return spec as unknown as AdminRoute;
}

/** The refusals of the admin token check, on every route but the document. */
export const AUTH_ERRORS = {
  401: { description: 'No access token, or one that is neither an admin client token nor a console token with its DPoP proof (error="invalid_token" or "invalid_dpop_proof")', headers: ['WWW-Authenticate'] },
  403: { description: 'The access token lacks the admin scope (error="insufficient_scope"), or the console\'s person does not hold the admin role (forbidden)', headers: ['WWW-Authenticate'] },
  503: { description: 'The registry database is unreachable: nothing was changed, try again shortly', headers: ['Retry-After'] },
} as const satisfies Responses;

/** The refusals of reading a JSON body, on every route that takes one (400 is declared by the route). */
export const BODY_ERRORS = {
  413: 'The body is larger than the server accepts (BODY_LIMIT_BYTES)',
  415: 'The body is not sent as application/json',
} as const satisfies Responses;
