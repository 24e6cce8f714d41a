import { randomBytes } from 'node:crypto';
import coBody from 'co-body';
import type { Context, Next } from 'koa';
import type { Provider } from 'oidc-provider';
import { sessionEnded, type AccountRecord } from '../accounts/account-record.js';
import { ACR_MFA } from '../accounts/authentication-context.js';
import type { AuditActor } from '../audit/audit-log.js';
import type { Config } from '../config/load-config.js';
import { pageCsp, type Pages } from '../oidc/pages.js';
import { browserSession } from '../oidc/upstream.js';
import { isUnreachable, RETRY_AFTER_SECONDS } from '../services/dependency-outage.js';
import { epochSeconds } from '../store/ephemeral-store.js';
import { createCsrf } from './csrf.js';
import type { MessageKey, Translate } from '../ui/i18n.js';
import { requestLocale, translatorOf } from './page-locale.js';

/*
 * What every section of the account page (`/account`, docs/design/sign-in-methods.md §7.3) builds
 * on: who is signed in, whether they signed in recently enough for a sensitive change, the page's
 * CSRF token, its form reader and its renderer. A new section (passkeys, linked accounts) adds its
 * routes to account.routes.ts and uses these; it never reads the session or a token itself.
 *
 *   // A POST: signed in (else 303 to sign-in), its form read and its CSRF token checked (else the
 *   // refusal page), and for a sensitive change a recent sign-in (else 303 to re-auth): or undefined.
 *   const step = await kit.beginPost(ctx, '/account#passkeys');
 *   if (!step) return;
 *   const { person, form } = step;
 *   // A page: signed in, or to sign-in.
 *   const person = await kit.signedInPerson(ctx);
 *   if (!person) return kit.toSignIn(ctx);
 *   kit.render(ctx, 200, 'account', data, { scriptNonce: true }); // data.nonce for <script nonce>
 */

/** The person the browser session is signed in as, with what the session says about that sign-in. */
export interface SignedInPerson {
  id: string;
  email: string;
  name: string | null;
  /**
   * The browser session's uid (oidc-provider's; stable for the session's life: a sign-in changes
   * the session's id, not its uid). The account CSRF token is bound to it and to `loginTs`.
   */
  sessionUid: string;
  /** When the session's person signed in (epoch seconds). */
  loginTs: number;
  /** The session's acr (urn:gatehouse:acr:basic or …:mfa); undefined for sessions from before acr. */
  acr: string | undefined;
  amr: string[];
}

/** Who is signed in, as the lookup the provider's findAccount uses gives it. */
export interface AccountLookup {
  findById(id: string): Promise<AccountRecord | undefined>;
}

/** What the account page's building blocks need. */
export interface AccountSessionDeps {
  provider: () => Provider;
  accounts: AccountLookup;
  pages: Pages;
  config: Pick<Config, 'cookieKeys' | 'accountReauthSeconds' | 'bodyLimitBytes'>;
  /** Whether the person has a second factor: then a sensitive change needs a sign-in with acr mfa. */
  hasSecondFactor: (userId: string) => Promise<boolean>;
}

