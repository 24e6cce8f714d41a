import { AsyncLocalStorage } from 'node:async_hooks';
import type { Context, Middleware } from 'koa';
import { errors, ExternalSigningKey, interactionPolicy, Provider, type AdapterPayload, type JWK, type KoaContextWithOIDC, type UnknownObject } from 'oidc-provider';
import { isLoopbackHostname } from '../config/protocol.js';
import { LocalSigner } from '../keys/signing-key.js';
import type { ClientRecord } from '../registry/client.repository.js';
import type { RegistryCache } from '../registry/registry-cache.js';
import { isClientSecretDigest } from '../services/client-secrets.js';
import { isUnreachable, type Dependency } from '../services/dependency-outage.js';

/*
 * Everything Gatehouse relies on inside oidc-provider (and koa-router) beyond their documented
 * configuration, each behind a name. test/unit/oidc/upstream.test.ts checks every one of them
 * against the installed version, in process: when an upgrade changes one, that test says which.
 * docs/upgrading-oidc-provider.md says how to upgrade.
 *
 * One reliance has no code of its own here, because it is an order, not a value: the refresh grant
 * (lib/actions/grants/refresh_token.js) consumes the presented refresh token and then saves its
 * successor, both in the request's Provider.ctx, and stores nothing else of the durable models in
 * between. The durable adapter defers the consume and writes it with that save as one statement
 * (oidc/adapters/rotation-scope.ts): atomic rotation depends on that order.
 *
 * Another lives below this layer so that the CLI never loads oidc-provider: the row that
 * oidc-provider's InitialAccessToken model stores (services/registration.service.ts,
 * initialAccessTokenPayload, re-exported here), which the CLI and the admin API write directly.
 *
 * This module sits between services/ and oidc/adapters/ in the import order: the adapters use it,
 * and it uses nothing of oidc/.
 */

export { initialAccessTokenPayload } from '../services/registration.service.js';

/**
 * The model oidc-provider detects replays with (DPoP proof and client assertion `jti`s):
 * `ReplayDetection.unique` calls the adapter's `find` for an id and, only when it finds nothing,
 * `upsert` for the same id. The store adapter makes that `find` an atomic claim (store-adapter.ts).
 */
export const REPLAY_DETECTION_MODEL = 'ReplayDetection';

/** The oidc-provider version range these reliances were checked against (package.json pins the same). */
export const CHECKED_AGAINST = '~9.13.3';

// --- The request an adapter call belongs to -------------------------------------------------

/**
 * The Koa context of the request oidc-provider is serving, or undefined outside one. oidc-provider
 * runs each request inside its own AsyncLocalStorage and exposes it as the static `Provider.ctx`;
 * the adapters hang per-request state off it instead of adding a second async-context store.
 */
export const currentProviderRequest = (): object | undefined => Provider.ctx;

// --- Errors ------------------------------------------------------------------------------------

/** What oidc-provider's refresh grant says of a spent refresh token (its `error_detail`); the durable adapter says the same of a race. */
export const REFRESH_TOKEN_REUSED = 'refresh token already used';

/** The error the refresh grant throws for a spent refresh token: invalid_grant, with REFRESH_TOKEN_REUSED as its detail. */
export function refreshTokenReused(): InstanceType<typeof errors.InvalidGrant> {
  return new errors.InvalidGrant(REFRESH_TOKEN_REUSED);
}

/** True for the error a `grant.error` listener gets when a spent refresh token was presented (then the whole grant is revoked). */
export function isRefreshTokenReuse(error: { error?: unknown; error_detail?: unknown; message?: unknown } | undefined): boolean {
  return error?.error === 'invalid_grant' && (error.error_detail === REFRESH_TOKEN_REUSED || error.message === REFRESH_TOKEN_REUSED);
}

/**
 * oidc-provider reads bodies itself (56 KiB at most) and calls an oversized one a parse failure
 * (invalid_request, 400): the only sign it was too large is the message of the error's cause.
 */
export function isBodyTooLarge(error: { cause?: unknown } | undefined): boolean {
  return (error?.cause as { message?: unknown } | undefined)?.message === 'request entity too large';
}

