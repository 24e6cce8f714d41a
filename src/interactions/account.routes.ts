import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import coBody from 'co-body';
import Router from '@koa/router';
import type { Context } from 'koa';
import type { Provider } from 'oidc-provider';
import { ACR_MFA } from '../accounts/authentication-context.js';
import { MAX_RESPONSE_BYTES } from '../accounts/passkeys.js';
import type { AuditEntry, AuditSink } from '../audit/audit-log.js';
import type { Config } from '../config/load-config.js';
import type { Pages } from '../oidc/pages.js';
import { ACCOUNT_CALLBACK_PATH, ACCOUNT_CLIENT_ID } from '../services/built-in-clients.js';
import { LastSignInMethodError, NotFoundError, ValidationError } from '../services/errors.js';
import {
  listPasskeys,
  passkeyRegistrationOptions,
  PasskeyRejected,
  registerPasskey,
  removePasskey,
  renamePasskey,
  type PasskeyDeps,
  type PasskeyRefusal,
} from '../services/passkeys.service.js';
import {
  beginTotpEnrolment,
  confirmTotpEnrolment,
  disableTotp,
  hasAnySecondFactor,
  hasSecondFactor,
  regenerateRecoveryCodes,
  resumeTotpEnrolment,
  secondFactorStatus,
  WrongCodeError,
  type SecondFactorDeps,
  type TotpEnrolment,
} from '../services/second-factors.service.js';
import type { SignInRecorder } from '../services/sign-ins.service.js';
import type { SignInRecord } from '../registry/sign-in.repository.js';
import { createAccountSession, safeAccountPath, type AccountLookup, type AccountSession, type SignedInPerson } from './account-session.js';
import { linkedAccountsSection } from './account-links.routes.js';
import { addAccountApiKeyRoutes, apiKeysSection, type ApiKeysOutcome } from './account-api-keys.routes.js';
import { accountEmailSection } from './account-email.routes.js';
import type { LoginLimiter } from './login-limiter.js';
import { totpQrSvg } from './totp-qr.js';
import { createTranslator, type Translate } from '../ui/i18n.js';
import { inMinutes } from './page-locale.js';

/** The signed cookie that binds an account sign-in (its `state`) to the browser that started it. */
const STATE_COOKIE = 'gatehouse.account';
const STATE_TTL_MS = 10 * 60 * 1000;

const TWO_STEP = '/account#two-step';
const PASSKEYS = '/account#passkeys';

/** The largest passkey options request: `{"csrf":"…"}`. */
const MAX_OPTIONS_BODY = 1024;
/** A passkey's id in a path: the row's UUID (anything else is not found, never a database error). */
const PASSKEY_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** What the account page says when a new passkey is refused (nothing was stored). */
function registrationRefusal(t: Translate, reason: PasskeyRefusal): string {
  switch (reason) {
    case 'stale_challenge':
    case 'replayed_challenge':
      return t('account.passkey_stale');
    case 'already_registered':
      return t('account.passkey_already');
    case 'user_verification':
      return t('common.passkey_user_verification');
    case 'malformed':
      return t('common.passkey_malformed');
    default:
      return t('account.passkey_add_failed');
  }
}

/** A browser, said shortly ("Firefox on Linux"); an unknown one as its first characters. */
export function describeUserAgent(userAgent: string | null, t: Translate = createTranslator('en')): string {
  if (!userAgent) return t('account.unknown_browser');
  const browser = /Edg(e|A|iOS)?\//.test(userAgent)
    ? 'Edge'
    : /OPR\//.test(userAgent)
      ? 'Opera'
      : /Firefox\/|FxiOS\//.test(userAgent)
        ? 'Firefox'
        : /Chrome\/|Chromium\/|CriOS\//.test(userAgent)
          ? 'Chrome'
          : /Version\/[\d.]+.*Safari\//.test(userAgent)
            ? 'Safari'
            : undefined;
  const os = /Windows/.test(userAgent)
    ? 'Windows'
    : /Android/.test(userAgent)
      ? 'Android'
      : /iPhone|iPad|iPod/.test(userAgent)
        ? 'iOS'
        : /Mac OS X|Macintosh/.test(userAgent)
          ? 'macOS'
          : /CrOS/.test(userAgent)
            ? 'ChromeOS'
            : /Linux/.test(userAgent)
              ? 'Linux'
              : undefined;
  if (browser) return os ? t('account.browser_on', { browser, os }) : browser;
  return userAgent.length > 60 ? `${userAgent.slice(0, 59)}…` : userAgent;
}