/** The building blocks every /account section uses (see the comment at the top of this module). */
export interface AccountSession {
  /**
   * The person the browser's session (oidc-provider's, read with `provider.Session.get`) is signed
   * in as; undefined when there is no session, or when the provider's findAccount would end it (the
   * person is gone or disabled, or signed in before their sessions_valid_after).
   */
  signedInPerson(ctx: Context): Promise<SignedInPerson | undefined>;
  /** Answers 303 to /account/sign-in (and from there to the authorization endpoint). */
  toSignIn(ctx: Context): void;
  /**
   * Whether the session signed in within ACCOUNT_REAUTH_SECONDS, and with a second factor (acr mfa)
   * when the person has one. When not, answers 303 to `/account/reauth?next=<next>` (a sign-in again,
   * max_age=0) and gives false: the caller changes nothing. `next` must be an /account path.
   */
  requireRecentAuth(ctx: Context, person: SignedInPerson, next: string): Promise<boolean>;
  /** Whether the session's sign-in is recent enough (requireRecentAuth without the answer). */
  isRecent(person: SignedInPerson): Promise<boolean>;
  /** The CSRF token of the account page's forms, bound to `account:<session uid>:<login time>`. */
  csrfToken(person: SignedInPerson): string;
  /** Whether `token` is this session's account CSRF token (for the JSON endpoints, which answer their own refusal). */
  verifyCsrf(person: SignedInPerson, token: unknown): boolean;
  /** Checks the form's `csrf` field; when it is wrong, answers the 403 page and gives false. */
  checkCsrf(ctx: Context, person: SignedInPerson, form: AccountForm): boolean;
  /** Reads an urlencoded form under the body limit; answers 413/415/400 pages and gives undefined otherwise. */
  readForm(ctx: Context): Promise<AccountForm | undefined>;
  /**
   * The start of every POST of an account section: the signed-in person (else the answer is the
   * way to sign-in), the form and its CSRF token, and with `recentFor` (the /account path to come
   * back to) a recent sign-in. Undefined when the answer has been given and nothing may change.
   */
  beginPost(ctx: Context, recentFor?: string): Promise<{ person: SignedInPerson; form: AccountForm } | undefined>;
  /**
   * Renders a view with the pages' CSP (no script at all); with `scriptNonce`, a nonce of this
   * response is passed to the view as `it.nonce` and the CSP allows exactly the scripts carrying it.
   */
  render(ctx: Context, status: number, view: AccountView, data: Record<string, unknown> & { title: string }, options?: { scriptNonce?: boolean }): void;
  /** The error page, with Cache-Control no-store and the pages' CSP: heading and message as shown (see `t`). */
  errorPage(ctx: Context, status: number, heading: string, message: string, code?: string): void;
  /** The translator of this request's language (Accept-Language, else English): every text a section shows. */
  t(ctx: Context): Translate;
  /**
   * Router middleware: a storage outage (PostgreSQL or Redis unreachable) during an /account
   * request answers the 503 page with Retry-After; nothing else is caught (the app's handler logs it).
   */
  outageGuard(ctx: Context, next: Next): Promise<void>;
  /** Who a change made on the account page is recorded as: `person:<id>`, with the request id and address. */
  actor(ctx: Context, person: SignedInPerson): AuditActor;
}

/** Views the account page renders. */
export type AccountView = 'account' | 'error';

/** One field of a form, at most MAX_FIELD characters (more is cut, so a field never grows unbounded). */
export interface AccountForm {
  field(name: string): string;
  /**
   * A field uncut (bounded by the body limit only), for the few that are longer by nature (a
   * passkey's `response`): the caller checks its own limit. '' when absent.
   */
  longField(name: string): string;
}

const MAX_FIELD = 1024;

/** Where a re-authentication may send the browser back to: an /account page of this origin only. */
export function safeAccountPath(next: unknown, issuer: string): string {
  const fallback = '/account';
  if (typeof next !== 'string' || next.length > 512 || !next.startsWith('/account') || next.includes('\\')) return fallback;
  const origin = new URL(issuer).origin;
  const url = URL.parse(next, origin);
  if (!url || url.origin !== origin || !/^\/account(\/|$)/.test(url.pathname)) return fallback;
  // Never back into the sign-in machinery itself.
  if (/^\/account\/(sign-in|reauth|callback)\/?$/.test(url.pathname)) return fallback;
  return `${url.pathname}${url.search}${url.hash}`;
}

/**
 * The account page's building blocks (see AccountSession).
 *
 * @example
 * const kit = createAccountSession({ provider: () => host.provider, accounts, pages, config, hasSecondFactor });
 * router.get('/', async (ctx) => { const person = await kit.signedInPerson(ctx); if (!person) return kit.toSignIn(ctx); … });
 */