/**
 * True for oidc-provider's answer to a registration update (RFC 7592) that carries a client_secret
 * other than the stored one: the stored one is a digest here, so any secret sent is refused so.
 */
export function isClientSecretUpdateRefusal(errorDescription: unknown): boolean {
  return typeof errorDescription === 'string' && errorDescription.startsWith('provided client_secret does not match');
}

/**
 * oidc-provider's `temporarily_unavailable`, answered 503 (its own class answers 400): the
 * request may succeed if retried once the database or store is back. Nothing was changed. The error
 * that says the service is unreachable is kept as its `cause` (so isUnreachable knows this one too),
 * not handed to the provider's constructor, which would copy its message into `error_detail`.
 */
export class DependencyUnavailable extends errors.TemporarilyUnavailable {
  readonly dependency: Dependency;

  constructor(dependency: Dependency, cause?: unknown) {
    super(`the ${dependency === 'database' ? 'registry database' : 'session store'} is unreachable: try again shortly`);
    this.dependency = dependency;
    this.status = 503;
    this.statusCode = 503;
    this.expose = true;
    if (cause !== undefined) this.cause = cause;
  }
}

/**
 * oidc-provider's `temporarily_unavailable` answered 429 (the caller should wait: the answer's
 * Retry-After, set by the thrower, says how long), as DependencyUnavailable answers it 503.
 */
export class TooManyAttempts extends errors.TemporarilyUnavailable {
  constructor(description: string) {
    super(description);
    this.status = 429;
    this.statusCode = 429;
    this.expose = true;
  }
}

/** Turns an unreachable database or store into DependencyUnavailable on a promise already under way. */
export function rethrowUnreachable(dependency: Dependency): (error: unknown) => never {
  return (error) => {
    throw isUnreachable(error) ? new DependencyUnavailable(dependency, error) : error;
  };
}

// --- Clients -----------------------------------------------------------------------------------

type ProviderClient = NonNullable<Awaited<ReturnType<Provider['Client']['find']>>>;

/**
 * Replaces `provider.Client.find`. oidc-provider builds a Client from the adapter's metadata and, to
 * tell whether it built one from the same metadata before, serialises and hashes all of it on every
 * request that names a client. The registry cache hands out the same record until the client
 * changes (or the cache is dropped): the Client built while that record was current is kept for it,
 * and the next request takes it without the hash. A changed client is a new record, so it is built
 * afresh.
 */
export function rememberBuiltClients(provider: Provider, cache: RegistryCache): void {
  const Client = provider.Client;
  const build = Client.find.bind(Client);
  const built = new WeakMap<ClientRecord, ProviderClient>();
  Client.find = async (id: string) => {
    let record: ClientRecord | undefined;
    try {
      record = typeof id === 'string' && id.length > 0 ? await cache.getClient(id) : undefined;
    } catch {
      // Left to the provider's own lookup below, whose adapter answers an outage as 503.
    }
    const known = record && built.get(record);
    if (known) return known;
    const client = await build(id);
    if (record && client) built.set(record, client);
    return client;
  };
}

/**
 * Replaces `Client.prototype.compareClientSecret`, which oidc-provider awaits to check a presented
 * secret against the client's `client_secret` (here the stored digest): `verify` compares them.
 */
export function compareClientSecretsWith(provider: Provider, verify: (presented: string, stored: string | undefined) => boolean): void {
  provider.Client.prototype.compareClientSecret = function compareClientSecret(this: { clientSecret?: string }, actual: string) {
    return Promise.resolve(verify(actual, this.clientSecret));
  };
}

/**
 * The client_secret oidc-provider just issued, from the metadata it hands the Client adapter's
 * upsert (or the registration answer): it echoes the `client_secret` the adapter gave it (the stored
 * digest) unless it issued a new one. Undefined when it only echoed.
 */
export function issuedClientSecret(metadata: { client_secret?: unknown }): string | undefined {
  const secret = metadata.client_secret;
  return typeof secret === 'string' && !isClientSecretDigest(secret) ? secret : undefined;
}

// --- Authentication context (acr, amr) ------------------------------------------------------

