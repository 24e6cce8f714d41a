import type Koa from 'koa';
import { pageCsp, type Pages } from '../oidc/pages.js';
import { createTranslator, negotiateLocale } from '../ui/i18n.js';

/**
 * The paths oidc-provider answers itself (its default routes, which Gatehouse keeps, and discovery):
 * whatever it answers there stays its answer, a 404 included.
 */
const PROTOCOL_PATHS = ['/auth', '/backchannel', '/device', '/challenge', '/session', '/token', '/jwks', '/request', '/reg', '/me', '/credential', '/.well-known', '/admin'];

function isProtocolPath(path: string): boolean {
  return PROTOCOL_PATHS.some((prefix) => path === prefix || path.startsWith(`${prefix}/`));
}

/** What `/` and an unknown path answer (see homeRoutes). */
export interface HomeRoutes {
  /** `GET /` (and HEAD): the page that says what this server is, or JSON for a client that prefers it. */
  root: Koa.Middleware;
  /**
   * After the provider answered: a GET or HEAD it did not recognise (a 404 outside its own paths)
   * becomes the styled "no page here" page, or `{"error":"not_found"}` for a client that prefers
   * JSON. The path is never echoed.
   */
  notFound(ctx: Koa.Context): void;
}

/**
 * `/` and unknown paths (issue 17 §6): a page through the layout, in the request's language, that
 * points to the discovery document; JSON for `Accept: application/json`. Strict CSP, no script.
 *
 * @example
 * const home = homeRoutes({ pages, issuer: config.issuer });
 * if (ctx.path === '/') return home.root(ctx, next);
 */
export function homeRoutes(deps: { pages: Pages; issuer: string }): HomeRoutes {
  const discovery = `${deps.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;

  function answer(ctx: Koa.Context, status: 200 | 404) {
    ctx.status = status;
    ctx.vary('Accept');
    ctx.vary('Accept-Language');
    ctx.set('Cache-Control', 'no-store');
    if (ctx.accepts('html', 'json') === 'json') {
      ctx.body =
        status === 200
          ? { issuer: deps.issuer, openid_configuration: discovery }
          : { error: 'not_found', error_description: `nothing is served at this path; the OpenID Connect discovery document is at ${discovery}` };
      return;
    }
    const locale = negotiateLocale({ acceptLanguage: ctx.get('accept-language') });
    const t = createTranslator(locale);
    ctx.type = 'html';
    ctx.set('Content-Security-Policy', pageCsp());
    ctx.body = deps.pages.render('home', {
      title: status === 200 ? t('home.title') : t('home.not_found_title'),
      locale,
      discovery,
      notFound: status === 404,
    });
  }

  return {
    root: async (ctx, next) => {
      if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
      answer(ctx, 200);
    },
    notFound(ctx) {
      if ((ctx.method !== 'GET' && ctx.method !== 'HEAD') || ctx.status !== 404 || isProtocolPath(ctx.path)) return;
      const body = ctx.body as { error?: unknown } | string | undefined | null;
      // Only the provider's "unrecognized route" (its empty 404 or invalid_request): never a 404 a route answered on purpose.
      const unanswered = body === undefined || body === null || (typeof body === 'object' && !Buffer.isBuffer(body) && body.error === 'invalid_request') || (typeof body === 'string' && body.includes('invalid_request'));
      if (!unanswered) return;
      answer(ctx, 404);
    },
  };
}