export function createAccountSession(deps: AccountSessionDeps): AccountSession {
  const { config, pages } = deps;
  const csrf = createCsrf(config.cookieKeys);
  // This session and this sign-in of it: another session's token, or one from before signing in
  // again (a re-authentication), is refused.
  const bound = (person: SignedInPerson) => `account:${person.sessionUid}:${person.loginTs}`;

  function render(ctx: Context, status: number, view: AccountView, data: Record<string, unknown> & { title: string }, options: { scriptNonce?: boolean } = {}) {
    const nonce = options.scriptNonce ? randomBytes(16).toString('base64') : undefined;
    ctx.status = status;
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    // With a nonce: its scripts, and their fetches to this origin (connect-src 'self').
    ctx.set('Content-Security-Policy', pageCsp([], nonce ? { scriptNonce: nonce } : {}));
    const locale = requestLocale(ctx);
    ctx.body = pages.render(view, nonce ? { ...data, locale, nonce } : { ...data, locale });
  }

  function errorPage(ctx: Context, status: number, heading: string, message: string, code?: string) {
    render(ctx, status, 'error', { title: heading, heading, message, code, requestId: ctx.state.requestId });
  }

  /** The error page from two catalogue keys, in the request's language. */
  function errorPageOf(ctx: Context, status: number, heading: MessageKey, message: MessageKey, code: string) {
    const t = translatorOf(ctx);
    errorPage(ctx, status, t(heading), t(message, { brand: pages.brand.name }), code);
  }

  async function isRecent(person: SignedInPerson): Promise<boolean> {
    if (epochSeconds() - person.loginTs > config.accountReauthSeconds) return false;
    return person.acr === ACR_MFA || !(await deps.hasSecondFactor(person.id));
  }

  const kit: AccountSession = {
    async outageGuard(ctx, next) {
      try {
        await next();
      } catch (error) {
        if (!isUnreachable(error)) throw error;
        ctx.set('Retry-After', RETRY_AFTER_SECONDS);
        errorPageOf(ctx, 503, 'account.unavailable', 'error.storage_unreachable', 'temporarily_unavailable');
      }
    },
    async signedInPerson(ctx) {
      // oidc-provider reads its session cookie with its own keys (upstream.ts, browserSession);
      // nothing is written to the browser here.
      const session = await browserSession(deps.provider(), ctx);
      const { accountId, loginTs } = session;
      if (!accountId || typeof loginTs !== 'number') return undefined;
      const account = await deps.accounts.findById(accountId);
      // The rules of findAccount (oidc/configuration.ts): a person gone, disabled, or whose sessions
      // were ended after this sign-in is signed out; the next authorization request ends the session.
      if (!account || account.disabled || sessionEnded(account, loginTs)) return undefined;
      return {
        id: account.id,
        email: account.email,
        name: account.name,
        sessionUid: session.uid,
        loginTs,
        acr: typeof session.acr === 'string' ? session.acr : undefined,
        amr: Array.isArray(session.amr) ? session.amr.filter((value): value is string => typeof value === 'string') : [],
      };
    },
    toSignIn(ctx) {
      ctx.set('Cache-Control', 'no-store');
      ctx.status = 303;
      ctx.redirect('/account/sign-in');
    },
    async requireRecentAuth(ctx, person, next) {
      if (await isRecent(person)) return true;
      ctx.set('Cache-Control', 'no-store');
      ctx.status = 303;
      ctx.redirect(`/account/reauth?next=${encodeURIComponent(next)}`);
      return false;
    },
    isRecent,
    csrfToken: (person) => csrf.token(bound(person)),
    verifyCsrf: (person, token) => typeof token === 'string' && csrf.verify(bound(person), token),
    checkCsrf(ctx, person, form) {
      if (csrf.verify(bound(person), form.field('csrf'))) return true;
      errorPageOf(ctx, 403, 'error.form_expired', 'account.reload', 'csrf_token_invalid');
      return false;
    },
    async readForm(ctx) {
      if (!ctx.is('application/x-www-form-urlencoded')) {
        errorPageOf(ctx, 415, 'error.unsupported_form', 'account.submit_from_account', 'invalid_request');
        return undefined;
      }
      let body: Record<string, unknown>;
      try {
        body = (await coBody.form(ctx.req, { limit: config.bodyLimitBytes, queryString: { depth: 0, parameterLimit: 20 } })) as Record<string, unknown>;
      } catch (error) {
        const status = (error as { status?: number }).status === 413 ? 413 : 400;
        errorPageOf(ctx, status, 'error.unreadable_form', 'account.submit_from_account', 'invalid_request');
        return undefined;
      }
      return {
        field(name) {
          const value = body[name];
          return typeof value === 'string' ? value.slice(0, MAX_FIELD + 1) : '';
        },
        longField(name) {
          const value = body[name];
          return typeof value === 'string' ? value : '';
        },
      };
    },
    render,
    errorPage,
    t: translatorOf,
    actor(ctx, person) {
      const requestId = (ctx.state as { requestId?: unknown }).requestId;
      return { actor: `person:${person.id}`, requestId: typeof requestId === 'string' ? requestId : null, ip: ctx.ip };
    },
    async beginPost(ctx, recentFor) {
      const person = await kit.signedInPerson(ctx);
      if (!person) {
        kit.toSignIn(ctx);
        return undefined;
      }
      const form = await kit.readForm(ctx);
      if (!form || !kit.checkCsrf(ctx, person, form)) return undefined;
      if (recentFor !== undefined && !(await kit.requireRecentAuth(ctx, person, recentFor))) {
        ctx.state.log?.info({ accountId: person.id, path: ctx.path }, 'account change needs a recent sign-in');
        return undefined;
      }
      return { person, form };
    },
  };
  return kit;
}