/**
 * The claims that say how a person signed in, which Gatehouse lists under the `openid` scope
 * (`claims.openid`). oidc-provider's IdToken keeps a claim only when a scope's claim list (or the
 * claims parameter, off here) names it and it is supported: the `acr` and `amr` an interaction
 * result gives the session (`login: { accountId, acr, amr }`, copied by the resume step) reach an
 * ID token only so, and then reach every ID token of that sign-in, consent or not (both are
 * non-rejectable). Userinfo is unchanged: findAccount's claims() never returns them.
 */
export const AUTHENTICATION_CLAIMS = ['acr', 'amr'] as const;

/** A check of the login prompt: a reason (in `prompt.reasons`), whether to prompt, and what to put in `prompt.details`. */
export interface LoginCheck {
  reason: string;
  description: string;
  check(ctx: KoaContextWithOIDC): Promise<boolean>;
  details(ctx: KoaContextWithOIDC): Promise<UnknownObject>;
}

/**
 * oidc-provider's default interaction policy (`interactionPolicy.base()`: login, then consent) with
 * one more check on its login prompt. What Gatehouse relies on: every check of the login prompt
 * runs (its reasons are all listed, `no_session` first), the prompt's details merge each prompting
 * check's details, the resume step runs the policy again after an interaction finishes, and under
 * prompt=none a prompting check is answered with its error at the redirect_uri: login_required,
 * given here as the login prompt's checks have it.
 */
export function policyWithLoginCheck(...checks: LoginCheck[]): interactionPolicy.Prompt[] {
  const policy = interactionPolicy.base();
  const login = policy.get('login');
  if (!login || !login.checks.get('no_session')) throw new Error('oidc-provider\'s base interaction policy no longer has a login prompt with a no_session check');
  for (const added of checks) login.checks.add(new interactionPolicy.Check(added.reason, added.description, 'login_required', (ctx) => added.check(ctx), (ctx) => added.details(ctx)));
  return policy;
}

/**
 * The interaction result that ends a sign-in at the client with `unmet_authentication_requirements`
 * (OpenID Connect Core 1.0 errata / RFC 9470): the resume step throws oidc-provider's error class of
 * the result's `error` name, which answers at the redirect_uri (with the state), no code.
 */
export function unmetAuthenticationRequirements(description: string): { error: 'unmet_authentication_requirements'; error_description: string } {
  return { error: 'unmet_authentication_requirements', error_description: description };
}

// --- Routes ------------------------------------------------------------------------------------

/**
 * Provider pre-middleware: the resume endpoint (GET <authorization endpoint>/:uid) takes its
 * parameters from the stored interaction, and oidc-provider never sends a query to it. Only its
 * error handler reads one, and oidc-provider 9.13 crashes there (a 500) on a query naming a known
 * client_id: it recovers the redirect_uri into parameters that resume has not assembled. So a query
 * on a resume request is dropped; an expired or unknown interaction then gets the error page.
 *
 * @example
 * provider.use(ignoreResumeQuery(provider.pathFor('authorization')));
 */
export function ignoreResumeQuery(authorizationPath: string): Middleware {
  const prefix = `${authorizationPath}/`;
  return (ctx, next) => {
    if (ctx.querystring && ctx.path.startsWith(prefix)) ctx.querystring = '';
    return next();
  };
}

/** The directives of a Content-Security-Policy, by name. */
function cspDirectives(csp: string): Map<string, string[]> {
  const parsed = new Map<string, string[]>();
  for (const directive of csp.split(';')) {
    const [name, ...values] = directive.trim().split(/\s+/);
    if (name) parsed.set(name.toLowerCase(), values);
  }
  return parsed;
}

/**
 * The script hashes oidc-provider added to the answer's CSP: its self-submitting pages (form_post,
 * web_message) push the SHA-256 of their inline script onto a `script-src` directive they find on
 * the answer, and add none when there is no such directive.
 */
export function providerScriptHashes(csp: string): string[] {
  return (cspDirectives(csp).get('script-src') ?? []).filter((value) => value.startsWith("'sha256-"));
}

