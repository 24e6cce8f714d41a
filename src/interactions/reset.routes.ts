import { randomBytes } from 'node:crypto';
import Router from '@koa/router';
import coBody from 'co-body';
import type { Context } from 'koa';
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, passwordProblemKind } from '../accounts/passwords.js';
import { emailFingerprint } from '../audit/security-events.js';
import type { Config } from '../config/load-config.js';
import type { MailComposer } from '../mail/compose.js';
import type { Mailer } from '../mail/mailer.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { pageCsp, type Pages } from '../oidc/pages.js';
import { normaliseEmail } from '../registry/email.js';
import { digestTokenValue } from '../registry/token-digest.js';
import { findUserById } from '../registry/user.repository.js';
import type { RegistryServiceDeps } from '../services/changes.js';
import { isUnreachable, RETRY_AFTER_SECONDS } from '../services/dependency-outage.js';
import { checkEmailLink, type EmailLinkRefusal } from '../services/email-links.service.js';
import {
  completePasswordReset,
  findResetTarget,
  RESET_LINK_MINUTES,
  RESET_PASSWORD_PATH,
  ResetRefusedError,
  sendResetLink,
} from '../services/password-reset.service.js';
import { hasAnySecondFactor } from '../services/second-factors.service.js';
import type { MessageKey } from '../ui/i18n.js';
import { createCsrf } from './csrf.js';
import type { RequestLimiter } from './login-limiter.js';
import { requestLocale, translatorOf } from './page-locale.js';

/*
 * Password reset (issue 17 §3; docs/design/self-service.md "Landed as"):
 *
 *   GET  /reset[?return=/interaction/<uid>]   "Forgot password?": a form asking for an email
 *   POST /reset                                always the same page ("If an account exists …"),
 *                                              whoever the address is; a mail only for a person who
 *                                              may sign in with a password, within the limits
 *   GET  /reset/password?token=<value>         the new-password form, only for a live link
 *   POST /reset/password                       sets it (service: one transaction), ends sessions
 *
 * The link's value travels in the query or a POSTed form, never in a path (request logs record
 * paths). Forms carry a CSRF token bound to a signed, HttpOnly cookie of this path (`gatehouse.reset`),
 * since there is no session to bind it to.
 */

/** The cookie the CSRF token of the reset forms is bound to (random, signed with the cookie keys, path /reset). */
const CSRF_COOKIE = 'gatehouse.reset';
/** Where "Back to sign in" goes when the reset began outside an app: /account signs in. */
const DEFAULT_RETURN = '/account';
/** An interaction's page, the only other place a reset may return to. */
const INTERACTION_PATH = /^\/interaction\/[A-Za-z0-9_-]{1,128}$/;
/** The longest field read (a token is 43 characters, an email at most 254); a password is read whole (the body limit bounds it). */
const MAX_FIELD = 1024;
/** An email as the form accepts it: something@something, no spaces, at most 254 characters. */
const EMAIL_SHAPE = /^[^\s@]+@[^\s@]+$/;

/** The window of the reset limits (RESET_MAX_PER_ADDRESS, RESET_MAX_PER_IP): an hour. */
export const RESET_WINDOW_SECONDS = 3600;

export interface ResetRoutesDeps {
  registry: RegistryServiceDeps;
  mailer: Mailer;
  compose: MailComposer;
  pages: Pages;
  config: Pick<Config, 'issuer' | 'cookieKeys' | 'bodyLimitBytes' | 'brand'>;
  /** Requests per address (keyed by a digest of the normalised address) and per IP: createRequestLimiter. */
  addressLimiter: RequestLimiter;
  ipLimiter: RequestLimiter;
  logger: Logger;
  /** Counts the requests the limits refused (gatehouse_rate_limited_total, limiter reset_ip and reset_address). */
  metrics?: Pick<Metrics, 'rateLimited'>;
  /** After a reset: ends the person's stored sessions and tells their apps (back-channel logout); never rejects. */
  sessionsEnded?: (accountId: string) => Promise<void>;
}

