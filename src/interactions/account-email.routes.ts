import Router from '@koa/router';
import type { Kysely } from 'kysely';
import type { Context } from 'koa';
import type { ParsedUrlQuery } from 'node:querystring';
import type { Provider } from 'oidc-provider';
import type { Config } from '../config/load-config.js';
import type { Pages } from '../oidc/pages.js';
import type { Database } from '../registry/tables.js';
import { findUserById } from '../registry/user.repository.js';
import { MailUnavailableError, pendingEmailChange, sendVerificationLink, startEmailChange, type EmailServiceDeps } from '../services/email-verification.service.js';
import { ConflictError, ValidationError } from '../services/errors.js';
import { hasAnySecondFactor } from '../services/second-factors.service.js';
import { createAccountSession, type AccountLookup, type SignedInPerson } from './account-session.js';
import type { RequestLimiter } from './login-limiter.js';

/** Where the section is on the account page (its heading's id). */
const SECTION = '/account#email-address';

/** The outcomes the page is sent back with (`?email=<code>`): fixed sentences, never text from the query. */
const NOTICES = ['sent_verification', 'already_verified', 'sent_change'] as const;
const ERRORS = ['invalid', 'same', 'too_many', 'mail_unavailable'] as const;

/** Mails about a person's address one account may cause per hour (verification links again, changes). */
export const ACCOUNT_EMAIL_MAILS_PER_HOUR = 5;

/** What views/account-email.eta shows. */
export interface AccountEmailSection {
  verified: boolean;
  /** A change waiting for its link: the new address and until when (UTC, to the minute). */
  pending?: { email: string; until: string; untilText: string };
  /** A key of account_email.* for role=status, or for role=alert. */
  notice?: (typeof NOTICES)[number];
  error?: (typeof ERRORS)[number];
}

/**
 * The email part of the account page's profile: the address, whether it is confirmed, a change
 * waiting for its link, and the outcome the page was sent back with.
 *
 * @example
 * emailSection: await accountEmailSection(db, person.id, ctx.query),   // in the /account render
 */
export async function accountEmailSection(db: Kysely<Database>, userId: string, query: ParsedUrlQuery = {}): Promise<AccountEmailSection> {
  const [user, pending] = await Promise.all([findUserById(db, userId), pendingEmailChange(db, userId)]);
  const code = typeof query.email === 'string' ? query.email : undefined;
  const notice = NOTICES.find((known) => known === code);
  const error = ERRORS.find((known) => known === code);
  return {
    verified: user?.emailVerified === true,
    ...(pending ? { pending: { email: pending.email, until: pending.expiresAt.toISOString(), untilText: `${pending.expiresAt.toISOString().slice(0, 16).replace('T', ' ')} UTC` } } : {}),
    ...(notice ? { notice } : {}),
    ...(error ? { error } : {}),
  };
}

/**
 * The email part of the account page (docs/design/self-service.md "Email addresses"):
 * `POST /account/email/verification` ("Send the verification link again": the account CSRF token)
 * and `POST /account/email/change` (a new address: the CSRF token and a fresh sign-in, else 303 to
 * /account/reauth and nothing changed). Both answer 303 to the section with a fixed outcome; the
 * mails they cause are limited per account (ACCOUNT_EMAIL_MAILS_PER_HOUR).
 *
 * @example
 * app routers: createAccountEmailRoutes({ provider: () => host.provider, accounts, pages, config, email, limiter })
 */
export function createAccountEmailRoutes(deps: {
  provider: () => Provider;
  accounts: AccountLookup;
  pages: Pages;
  config: Config;
  email: EmailServiceDeps;
  /** Per account id: ACCOUNT_EMAIL_MAILS_PER_HOUR. */
  limiter: RequestLimiter;
}): Router {
  const { email } = deps;
  const kit = createAccountSession({
    provider: deps.provider,
    accounts: deps.accounts,
    pages: deps.pages,
    config: deps.config,
    hasSecondFactor: (userId) => hasAnySecondFactor(email.db, userId),
  });
  const router = new Router({ prefix: '/account/email' });
  router.use((ctx, next) => kit.outageGuard(ctx, next));

  const back = (ctx: Context, code: (typeof NOTICES)[number] | (typeof ERRORS)[number]) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 303;
    ctx.redirect(`/account?email=${code}#email-address`);
  };

  async function allowed(ctx: Context, person: SignedInPerson): Promise<boolean> {
    const limit = await deps.limiter.take(person.id);
    if (limit.allowed) return true;
    ctx.state.log?.info({ accountId: person.id }, 'account email mail refused: too many');
    back(ctx, 'too_many');
    return false;
  }

  router.post('/verification', async (ctx) => {
    const step = await kit.beginPost(ctx);
    if (!step) return;
    const { person } = step;
    if (!(await allowed(ctx, person))) return;
    try {
      const outcome = await sendVerificationLink(email, kit.actor(ctx, person), person.id);
      ctx.state.log?.info({ accountId: person.id, outcome }, 'verification link asked for from the account page');
      back(ctx, outcome === 'sent' ? 'sent_verification' : 'already_verified');
    } catch (error) {
      if (error instanceof MailUnavailableError) return back(ctx, 'mail_unavailable');
      throw error;
    }
  });

  router.post('/change', async (ctx) => {
    const step = await kit.beginPost(ctx, SECTION);
    if (!step) return;
    const { person, form } = step;
    const newEmail = form.field('email').trim();
    if (newEmail === '' || newEmail.length > 254) return back(ctx, 'invalid');
    if (!(await allowed(ctx, person))) return;
    try {
      const outcome = await startEmailChange(email, kit.actor(ctx, person), person.id, newEmail);
      // `taken` is answered as `sent`: who has an account is not told (the log says it).
      ctx.state.log?.info({ accountId: person.id, outcome }, 'email change asked for from the account page');
      back(ctx, outcome === 'same' ? 'same' : 'sent_change');
    } catch (error) {
      if (error instanceof ValidationError) return back(ctx, 'invalid');
      if (error instanceof MailUnavailableError) return back(ctx, 'mail_unavailable');
      if (error instanceof ConflictError) return kit.toSignIn(ctx);
      throw error;
    }
  });

  return router;
}