/** The pattern of the @koa/router route that matched the request (`/admin/v1/clients/:id`), from its undocumented `_matchedRoute`. */
export function matchedRoutePattern(ctx: Context): string | undefined {
  const pattern = (ctx as { _matchedRoute?: unknown })._matchedRoute;
  return typeof pattern === 'string' ? pattern : undefined;
}

// --- Signing -----------------------------------------------------------------------------------

/**
 * oidc-provider's `features.externalSigningSupport`: experimental, so it takes an acknowledgement of
 * the draft version it implements, which changes when that feature does.
 */
export const EXTERNAL_SIGNING = { enabled: true, ack: 'experimental-01' } as const;

/** A LocalSigner in the form oidc-provider's external signing support takes in `jwks.keys`. */
class ProviderSigningKey extends ExternalSigningKey {
  readonly #signer: LocalSigner;

  constructor(signer: LocalSigner) {
    super();
    this.#signer = signer;
  }

  override get kid(): string {
    return this.#signer.kid;
  }

  override get alg(): string {
    return this.#signer.alg;
  }

  override keyObject() {
    return this.#signer.publicKey;
  }

  override sign(data: Buffer): Promise<Buffer> {
    return this.#signer.sign(data);
  }
}

/**
 * A private JWK as a key oidc-provider signs with through EXTERNAL_SIGNING: node:crypto signs on the
 * libuv pool (keys/signing-key.ts).
 *
 * @example
 * new Provider(issuer, { jwks: { keys: jwks.map(providerSigningKey) }, features: { externalSigningSupport: EXTERNAL_SIGNING } });
 */
export function providerSigningKey(jwk: JWK): ExternalSigningKey {
  return new ProviderSigningKey(new LocalSigner(jwk as ConstructorParameters<typeof LocalSigner>[0]));
}

// --- The browser session, read by the parent app ------------------------------------------

/**
 * The provider's browser session as a route of the parent Koa app sees it (the account page):
 * `provider.Session.get(ctx)` outside the provider's own middleware (no `ctx.oidc`) builds a
 * provider context from `ctx.req`/`ctx.res` to read the session cookie with the provider's cookie
 * keys, and finds the stored session; without a cookie (or with a stale one) it answers a new,
 * unsaved session with no `accountId`. Nothing is written to the browser or the store.
 *
 * @example
 * const { accountId, loginTs, acr, amr, uid } = await browserSession(provider, ctx);
 */
export function browserSession(provider: Provider, ctx: Context): ReturnType<Provider['Session']['get']> {
  return provider.Session.get(ctx);
}

// --- The sessions of an account (the account page's "Sessions") ----------------------------

/** What the account's session index needs of a Session oidc-provider stores. */
export interface SessionFields {
  accountId: string;
  /** Stable for the session's life (a sign-in changes the session's id, its cookie value, not its uid). */
  uid: string;
  /** When its person signed in (epoch seconds). */
  loginTs: number | undefined;
}

/**
 * Reads a stored Session payload (the adapter's `upsert` and `find` of model `Session`, whose id is
 * the `_session` cookie's value): `accountId` once signed in, `uid`, `loginTs`. Undefined for a
 * session nobody signed in to, or a payload of another shape.
 */
export function sessionFields(payload: AdapterPayload | undefined): SessionFields | undefined {
  if (!payload) return undefined;
  const { accountId, uid, loginTs } = payload as { accountId?: unknown; uid?: unknown; loginTs?: unknown };
  if (typeof accountId !== 'string' || accountId === '' || typeof uid !== 'string' || uid === '') return undefined;
  return { accountId, uid, loginTs: typeof loginTs === 'number' ? loginTs : undefined };
}

/**
 * The browser behind the provider request an adapter call belongs to (currentProviderRequest, a
 * Koa context): its User-Agent (at most 256 characters) and address. Undefined outside a request.
 */
export function providerRequestClient(request: object | undefined): { userAgent: string | null; ip: string | null } | undefined {
  const ctx = request as { get?: (name: string) => string; ip?: unknown } | undefined;
  if (!ctx || typeof ctx.get !== 'function') return undefined;
  const userAgent = ctx.get('user-agent');
  return { userAgent: userAgent ? userAgent.slice(0, 256) : null, ip: typeof ctx.ip === 'string' && ctx.ip !== '' ? ctx.ip : null };
}