/** The reset routes, and what waits for the mail work they started after their answers. */
export interface ResetRoutes {
  router: Router;
  /** Resolves when every link issued after an answer is stored and its mail queued (before the mailer closes). */
  settle(): Promise<void>;
}

/** Where "Back to sign in" may lead: an interaction of this server, else /account. */
export function safeResetReturn(value: unknown): string {
  return typeof value === 'string' && INTERACTION_PATH.test(value) ? value : DEFAULT_RETURN;
}

const REFUSAL_PAGES: Record<EmailLinkRefusal | 'disabled', { status: number; title: MessageKey; lead: MessageKey }> = {
  unknown: { status: 400, title: 'reset.link_unknown_title', lead: 'reset.link_unknown_lead' },
  used: { status: 410, title: 'reset.link_used_title', lead: 'reset.link_used_lead' },
  expired: { status: 410, title: 'reset.link_expired_title', lead: 'reset.link_expired_lead' },
  disabled: { status: 403, title: 'reset.link_refused_title', lead: 'reset.link_refused_lead' },
};

interface Form {
  field(name: string): string;
  /** Uncut (passwords: the rules refuse an overlong one, which a cut would hide). */
  longField(name: string): string;
}

/**
 * "Forgot password?" and the page of the link (see the comment at the top of this module).
 *
 * @example
 * const reset = createResetRoutes({ registry, mailer, compose, pages, config, addressLimiter, ipLimiter, logger });
 * routers: [reset.router, …]; on close: await reset.settle();
 */
