import type { Context, Middleware } from 'koa';
import { errors, type Configuration, type KoaContextWithOIDC, type Provider } from 'oidc-provider';
import { createTranslator, negotiateLocale, type Locale, type MessageKey, type Translate } from '../ui/i18n.js';
import { pageLocaleOf, peopleClientName } from './error-page.js';
import { pageCsp, type Pages } from './pages.js';
import { beforeDeviceCodePoll, deviceCodeRefusalOf, type DeviceCodeRefusal, type PolledDeviceCode } from './upstream.js';

/*
 * The device authorization grant (RFC 8628; docs/device-flow.md). oidc-provider serves the protocol:
 * the device authorization endpoint, the user-code page at /device, the device_code grant. Gatehouse
 * adds what a product needs around it:
 * - the pages (deviceFlowFeature): views/device.eta, in the page machinery of the sign-in pages
 *   (brand, language, a CSP with no script at all);
 * - a limit on wrong user codes per client IP (deviceFlowGate): past it, every POST to /device is
 *   answered 429 with Retry-After before the provider looks at the code, a right one too;
 * - `verification_uri_complete` opens the form with the code filled in (deviceFlowGate), rather
 *   than oidc-provider's page that submits itself with a script;
 * - the `interval` of RFC 8628 §3.2 in the device authorization answer, and slow_down (§3.5) for a
 *   device that polls a pending code sooner than that (pacePolls), which oidc-provider 9 does not do.
 */

/** Whether a client IP may submit a user code now (interactions/login-limiter.ts, kind `device`). */
export type DeviceLimitCheck = { allowed: true } | { allowed: false; retryAfterSeconds: number };

/** Wrong user codes counted per client IP. */
export interface DeviceCodeFailureLimiter {
  check(ip: string): Promise<DeviceLimitCheck>;
  recordFailure(ip: string): Promise<void>;
}

/** One poll of a pending device code per interval: `take` refuses a second one within it. */
export interface DevicePollPacer {
  take(deviceCode: string): Promise<DeviceLimitCheck>;
}

/** How long the user-code page shows back what was typed (the rest is dropped; no code is this long). */
const MAX_ECHO = 64;

/** What Gatehouse keeps on ctx.state for one request to /device. */
interface DeviceRequestState {
  /** The code of a verification_uri_complete, shown in the form (deviceFlowGate). */
  devicePrefill?: string;
  /** Why the provider refused the code typed (userCodeInputSource), read by deviceFlowGate. */
  deviceRefusal?: DeviceCodeRefusal;
}

const stateOf = (ctx: Context | KoaContextWithOIDC) => ctx.state as DeviceRequestState;

/** What each refusal says on the page. */
const REFUSAL_MESSAGES: Readonly<Record<Exclude<DeviceCodeRefusal, 'aborted'>, MessageKey>> = {
  not_found: 'device.wrong_code',
  expired: 'device.expired_code',
  already_used: 'device.used_code',
  no_code: 'device.no_code',
};

function sessionSecret(ctx: KoaContextWithOIDC): string {
  const state = (ctx.oidc.session as { state?: { secret?: unknown } } | undefined)?.state;
  return typeof state?.secret === 'string' ? state.secret : '';
}

function render(ctx: Context | KoaContextWithOIDC, pages: Pages, status: number, locale: Locale, data: Record<string, unknown> & { title: string; step: string }) {
  ctx.status = status;
  ctx.type = 'html';
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Content-Security-Policy', pageCsp());
  ctx.body = pages.render('device', { ...data, locale });
}

function appName(t: Translate, brandName: string, client: { clientId: string; clientName?: string | undefined } | undefined): string {
  if (!client) return t('common.the_application');
  return peopleClientName(t, brandName, client.clientId, client.clientName) ?? client.clientId;
}

/** The message of an error that is not about the code: the form expired, the store is down, a fault. */
function otherErrorMessage(out: { error?: unknown } | undefined): MessageKey {
  if (out?.error === 'invalid_request') return 'device.form_expired';
  if (out?.error === 'temporarily_unavailable') return 'device.unavailable';
  return 'device.failed';
}

/**
 * oidc-provider's `features.deviceFlow`: enabled, with Gatehouse's pages. User codes are 8 letters
 * of base-20 (BCDFGHJKLMNPQRSTVWXZ, no vowels), shown as XXXX-XXXX: 20^8 ≈ 2.6·10^10 codes, of which
 * a guesser may try DEVICE_CODE_MAX_PER_IP per 15 minutes per address (deviceFlowGate).
 *
 * @example
 * features: { deviceFlow: deviceFlowFeature({ pages }) }
 */