/**
 * What a stored Grant (oidc-provider's payload, in oidc_durable) gives its client: the OpenID
 * scopes (`openid.scope`) and, per API (resource indicator), that API's scopes (`resources`), as
 * `Grant#getOIDCScope` and `Grant#getResourceScope` read them. Rejected scopes are not granted.
 */
export function grantScopes(payload: Record<string, unknown>): { openid: string[]; resources: Array<{ resource: string; scopes: string[] }> } {
  const words = (value: unknown) => (typeof value === 'string' ? value.split(' ').filter((word) => word !== '') : []);
  const openid = (payload.openid ?? {}) as { scope?: unknown };
  const resources = (payload.resources ?? {}) as Record<string, unknown>;
  return {
    openid: words(openid.scope),
    resources: Object.entries(typeof resources === 'object' && resources !== null ? resources : {}).map(([resource, scope]) => ({ resource, scopes: words(scope) })),
  };
}

// --- Token requests without client authentication -----------------------------------------

/**
 * invalid_grant that tells the caller why: oidc-provider's InvalidGrant answers the fixed
 * description "grant request is invalid" and keeps its argument as `error_detail`, which it never
 * sends; the description of the answer is the error's `error_description`, set here to the same text.
 * For refusals whose reason is the caller's own business (their API key expired), never for ones
 * that would tell a stranger something.
 */
export function invalidGrantSaying(description: string): InstanceType<typeof errors.InvalidGrant> {
  const error = new errors.InvalidGrant(description);
  error.error_description = description;
  return error;
}

/** A token request's body as oidc-provider parsed it (querystring.parse: strings, or arrays of them). */
export type TokenRequestBody = Record<string, string | string[] | undefined>;

/**
 * Lets a token request that carries no client authentication be served as `clientId`'s (a built-in
 * public client, token_endpoint_auth_method `none`) when `applies(body)` says so: oidc-provider
 * authenticates a client on every token request and, without a client_id, answers
 * invalid_request "no client authentication mechanism provided" before any grant handler runs.
 *
 * What this relies on: each request's `ctx.oidc` is an instance of `provider.OIDCContext`; the token
 * endpoint's body parser stores the parsed form as `ctx.oidc.body` (shared/selective_body.js), and
 * the token parameters (client_id among them) are copied out of it just after
 * (actions/token.js, assembleTokenParams). An accessor for `body` on OIDCContext's prototype sees
 * that assignment first and adds `client_id` when the request has no Authorization header, no
 * client_id, no client_secret and no client_assertion. Any other request is left as it came.
 *
 * @example
 * supplyClientId(provider, 'gatehouse-api-keys', (body) => body.subject_token_type === API_KEY_TOKEN_TYPE);
 */
export function supplyClientId(provider: Provider, clientId: string, applies: (body: TokenRequestBody) => boolean): void {
  const prototype = provider.OIDCContext.prototype as object;
  const stored = new WeakMap<object, unknown>();
  Object.defineProperty(prototype, 'body', {
    configurable: true,
    get(this: object) {
      return stored.get(this);
    },
    set(this: { route?: string; ctx?: Context }, value: unknown) {
      if (
        this.route === 'token' &&
        value !== null &&
        typeof value === 'object' &&
        this.ctx?.headers.authorization === undefined
      ) {
        const body = value as TokenRequestBody;
        if (body.client_id === undefined && body.client_secret === undefined && body.client_assertion === undefined && applies(body)) {
          body.client_id = clientId;
        }
      }
      stored.set(this, value);
    },
  });
}

// --- The device flow (RFC 8628) -------------------------------------------------------------------

/** Why oidc-provider refused a user code on /device, or that the person cancelled (oidc/device-flow.ts). */
export type DeviceCodeRefusal = 'not_found' | 'expired' | 'already_used' | 'no_code' | 'aborted';

/**
 * oidc-provider refuses a user code with errors of its own (lib/helpers/re_render_errors.js, not
 * exported) and hands them to `userCodeInputSource`: told apart by their class names.
 */
