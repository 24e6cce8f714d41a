import coBody from 'co-body';
import Router from '@koa/router';
import type { Context, Next } from 'koa';
import { errors, type Provider } from 'oidc-provider';
import { ACR_BASIC, ACR_MFA, passwordSignIn, type Amr } from '../accounts/authentication-context.js';
import type { AuditEntry, AuditSink } from '../audit/audit-log.js';
import { emailFingerprint } from '../audit/security-events.js';
import type { Config } from '../config/load-config.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics, SecondFactorMethod } from '../observability/metrics.js';
import { MFA_REQUIRED, type MfaReason } from '../oidc/mfa-policy.js';
import { peopleClientName } from '../oidc/error-page.js';
import { pageCsp, scriptNonce, type Pages } from '../oidc/pages.js';
import { unmetAuthenticationRequirements } from '../oidc/upstream.js';
import type { RegistryCache } from '../registry/registry-cache.js';
import { isUnreachable, RETRY_AFTER_SECONDS } from '../services/dependency-outage.js';
import { ConflictError, NotFoundError } from '../services/errors.js';
import { hasPasskey, type PasskeyDeps } from '../services/passkeys.service.js';
import {
  beginTotpEnrolment,
  confirmTotpEnrolment,
  hasAnySecondFactor,
  hasSecondFactor,
  PENDING_TOTP_TTL_MS,
  resumeTotpEnrolment,
  secondFactorMethodOf,
  verifySecondFactor,
  WrongCodeError,
  type SecondFactorDeps,
  type SecondFactorRefusal,
  type TotpEnrolment,
} from '../services/second-factors.service.js';
import type { SignInRecorder } from '../services/sign-ins.service.js';
import type { SignInMethod } from '../registry/tables.js';
import { epochSeconds, type EphemeralStore } from '../store/ephemeral-store.js';
import { createCsrf } from './csrf.js';
import type { LoginLimiter } from './login-limiter.js';
import { registerPasskeyRoutes } from './passkey.routes.js';
import { describeScopes } from './scopes.js';
import { totpQrSvg } from './totp-qr.js';
import type { UpstreamRoutes } from './upstream.routes.js';
import type { SignupRoutes } from './signup.routes.js';
import type { MessageKey, Translate } from '../ui/i18n.js';
import { setUserLocale } from '../registry/user.repository.js';
import { followUiLocales, inMinutes, requestLocale, translatorOf } from './page-locale.js';

/** What sign-in needs from the accounts service. */
export interface Authenticator {
  authenticate(
    email: string,
    password: string,
  ): Promise<{ ok: true; user: { id: string; email: string; sessionsValidAfter?: Date | null } } | { ok: false; reason: string }>;
  findById(id: string): Promise<{ id: string; email: string } | undefined>;
}

/**
 * oidc-provider keeps a sign-in's time in whole seconds, and a session of the same second as the
 * account's cutoff (a password change) counts as before it (see sessionEnded): a sign-in that follows
 * a password change within that second waits for the next one, at most a second, so its session is
 * not ended at once.
 */
async function waitOutCutoffSecond(cutoff: Date | null | undefined): Promise<void> {
  if (!cutoff) return;
  const until = Math.ceil(cutoff.getTime() / 1000) * 1000;
  // A cutoff in the future (another node's clock) is not waited for beyond a second.
  if (until - Date.now() > 1000) return;
  for (let wait = until - Date.now(); wait > 0; wait = until - Date.now()) await new Promise((resolve) => setTimeout(resolve, wait + 1));
}

const MAX_FIELD = 1024;

const REASONS: Record<string, MessageKey> = {
  no_session: 'login.reason.no_session',
  login_prompt: 'login.reason.login_prompt',
  max_age: 'login.reason.max_age',
  id_token_hint: 'login.reason.other_account',
  claims_id_token_sub_value: 'login.reason.other_account',
  mfa_required: 'login.reason.mfa_required',
  // The console after its idle timeout (oidc/mfa-policy.ts): "The app asked you to sign in again."
  console_idle: 'login.reason.login_prompt',
};

/** Why the second-factor page says a second factor is needed, by the mfa_required check's reason. */
const MFA_WHY: Record<MfaReason, MessageKey> = {
  global: 'mfa.why.global',
  client: 'mfa.why.client',
  acr_values: 'mfa.why.acr_values',
};

/** The reason a login interaction needs a second factor (the mfa_required check fired), or undefined. */
function mfaNeeded(interaction: { prompt: { name: string; reasons?: string[]; details?: unknown } }): MfaReason | undefined {
  if (interaction.prompt.name !== 'login' || !(interaction.prompt.reasons ?? []).includes(MFA_REQUIRED)) return undefined;
  const reason = (interaction.prompt.details as { mfa?: unknown } | undefined)?.mfa;
  return reason === 'global' || reason === 'acr_values' ? reason : 'client';
}

/**
 * The ephemeral-store model of a sign-in whose password was right and whose second factor is
 * pending (docs/design/sign-in-methods.md §3.5): keyed by the interaction's uid, reached only
 * through the interaction's routes (its cookie, its CSRF token), taken once when the second factor
 * succeeds. Nothing is handed to the provider before then, so the resume URL finds no result.
 */
const PENDING_SIGN_IN = 'PendingSignIn';
/** How long a PendingSignIn lives at most (never longer than its interaction). */
const PENDING_SIGN_IN_TTL_SECONDS = 600;

/**
 * The ephemeral-store model of an authenticator app being set up during a sign-in (design §3.6),
 * keyed by the interaction's uid: `{ accountId, startedAt }` names the pending enrolment this
 * interaction began (a reload shows the same secret again rather than starting over), and
 * `confirmed: true` once its code was right, until "Continue" takes it once and finishes.
 */
const SIGN_IN_ENROLMENT = 'TotpSignInEnrolment';

/** Whom the second-factor page is for, and what they already did. */
interface SecondFactorTarget {
  accountId: string;
  /** The methods already used: ['pwd'] after the password, the session's for a step-up. */
  amr: Amr[];
  /** A session that signed in before and now needs a second factor (no PendingSignIn). */
  stepUp: boolean;
  /** How the first step was done (a PendingSignIn's). */
  method?: 'password' | 'upstream';
  /** The account's sessions_valid_after (ms), when the password was just checked. */
  cutoffMs?: number;
}

