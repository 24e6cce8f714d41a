import type { Middleware } from 'koa';

/**
 * Provider pre-middleware: the resume endpoint (GET <authorization endpoint>/:uid) takes its
 * parameters from the stored interaction, and oidc-provider never sends a query to it. Only its
 * error handler reads one, and oidc-provider 9.13 crashes there (a 500) on a client_id without a
 * single redirect_uri: it recovers the redirect_uri into parameters that resume has not assembled.
 * So a query on a resume request is dropped; an expired or unknown interaction then gets the error page.
 *
 * @example
 * provider.use(ignoreResumeQuery(provider.pathFor('authorization')));
 */
export function ignoreResumeQuery(authorizationPath: string): Middleware {
  const prefix = `${authorizationPath}/`;
  return (ctx, next) => {
    if (ctx.querystring && ctx.path.startsWith(prefix)) ctx.querystring = '';
    return next();
  };
}