const DEVICE_CODE_REFUSALS: Readonly<Record<string, DeviceCodeRefusal>> = {
  NotFoundError: 'not_found',
  ExpiredError: 'expired',
  AlreadyUsedError: 'already_used',
  NoCodeError: 'no_code',
  AbortedError: 'aborted',
};

/** What the error `userCodeInputSource` got says of the user code; undefined for any other error. */
export function deviceCodeRefusalOf(error: unknown): DeviceCodeRefusal | undefined {
  const name = (error as { name?: unknown } | undefined)?.name;
  return typeof name === 'string' && Object.hasOwn(DEVICE_CODE_REFUSALS, name) ? DEVICE_CODE_REFUSALS[name] : undefined;
}

/** What a poll check sees of a device code. */
export interface PolledDeviceCode {
  /** The device code itself. */
  jti: string;
  clientId: string;
  accountId?: string | undefined;
  error?: string | undefined;
  consumed?: unknown;
  isExpired: boolean;
}

/**
 * Replaces `provider.DeviceCode.find` so that `check` sees every device code the token endpoint
 * reads, with the authenticated client's id, and may throw the answer (slow_down). Reliance: the
 * device_code grant (lib/actions/grants/device_code.js) reads the code with DeviceCode.find (through
 * findGrantSource) before it answers authorization_pending, and an error thrown there is the answer.
 * Reads elsewhere (the /device pages find codes by user code, the resume by id) are not checked.
 */
export function beforeDeviceCodePoll(provider: Provider, check: (code: PolledDeviceCode, clientId: string | undefined) => Promise<void>): void {
  const DeviceCode = provider.DeviceCode as unknown as { find(id: string, options?: { ignoreExpiration?: boolean }): Promise<unknown> };
  const find = DeviceCode.find.bind(DeviceCode);
  DeviceCode.find = async (id, options) => {
    const code = await find(id, options);
    const ctx = Provider.ctx as { oidc?: { route?: string; client?: { clientId: string } } } | undefined;
    if (code && ctx?.oidc?.route === 'token') await check(code as PolledDeviceCode, ctx.oidc.client?.clientId);
    return code;
  };
}
// --- Back-channel logout (OpenID Connect Back-Channel Logout 1.0) --------------------------

/**
 * One logout token to deliver: to `clientId`'s backchannel_logout_uri, about `accountId` (its
 * `sub`) and, for a client that registered backchannel_logout_session_required, the session's
 * `sid`. `send` builds a fresh token (its own `jti` and `iat`) and POSTs it once; it rejects when
 * the client did not answer 200 or 204 (deliveryStatus reads the status), or when `signal` aborts.
 */
export interface LogoutDelivery {
  clientId: string;
  accountId: string;
  sid: string | undefined;
  send(signal: AbortSignal): Promise<void>;
}

/** What a delivery of ours asks of the fetch it runs under (outboundFetch). */
interface OutboundRequest {
  signal: AbortSignal;
  /** Whether a URL whose host is a loopback name (localhost, 127.x, [::1]) may be reached. */
  allowLoopback: boolean;
}

const outboundRequest = new AsyncLocalStorage<OutboundRequest>();

/**
 * oidc-provider's `fetch` option, for every request it makes to the outside (a jwks_uri, a logout
 * token). Its fetchRequest helper (lib/helpers/fetch_request.js) sets `signal` to a fixed
 * `AbortSignal.timeout(2500)` and `dispatcher` to an undici Agent that refuses special-use addresses
 * (loopback, private, link-local: its SSRF protection), then calls this with them. A request made
 * by a back-channel logout delivery (deferBackchannelLogout's `send`) instead takes the delivery's
 * signal (its own timeout, and shutdown), and, when the delivery allows it, reaches a URL whose host
 * is a loopback name without that Agent (a receiver on this machine, outside production). Every
 * other request goes out exactly as oidc-provider made it.
 *
 * @example
 * new Provider(issuer, { fetch: outboundFetch(), features: { backchannelLogout: { enabled: true } } });
 */