const AMR_VALUES: readonly Amr[] = ['pwd', 'otp', 'hwk', 'swk', 'mfa'];

/** The methods of a sign-in with a second factor (TOTP or recovery code) after `before`. */
function withOtp(before: readonly Amr[]): Amr[] {
  return [...before.filter((method) => method !== 'mfa' && method !== 'otp'), 'otp', 'mfa'];
}

/** What the enrolment page says when the confirming code is not accepted (never the code). */
function enrolmentRefusalMessage(t: Translate, reason: SecondFactorRefusal): string {
  return t(reason === 'malformed' ? 'common.enrol_code_malformed' : 'enrol.wrong_code');
}

/** What the page says when a code is not accepted (never the code). */
function refusalMessage(t: Translate, reason: SecondFactorRefusal): string {
  if (reason === 'malformed') return t('mfa.malformed');
  if (reason === 'code_reused') return t('mfa.code_reused');
  return t('mfa.wrong_code');
}

function formField(ctx: Context, name: string): string {
  const body = (ctx.state as { form?: Record<string, unknown> }).form;
  const value = body?.[name];
  return typeof value === 'string' ? value.slice(0, MAX_FIELD + 1) : '';
}

/**
 * The login, consent and second-factor pages (GET /interaction/:uid, POST …/login, POST …/mfa,
 * POST …/mfa/enrol, POST …/mfa/enrol/continue, POST …/confirm, POST …/mfa/cancel, GET …/abort).
 * Each POST checks the CSRF token and that the interaction is at the matching prompt.
 *
 * @example
 * app.use(createInteractionRoutes({ provider: () => host.provider, ... }).routes());
 */
