import Router from '@koa/router';
import coBody from 'co-body';
import type { Context } from 'koa';
import type { Config } from '../config/load-config.js';
import { pageCsp, type Pages } from '../oidc/pages.js';
import { isUnreachable, RETRY_AFTER_SECONDS } from '../services/dependency-outage.js';
import {
  checkEmailAddressLink,
  completeEmailChange,
  CONFIRM_EMAIL_PATH,
  verifyEmail,
  VERIFY_EMAIL_PATH,
  type EmailLinkOutcome,
  type EmailServiceDeps,
} from '../services/email-verification.service.js';
import type { MessageKey, Translate } from '../ui/i18n.js';
import { requestLocale, translatorOf } from './page-locale.js';
import { createCsrf } from './csrf.js';

type Purpose = 'email_verification' | 'email_change';
type Refusal = Extract<EmailLinkOutcome, { ok: false }>['reason'];

/** The status and words of each refusal (never the link itself). */
const REFUSALS: Record<Refusal, { status: number; heading: MessageKey; message: (purpose: Purpose) => MessageKey }> = {
  unknown: { status: 404, heading: 'verify.unknown_title', message: () => 'verify.unknown' },
  used: { status: 410, heading: 'verify.used_title', message: () => 'verify.used' },
  expired: { status: 410, heading: 'verify.expired_title', message: (purpose) => (purpose === 'email_change' ? 'email_change.expired' : 'verify.expired') },
  disabled: { status: 403, heading: 'verify.disabled_title', message: () => 'verify.disabled' },
  address_changed: { status: 409, heading: 'verify.unknown_title', message: () => 'verify.changed' },
  taken: { status: 409, heading: 'email_change.taken_title', message: () => 'email_change.taken' },
};

/**
 * The pages at the links sent by mail (docs/design/self-service.md "Email addresses"):
 * `GET /verify-email?token=…` (confirm an address) and `GET /confirm-email?token=…` (confirm a new
 * address). The link's value rides in the query string, which request logs leave out. A GET changes
 * nothing (mail scanners fetch links): it shows what the link does, with one button that POSTs the
 * value back (a CSRF token bound to it); the POST uses the link. A link that is unknown, used,
 * expired, of a disabled person, of an address no longer theirs, or to an address taken meanwhile
 * gets a page saying so and how to get a new one; nothing is changed then.
 *
 * @example
 * app routers: [...createEmailAddressRoutes({ email, pages, config }), …]
 */
export function createEmailAddressRoutes(deps: { email: EmailServiceDeps; pages: Pages; config: Pick<Config, 'cookieKeys' | 'bodyLimitBytes'> }): Router[] {
  const { email, pages, config } = deps;
  const csrf = createCsrf(config.cookieKeys);
  const bound = (purpose: Purpose, value: string) => `email-link:${purpose}:${value}`;

  function render(ctx: Context, status: number, data: Record<string, unknown> & { title: string }) {
    ctx.status = status;
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Content-Security-Policy', pageCsp());
    ctx.body = pages.render('email-link', { ...data, heading: data.heading ?? data.title, locale: requestLocale(ctx) });
  }

  const translator = (ctx: Context): Translate => translatorOf(ctx);

  function refuse(ctx: Context, purpose: Purpose, reason: Refusal) {
    const t = translator(ctx);
    const refusal = REFUSALS[reason];
    ctx.state.log?.info({ purpose, reason }, 'email link refused');
    render(ctx, refusal.status, {
      title: t(refusal.heading),
      paragraphs: [t(refusal.message(purpose)), t(purpose === 'email_change' ? 'email_change.new_link' : 'verify.new_link')],
      code: reason,
      requestId: ctx.state.requestId,
      links: [{ href: '/account', text: t('verify.to_account'), id: 'to-account' }],
    });
  }

  function routerFor(path: string, purpose: Purpose): Router {
    const router = new Router({ prefix: path });
    router.use(async (ctx, next) => {
      try {
        await next();
      } catch (error) {
        if (!isUnreachable(error)) throw error;
        const t = translator(ctx);
        ctx.set('Retry-After', RETRY_AFTER_SECONDS);
        render(ctx, 503, { title: t('verify.title'), paragraphs: [t('verify.unavailable')], code: 'temporarily_unavailable' });
      }
    });

    router.get('/', async (ctx) => {
      const value = ctx.query.token;
      const checked = await checkEmailAddressLink(email.db, value, purpose);
      if (!checked.ok) return refuse(ctx, purpose, checked.reason);
      const t = translator(ctx);
      const change = purpose === 'email_change';
      render(ctx, 200, {
        title: t(change ? 'email_change.title' : 'verify.title'),
        paragraphs: [t(change ? 'email_change.lead' : 'verify.lead', { email: checked.email })],
        form: { action: path, csrf: csrf.token(bound(purpose, String(value))), token: String(value), button: t(change ? 'email_change.submit' : 'verify.submit') },
      });
    });

    router.post('/', async (ctx) => {
      const t = translator(ctx);
      let body: Record<string, unknown>;
      try {
        if (!ctx.is('application/x-www-form-urlencoded')) throw Object.assign(new Error('not a form'), { status: 415 });
        body = (await coBody.form(ctx.req, { limit: config.bodyLimitBytes, queryString: { depth: 0, parameterLimit: 20 } })) as Record<string, unknown>;
      } catch (error) {
        const status = (error as { status?: number }).status;
        render(ctx, status === 413 || status === 415 ? status : 400, { title: t('verify.unknown_title'), paragraphs: [t('verify.form_expired')], code: 'invalid_request' });
        return;
      }
      const value = typeof body.token === 'string' ? body.token.slice(0, 64) : '';
      if (!csrf.verify(bound(purpose, value), body.csrf)) {
        ctx.state.log?.info({ purpose }, 'email link form refused: CSRF token');
        render(ctx, 403, { title: t('verify.unknown_title'), paragraphs: [t('verify.form_expired')], code: 'csrf_token_invalid' });
        return;
      }
      const requestId = (ctx.state as { requestId?: unknown }).requestId;
      const origin = { requestId: typeof requestId === 'string' ? requestId : null, ip: ctx.ip };
      const outcome = purpose === 'email_change' ? await completeEmailChange(email, origin, value) : await verifyEmail(email, origin, value);
      if (!outcome.ok) return refuse(ctx, purpose, outcome.reason);
      ctx.state.log?.info({ purpose, accountId: outcome.userId }, purpose === 'email_change' ? 'email address changed' : 'email address confirmed');
      const change = purpose === 'email_change';
      render(ctx, 200, {
        title: t(change ? 'email_change.done_title' : 'verify.done_title'),
        paragraphs: [t(change ? 'email_change.done_lead' : 'verify.done_lead', { email: outcome.email })],
        links: [{ href: '/account', text: t('verify.to_account'), id: 'to-account' }],
      });
    });
    return router;
  }

  return [routerFor(VERIFY_EMAIL_PATH, 'email_verification'), routerFor(CONFIRM_EMAIL_PATH, 'email_change')];
}
