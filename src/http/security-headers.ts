import type { Context } from 'koa';

/** One piece of the edge middleware (see app.ts): runs once the request's answer is built, before it is sent. */
export interface EdgeStep {
  after(ctx: Context): void;
}

const PAGE_CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/**
 * Security headers on every response; HSTS only when the issuer is https; a CSP on HTML that set none.
 * Set on the way out, once the answer is built (nothing before sets them): headers already on the
 * response are copied by everything that lists them on the way (oidc-provider's CORS step does, on
 * every token request), so they cost less added last.
 */
export function securityHeaders(options: { hsts: boolean }): EdgeStep {
  const headers: Array<[string, string]> = [
    ['X-Content-Type-Options', 'nosniff'],
    ['Referrer-Policy', 'no-referrer'],
    ['X-Frame-Options', 'DENY'],
    ['Cross-Origin-Opener-Policy', 'same-origin'],
    ['Cross-Origin-Resource-Policy', 'same-site'],
    ...(options.hsts ? ([['Strict-Transport-Security', 'max-age=31536000; includeSubDomains']] as Array<[string, string]>) : []),
  ];
  return {
    after(ctx) {
      const { res } = ctx;
      for (const [name, value] of headers) res.setHeader(name, value);
      if (res.hasHeader('X-Powered-By')) res.removeHeader('X-Powered-By');
      const type = res.getHeader('Content-Type');
      if (typeof type === 'string' && type.startsWith('text/html') && !res.hasHeader('Content-Security-Policy')) {
        res.setHeader('Content-Security-Policy', PAGE_CSP);
      }
    },
  };
}

/**
 * Refuses a request whose Host header (or absolute request target) makes no URL, such as
 * `Host: 4294967296`: oidc-provider builds its links (form actions, redirects) from the request and
 * would fail on it with a 500. Answers true (and 400, in the OAuth error format) when it refused.
 */
export function hostCheck(): (ctx: Context) => boolean {
  // Nearly every request carries the same Host: the last one found valid is not parsed again.
  // Compared as the raw header Koa takes the host from (X-Forwarded-Host behind a trusted proxy,
  // else Host), since ctx.host splits and trims it on every read.
  let lastValid: string | undefined;
  return (ctx) => {
    const { headers } = ctx.req;
    const forwarded = ctx.app.proxy ? headers['x-forwarded-host'] : undefined;
    const raw = typeof forwarded === 'string' ? forwarded : headers.host;
    if (raw !== undefined && raw !== '' && raw === lastValid) return false;
    if (!URL.parse(ctx.href)) {
      ctx.status = 400;
      ctx.body = { error: 'invalid_request', error_description: 'the Host header is not a valid host' };
      return true;
    }
    lastValid = raw;
    return false;
  };
}

/**
 * Refuses bodies over the limit: by Content-Length before anything reads them (`before`), and (for
 * chunked bodies, which oidc-provider reads itself, 56 KiB at most) when the provider found one too
 * large (`after`). Either way 413, in the OAuth error format. `before` answers true when it refused.
 * The connection stays open while the rest of the body is discarded (see unread-body.ts), so that
 * the client reads the 413 instead of a reset.
 */
export function bodyLimit(limitBytes: number): { before(ctx: Context): boolean; after(ctx: Context): void } {
  const tooLarge = { error: 'invalid_request', error_description: `request body is larger than ${limitBytes} bytes` };
  const refuse = (ctx: Context) => {
    ctx.status = 413;
    ctx.body = tooLarge;
  };
  return {
    before(ctx) {
      const length = ctx.get('Content-Length');
      if (!(Number(length) > limitBytes)) return false;
      refuse(ctx);
      return true;
    },
    after(ctx) {
      if (ctx.state.entityTooLarge) refuse(ctx);
    },
  };
}