export function createInteractionRoutes(deps: {
  provider: () => Provider;
  accounts: Authenticator;
  limiter: LoginLimiter;
  pages: Pages;
  cache: RegistryCache;
  config: Config;
  logger: Logger;
  /** Counts wrong second-factor codes per account id and IP (createLoginLimiter kind 'mfa'). */
  mfaLimiter: LoginLimiter;
  /** The registry and data keys the second factors are checked with. */
  secondFactors: SecondFactorDeps;
  /** Where a PendingSignIn waits for its second factor. */
  store: EphemeralStore;
  /** Where sign-in successes, failures and lockouts are recorded (optional until every caller passes it). */
  audit?: AuditSink;
  metrics?: Metrics;
  /** Passkeys (design §4): the service's deps, and the limiter of passkey sign-ins (kind 'passkey'). */
  passkeys: PasskeyDeps;
  passkeyLimiter: LoginLimiter;
  /** Where finished sign-ins go for the account page's "Recent sign-ins" (optional until every caller passes it). */
  signIns?: Pick<SignInRecorder, 'record'>;
  /** Sign-in with upstream OpenID providers (upstream.routes.ts): the login page's buttons, its routes, the link after a sign-in. */
  upstream?: UpstreamRoutes;
  /** Self sign-up (signup.routes.ts): given only when SIGNUP_ENABLED; the login page then links to it. */
  signup?: SignupRoutes;
}): Router {
  const { accounts, limiter, mfaLimiter, pages, cache, config, store } = deps;
  /** The issuer an authenticator app shows beside the account (the otpauth URI's issuer): the brand's name. */
  const totpIssuer = config.brand.name;
  // The sink never throws; awaiting it keeps one append per sign-in attempt in flight (backpressure).
  async function audit(ctx: Context, entry: Omit<AuditEntry, 'requestId' | 'ip'>) {
    const requestId = (ctx.state as { requestId?: unknown }).requestId;
    await deps.audit?.record({ ...entry, requestId: typeof requestId === 'string' ? requestId : null, ip: ctx.ip });
  }
  /**
   * Every finished sign-in, whatever its method, is recorded here once, right after its result is
   * handed to the provider (finish): `sign_ins` (the account page's "Recent sign-ins") with this
   * request's address and browser. Never fails the sign-in (the recorder logs a failure to write).
   */
  async function recordSignIn(ctx: Context, entry: { accountId: string; method: SignInMethod; acr: string; amr: readonly string[]; clientId: string | null; upstreamProviderId?: string }) {
    const userAgent = ctx.get('user-agent');
    await deps.signIns?.record({
      userId: entry.accountId,
      method: entry.method,
      acr: entry.acr,
      amr: entry.amr,
      clientId: entry.clientId,
      upstreamProviderId: entry.upstreamProviderId ?? null,
      ip: ctx.ip,
      userAgent: userAgent === '' ? null : userAgent,
    });
  }
  const csrf = createCsrf(config.cookieKeys);
  const router = new Router({ prefix: '/interaction' });
  // Reads an urlencoded form (and nothing else) into ctx.state.form; too large is 413, not a form is 415.
  async function forms(ctx: Context, next: Next) {
    if (!ctx.is('application/x-www-form-urlencoded')) {
      errorPage(ctx, 415, 'error.unsupported_form', 'error.submit_from_sign_in', 'invalid_request');
      return;
    }
    try {
      (ctx.state as { form?: unknown }).form = await coBody.form(ctx.req, { limit: config.bodyLimitBytes, queryString: { depth: 0, parameterLimit: 20 } });
    } catch (error) {
      const status = (error as { status?: number }).status === 413 ? 413 : 400;
      errorPage(ctx, status, 'error.unreadable_form', 'error.submit_from_sign_in', 'invalid_request');
      return;
    }
    await next();
  }

  /** A page; with `scripts` (passkeys) its CSP lets the scripts carrying this response's nonce run, and no others. */
  function page(ctx: Context, status: number, name: Parameters<Pages['render']>[0], data: Parameters<Pages['render']>[1], formTargets: string[] = [], options: { scripts?: boolean } = {}) {
    const nonce = options.scripts ? scriptNonce() : undefined;
    ctx.status = status;
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Content-Security-Policy', pageCsp(formTargets, nonce ? { scriptNonce: nonce } : {}));
    const locale = data.locale ?? requestLocale(ctx);
    ctx.body = pages.render(name, nonce ? { ...data, locale, nonce } : { ...data, locale });
  }

  /** The error page: a heading and a message from the catalogue (in the request's language), the code beneath. */
  function errorPage(ctx: Context, status: number, heading: MessageKey, message: MessageKey, code?: string) {
    const t = translatorOf(ctx);
    page(ctx, status, 'error', { title: t(heading), heading: t(heading), message: t(message, { brand: config.brand.name }), code, requestId: ctx.state.requestId });
  }

  async function details(ctx: Context) {
    const interaction = await deps.provider().interactionDetails(ctx.req, ctx.res);
    if (interaction.uid !== ctx.params.uid) throw new errors.SessionNotFound('interaction mismatch');
    // The pages of this interaction speak the authorization request's ui_locales, then Accept-Language.
    followUiLocales(ctx, interaction.params.ui_locales);
    return interaction;
  }

  /**
   * The start of every form POST: the interaction, at the step `atStep` accepts, and the form's CSRF
   * token. Answers the refusal page itself (400 at another step, 403 for a bad or missing token, the
   * latter counted as a sign-in outcome when `countCsrf`) and gives undefined then.
   */
  async function formStep(
    ctx: Context,
    atStep: (interaction: Awaited<ReturnType<typeof details>>) => boolean,
    options: { countCsrf?: boolean; reload?: 'sign-in page' } = {},
  ): Promise<{ uid: string; interaction: Awaited<ReturnType<typeof details>> } | undefined> {
    const { uid } = ctx.params as { uid: string };
    const interaction = await details(ctx);
    if (!atStep(interaction)) {
      errorPage(ctx, 400, 'error.unexpected_step', 'error.start_again', 'invalid_request');
      return undefined;
    }
    if (!csrf.verify(uid, formField(ctx, 'csrf'))) {
      if (options.countCsrf) deps.metrics?.signIn('csrf');
      errorPage(ctx, 403, 'error.form_expired', options.reload === 'sign-in page' ? 'error.reload_sign_in_page' : 'error.reload_page', 'csrf_token_invalid');
      return undefined;
    }
    return { uid, interaction };
  }

  /**
   * Whether wrong codes have locked this account or IP out of second factors: when they have, the
   * page's message, with Retry-After set and the lockout counted (as a second factor of `method`,
   * what the code typed reads as, unless it reads as none); undefined otherwise.
   */
  async function mfaLockout(ctx: Context, accountId: string, method: SecondFactorMethod | undefined): Promise<string | undefined> {
    const limit = await mfaLimiter.check(accountId, ctx.ip);
    if (limit.allowed) return undefined;
    deps.metrics?.signIn('locked');
    deps.metrics?.rateLimited('mfa');
    if (method) deps.metrics?.secondFactor(method, 'locked');
    ctx.set('Retry-After', String(limit.retryAfterSeconds));
    return inMinutes(translatorOf(ctx), Math.ceil(limit.retryAfterSeconds / 60), 'common.too_many_codes', 'common.too_many_codes_one');
  }

  async function clientName(ctx: Context, clientId: unknown): Promise<string> {
    const t = translatorOf(ctx);
    if (typeof clientId !== 'string') return t('common.the_application');
    const client = await deps.provider().Client.find(clientId);
    return peopleClientName(t, config.brand.name, clientId, client?.clientName) ?? clientId;
  }

  async function finish(ctx: Context, result: Parameters<Provider['interactionResult']>[2]) {
    // A link to an upstream identity that waited for this person's own sign-in is written now (§6.3).
    if (result.login && deps.upstream) await deps.upstream.onLogin(ctx, String(ctx.params.uid), result.login.accountId);
    // The person's language from now on is this page's (mail is written in it); a failure to store it never fails the sign-in.
    if (result.login) {
      await setUserLocale(deps.secondFactors.db, result.login.accountId, requestLocale(ctx)).catch((error: unknown) => {
        ctx.state.log?.warn({ err: { message: (error as Error).message } }, 'could not store the language of a sign-in');
      });
    }
    const url = await deps.provider().interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.status = 303;
    ctx.redirect(url);
  }

  async function renderLogin(ctx: Context, status: number, uid: string, interaction: Awaited<ReturnType<typeof details>>, extra: { error?: string; email?: string } = {}) {
    const name = await clientName(ctx, interaction.params.client_id);
    const reasons = interaction.prompt.reasons ?? [];
    const t = translatorOf(ctx);
    const reasonKey = reasons.map((r) => REASONS[r]).find(Boolean) ?? 'login.reason.no_session';
    const reason = t(reasonKey, { brand: config.brand.name });
    const redirectUri = typeof interaction.params.redirect_uri === 'string' ? [interaction.params.redirect_uri] : [];
    const upstream = await deps.upstream?.loginExtras(uid, t);
    page(
      ctx,
      status,
      'login',
      {
        title: t('login.title'),
        clientName: name,
        reason,
        csrf: csrf.token(uid),
        action: `/interaction/${uid}/login`,
        abort: `/interaction/${uid}/abort`,
        // "Forgot password?" (reset.routes.ts): its "Back to sign in" returns to this interaction.
        forgot: `/reset?return=${encodeURIComponent(`/interaction/${uid}`)}`,
        passkey: { action: `/interaction/${uid}/passkey`, options: `/interaction/${uid}/passkey/options` },
        providers: upstream?.providers ?? [],
        ...(upstream?.linkNotice ? { linkNotice: upstream.linkNotice, email: upstream.email } : {}),
        ...(deps.signup ? { signup: deps.signup.loginLink(uid) } : {}),
        ...extra,
      },
      [...redirectUri, ...(upstream?.formTargets ?? [])],
      { scripts: true },
    );
  }

  /** How long the state kept beside an interaction may live: never longer than the interaction, nor than `cap` seconds. */
  function ttlWithin(interaction: Awaited<ReturnType<typeof details>>, cap: number): number {
    const remaining = typeof interaction.exp === 'number' ? interaction.exp - epochSeconds() : cap;
    return Math.max(1, Math.min(cap, remaining));
  }

  /** This interaction's enrolment at sign-in, when it is the account's and not yet taken by Continue. */
  async function signInEnrolment(uid: string, accountId: string): Promise<{ startedAt: number; confirmed: boolean } | undefined> {
    const found = await store.find(SIGN_IN_ENROLMENT, uid);
    if (!found || found.consumed || found.accountId !== accountId || typeof found.startedAt !== 'number') return undefined;
    return { startedAt: found.startedAt, confirmed: found.confirmed === true };
  }

  /**
   * The enrolment this interaction shows: the one it began, while that is still the account's
   * pending enrolment and fresh (a reload, a wrong code), else a new one (which replaces any other
   * pending enrolment of the account: only the newest page can be confirmed).
   */
  async function enrolmentFor(uid: string, interaction: Awaited<ReturnType<typeof details>>, accountId: string): Promise<TotpEnrolment> {
    const mine = await signInEnrolment(uid, accountId);
    if (mine && !mine.confirmed) {
      const resumed = await resumeTotpEnrolment(deps.secondFactors, accountId, mine.startedAt, { issuer: totpIssuer });
      if (resumed) return resumed;
    }
    const begun = await beginTotpEnrolment(deps.secondFactors, accountId, { issuer: totpIssuer });
    await store.upsert(SIGN_IN_ENROLMENT, uid, { accountId, startedAt: begun.startedAt }, ttlWithin(interaction, PENDING_TOTP_TTL_MS / 1000));
    return begun;
  }

  /**
   * The page for a sign-in that needs a second factor the account does not have yet (design §3.6):
   * why, an authenticator app to set up right here (a QR code, the key in groups, the otpauth URI,
   * and a code to confirm it), and Cancel, which ends at the client with
   * unmet_authentication_requirements. Nothing is finished until the code is right and Continue.
   */
  async function renderEnrolment(ctx: Context, status: number, uid: string, interaction: Awaited<ReturnType<typeof details>>, accountId: string, reason: MfaReason, error?: string) {
    const name = await clientName(ctx, interaction.params.client_id);
    const account = await accounts.findById(accountId);
    const enrolment = await enrolmentFor(uid, interaction, accountId);
    const qrSvg = await totpQrSvg(enrolment.uri);
    // Never the secret nor the URI: only that the picture is missing (the key and the link remain).
    if (!qrSvg) ctx.state.log?.warn({ accountId }, 'the QR code library made an SVG of an unexpected shape; the page shows the key only');
    const redirectUri = typeof interaction.params.redirect_uri === 'string' ? [interaction.params.redirect_uri] : [];
    page(
      ctx,
      status,
      'mfa-enrol',
      {
        title: translatorOf(ctx)('enrol.title'),
        clientName: name,
        why: translatorOf(ctx)(MFA_WHY[reason], { app: name }),
        accountEmail: account?.email ?? '',
        qrSvg,
        uri: enrolment.uri,
        secretGroups: enrolment.secret.match(/.{1,4}/g) ?? [],
        ...(error ? { error } : {}),
        csrf: csrf.token(uid),
        action: `/interaction/${uid}/mfa/enrol`,
        cancel: `/interaction/${uid}/mfa/cancel`,
      },
      redirectUri,
    );
  }

  /** The page after the app was set up: the recovery codes (only in the answer to the confirming code), and Continue. */
  async function renderEnrolled(ctx: Context, uid: string, interaction: Awaited<ReturnType<typeof details>>, accountId: string, recoveryCodes?: string[]) {
    const account = await accounts.findById(accountId);
    const redirectUri = typeof interaction.params.redirect_uri === 'string' ? [interaction.params.redirect_uri] : [];
    page(
      ctx,
      200,
      'mfa-enrolled',
      {
        title: translatorOf(ctx)('enrolled.title'),
        clientName: await clientName(ctx, interaction.params.client_id),
        accountEmail: account?.email ?? '',
        ...(recoveryCodes ? { recoveryCodes } : {}),
        csrf: csrf.token(uid),
        action: `/interaction/${uid}/mfa/enrol/continue`,
      },
      redirectUri,
    );
  }

  /** Whether the person has a confirmed authenticator (TOTP): then a password alone never finishes a sign-in (D6). */
  function hasTotp(accountId: string): Promise<boolean> {
    return hasSecondFactor(deps.secondFactors.db, accountId);
  }

  /** Whether the person has an authenticator app or a passkey: either is asked for after a password (D6). */
  function hasAnyFactor(accountId: string): Promise<boolean> {
    return hasAnySecondFactor(deps.secondFactors.db, accountId);
  }

  async function putPendingSignIn(uid: string, interaction: Awaited<ReturnType<typeof details>>, accountId: string, cutoff: Date | null | undefined, first: { amr: Amr[]; method: 'password' | 'upstream' } = { amr: ['pwd'], method: 'password' }) {
    const ttl = ttlWithin(interaction, PENDING_SIGN_IN_TTL_SECONDS);
    await store.upsert(PENDING_SIGN_IN, uid, { accountId, amr: first.amr, method: first.method, at: epochSeconds(), ...(cutoff ? { cutoffMs: cutoff.getTime() } : {}) }, ttl);
  }

  /**
   * Who the second-factor page of this interaction is for: the PendingSignIn of its password, or
   * (a step-up) the session's person when the only reason for the login prompt is mfa_required.
   * undefined when neither: there is no second factor to ask for here.
   */
  async function secondFactorTarget(uid: string, interaction: Awaited<ReturnType<typeof details>>): Promise<SecondFactorTarget | undefined> {
    if (interaction.prompt.name !== 'login') return undefined;
    const pending = await store.find(PENDING_SIGN_IN, uid);
    if (pending && !pending.consumed && typeof pending.accountId === 'string') {
      // An upstream sign-in waits with no amr of its own (design §3.2); a password with ['pwd'].
      const amr = Array.isArray(pending.amr) ? pending.amr.filter((method): method is Amr => (AMR_VALUES as readonly unknown[]).includes(method)) : ['pwd' as const];
      const method = pending.method === 'upstream' ? 'upstream' : 'password';
      return { accountId: pending.accountId, amr, method, stepUp: false, ...(typeof pending.cutoffMs === 'number' ? { cutoffMs: pending.cutoffMs } : {}) };
    }
    const accountId = interaction.session?.accountId;
    if (!accountId || !mfaNeeded(interaction) || !(interaction.prompt.reasons ?? []).every((reason) => reason === MFA_REQUIRED)) return undefined;
    const before = (interaction.session?.amr ?? []).filter((method): method is Amr => (AMR_VALUES as readonly string[]).includes(method));
    // A session from before amr was recorded was a password sign-in (the only method there was).
    return { accountId, amr: before.length > 0 ? before : ['pwd'], stepUp: true };
  }

  /** The second-factor page: a code (TOTP or recovery code), Continue, and Cancel. */
  async function renderSecondFactor(ctx: Context, status: number, uid: string, interaction: Awaited<ReturnType<typeof details>>, accountId: string, error?: string) {
    const name = await clientName(ctx, interaction.params.client_id);
    const passkey = await hasPasskey(deps.passkeys.db, accountId);
    const account = await accounts.findById(accountId);
    const mfa = mfaNeeded(interaction);
    const redirectUri = typeof interaction.params.redirect_uri === 'string' ? [interaction.params.redirect_uri] : [];
    page(
      ctx,
      status,
      'mfa',
      {
        title: translatorOf(ctx)('mfa.title'),
        clientName: name,
        accountEmail: account?.email ?? '',
        ...(mfa ? { why: translatorOf(ctx)(MFA_WHY[mfa], { app: name }) } : {}),
        ...(error ? { error } : {}),
        csrf: csrf.token(uid),
        action: `/interaction/${uid}/mfa`,
        abort: `/interaction/${uid}/abort`,
        codes: await hasTotp(accountId),
        ...(passkey ? { passkey: { action: `/interaction/${uid}/mfa/passkey`, options: `/interaction/${uid}/mfa/passkey/options` } } : {}),
      },
      redirectUri,
      { scripts: passkey },
    );
  }

  // Expired or foreign interactions get a page that says what to do, not a stack or a redirect.
  router.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      if (error instanceof errors.SessionNotFound || error instanceof errors.InvalidRequest) {
        errorPage(ctx, 400, 'error.link_expired', 'error.start_again', 'session_not_found');
        return;
      }
      if (isUnreachable(error)) {
        ctx.set('Retry-After', RETRY_AFTER_SECONDS);
        errorPage(ctx, 503, 'error.sign_in_unavailable', 'error.storage_unreachable', 'temporarily_unavailable');
        return;
      }
      throw error;
    }
  });

  router.get('/:uid', async (ctx) => {
    const interaction = await details(ctx);
    const { uid } = ctx.params as { uid: string };
    if (interaction.prompt.name === 'login') {
      // The password was right and the second factor is pending, or the session's person signed in
      // and only the second factor is missing: the second-factor page, not the password form; for a
      // person without one, the page that sets up an authenticator app (then, once it is set up,
      // the page with Continue, without the recovery codes: they were shown once).
      const target = await secondFactorTarget(uid, interaction);
      if (target) {
        if ((await signInEnrolment(uid, target.accountId))?.confirmed) {
          await renderEnrolled(ctx, uid, interaction, target.accountId);
          return;
        }
        const mfa = mfaNeeded(interaction);
        if (mfa && !(await hasAnyFactor(target.accountId))) {
          await renderEnrolment(ctx, 200, uid, interaction, target.accountId, mfa);
          return;
        }
        if (!target.stepUp || (await hasAnyFactor(target.accountId))) {
          await renderSecondFactor(ctx, 200, uid, interaction, target.accountId);
          return;
        }
      }
      await renderLogin(ctx, 200, uid, interaction);
      return;
    }
    if (interaction.prompt.name === 'consent') {
      const promptDetails = interaction.prompt.details as {
        missingOIDCScope?: string[];
        missingResourceScopes?: Record<string, string[]>;
      };
      const resourceScopes = promptDetails.missingResourceScopes ?? {};
      const names: Record<string, string | null> = {};
      for (const resource of Object.keys(resourceScopes)) names[resource] = (await cache.getResourceServer(resource))?.name ?? null;
      const account = interaction.session?.accountId ? await accounts.findById(interaction.session.accountId) : undefined;
      const redirectUri = typeof interaction.params.redirect_uri === 'string' ? [interaction.params.redirect_uri] : [];
      page(
        ctx,
        200,
        'consent',
        {
          title: translatorOf(ctx)('consent.title'),
          clientName: await clientName(ctx, interaction.params.client_id),
          scopes: describeScopes(translatorOf(ctx), promptDetails.missingOIDCScope ?? [], resourceScopes, names),
          resources: Object.keys(resourceScopes),
          accountEmail: account?.email ?? '',
          csrf: csrf.token(uid),
          action: `/interaction/${uid}/confirm`,
        },
        redirectUri,
      );
      return;
    }
    errorPage(ctx, 400, 'error.unexpected_step', 'error.start_again', 'invalid_request');
  });

  router.post('/:uid/login', forms, async (ctx) => {
    const step = await formStep(ctx, (i) => i.prompt.name === 'login', { countCsrf: true, reload: 'sign-in page' });
    if (!step) return;
    const { uid, interaction } = step;
    const email = formField(ctx, 'email').trim();
    const password = formField(ctx, 'password');
    const limit = await limiter.check(email, ctx.ip);
    if (!limit.allowed) {
      deps.metrics?.signIn('locked');
      deps.metrics?.rateLimited('sign_in');
      ctx.set('Retry-After', String(limit.retryAfterSeconds));
      await renderLogin(ctx, 429, uid, interaction, {
        email,
        error: inMinutes(translatorOf(ctx), Math.ceil(limit.retryAfterSeconds / 60), 'login.locked', 'login.locked_one'),
      });
      return;
    }
    const result = email && password ? await accounts.authenticate(email, password) : ({ ok: false, reason: 'invalid' } as const);
    const clientId = typeof interaction.params.client_id === 'string' ? interaction.params.client_id : null;
    if (!result.ok) {
      deps.metrics?.signIn('failure');
      await limiter.recordFailure(email, ctx.ip);
      ctx.state.log?.info({ outcome: 'failure', reason: result.reason }, 'sign-in failed');
      // The email typed is kept only as a hash prefix (never in clear): the audit log must not
      // become a list of addresses tried (user enumeration), nor keep a password typed as an email.
      const target = email ? emailFingerprint(email) : null;
      await audit(ctx, { actor: 'anonymous', action: 'signin.failure', target, details: { reason: result.reason, client_id: clientId } });
      // The failure that reaches a limit is the lockout: recorded once, when it starts, rather than
      // for every refused attempt after it (those would let anyone write audit rows at will).
      const after = deps.audit ? await limiter.check(email, ctx.ip) : undefined;
      if (after && !after.allowed) {
        await audit(ctx, { actor: 'anonymous', action: 'signin.lockout', target, details: { retry_after_seconds: after.retryAfterSeconds, client_id: clientId } });
      }
      await renderLogin(ctx, 401, uid, interaction, { email, error: translatorOf(ctx)('login.failed') });
      return;
    }
    await limiter.recordSuccess(email);
    const mfa = mfaNeeded(interaction);
    if ((await hasAnyFactor(result.user.id)) || mfa) {
      // A person with a second factor is asked for it after every password (design D6), and one
      // without it, where this sign-in needs one, sets it up first (§3.6): nothing is finished yet;
      // the password's result waits beside the interaction for the code.
      await putPendingSignIn(uid, interaction, result.user.id, result.user.sessionsValidAfter);
      ctx.state.log?.info({ outcome: 'second_factor_pending', accountId: result.user.id, ...(mfa ? { mfa } : {}) }, 'password accepted, second factor asked');
      ctx.status = 303;
      ctx.redirect(`/interaction/${uid}`);
      return;
    }
    deps.metrics?.signIn('success');
    ctx.state.log?.info({ outcome: 'success', accountId: result.user.id }, 'signed in');
    await audit(ctx, { actor: `user:${result.user.id}`, action: 'signin.success', target: `user:${result.user.id}`, details: { client_id: clientId } });
    await waitOutCutoffSecond(result.user.sessionsValidAfter);
    const signedIn = passwordSignIn();
    await finish(ctx, { login: { accountId: result.user.id, ...signedIn } });
    await recordSignIn(ctx, { accountId: result.user.id, method: 'password', ...signedIn, clientId });
  });

  router.post('/:uid/mfa', forms, async (ctx) => {
    const step = await formStep(ctx, (i) => i.prompt.name === 'login', { countCsrf: true });
    if (!step) return;
    const { uid, interaction } = step;
    const target = await secondFactorTarget(uid, interaction);
    if (!target || (target.stepUp && !(await hasTotp(target.accountId)))) {
      errorPage(ctx, 400, 'error.unexpected_step', 'error.start_again', 'invalid_request');
      return;
    }
    const { accountId } = target;
    const clientId = typeof interaction.params.client_id === 'string' ? interaction.params.client_id : null;
    // Never logged nor audited: only the outcome and its reason are.
    const code = formField(ctx, 'code');
    // What the code reads as (undefined: no code at all), for the counts only; verifySecondFactor decides.
    const method = secondFactorMethodOf(code);
    const locked = await mfaLockout(ctx, accountId, method);
    if (locked) {
      await renderSecondFactor(ctx, 429, uid, interaction, accountId, locked);
      return;
    }
    const result = await verifySecondFactor(deps.secondFactors, accountId, code);
    if (!result.ok) {
      if (result.reason === 'malformed') {
        // Neither a 6-digit code nor a recovery code: nothing was compared with a secret, so it is
        // no guess and not counted; the page says what a code looks like.
        ctx.state.log?.info({ outcome: 'failure', reason: result.reason, accountId }, 'second factor refused');
        await renderSecondFactor(ctx, 400, uid, interaction, accountId, refusalMessage(translatorOf(ctx), result.reason));
        return;
      }
      deps.metrics?.signIn('failure');
      if (method) deps.metrics?.secondFactor(method, 'failure');
      await mfaLimiter.recordFailure(accountId, ctx.ip);
      ctx.state.log?.info({ outcome: 'failure', reason: result.reason, accountId }, 'second factor refused');
      const who = `user:${accountId}` as const;
      await audit(ctx, { actor: who, action: 'mfa.failure', target: who, details: { reason: result.reason, step_up: target.stepUp, client_id: clientId } });
      // As for passwords: the lockout is recorded once, by the failure that reaches the limit.
      const after = await mfaLimiter.check(accountId, ctx.ip);
      if (!after.allowed) {
        await audit(ctx, { actor: who, action: 'mfa.lockout', target: who, details: { retry_after_seconds: after.retryAfterSeconds, client_id: clientId } });
      }
      await renderSecondFactor(ctx, 401, uid, interaction, accountId, refusalMessage(translatorOf(ctx), result.reason));
      return;
    }
    // The password's PendingSignIn finishes one sign-in only, whoever races.
    if (!target.stepUp) {
      const taken = await store.consume(PENDING_SIGN_IN, uid);
      if (taken.result !== 'consumed') {
        errorPage(ctx, 400, 'error.link_expired', 'error.start_again', 'session_not_found');
        return;
      }
      await store.destroy(PENDING_SIGN_IN, uid);
    }
    await store.destroy(SIGN_IN_ENROLMENT, uid);
    await mfaLimiter.recordSuccess(accountId);
    const amr = withOtp(target.amr);
    deps.metrics?.signIn('success');
    deps.metrics?.secondFactor(result.method, 'success');
    ctx.state.log?.info({ outcome: 'success', accountId, method: result.method, stepUp: target.stepUp }, 'signed in with a second factor');
    const who = `user:${accountId}` as const;
    await audit(ctx, {
      actor: who,
      action: 'mfa.success',
      target: who,
      details: { method: result.method, step_up: target.stepUp, client_id: clientId, recovery_codes_left: result.recoveryCodesLeft },
    });
    await audit(ctx, { actor: who, action: 'signin.success', target: who, details: { client_id: clientId, method: target.stepUp ? 'step_up' : (target.method ?? 'password'), acr: ACR_MFA, amr } });
    if (target.cutoffMs !== undefined) await waitOutCutoffSecond(new Date(target.cutoffMs));
    await finish(ctx, { login: { accountId, acr: ACR_MFA, amr } });
    await recordSignIn(ctx, { accountId, method: target.stepUp ? 'step_up' : (target.method ?? 'password'), acr: ACR_MFA, amr, clientId });
  });

  // The authenticator app set up during sign-in (§3.6): its first code confirms it (the service
  // records totp.enable and recovery_codes.generate as the person), the answer shows the recovery
  // codes once, and Continue finishes.
  router.post('/:uid/mfa/enrol', forms, async (ctx) => {
    const step = await formStep(ctx, (i) => i.prompt.name === 'login', { countCsrf: true });
    if (!step) return;
    const { uid, interaction } = step;
    const target = await secondFactorTarget(uid, interaction);
    const mfa = mfaNeeded(interaction);
    if (!target || !mfa) {
      errorPage(ctx, 400, 'error.unexpected_step', 'error.start_again', 'invalid_request');
      return;
    }
    const { accountId } = target;
    const mine = await signInEnrolment(uid, accountId);
    if (mine?.confirmed) {
      // The form sent again (a reload of the answer): set up already; the codes are not shown twice.
      await renderEnrolled(ctx, uid, interaction, accountId);
      return;
    }
    if (!mine || (await hasAnyFactor(accountId))) {
      // No enrolment was shown in this interaction, or the account has a second factor already (an
      // authenticator app, or a passkey added since the page was shown): a password alone never
      // adds one beside it, so the code is not asked for here.
      errorPage(ctx, 400, 'error.unexpected_step', 'error.start_again', 'invalid_request');
      return;
    }
    const clientId = typeof interaction.params.client_id === 'string' ? interaction.params.client_id : null;
    const locked = await mfaLockout(ctx, accountId, 'totp');
    if (locked) {
      await renderEnrolment(ctx, 429, uid, interaction, accountId, mfa, locked);
      return;
    }
    const who = `user:${accountId}` as const;
    const requestId = (ctx.state as { requestId?: unknown }).requestId;
    try {
      // Never logged nor audited: only the outcome and its reason are.
      const { recoveryCodes } = await confirmTotpEnrolment(
        deps.secondFactors,
        { actor: `person:${accountId}`, requestId: typeof requestId === 'string' ? requestId : null, ip: ctx.ip },
        accountId,
        formField(ctx, 'code'),
        { onlyIfNone: true, startedAt: mine.startedAt },
      );
      await store.upsert(SIGN_IN_ENROLMENT, uid, { accountId, startedAt: mine.startedAt, confirmed: true }, ttlWithin(interaction, PENDING_SIGN_IN_TTL_SECONDS));
      await mfaLimiter.recordSuccess(accountId);
      deps.metrics?.secondFactor('totp', 'success');
      ctx.state.log?.info({ outcome: 'second_factor_enrolled', accountId, stepUp: target.stepUp }, 'authenticator app set up during sign-in');
      await renderEnrolled(ctx, uid, interaction, accountId, recoveryCodes);
    } catch (error) {
      if (error instanceof WrongCodeError) {
        ctx.state.log?.info({ outcome: 'failure', reason: error.reason, accountId, enrolment: true }, 'second factor refused');
        if (error.reason === 'malformed') {
          // Not six digits: nothing was compared with the secret, so it is no guess and not counted.
          await renderEnrolment(ctx, 400, uid, interaction, accountId, mfa, enrolmentRefusalMessage(translatorOf(ctx), error.reason));
          return;
        }
        deps.metrics?.signIn('failure');
        deps.metrics?.secondFactor('totp', 'failure');
        await mfaLimiter.recordFailure(accountId, ctx.ip);
        await audit(ctx, { actor: who, action: 'mfa.failure', target: who, details: { reason: error.reason, step_up: target.stepUp, enrolment: true, client_id: clientId } });
        const after = await mfaLimiter.check(accountId, ctx.ip);
        if (!after.allowed) {
          await audit(ctx, { actor: who, action: 'mfa.lockout', target: who, details: { retry_after_seconds: after.retryAfterSeconds, client_id: clientId } });
        }
        await renderEnrolment(ctx, 401, uid, interaction, accountId, mfa, enrolmentRefusalMessage(translatorOf(ctx), error.reason));
        return;
      }
      if (error instanceof NotFoundError) {
        // The enrolment this page showed is too old or was started over elsewhere: a new one.
        await renderEnrolment(ctx, 400, uid, interaction, accountId, mfa, translatorOf(ctx)('enrol.expired'));
        return;
      }
      if (error instanceof ConflictError) {
        errorPage(ctx, 400, 'error.unexpected_step', 'error.start_again', 'invalid_request');
        return;
      }
      throw error;
    }
  });

  router.post('/:uid/mfa/enrol/continue', forms, async (ctx) => {
    const step = await formStep(ctx, (i) => i.prompt.name === 'login', { countCsrf: true });
    if (!step) return;
    const { uid, interaction } = step;
    const target = await secondFactorTarget(uid, interaction);
    if (!target || !(await signInEnrolment(uid, target.accountId))?.confirmed) {
      errorPage(ctx, 400, 'error.unexpected_step', 'error.start_again', 'invalid_request');
      return;
    }
    // The confirmed enrolment, and the password's PendingSignIn, finish one sign-in only, whoever races.
    const expired = () => errorPage(ctx, 400, 'error.link_expired', 'error.start_again', 'session_not_found');
    if ((await store.consume(SIGN_IN_ENROLMENT, uid)).result !== 'consumed') {
      expired();
      return;
    }
    await store.destroy(SIGN_IN_ENROLMENT, uid);
    if (!target.stepUp) {
      if ((await store.consume(PENDING_SIGN_IN, uid)).result !== 'consumed') {
        expired();
        return;
      }
      await store.destroy(PENDING_SIGN_IN, uid);
    }
    const { accountId } = target;
    const clientId = typeof interaction.params.client_id === 'string' ? interaction.params.client_id : null;
    const amr = withOtp(target.amr);
    deps.metrics?.signIn('success');
    ctx.state.log?.info({ outcome: 'success', accountId, method: 'totp', enrolment: true, stepUp: target.stepUp }, 'signed in with a second factor');
    const who = `user:${accountId}` as const;
    await audit(ctx, { actor: who, action: 'mfa.success', target: who, details: { method: 'totp', step_up: target.stepUp, enrolment: true, client_id: clientId } });
    await audit(ctx, { actor: who, action: 'signin.success', target: who, details: { client_id: clientId, method: target.stepUp ? 'step_up' : (target.method ?? 'password'), acr: ACR_MFA, amr } });
    if (target.cutoffMs !== undefined) await waitOutCutoffSecond(new Date(target.cutoffMs));
    await finish(ctx, { login: { accountId, acr: ACR_MFA, amr } });
    await recordSignIn(ctx, { accountId, method: target.stepUp ? 'step_up' : (target.method ?? 'password'), acr: ACR_MFA, amr, clientId });
  });

  router.post('/:uid/confirm', forms, async (ctx) => {
    const step = await formStep(ctx, (i) => i.prompt.name === 'consent');
    if (!step) return;
    const { interaction } = step;
    const decision = formField(ctx, 'decision');
    if (decision === 'deny') {
      await finish(ctx, { error: 'access_denied', error_description: 'the user denied the request' });
      return;
    }
    if (decision !== 'allow') {
      errorPage(ctx, 400, 'error.choose_allow_deny', 'error.choose_button', 'invalid_request');
      return;
    }
    const provider = deps.provider();
    const { accountId } = interaction.session ?? {};
    const clientId = interaction.params.client_id;
    if (!accountId || typeof clientId !== 'string') throw new errors.SessionNotFound('no session');
    const grant = (interaction.grantId ? await provider.Grant.find(interaction.grantId) : undefined) ?? new provider.Grant({ accountId, clientId });
    const promptDetails = interaction.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    if (promptDetails.missingOIDCScope) grant.addOIDCScope(promptDetails.missingOIDCScope.join(' '));
    if (promptDetails.missingOIDCClaims) grant.addOIDCClaims(promptDetails.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(promptDetails.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    ctx.state.log?.info({ accountId, clientId }, 'consent given');
    await finish(ctx, { consent: { grantId } });
  });

  router.post('/:uid/mfa/cancel', forms, async (ctx) => {
    const step = await formStep(ctx, (i) => mfaNeeded(i) !== undefined);
    if (!step) return;
    const { uid } = step;
    await store.destroy(PENDING_SIGN_IN, uid);
    await store.destroy(SIGN_IN_ENROLMENT, uid);
    await finish(ctx, unmetAuthenticationRequirements('the client requires a second factor, which the account cannot provide'));
  });

  registerPasskeyRoutes(
    router,
    {
      forms,
      details,
      formStep,
      verifyCsrf: (uid, token) => csrf.verify(uid, token),
      errorPage,
      renderLogin,
      renderSecondFactor,
      secondFactorTarget,
      async takePendingSignIn(uid) {
        if ((await store.consume(PENDING_SIGN_IN, uid)).result !== 'consumed') return false;
        await store.destroy(PENDING_SIGN_IN, uid);
        return true;
      },
      async dropPending(uid) {
        await store.destroy(PENDING_SIGN_IN, uid);
        await store.destroy(SIGN_IN_ENROLMENT, uid);
      },
      finish,
      waitOutCutoffSecond,
      audit,
      recordSignIn,
      mfaLockout,
      mfaLimiter,
      metrics: deps.metrics,
    },
    { passkeys: deps.passkeys, passkeyLimiter: deps.passkeyLimiter },
  );

  router.get('/:uid/abort', async (ctx) => {
    await details(ctx);
    await store.destroy(PENDING_SIGN_IN, ctx.params.uid as string);
    await store.destroy(SIGN_IN_ENROLMENT, ctx.params.uid as string);
    await finish(ctx, { error: 'access_denied', error_description: 'the user cancelled the sign-in' });
  });

  // Upstream OpenID providers (upstream.routes.ts). A sign-in without a password finishes here, in
  // one place: the second factor first when the person has one or the request needs one (D6), else
  // acr basic and no amr (design §3.2).
  deps.upstream?.mount(router, {
    forms,
    details,
    formStep: (ctx, atStep) => formStep(ctx, atStep, { countCsrf: true, reload: 'sign-in page' }),
    async signInWithout(ctx, uid, interaction, account, method, details) {
      const accountId = account.id;
      const clientId = typeof interaction.params.client_id === 'string' ? interaction.params.client_id : null;
      const mfa = mfaNeeded(interaction);
      if ((await hasAnyFactor(accountId)) || mfa) {
        await putPendingSignIn(uid, interaction, accountId, account.sessionsValidAfter, { amr: [], method });
        ctx.state.log?.info({ outcome: 'second_factor_pending', accountId, method, ...(mfa ? { mfa } : {}) }, 'signed in upstream, second factor asked');
        ctx.status = 303;
        ctx.redirect(`/interaction/${uid}`);
        return;
      }
      deps.metrics?.signIn('success');
      ctx.state.log?.info({ outcome: 'success', accountId, method }, 'signed in');
      await audit(ctx, { actor: `user:${accountId}`, action: 'signin.success', target: `user:${accountId}`, details: { client_id: clientId, method, acr: ACR_BASIC, ...details } });
      // As after a password: a session of the cutoff's own second would count as ended at once.
      await waitOutCutoffSecond(account.sessionsValidAfter);
      await finish(ctx, { login: { accountId, acr: ACR_BASIC } });
      const providerId = typeof details.provider_id === 'string' ? details.provider_id : undefined;
      await recordSignIn(ctx, { accountId, method, acr: ACR_BASIC, amr: [], clientId, ...(providerId ? { upstreamProviderId: providerId } : {}) });
    },
  });

  // Self sign-up (signup.routes.ts), only when SIGNUP_ENABLED: otherwise its paths are not routes here (404).
  deps.signup?.mount(router, { forms, details, formStep: (ctx, atStep) => formStep(ctx, atStep), page, errorPage, clientName, field: formField, csrfToken: (uid) => csrf.token(uid) });

  return router;
}