/** How a sign-in was made, in words. */
function describeMethod(t: Translate, entry: SignInRecord): string {
  const otp = entry.amr.includes('otp');
  if (entry.method === 'password') return t(otp ? 'account.method.password_otp' : 'account.method.password');
  if (entry.method === 'step_up') return t(otp ? 'account.method.step_up_otp' : 'account.method.step_up');
  if (entry.method === 'passkey') return t('account.method.passkey');
  return entry.upstreamProviderId ? t('account.method.upstream_named', { provider: entry.upstreamProviderId }) : t('account.method.upstream');
}

/** A time as the page shows it: UTC to the minute (the <time> element carries the exact instant). */
function shortTime(at: Date): string {
  return `${at.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** A random S256 code challenge: the code this client gets is never redeemed, so its verifier is not kept. */
function throwawayChallenge(): string {
  return createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url');
}

/** What the account page shows besides its sections' defaults. */
interface PageExtras {
  status?: string;
  error?: string;
  enrolment?: TotpEnrolment & { error?: string };
  recoveryCodes?: string[];
  /** The name typed for a new passkey, shown again when it was refused. */
  passkeyName?: string;
  /** The name typed for a new passkey was refused: its field gets the focus, marked invalid. */
  passkeyNameInvalid?: boolean;
  /** What a POST of the "API keys" section did (account-api-keys.routes.ts). */
  apiKeys?: ApiKeysOutcome;
}

/**
 * The person's own page, `/account` (docs/design/sign-in-methods.md §7.3): who is signed in, the
 * two-step verification section (an authenticator app and recovery codes) and the recent sign-ins.
 * Sign-in and re-authentication go through the built-in client `gatehouse-account` and the ordinary
 * authorization endpoint (`/account/sign-in`, `/account/reauth`, back at `/account/callback`), so
 * every sign-in method, second factor and limit applies unchanged. Every POST checks the account
 * CSRF token; the sensitive ones (turning an authenticator on or off, new recovery codes) first
 * need a recent sign-in (ACCOUNT_REAUTH_SECONDS, acr mfa when the person has a second factor).
 *
 * @example
 * app routers: createAccountRoutes({ provider: () => host.provider, accounts, pages, config, secondFactors, signIns })
 */
export function createAccountRoutes(deps: {
  provider: () => Provider;
  accounts: AccountLookup;
  pages: Pages;
  config: Config;
  secondFactors: SecondFactorDeps;
  signIns: Pick<SignInRecorder, 'recent'>;
  passkeys: PasskeyDeps;
  /** The sign-in pages' second-factor limiter (createLoginLimiter kind 'mfa'): the same counts, per account id and IP. */
  mfaLimiter: LoginLimiter;
  /** Security events (mfa.failure, mfa.lockout, passkey.register_failure); registry changes are audited by the services. */
  audit?: AuditSink;
  /** More sections' data for the page (account-self.routes.ts: profile, password, apps, sessions, events). */
  sections?: (ctx: Context, person: SignedInPerson) => Promise<Record<string, unknown>>;
}): Router {
  const { config, secondFactors, passkeys, mfaLimiter } = deps;
  /** The issuer an authenticator app shows beside the account (as at sign-in): the brand's name. */
  const totpIssuer = config.brand.name;
  // One rule for "has a second factor" (an authenticator app or a passkey), as at sign-in.
  const hasAnyFactor = (userId: string) => hasAnySecondFactor(secondFactors.db, userId);
  const kit: AccountSession = createAccountSession({
    provider: deps.provider,
    accounts: deps.accounts,
    pages: deps.pages,
    config,
    hasSecondFactor: hasAnyFactor,
  });

  async function audit(ctx: Context, entry: Omit<AuditEntry, 'requestId' | 'ip'>) {
    const requestId = (ctx.state as { requestId?: unknown }).requestId;
    await deps.audit?.record({ ...entry, requestId: typeof requestId === 'string' ? requestId : null, ip: ctx.ip });
  }
  const router = new Router({ prefix: '/account' });

  // Storage outages get the 503 page (the account pages' one guard); nothing else is caught.
  router.use((ctx, next) => kit.outageGuard(ctx, next));

  async function appName(t: Translate, clientId: string | null, names: Map<string, string>): Promise<string> {
    if (!clientId) return '—';
    if (clientId === ACCOUNT_CLIENT_ID) return t('account.this_page');
    let name = names.get(clientId);
    if (name === undefined) {
      const client = await deps.provider().Client.find(clientId).catch(() => undefined);
      name = client?.clientName ?? clientId;
      names.set(clientId, name);
    }
    return name;
  }

  async function renderAccount(ctx: Context, status: number, person: SignedInPerson, extras: PageExtras = {}) {
    const [factors, history, keys] = await Promise.all([secondFactorStatus(secondFactors.db, person.id), deps.signIns.recent(person.id), listPasskeys(passkeys.db, person.id)]);
    const t = kit.t(ctx);
    const names = new Map<string, string>();
    const signIns = [];
    for (const entry of history) {
      signIns.push({
        at: entry.at.toISOString(),
        atText: shortTime(entry.at),
        method: describeMethod(t, entry),
        ip: entry.ip ?? '—',
        browser: describeUserAgent(entry.userAgent, t),
        userAgent: entry.userAgent ?? '',
        app: await appName(t, entry.clientId, names),
      });
    }
    let enrolment: Record<string, unknown> | undefined;
    if (extras.enrolment) {
      const qrSvg = await totpQrSvg(extras.enrolment.uri);
      if (!qrSvg) ctx.state.log?.warn({ accountId: person.id }, 'the QR code library made an SVG of an unexpected shape; the page shows the key only');
      enrolment = {
        qrSvg,
        uri: extras.enrolment.uri,
        secretGroups: extras.enrolment.secret.match(/.{1,4}/g) ?? [],
        startedAt: String(extras.enrolment.startedAt),
        error: extras.enrolment.error,
      };
    }
    const passkeyList = keys.map((key) => ({
      id: key.id,
      name: key.name,
      kind: t(key.synced ? 'account.synced' : 'account.device_only'),
      created: key.createdAt.toISOString(),
      createdText: shortTime(key.createdAt),
      lastUsed: key.lastUsedAt ? key.lastUsedAt.toISOString() : undefined,
      lastUsedText: key.lastUsedAt ? shortTime(key.lastUsedAt) : t('common.never'),
    }));
    // Under MFA_REQUIRED the last second factor stays: the app when no passkey remains, the last passkey when no app is on.
    const totpOn = factors.totp === 'active';
    // The page carries its script (and a nonce) only for the "Add a passkey" button.
    kit.render(ctx, status, 'account', {
      title: t('account.title'),
      wide: true,
      email: person.email,
      name: person.name,
      csrf: kit.csrfToken(person),
      totp: factors.totp === 'active' ? 'active' : 'none',
      recoveryCodesLeft: factors.recoveryCodesLeft,
      mfaRequired: config.mfaRequired,
      totpRemovable: !config.mfaRequired || keys.length > 0,
      passkeys: passkeyList,
      passkeyRemovable: !config.mfaRequired || totpOn || keys.length > 1,
      passkeyName: extras.passkeyName ?? '',
      passkeyNameInvalid: extras.passkeyNameInvalid === true,
      signIns,
      enrolment,
      recoveryCodes: extras.recoveryCodes,
      linkedAccounts: await linkedAccountsSection(secondFactors.db, person.id, t, ctx.query),
      ...(deps.sections ? await deps.sections(ctx, person) : {}),
      apiKeys: await apiKeysSection(secondFactors.db, person.id, extras.apiKeys),
      emailSection: await accountEmailSection(secondFactors.db, person.id, ctx.query),
      status: extras.status,
      error: extras.error,
    }, { scriptNonce: true });
  }

  /** Starts an authorization request of the account client: `reauth` asks for a sign-in again. */
  async function toAuthorization(ctx: Context, next: string, reauth: { mfa: boolean } | undefined) {
    const state = randomBytes(24).toString('base64url');
    ctx.cookies.set(STATE_COOKIE, Buffer.from(JSON.stringify({ state, next })).toString('base64url'), {
      signed: true,
      httpOnly: true,
      sameSite: 'lax',
      secure: ctx.secure,
      path: '/account',
      maxAge: STATE_TTL_MS,
      overwrite: true,
    });
    const params = new URLSearchParams({
      client_id: ACCOUNT_CLIENT_ID,
      response_type: 'code',
      scope: 'openid',
      redirect_uri: `${config.issuer.replace(/\/$/, '')}${ACCOUNT_CALLBACK_PATH}`,
      code_challenge: throwawayChallenge(),
      code_challenge_method: 'S256',
      state,
    });
    if (reauth) {
      params.set('max_age', '0');
      if (reauth.mfa) params.set('acr_values', ACR_MFA);
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 303;
    ctx.redirect(`${deps.provider().pathFor('authorization')}?${params}`);
  }

  /** The state cookie of this browser, taken (cleared) once. */
  function takeState(ctx: Context): { state: string; next: string } | undefined {
    const raw = ctx.cookies.get(STATE_COOKIE, { signed: true });
    ctx.cookies.set(STATE_COOKIE, null, { path: '/account', signed: true, httpOnly: true, sameSite: 'lax', secure: ctx.secure });
    if (!raw) return undefined;
    try {
      const value = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as { state?: unknown; next?: unknown };
      if (typeof value.state !== 'string') return undefined;
      return { state: value.state, next: safeAccountPath(value.next, config.issuer) };
    } catch {
      return undefined;
    }
  }

  router.get('/', async (ctx) => {
    const person = await kit.signedInPerson(ctx);
    if (!person) return kit.toSignIn(ctx);
    await renderAccount(ctx, 200, person);
  });

  router.get('/sign-in', async (ctx) => {
    await toAuthorization(ctx, '/account', undefined);
  });

  // A sign-in again before a sensitive change: max_age=0, and a second factor when the person has one.
  router.get('/reauth', async (ctx) => {
    const next = safeAccountPath(ctx.query.next, config.issuer);
    const person = await kit.signedInPerson(ctx);
    await toAuthorization(ctx, next, { mfa: person ? await hasAnyFactor(person.id) : false });
  });

  // The end of the account client's authorization request: the session is what counts, the code is
  // never redeemed; the state must be the one this browser's cookie holds.
  router.get('/callback', async (ctx) => {
    const taken = takeState(ctx);
    const presented = typeof ctx.query.state === 'string' ? Buffer.from(ctx.query.state) : undefined;
    const expected = taken ? Buffer.from(taken.state) : undefined;
    if (!taken || !presented || !expected || presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
      kit.errorPage(ctx, 400, kit.t(ctx)('error.link_expired'), kit.t(ctx)('account.open_again'), 'invalid_state');
      return;
    }
    if (typeof ctx.query.error === 'string') {
      const cancelled = ctx.query.error === 'access_denied';
      kit.errorPage(
        ctx,
        400,
        kit.t(ctx)(cancelled ? 'account.cancelled' : 'account.not_finished'),
        kit.t(ctx)(cancelled ? 'account.cancelled_text' : 'account.not_finished_text'),
        ctx.query.error.slice(0, 64),
      );
      return;
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 303;
    ctx.redirect(taken.next);
  });

  /** The start of every POST (the kit's beginPost); `sensitive`: the section to come back to after a sign-in again. */
  async function postStep(ctx: Context, sensitive: string | undefined): Promise<{ person: SignedInPerson; field: (name: string) => string } | undefined> {
    const step = await kit.beginPost(ctx, sensitive);
    return step && { person: step.person, field: (name) => step.form.field(name) };
  }

  // Turn on an authenticator app: a new pending secret, shown with its QR code, #totp-uri and a code to confirm.
  router.post('/totp', async (ctx) => {
    const step = await postStep(ctx, TWO_STEP);
    if (!step) return;
    const { person } = step;
    if (await hasSecondFactor(secondFactors.db, person.id)) {
      await renderAccount(ctx, 409, person, { error: kit.t(ctx)('account.totp_already') });
      return;
    }
    const enrolment = await beginTotpEnrolment(secondFactors, person.id, { issuer: totpIssuer });
    await renderAccount(ctx, 200, person, { enrolment });
  });

  // The first code from the app confirms it (the sign-in that began it was recent; a pending secret
  // is known only to whoever saw that page): the recovery codes are shown this once.
  router.post('/totp/confirm', async (ctx) => {
    const step = await postStep(ctx, undefined);
    if (!step) return;
    const { person, field } = step;
    const startedAt = Number(field('started_at'));
    const expired = () => renderAccount(ctx, 400, person, { error: kit.t(ctx)('account.setup_expired') });
    if (!Number.isSafeInteger(startedAt)) {
      await expired();
      return;
    }
    const who = `user:${person.id}` as const;
    // The same limiter as the sign-in pages' codes (kind 'mfa', per account id and IP): guesses
    // here and there count together, and a locked-out person compares no code here either.
    const limit = await mfaLimiter.check(person.id, ctx.ip);
    if (!limit.allowed) {
      const resumed = await resumeTotpEnrolment(secondFactors, person.id, startedAt, { issuer: totpIssuer });
      if (!resumed) {
        await expired();
        return;
      }
      const minutes = Math.ceil(limit.retryAfterSeconds / 60);
      const tooMany = inMinutes(kit.t(ctx), minutes, 'common.too_many_codes', 'common.too_many_codes_one');
      ctx.set('Retry-After', String(limit.retryAfterSeconds));
      ctx.state.log?.info({ accountId: person.id }, 'authenticator app not confirmed: too many wrong codes');
      await renderAccount(ctx, 429, person, { enrolment: { ...resumed, error: tooMany } });
      return;
    }
    try {
      const { recoveryCodes } = await confirmTotpEnrolment(secondFactors, kit.actor(ctx, person), person.id, field('code'), { startedAt });
      await mfaLimiter.recordSuccess(person.id);
      ctx.state.log?.info({ accountId: person.id }, 'authenticator app turned on from the account page');
      await renderAccount(ctx, 200, person, { status: kit.t(ctx)('account.totp_enabled'), recoveryCodes });
    } catch (error) {
      if (error instanceof WrongCodeError) {
        const resumed = await resumeTotpEnrolment(secondFactors, person.id, startedAt, { issuer: totpIssuer });
        if (!resumed) {
          await expired();
          return;
        }
        if (error.reason !== 'malformed') {
          // Not six digits is no guess (nothing was compared) and is not counted, as at sign-in.
          await mfaLimiter.recordFailure(person.id, ctx.ip);
          await audit(ctx, { actor: who, action: 'mfa.failure', target: who, details: { reason: error.reason, enrolment: true, account_page: true } });
          const after = await mfaLimiter.check(person.id, ctx.ip);
          if (!after.allowed) await audit(ctx, { actor: who, action: 'mfa.lockout', target: who, details: { retry_after_seconds: after.retryAfterSeconds, account_page: true } });
        }
        const message = kit.t(ctx)(error.reason === 'malformed' ? 'common.enrol_code_malformed' : 'account.wrong_code');
        ctx.state.log?.info({ accountId: person.id, reason: error.reason }, 'authenticator app not confirmed');
        await renderAccount(ctx, error.reason === 'malformed' ? 400 : 401, person, { enrolment: { ...resumed, error: message } });
        return;
      }
      if (error instanceof NotFoundError) {
        await expired();
        return;
      }
      throw error;
    }
  });

  // Ten new recovery codes; the old ones stop working at once.
  router.post('/recovery-codes', async (ctx) => {
    const step = await postStep(ctx, TWO_STEP);
    if (!step) return;
    const { person } = step;
    try {
      const recoveryCodes = await regenerateRecoveryCodes(secondFactors, kit.actor(ctx, person), person.id);
      await renderAccount(ctx, 200, person, { status: kit.t(ctx)('account.codes_ready'), recoveryCodes });
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
      await renderAccount(ctx, 409, person, { error: kit.t(ctx)('account.codes_need_app') });
    }
  });

  // Turn the authenticator app off (and its recovery codes). While MFA_REQUIRED is on, only when a
  // passkey remains: every sign-in needs a second factor, and a passkey is one.
  router.post('/totp/delete', async (ctx) => {
    const step = await postStep(ctx, TWO_STEP);
    if (!step) return;
    const { person } = step;
    if (config.mfaRequired && (await listPasskeys(passkeys.db, person.id)).length === 0) {
      ctx.state.log?.info({ accountId: person.id }, 'turning off the authenticator app refused: MFA_REQUIRED and no passkey');
      await renderAccount(ctx, 409, person, { error: kit.t(ctx)('account.totp_cannot_disable') });
      return;
    }
    try {
      await disableTotp(secondFactors, kit.actor(ctx, person), person.id);
      await renderAccount(ctx, 200, person, { status: kit.t(ctx)('account.totp_disabled') });
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
      await renderAccount(ctx, 409, person, { error: kit.t(ctx)('account.no_totp') });
    }
  });

  // Passkeys (design §4.2). Adding and removing need a recent sign-in (with a second factor when the
  // person has one); renaming changes a label only and needs the signed-in session and its CSRF token.

  // Options for the browser's startRegistration: JSON {csrf} of at most 1 KiB; the challenge waits
  // under register:<session uid>. Not recent: 401 {error: 'reauth_required'} and nothing kept (the
  // script then posts the form empty, and that POST answers the re-authentication redirect).
  router.post('/passkeys/options', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    const refuse = (status: number, error: string) => {
      ctx.status = status;
      ctx.body = { error };
    };
    const person = await kit.signedInPerson(ctx);
    if (!person) return refuse(401, 'login_required');
    if (!ctx.is('application/json')) return refuse(415, 'unsupported_media_type');
    let body: unknown;
    try {
      body = await coBody.json(ctx.req, { limit: MAX_OPTIONS_BODY, strict: true });
    } catch (error) {
      return refuse((error as { status?: number }).status === 413 ? 413 : 400, 'invalid_request');
    }
    const csrf = typeof body === 'object' && body !== null ? (body as { csrf?: unknown }).csrf : undefined;
    if (!kit.verifyCsrf(person, csrf)) return refuse(403, 'csrf_token_invalid');
    if (!(await kit.isRecent(person))) return refuse(401, 'reauth_required');
    ctx.body = await passkeyRegistrationOptions(passkeys, person.id, person.sessionUid);
  });

  // The browser's answer, in an ordinary form post: verified, stored under its name, 303 to the list.
  router.post('/passkeys', async (ctx) => {
    const step = await kit.beginPost(ctx, PASSKEYS);
    if (!step) return;
    const { person, form } = step;
    const name = form.field('name');
    const response = form.longField('response');
    if (Buffer.byteLength(response) > MAX_RESPONSE_BYTES) {
      kit.errorPage(ctx, 413, kit.t(ctx)('error.passkey_too_large'), kit.t(ctx)('account.passkey_back_try_again'), 'request_too_large');
      return;
    }
    if (response === '') {
      await renderAccount(ctx, 400, person, { error: kit.t(ctx)('account.passkey_needs_script'), passkeyName: name });
      return;
    }
    try {
      const added = await registerPasskey(passkeys, kit.actor(ctx, person), person.id, response, name, person.sessionUid);
      ctx.state.log?.info({ accountId: person.id, passkeyId: added.id }, 'passkey added from the account page');
      ctx.set('Cache-Control', 'no-store');
      ctx.status = 303;
      ctx.redirect(PASSKEYS);
    } catch (error) {
      if (error instanceof ValidationError) {
        await renderAccount(ctx, 400, person, { error: kit.t(ctx)('account.passkey_name_invalid_add'), passkeyName: name, passkeyNameInvalid: true });
        return;
      }
      if (!(error instanceof PasskeyRejected)) throw error;
      const who = `user:${person.id}` as const;
      ctx.state.log?.info({ accountId: person.id, reason: error.reason }, 'passkey not added');
      await audit(ctx, { actor: who, action: 'passkey.register_failure', target: who, details: { reason: error.reason } });
      await renderAccount(ctx, error.reason === 'already_registered' ? 409 : 400, person, { error: registrationRefusal(kit.t(ctx), error.reason), passkeyName: name });
    }
  });

  /** The passkey of the path, when the id can be one (else the 404 page). */
  function passkeyIdOf(ctx: Context): string | undefined {
    const { id } = ctx.params as { id?: string };
    if (typeof id === 'string' && PASSKEY_ID.test(id)) return id;
    notFound(ctx);
    return undefined;
  }
  const notFound = (ctx: Context) => kit.errorPage(ctx, 404, kit.t(ctx)('account.passkey_not_found'), kit.t(ctx)('account.passkey_not_found_text'), 'not_found');

  router.post('/passkeys/:id/rename', async (ctx) => {
    const step = await postStep(ctx, undefined);
    if (!step) return;
    const { person, field } = step;
    const id = passkeyIdOf(ctx);
    if (!id) return;
    try {
      const renamed = await renamePasskey(passkeys, kit.actor(ctx, person), person.id, id, field('name'));
      await renderAccount(ctx, 200, person, { status: kit.t(ctx)('account.passkey_renamed', { name: renamed.name }) });
    } catch (error) {
      if (error instanceof NotFoundError) return notFound(ctx);
      if (!(error instanceof ValidationError)) throw error;
      await renderAccount(ctx, 400, person, { error: kit.t(ctx)('account.passkey_name_invalid_rename') });
    }
  });

  // Remove a passkey: it stops working at once. Under MFA_REQUIRED, not the last second factor.
  router.post('/passkeys/:id/delete', async (ctx) => {
    const step = await postStep(ctx, PASSKEYS);
    if (!step) return;
    const { person } = step;
    const id = passkeyIdOf(ctx);
    if (!id) return;
    const keys = await listPasskeys(passkeys.db, person.id);
    if (!keys.some((key) => key.id === id)) return notFound(ctx);
    if (config.mfaRequired && keys.length === 1 && !(await hasSecondFactor(secondFactors.db, person.id))) {
      ctx.state.log?.info({ accountId: person.id }, 'removing the last passkey refused: MFA_REQUIRED and no authenticator app');
      await renderAccount(ctx, 409, person, { error: kit.t(ctx)('account.passkey_cannot_remove') });
      return;
    }
    try {
      await removePasskey(passkeys, kit.actor(ctx, person), person.id, id);
    } catch (error) {
      if (error instanceof NotFoundError) return notFound(ctx);
      if (error instanceof LastSignInMethodError) {
        ctx.state.log?.info({ accountId: person.id }, 'removing the last way to sign in refused');
        await renderAccount(ctx, 409, person, { error: kit.t(ctx)('account.passkey_only_way') });
        return;
      }
      throw error;
    }
    ctx.state.log?.info({ accountId: person.id, passkeyId: id }, 'passkey removed from the account page');
    await renderAccount(ctx, 200, person, { status: kit.t(ctx)('account.passkey_removed') });
  });

  // The "API keys" section: its answers are this page, with the new key shown once.
  addAccountApiKeyRoutes(router, { kit, registry: { db: secondFactors.db, audit: secondFactors.audit }, render: (ctx, status, person, apiKeys) => renderAccount(ctx, status, person, { apiKeys }) });

  return router;
}