export function createResetRoutes(deps: ResetRoutesDeps): ResetRoutes {
  const { registry, mailer, pages, config } = deps;
  const csrf = createCsrf(config.cookieKeys);
  const router = new Router({ prefix: '/reset' });
  const pending = new Set<Promise<void>>();
  const log = deps.logger.child({ component: 'password-reset' });

  /** A page in the language the browser asks for; `title` is a catalogue key (the heading and the document's title). */
  function render(ctx: Context, status: number, view: 'reset-request' | 'reset-password' | 'reset-message', data: Record<string, unknown> & { title: MessageKey }) {
    ctx.status = status;
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Content-Security-Policy', pageCsp());
    const locale = requestLocale(ctx);
    ctx.body = pages.render(view, { ...data, heading: data.title, title: translatorOf(ctx)(data.title), locale });
  }

  /** A page of words and links: the neutral answer, a refusal, the end. Texts are catalogue keys, rendered in the page's language. */
  function message(ctx: Context, status: number, title: MessageKey, lead: MessageKey, options: { params?: Record<string, string | number>; more?: MessageKey[]; links?: Array<{ href: string; text: MessageKey; id?: string }> } = {}) {
    render(ctx, status, 'reset-message', { title, lead, params: options.params ?? {}, more: options.more ?? [], links: options.links ?? [] });
  }

  /** The browser's CSRF binding: the signed cookie's value, made (and set) when missing. */
  function binding(ctx: Context, create: boolean): string | undefined {
    const existing = ctx.cookies.get(CSRF_COOKIE, { signed: true });
    if (existing && /^[A-Za-z0-9_-]{22}$/.test(existing)) return existing;
    if (!create) return undefined;
    const value = randomBytes(16).toString('base64url');
    ctx.cookies.set(CSRF_COOKIE, value, { signed: true, httpOnly: true, sameSite: 'lax', secure: ctx.secure, path: '/reset', overwrite: true });
    return value;
  }
  const csrfToken = (ctx: Context) => csrf.token(`reset:${binding(ctx, true) ?? ''}`);
  function csrfOk(ctx: Context, form: Form): boolean {
    const bound = binding(ctx, false);
    if (bound && csrf.verify(`reset:${bound}`, form.field('csrf'))) return true;
    message(ctx, 403, 'reset.form_expired_title', 'reset.form_expired_lead', { links: [{ href: '/reset', text: 'reset.request_again' }] });
    return false;
  }

  async function readForm(ctx: Context): Promise<Form | undefined> {
    if (!ctx.is('application/x-www-form-urlencoded')) {
      message(ctx, 415, 'reset.bad_form_title', 'reset.bad_form_lead');
      return undefined;
    }
    let body: Record<string, unknown>;
    try {
      body = (await coBody.form(ctx.req, { limit: config.bodyLimitBytes, queryString: { depth: 0, parameterLimit: 20 } })) as Record<string, unknown>;
    } catch (error) {
      message(ctx, (error as { status?: number }).status === 413 ? 413 : 400, 'reset.bad_form_title', 'reset.bad_form_lead');
      return undefined;
    }
    const value = (name: string) => (typeof body[name] === 'string' ? (body[name] as string) : '');
    return { field: (name) => value(name).slice(0, MAX_FIELD + 1), longField: value };
  }

  function unavailable(ctx: Context) {
    const support = config.brand.supportUrl;
    message(ctx, 200, 'reset.unavailable_title', 'reset.unavailable_lead', { links: support ? [{ href: support, text: 'reset.contact_support' }] : [] });
  }

  function requestForm(ctx: Context, status: number, back: string, extra: { error?: MessageKey; email?: string } = {}) {
    render(ctx, status, 'reset-request', { title: 'reset.request_title', csrf: csrfToken(ctx), back, ...extra });
  }

  function linkRefused(ctx: Context, reason: EmailLinkRefusal | 'disabled') {
    const page = REFUSAL_PAGES[reason];
    const links = [{ href: '/reset', text: 'reset.request_again' as const }];
    message(ctx, page.status, page.title, page.lead, { params: { minutes: RESET_LINK_MINUTES }, links });
  }

  /** The person of a live link, or the refusal page answered (unknown, used, expired, disabled). */
  async function liveLink(ctx: Context, token: unknown): Promise<{ email: string } | undefined> {
    const check = await checkEmailLink(registry.db, token, 'password_reset');
    if (!check.ok) {
      linkRefused(ctx, check.reason);
      return undefined;
    }
    const user = await findUserById(registry.db, check.link.userId);
    if (!user || normaliseEmail(user.email) !== normaliseEmail(check.link.email)) {
      linkRefused(ctx, 'unknown');
      return undefined;
    }
    if (user.disabled) {
      linkRefused(ctx, 'disabled');
      return undefined;
    }
    return { email: user.email };
  }

  function passwordForm(ctx: Context, status: number, token: string, email: string, error?: { field: 'password' | 'confirm'; key: MessageKey }) {
    render(ctx, status, 'reset-password', {
      title: 'reset.password_title',
      csrf: csrfToken(ctx),
      action: RESET_PASSWORD_PATH,
      token,
      email,
      min: MIN_PASSWORD_LENGTH,
      max: MAX_PASSWORD_LENGTH,
      ...(error ? { error: error.key, errorField: error.field } : {}),
    });
  }

  /** Work after the answer (the link and its mail), so the answer takes the same time whoever asked; logged, never thrown. */
  function afterAnswer(work: () => Promise<void>) {
    const job = new Promise<void>((resolve) => setImmediate(resolve)).then(work).catch((error: unknown) => {
      log.error({ err: { message: (error as Error)?.message ?? String(error) } }, 'password reset: the link could not be issued or its mail queued');
    });
    pending.add(job);
    void job.finally(() => pending.delete(job));
  }

  // Storage outages get a page with Retry-After; nothing else is caught (the app's handler logs it).
  router.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      if (!isUnreachable(error)) throw error;
      ctx.set('Retry-After', RETRY_AFTER_SECONDS);
      message(ctx, 503, 'reset.outage_title', 'reset.outage_lead');
    }
  });

  router.get('/', (ctx) => {
    if (!mailer.available) return unavailable(ctx);
    requestForm(ctx, 200, safeResetReturn(ctx.query.return));
  });

  router.post('/', async (ctx) => {
    if (!mailer.available) return unavailable(ctx);
    const form = await readForm(ctx);
    if (!form || !csrfOk(ctx, form)) return;
    const back = safeResetReturn(form.field('return'));
    const email = form.field('email').trim();
    if (email.length > 254 || !EMAIL_SHAPE.test(email)) return requestForm(ctx, 400, back, { error: 'reset.error_email', email: email.slice(0, 254) });
    // The IP's count comes first and alone decides a 429: it says nothing about the address.
    const byIp = await deps.ipLimiter.take(ctx.ip);
    if (!byIp.allowed) {
      ctx.set('Retry-After', String(byIp.retryAfterSeconds));
      deps.metrics?.rateLimited('reset_ip');
      log.info({ requestId: ctx.state.requestId }, 'password reset refused: too many requests from this IP');
      return message(ctx, 429, 'reset.too_many_title', 'reset.too_many_lead', { params: { minutes: Math.ceil(byIp.retryAfterSeconds / 60) } });
    }
    // Every address is counted, known or not, so the limit tells nothing either.
    const byAddress = await deps.addressLimiter.take(digestTokenValue(normaliseEmail(email)));
    const target = await findResetTarget(registry.db, email);
    const fingerprint = emailFingerprint(email);
    if (!byAddress.allowed) {
      deps.metrics?.rateLimited('reset_address');
      log.info({ email: fingerprint, requestId: ctx.state.requestId }, 'password reset: no mail sent, too many requests for this address');
    } else if (target.kind === 'person') {
      const { user } = target;
      const requestId = ctx.state.requestId;
      afterAnswer(async () => {
        await sendResetLink({ db: registry.db, mailer, compose: deps.compose, issuer: config.issuer, brandName: config.brand.name }, user);
        log.info({ accountId: user.id, requestId }, 'password reset link sent');
      });
    } else {
      log.info({ email: fingerprint, reason: target.why, requestId: ctx.state.requestId }, 'password reset: no mail sent');
    }
    message(ctx, 200, 'reset.sent_title', 'reset.sent_lead', {
      params: { minutes: RESET_LINK_MINUTES },
      more: ['reset.sent_hint'],
      links: [
        { href: back, text: 'reset.back_to_sign_in' },
        { href: '/reset', text: 'reset.request_again' },
      ],
    });
  });

  router.get('/password', async (ctx) => {
    const token = ctx.query.token;
    const live = await liveLink(ctx, token);
    if (!live) return;
    passwordForm(ctx, 200, String(token), live.email);
  });

  router.post('/password', async (ctx) => {
    const form = await readForm(ctx);
    if (!form || !csrfOk(ctx, form)) return;
    const token = form.field('token');
    const live = await liveLink(ctx, token);
    if (!live) return;
    const password = form.longField('password');
    const problem = passwordProblemKind(password);
    if (problem) {
      const key: MessageKey = problem === 'too_short' ? 'reset.error_too_short' : problem === 'too_long' ? 'reset.error_too_long' : 'reset.error_common';
      return passwordForm(ctx, 400, token, live.email, { field: 'password', key });
    }
    if (form.longField('confirm') !== password) return passwordForm(ctx, 400, token, live.email, { field: 'confirm', key: 'reset.error_mismatch' });
    const requestId = typeof ctx.state.requestId === 'string' ? ctx.state.requestId : null;
    let userId: string;
    try {
      userId = (await completePasswordReset(registry, { requestId, ip: ctx.ip }, token, password)).id;
    } catch (error) {
      if (!(error instanceof ResetRefusedError)) throw error;
      log.info({ reason: error.reason, requestId }, 'password reset refused');
      return linkRefused(ctx, error.reason);
    }
    log.info({ accountId: userId, requestId }, 'password reset: new password set, sessions and refresh tokens ended');
    await deps.sessionsEnded?.(userId);
    const secondFactor = await hasAnySecondFactor(registry.db, userId);
    message(ctx, 200, 'reset.done_title', 'reset.done_lead', {
      more: secondFactor ? ['reset.done_second_factor'] : [],
      links: [{ href: DEFAULT_RETURN, text: 'reset.sign_in', id: 'reset-sign-in' }],
    });
  });

  return {
    router,
    async settle() {
      while (pending.size > 0) await Promise.all(pending);
    },
  };
}
