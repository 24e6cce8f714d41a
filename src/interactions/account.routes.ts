import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import Router from '@koa/router';
import type { Context, Next } from 'koa';
import type { Provider } from 'oidc-provider';
import { ACR_MFA } from '../accounts/authentication-context.js';
import type { Config } from '../config/load-config.js';
import type { Pages } from '../oidc/pages.js';
import { ACCOUNT_CALLBACK_PATH, ACCOUNT_CLIENT_ID } from '../services/built-in-clients.js';
import { isUnreachable, RETRY_AFTER_SECONDS } from '../services/dependency-outage.js';
import { NotFoundError } from '../services/errors.js';
import {
  beginTotpEnrolment,
  confirmTotpEnrolment,
  disableTotp,
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
import { totpQrSvg } from './totp-qr.js';

/** The issuer an authenticator app shows beside the account (as at sign-in). */
const TOTP_ISSUER = 'Gatehouse';

/** The signed cookie that binds an account sign-in (its `state`) to the browser that started it. */
const STATE_COOKIE = 'gatehouse.account';
const STATE_TTL_MS = 10 * 60 * 1000;

const TWO_STEP = '/account#two-step';

/** A browser, said shortly ("Firefox on Linux"); an unknown one as its first characters. */
export function describeUserAgent(userAgent: string | null): string {
  if (!userAgent) return 'Unknown browser';
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
  if (browser) return os ? `${browser} on ${os}` : browser;
  return userAgent.length > 60 ? `${userAgent.slice(0, 59)}…` : userAgent;
}

/** How a sign-in was made, in words. */
function describeMethod(entry: SignInRecord): string {
  const otp = entry.amr.includes('otp');
  if (entry.method === 'password') return otp ? 'Password and authenticator code' : 'Password';
  if (entry.method === 'step_up') return otp ? 'Second step (authenticator code)' : 'Second step';
  if (entry.method === 'passkey') return 'Passkey';
  return entry.upstreamProviderId ? `Upstream provider (${entry.upstreamProviderId})` : 'Upstream provider';
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
}): Router {
  const { config, secondFactors } = deps;
  const kit: AccountSession = createAccountSession({
    provider: deps.provider,
    accounts: deps.accounts,
    pages: deps.pages,
    config,
    hasSecondFactor: (userId) => hasSecondFactor(secondFactors.db, userId),
  });
  const router = new Router({ prefix: '/account' });

  // Storage outages get the 503 page; nothing else is caught (the app's handler logs it once).
  router.use(async (ctx: Context, next: Next) => {
    try {
      await next();
    } catch (error) {
      if (!isUnreachable(error)) throw error;
      ctx.set('Retry-After', RETRY_AFTER_SECONDS);
      kit.errorPage(ctx, 503, 'Your account page is temporarily unavailable', 'Gatehouse cannot reach its storage right now. Nothing was changed: try again in a moment.', 'temporarily_unavailable');
    }
  });

  async function appName(clientId: string | null, names: Map<string, string>): Promise<string> {
    if (!clientId) return '—';
    if (clientId === ACCOUNT_CLIENT_ID) return 'Your account page';
    let name = names.get(clientId);
    if (name === undefined) {
      const client = await deps.provider().Client.find(clientId).catch(() => undefined);
      name = client?.clientName ?? clientId;
      names.set(clientId, name);
    }
    return name;
  }

  async function renderAccount(ctx: Context, status: number, person: SignedInPerson, extras: PageExtras = {}) {
    const [factors, history] = await Promise.all([secondFactorStatus(secondFactors.db, person.id), deps.signIns.recent(person.id)]);
    const names = new Map<string, string>();
    const signIns = [];
    for (const entry of history) {
      signIns.push({
        at: entry.at.toISOString(),
        atText: shortTime(entry.at),
        method: describeMethod(entry),
        ip: entry.ip ?? '—',
        browser: describeUserAgent(entry.userAgent),
        userAgent: entry.userAgent ?? '',
        app: await appName(entry.clientId, names),
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
    kit.render(ctx, status, 'account', {
      title: 'Your account',
      wide: true,
      email: person.email,
      name: person.name,
      csrf: kit.csrfToken(person),
      totp: factors.totp === 'active' ? 'active' : 'none',
      recoveryCodesLeft: factors.recoveryCodesLeft,
      mfaRequired: config.mfaRequired,
      signIns,
      enrolment,
      recoveryCodes: extras.recoveryCodes,
      linkedAccounts: await linkedAccountsSection(secondFactors.db, person.id, ctx.query),
      status: extras.status,
      error: extras.error,
    });
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
    await toAuthorization(ctx, next, { mfa: person ? await hasSecondFactor(secondFactors.db, person.id) : false });
  });

  // The end of the account client's authorization request: the session is what counts, the code is
  // never redeemed; the state must be the one this browser's cookie holds.
  router.get('/callback', async (ctx) => {
    const taken = takeState(ctx);
    const presented = typeof ctx.query.state === 'string' ? Buffer.from(ctx.query.state) : undefined;
    const expected = taken ? Buffer.from(taken.state) : undefined;
    if (!taken || !presented || !expected || presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
      kit.errorPage(ctx, 400, 'This sign-in link has expired', 'Open your account page again to sign in.', 'invalid_state');
      return;
    }
    if (typeof ctx.query.error === 'string') {
      const cancelled = ctx.query.error === 'access_denied';
      kit.errorPage(
        ctx,
        400,
        cancelled ? 'Sign-in cancelled' : 'Sign-in did not finish',
        cancelled ? 'Nothing was changed. Open your account page again to sign in.' : 'Nothing was changed. Open your account page again and sign in with every step asked for.',
        ctx.query.error.slice(0, 64),
      );
      return;
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 303;
    ctx.redirect(taken.next);
  });

  /** The start of every POST: the signed-in person (else to sign-in), the form and its CSRF token, and (`sensitive`) a recent sign-in. */
  async function postStep(ctx: Context, sensitive: string | undefined): Promise<{ person: SignedInPerson; field: (name: string) => string } | undefined> {
    const person = await kit.signedInPerson(ctx);
    if (!person) {
      kit.toSignIn(ctx);
      return undefined;
    }
    const form = await kit.readForm(ctx);
    if (!form || !kit.checkCsrf(ctx, person, form)) return undefined;
    if (sensitive !== undefined && !(await kit.requireRecentAuth(ctx, person, sensitive))) {
      ctx.state.log?.info({ accountId: person.id, path: ctx.path }, 'account change needs a recent sign-in');
      return undefined;
    }
    return { person, field: (name) => form.field(name) };
  }

  // Turn on an authenticator app: a new pending secret, shown with its QR code, #totp-uri and a code to confirm.
  router.post('/totp', async (ctx) => {
    const step = await postStep(ctx, TWO_STEP);
    if (!step) return;
    const { person } = step;
    if (await hasSecondFactor(secondFactors.db, person.id)) {
      await renderAccount(ctx, 409, person, { error: 'An authenticator app is already on. Turn it off first to set up another.' });
      return;
    }
    const enrolment = await beginTotpEnrolment(secondFactors, person.id, { issuer: TOTP_ISSUER });
    await renderAccount(ctx, 200, person, { enrolment });
  });

  // The first code from the app confirms it (the sign-in that began it was recent; a pending secret
  // is known only to whoever saw that page): the recovery codes are shown this once.
  router.post('/totp/confirm', async (ctx) => {
    const step = await postStep(ctx, undefined);
    if (!step) return;
    const { person, field } = step;
    const startedAt = Number(field('started_at'));
    const expired = () => renderAccount(ctx, 400, person, { error: 'This setup has expired. Start again with “Set up an authenticator app”.' });
    if (!Number.isSafeInteger(startedAt)) {
      await expired();
      return;
    }
    try {
      const { recoveryCodes } = await confirmTotpEnrolment(secondFactors, kit.actor(ctx, person), person.id, field('code'), { startedAt });
      ctx.state.log?.info({ accountId: person.id }, 'authenticator app turned on from the account page');
      await renderAccount(ctx, 200, person, { status: 'Your authenticator app is on. Sign-ins now ask for a code from it after your password.', recoveryCodes });
    } catch (error) {
      if (error instanceof WrongCodeError) {
        const resumed = await resumeTotpEnrolment(secondFactors, person.id, startedAt, { issuer: TOTP_ISSUER });
        if (!resumed) {
          await expired();
          return;
        }
        const message =
          error.reason === 'malformed' ? 'Enter the 6-digit code your authenticator app shows.' : 'That code is not right. Check that the app has the key below, then enter the code it shows now.';
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
      await renderAccount(ctx, 200, person, { status: 'New recovery codes are ready. The old ones no longer work.', recoveryCodes });
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
      await renderAccount(ctx, 409, person, { error: 'Recovery codes come with an authenticator app: set one up first.' });
    }
  });

  // Turn the authenticator app off (and its recovery codes). Refused while MFA_REQUIRED is on: every
  // sign-in would need a second factor, and this is the only one the account page offers today.
  router.post('/totp/delete', async (ctx) => {
    const step = await postStep(ctx, TWO_STEP);
    if (!step) return;
    const { person } = step;
    if (config.mfaRequired) {
      ctx.state.log?.info({ accountId: person.id }, 'turning off the authenticator app refused: MFA_REQUIRED');
      await renderAccount(ctx, 409, person, { error: 'This server requires a second factor for every sign-in, so your authenticator app cannot be turned off.' });
      return;
    }
    try {
      await disableTotp(secondFactors, kit.actor(ctx, person), person.id);
      await renderAccount(ctx, 200, person, { status: 'Your authenticator app is off, and its recovery codes no longer work.' });
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
      await renderAccount(ctx, 409, person, { error: 'There is no authenticator app to turn off.' });
    }
  });

  return router;
}