export function outboundFetch(base: typeof fetch = (input, init) => globalThis.fetch(input, init)): (input: string | URL | Request, init?: RequestInit) => Promise<Response> {
  return (input, init) => {
    const delivery = outboundRequest.getStore();
    if (!delivery || !init) return base(input, init);
    const options: RequestInit & { dispatcher?: unknown } = { ...init, signal: delivery.signal };
    const url = URL.parse(input instanceof Request ? input.url : String(input));
    if (delivery.allowLoopback && url && isLoopbackHostname(url.hostname)) delete options.dispatcher;
    return base(input, options);
  };
}

/**
 * Replaces `Client.prototype.backchannelLogout(sub, sid)`, which oidc-provider calls for each client
 * of a session that ends at its end_session endpoint (lib/actions/end_session.js) and AWAITS, all of
 * them, before it answers the person's browser. The replacement hands the delivery to `enqueue` and
 * resolves at once (so the provider emits `backchannel.success` when the delivery is queued, not
 * when it is delivered). The delivery's `send` runs the original method: it builds the logout token
 * as an IdToken of use `logout` (typ `logout+jwt`, `iss`, `aud` the client, `iat`, `exp` in 2
 * minutes, a fresh `jti`, `events`, `sub`, and `sid` when the client registered
 * backchannel_logout_session_required; never a `nonce`) and POSTs it as `logout_token` through
 * outboundFetch, under the signal `send` is given. It needs no request: it runs after the answer.
 * Calling `client.backchannelLogout(sub, sid)` on a Client of `provider` (Client.find) queues one
 * delivery the same way, for sessions Gatehouse ends itself.
 */
export function deferBackchannelLogout(provider: Provider, enqueue: (delivery: LogoutDelivery) => void, options: { allowLoopback: boolean }): void {
  type Deliverable = { clientId: string; backchannelLogout(sub: string, sid: string | undefined): Promise<void> };
  const prototype = provider.Client.prototype as unknown as Deliverable;
  const original = prototype.backchannelLogout;
  if (typeof original !== 'function') throw new Error("oidc-provider's Client no longer has backchannelLogout");
  prototype.backchannelLogout = function backchannelLogout(this: Deliverable, sub: string, sid: string | undefined) {
    enqueue({
      clientId: this.clientId,
      accountId: sub,
      sid,
      send: (signal) => outboundRequest.run({ signal, allowLoopback: options.allowLoopback }, () => original.call(this, sub, sid)),
    });
    return Promise.resolve();
  };
}

/** The HTTP status a client answered a logout token with, from the error `send` rejected with (the original method keeps the response on it); undefined when there was no answer. */
export function deliveryStatus(error: unknown): number | undefined {
  const status = (error as { response?: { status?: unknown } } | undefined)?.response?.status;
  return typeof status === 'number' ? status : undefined;
}

/**
 * The clients a stored Session payload is signed in to, with the `sid` oidc-provider made for each
 * (`authorizations`: client id → { sid, grantId, persistsLogout }, as Session#sidFor reads it).
 */
export function sessionAuthorizations(payload: AdapterPayload | undefined): Array<{ clientId: string; sid: string | undefined }> {
  const authorizations = (payload as { authorizations?: unknown } | undefined)?.authorizations;
  if (typeof authorizations !== 'object' || authorizations === null) return [];
  return Object.entries(authorizations as Record<string, unknown>).map(([clientId, value]) => {
    const sid = (value as { sid?: unknown } | null)?.sid;
    return { clientId, sid: typeof sid === 'string' && sid !== '' ? sid : undefined };
  });
}

/**
 * Queues one logout token for `clientId` about `accountId` (and `sid`), if the client exists and
 * registered a backchannel_logout_uri: `provider.Client.find`, then its backchannelLogout, which
 * deferBackchannelLogout replaced on `provider` (it queues and resolves at once). True when queued.
 */
export async function queueBackchannelLogout(provider: Provider, clientId: string, accountId: string, sid: string | undefined): Promise<boolean> {
  const client = (await provider.Client.find(clientId)) as unknown as
    | { backchannelLogoutUri?: string; backchannelLogout(sub: string, sid: string | undefined): Promise<void> }
    | undefined;
  if (!client?.backchannelLogoutUri) return false;
  await client.backchannelLogout(accountId, sid);
  return true;
}
