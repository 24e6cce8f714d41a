import { decodeJwt } from 'jose';
import type { Context, Middleware } from 'koa';
import type { Provider } from 'oidc-provider';
import { pageCsp } from './pages.js';
import { providerScriptHashes } from './upstream.js';

/**
 * Provider pre-middleware for the authorization endpoint (and its resume path): the page of
 * `response_mode=form_post` submits itself with an inline script, which the pages' CSP (no script
 * at all) blocks, and posts to the client's redirect_uri, which `form-action 'self'` blocks.
 *
 * oidc-provider adds the SHA-256 of that script to a `script-src` directive it finds on the answer
 * (its form_post renderer does so for exactly this; upstream.ts, providerScriptHashes), so a CSP with `script-src 'none'` is set before
 * the provider runs. When the provider answered with such a page, the answer's CSP is rebuilt: the
 * pages' CSP, that script's hash as the only script allowed (never 'unsafe-inline'), and the origin
 * of the redirect_uri (which the provider has checked) as a form target. Any other HTML answer keeps
 * the pages' CSP with no script; an answer that is not HTML gets no CSP from here.
 *
 * @example
 * provider.use(selfSubmittingPageCsp(provider.pathFor('authorization')));
 */
export function selfSubmittingPageCsp(authorizationPath: string): Middleware {
  const prefix = `${authorizationPath}/`;
  const preset = `${pageCsp()}; script-src 'none'`;
  return async (ctx, next) => {
    if (ctx.path !== authorizationPath && !ctx.path.startsWith(prefix)) return next();
    ctx.set('Content-Security-Policy', preset);
    await next();
    if (!ctx.response.is('html')) {
      ctx.remove('Content-Security-Policy');
      return;
    }
    const hashes = providerScriptHashes(ctx.response.get('Content-Security-Policy'));
    if (hashes.length === 0) return;
    const redirectUri = (ctx as { oidc?: { params?: { redirect_uri?: unknown } } }).oidc?.params?.redirect_uri;
    ctx.set('Content-Security-Policy', `${pageCsp(typeof redirectUri === 'string' ? [redirectUri] : [])}; script-src ${hashes.join(' ')}`);
  };
}

const END_SESSION_PARAMS = ['id_token_hint', 'post_logout_redirect_uri', 'state', 'ui_locales', 'client_id', 'logout_hint'];

/**
 * Where an end-session request of a browser with no session goes, with the checks oidc-provider
 * makes (a decodable and valid id_token_hint for a known client, a client_id that matches it, a
 * post_logout_redirect_uri that client registered): that URI (with `state`), or the signed-out
 * page. Undefined when a check fails: the provider then answers with its own error.
 */
async function signedOutTarget(provider: Provider, ctx: Context, successPath: string): Promise<string | undefined> {
  const params: Record<string, string | undefined> = {};
  for (const name of END_SESSION_PARAMS) {
    const value = ctx.query[name];
    if (Array.isArray(value)) return undefined;
    params[name] = value === '' ? undefined : value;
  }
  let client: Awaited<ReturnType<Provider['Client']['find']>>;
  if (params.id_token_hint !== undefined) {
    const { aud } = decodeJwt(params.id_token_hint);
    if (typeof aud !== 'string' || (params.client_id !== undefined && params.client_id !== aud)) return undefined;
    client = await provider.Client.find(aud);
    if (!client) return undefined;
    await provider.IdToken.validate(params.id_token_hint, client);
  } else if (params.client_id !== undefined) {
    client = await provider.Client.find(params.client_id);
    if (!client) return undefined;
  }
  if (client && params.post_logout_redirect_uri !== undefined) {
    if (!client.postLogoutRedirectUriAllowed(params.post_logout_redirect_uri)) return undefined;
    const target = new URL(params.post_logout_redirect_uri);
    if (params.state !== undefined) target.searchParams.set('state', params.state);
    return target.href;
  }
  return successPath;
}

/**
 * Provider pre-middleware for GET /session/end when the browser has no session (never signed in,
 * already signed out, or the session expired): oidc-provider would answer with a page that submits
 * itself to the confirmation endpoint, and to check that submission it starts a session and sets
 * its cookie, for a browser that has none. Nothing is left to end there: the browser goes straight
 * to where the confirmation would have sent it (the registered post_logout_redirect_uri, or the
 * signed-out page), and no session is made. A browser with a session, or a request the provider
 * refuses, goes to the provider as before.
 *
 * @example
 * provider.use(endSessionWithoutSession(provider));
 */
export function endSessionWithoutSession(provider: Provider): Middleware {
  const path = provider.pathFor('end_session');
  const successPath = provider.pathFor('end_session_success');
  return async (ctx, next) => {
    if (ctx.path !== path || ctx.method !== 'GET') return next();
    let target: string | undefined;
    try {
      const session = await provider.Session.get(ctx);
      if (!session.accountId) target = await signedOutTarget(provider, ctx, successPath);
    } catch {
      // A hint that does not verify, a client the registry cannot give now: the provider answers it.
      target = undefined;
    }
    if (target === undefined) return next();
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 303;
    ctx.redirect(target);
  };
}