export function deviceFlowFeature(deps: { pages: Pages }): NonNullable<Configuration['features']>['deviceFlow'] {
  const { pages } = deps;
  const brandName = pages.brand.name;
  return {
    enabled: true,
    charset: 'base-20',
    mask: '****-****',
    // The code form, first shown and after a refusal; and the page of a cancelled sign-in.
    userCodeInputSource(ctx, _form, out, err) {
      const locale = pageLocaleOf(ctx);
      const t = createTranslator(locale);
      const refusal = err ? deviceCodeRefusalOf(err) : undefined;
      stateOf(ctx).deviceRefusal = refusal;
      if (refusal === 'aborted') {
        render(ctx, pages, 200, locale, { title: t('device.aborted_title'), step: 'aborted' });
        return;
      }
      const typed = (err as { userCode?: unknown } | undefined)?.userCode;
      const value = typeof typed === 'string' ? typed : stateOf(ctx).devicePrefill;
      const message = refusal ? REFUSAL_MESSAGES[refusal] : err ? otherErrorMessage(out) : undefined;
      // A refused code is the person's mistake (400); another error keeps the status the provider gave it.
      const status = refusal ? 400 : err ? ctx.status : 200;
      render(ctx, pages, status, locale, {
        title: t('device.title'),
        step: 'enter',
        action: ctx.oidc.urlFor('code_verification'),
        xsrf: sessionSecret(ctx),
        value: (value ?? '').slice(0, MAX_ECHO),
        ...(message ? { error: t(message) } : {}),
      });
    },
    // The code is known: whose app asks, the code to compare with the device's, Continue or Cancel.
    userCodeConfirmSource(ctx, _form, client, _deviceInfo, userCode) {
      const locale = pageLocaleOf(ctx);
      const t = createTranslator(locale);
      render(ctx, pages, 200, locale, {
        title: t('device.confirm_title'),
        step: 'confirm',
        action: ctx.oidc.urlFor('code_verification'),
        xsrf: sessionSecret(ctx),
        userCode,
        clientName: appName(t, brandName, client),
      });
    },
    successSource(ctx) {
      const locale = pageLocaleOf(ctx);
      const t = createTranslator(locale);
      render(ctx, pages, 200, locale, { title: t('device.success_title'), step: 'success', clientName: appName(t, brandName, ctx.oidc.client) });
    },
  };
}

/**
 * Provider middleware for the device flow's two endpoints of its own:
 * - POST /device (a user code typed): refused with 429 and Retry-After while this client IP is over
 *   its limit of wrong codes, before the provider reads the code (so a right one is refused too);
 *   a code the provider did not find counts against it. An expired or used code, or none, is no guess.
 * - GET /device?user_code=…: the form, with the code filled in (the person presses Continue).
 * - The device authorization answer gets `interval` (RFC 8628 §3.2).
 *
 * @example
 * provider.use(deviceFlowGate({ provider, pages, limiter, pollIntervalSeconds: 5 }));
 */
export function deviceFlowGate(deps: { provider: Provider; pages: Pages; limiter?: DeviceCodeFailureLimiter | undefined; pollIntervalSeconds: number }): Middleware {
  const { pages, limiter, pollIntervalSeconds } = deps;
  const verificationPath = deps.provider.pathFor('code_verification');
  const authorizationPath = deps.provider.pathFor('device_authorization');

  async function announceInterval(ctx: Context, next: () => Promise<unknown>) {
    await next();
    const body = ctx.body as { device_code?: unknown; interval?: unknown } | undefined;
    if (ctx.status === 200 && typeof body?.device_code === 'string') body.interval = pollIntervalSeconds;
  }

  async function userCodePage(ctx: Context, next: () => Promise<unknown>) {
    if (ctx.method === 'GET') {
      // Never left to the provider, whose answer is a page submitting itself with a script; given
      // twice, the form is shown empty.
      const { user_code: prefill, ...rest } = ctx.query;
      if (prefill !== undefined) {
        if (typeof prefill === 'string') stateOf(ctx).devicePrefill = prefill.slice(0, MAX_ECHO);
        ctx.query = rest;
      }
      await next();
      return;
    }
    if (ctx.method !== 'POST' || !limiter) {
      await next();
      return;
    }
    const check = await limiter.check(ctx.ip);
    if (!check.allowed) {
      const locale = negotiateLocale({ acceptLanguage: ctx.get('accept-language') });
      const t = createTranslator(locale);
      const minutes = Math.ceil(check.retryAfterSeconds / 60);
      ctx.set('Retry-After', String(check.retryAfterSeconds));
      ctx.state.log?.info({ outcome: 'rate_limited', retryAfterSeconds: check.retryAfterSeconds }, 'user code refused: too many wrong codes from this address');
      render(ctx, pages, 429, locale, { title: t('device.title'), step: 'blocked', error: minutes <= 1 ? t('device.too_many_one') : t('device.too_many', { minutes }) });
      return;
    }
    await next();
    if (stateOf(ctx).deviceRefusal === 'not_found') await limiter.recordFailure(ctx.ip);
  }

  return (ctx, next) => {
    if (ctx.path === verificationPath) return userCodePage(ctx, next);
    if (ctx.path === authorizationPath && ctx.method === 'POST') return announceInterval(ctx, next);
    return next();
  };
}

/**
 * slow_down (RFC 8628 §3.5): a device that polls a pending device code again within the interval is
 * told to slow down, and the poll counts for nothing else. Codes already approved, refused, expired
 * or redeemed are left to the provider's own answer; so is a code of another client.
 *
 * @example
 * pacePolls(provider, pacer);
 */
export function pacePolls(provider: Provider, pacer: DevicePollPacer): void {
  beforeDeviceCodePoll(provider, async (code: PolledDeviceCode, clientId: string | undefined) => {
    if (code.accountId || code.error || code.consumed || code.isExpired || code.clientId !== clientId) return;
    const pace = await pacer.take(code.jti);
    if (!pace.allowed) throw new errors.SlowDown();
  });
}
