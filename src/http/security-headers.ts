import type { Middleware } from 'koa';

/** Security headers on every response; HSTS only when the issuer is https. */
export function securityHeaders(options: { hsts: boolean }): Middleware {
  return async (ctx, next) => {
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('Cross-Origin-Opener-Policy', 'same-origin');
    ctx.set('Cross-Origin-Resource-Policy', 'same-site');
    if (options.hsts) ctx.set('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
    try {
      await next();
    } finally {
      ctx.remove('X-Powered-By');
      if (ctx.response.type === 'text/html' && !ctx.response.get('Content-Security-Policy')) {
        ctx.set('Content-Security-Policy', "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
      }
    }
  };
}

/**
 * Refuses a request whose Host header (or absolute request target) makes no URL, such as
 * `Host: 4294967296`: oidc-provider builds its links (form actions, redirects) from the request and
 * would fail on it with a 500. 400, in the OAuth error format.
 */
export function validHost(): Middleware {
  // Nearly every request carries the same Host: the last one found valid is not parsed again.
  let lastValid: string | undefined;
  return async (ctx, next) => {
    const host = ctx.host;
    if (host !== lastValid || host === '') {
      if (!URL.parse(ctx.href)) {
        ctx.status = 400;
        ctx.body = { error: 'invalid_request', error_description: 'the Host header is not a valid host' };
        return;
      }
      lastValid = host;
    }
    await next();
  };
}

/**
 * Refuses bodies over the limit: by Content-Length before anything reads them, and (for chunked
 * bodies, which oidc-provider reads itself, 56 KiB at most) when the provider found one too large.
 * Either way 413, in the OAuth error format.
 */
export function bodyLimit(limitBytes: number): Middleware {
  const tooLarge = { error: 'invalid_request', error_description: `request body is larger than ${limitBytes} bytes` };
  return async (ctx, next) => {
    const length = Number(ctx.get('Content-Length') || 0);
    if (length > limitBytes) {
      ctx.status = 413;
      ctx.body = tooLarge;
      ctx.set('Connection', 'close');
      return;
    }
    await next();
    if (ctx.state.entityTooLarge) {
      ctx.status = 413;
      ctx.body = tooLarge;
      ctx.set('Connection', 'close');
    }
  };
}
