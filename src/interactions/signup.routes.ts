import type Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type { Provider } from 'oidc-provider';
import type { AuditSink } from '../audit/audit-log.js';
import type { Pages } from '../oidc/pages.js';
import { MailUnavailableError, signUp, signUpProblems, type EmailServiceDeps, type SignUpProblem } from '../services/email-verification.service.js';
import { createTranslator, type Locale, type MessageKey } from '../ui/i18n.js';
import { requestLocale } from './page-locale.js';
import type { RequestLimiter } from './login-limiter.js';

type Interaction = Awaited<ReturnType<Provider['interactionDetails']>>;

/** What the interaction routes lend the sign-up routes (one implementation of each, in interaction.routes.ts). */
export interface SignupHelpers {
  forms: Middleware;
  details(ctx: Context): Promise<Interaction>;
  /** The interaction at a step `atStep` accepts, with the form's CSRF token checked (else the refusal page is answered). */
  formStep(ctx: Context, atStep: (interaction: Interaction) => boolean): Promise<{ uid: string; interaction: Interaction } | undefined>;
  page(ctx: Context, status: number, name: Parameters<Pages['render']>[0], data: Parameters<Pages['render']>[1], formTargets?: string[]): void;
  /** The error page from two catalogue keys, in the request's language. */
  errorPage(ctx: Context, status: number, heading: MessageKey, message: MessageKey, code?: string): void;
  clientName(ctx: Context, clientId: unknown): Promise<string>;
  /** A form field, at most 1025 characters (ctx.state.form). */
  field(ctx: Context, name: string): string;
  csrfToken(uid: string): string;
}

/** The sign-up part of the interaction routes: mounted by createInteractionRoutes, linked from the login page. */
export interface SignupRoutes {
  mount(router: Router, helpers: SignupHelpers): void;
  /** The "Create an account" link of the login page of this interaction. */
  loginLink(uid: string): string;
}

const PROBLEM_KEYS: Record<SignUpProblem, MessageKey> = {
  email: 'signup.error_email',
  password_short: 'signup.error_password_short',
  password_long: 'signup.error_password_long',
  password_common: 'signup.error_password_common',
  name: 'signup.error_name',
};

/** How long the per-IP count of sign-ups lasts: SIGNUP_MAX_PER_IP per hour. */
export const SIGNUP_WINDOW_SECONDS = 3600;

/**
 * Self sign-up (SIGNUP_ENABLED, docs/design/self-service.md "Email addresses"), inside the
 * authorization's interaction so the person returns to the app: `GET /interaction/:uid/signup` (the
 * form: email, password, optional name, CSRF) and `POST /interaction/:uid/signup`. A new person is
 * created unconfirmed in the page's language and sent a link that confirms the address; an address
 * that has an account already gets the very same answer (its owner is told by mail instead). The
 * answer never signs anyone in: it says to check the mail and leads back to this interaction's
 * sign-in page, where the new password works at once (email_verified false until the link is used).
 * Per client IP, SIGNUP_MAX_PER_IP attempts an hour.
 *
 * @example
 * const signup = config.signupEnabled ? createSignupRoutes({ email, limiter, audit }) : undefined;
 * createInteractionRoutes({ …, signup });
 */
export function createSignupRoutes(deps: { email: EmailServiceDeps; limiter: RequestLimiter; audit?: AuditSink }): SignupRoutes {
  const loginLink = (uid: string) => `/interaction/${uid}/signup`;

  // The interaction's ui_locales, then Accept-Language (helpers.details made it this request's language).
  const localeOf = (ctx: Context): Locale => requestLocale(ctx);

  async function renderForm(
    ctx: Context,
    helpers: SignupHelpers,
    status: number,
    uid: string,
    interaction: Interaction,
    extra: { email?: string; name?: string; errors?: string[]; invalid?: SignUpProblem[] } = {},
  ) {
    const locale = localeOf(ctx);
    const t = createTranslator(locale);
    helpers.page(ctx, status, 'signup', {
      title: t('signup.title'),
      locale,
      clientName: await helpers.clientName(ctx, interaction.params.client_id),
      csrf: helpers.csrfToken(uid),
      action: loginLink(uid),
      back: `/interaction/${uid}`,
      email: extra.email ?? '',
      name: extra.name ?? '',
      errors: extra.errors ?? [],
      invalid: extra.invalid ?? [],
    });
  }

  return {
    loginLink,
    mount(router, helpers) {
      router.get('/:uid/signup', async (ctx) => {
        const interaction = await helpers.details(ctx);
        if (interaction.prompt.name !== 'login') {
          helpers.errorPage(ctx, 400, 'error.unexpected_step', 'error.start_again', 'invalid_request');
          return;
        }
        await renderForm(ctx, helpers, 200, String(ctx.params.uid), interaction);
      });

      router.post('/:uid/signup', helpers.forms, async (ctx) => {
        const step = await helpers.formStep(ctx, (i) => i.prompt.name === 'login');
        if (!step) return;
        const { uid, interaction } = step;
        const locale = localeOf(ctx);
        const t = createTranslator(locale);
        const email = helpers.field(ctx, 'email').trim();
        const password = helpers.field(ctx, 'password');
        const name = helpers.field(ctx, 'name').trim();
        const limit = await deps.limiter.take(ctx.ip);
        if (!limit.allowed) {
          ctx.set('Retry-After', String(limit.retryAfterSeconds));
          ctx.state.log?.info({ outcome: 'rate_limited' }, 'sign-up refused: too many from this address');
          await renderForm(ctx, helpers, 429, uid, interaction, { email, name, errors: [t('signup.too_many', { minutes: Math.ceil(limit.retryAfterSeconds / 60) })] });
          return;
        }
        const problems = signUpProblems({ email, password, name });
        if (problems.length > 0) {
          ctx.state.log?.info({ outcome: 'invalid', problems }, 'sign-up refused');
          // What was typed comes back escaped (the name and email only, cut to what a field holds).
          await renderForm(ctx, helpers, 400, uid, interaction, { email: email.slice(0, 254), name: name.slice(0, 200), errors: problems.map((problem) => t(PROBLEM_KEYS[problem])), invalid: problems });
          return;
        }
        const requestId = (ctx.state as { requestId?: unknown }).requestId;
        const origin = { requestId: typeof requestId === 'string' ? requestId : null, ip: ctx.ip };
        let created: boolean;
        try {
          ({ created } = await signUp(deps.email, origin, { email, password, name, locale }));
        } catch (error) {
          if (!(error instanceof MailUnavailableError)) throw error;
          helpers.errorPage(ctx, 503, 'signup.title', 'signup.unavailable', 'temporarily_unavailable');
          return;
        }
        // The same answer either way; only the log and the security events tell them apart.
        ctx.state.log?.info({ outcome: created ? 'created' : 'address_taken' }, 'sign-up answered');
        if (!created) await deps.audit?.record({ actor: 'anonymous', action: 'signup.address_taken', target: null, details: {}, ...origin });
        helpers.page(ctx, 200, 'email-link', {
          title: t('signup.sent_title'),
          locale,
          heading: t('signup.sent_title'),
          paragraphs: [t('signup.sent_lead', { email }), t('signup.sent_next')],
          links: [{ href: `/interaction/${uid}`, text: t('signup.continue'), id: 'continue-sign-in' }],
        });
      });
    },
  };
}
