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

/** What the Host check answers: nothing to say, or a refusal (its status) to render in the route's format. */
export type HostVerdict = undefined | { status: 400 | 421; description: string };

const ABSOLUTE_TARGET = /^https?:\/\//i;

/**
 * Pins the host to the issuer's: a request whose Host (or, behind TRUST_PROXY, X-Forwarded-Host)
 * is not the issuer's host and port is refused, 421 Misdirected Request, and one whose host makes
 * no URL (`Host: 4294967296`), 400. oidc-provider builds every URL it hands out (discovery,
 * registration answers, redirects, form actions) and the audiences it accepts in a client
 * assertion from the request's host: pinned, they are always the issuer's own.
 *
 * Exact: `localhost` and `127.0.0.1` are different hosts (an issuer names one of them), and so are
 * two ports. An absolute request target (`GET http://other.example/token`), from which Koa would
 * build the URL instead, must name the issuer's host too.
 */
export function hostCheck(issuer: string): (ctx: Context) => HostVerdict {
  const pinned = new URL(issuer);
  const expected = pinned.host;
  // The same host with its default port written out (`example.com:443` for an https issuer).
  const withPort = `${pinned.hostname}:${pinned.port || (pinned.protocol === 'https:' ? '443' : '80')}`;
  const misdirected: HostVerdict = { status: 421, description: `this server answers only for ${expected}` };
  const invalid: HostVerdict = { status: 400, description: 'the Host header is not a valid host' };
  const ours = (host: string) => host === expected || host === withPort;
  return (ctx) => {
    const { headers, url } = ctx.req;
    // Fast path, nearly every request: the raw header Koa takes the host from is the issuer's, and
    // the target is a path.
    const forwarded = ctx.app.proxy ? headers['x-forwarded-host'] : undefined;
    const raw = forwarded || headers.host;
    if (raw === expected && url?.charCodeAt(0) === 47) return undefined;
    // Otherwise judge what Koa (and so oidc-provider) makes of it: ctx.host, the URL of ctx.href.
    const href = URL.parse(ctx.href);
    if (!href) return invalid;
    if (!ours(ctx.host.toLowerCase())) return misdirected;
    if (url !== undefined && ABSOLUTE_TARGET.test(url) && !ours(href.host)) return misdirected;
    return undefined;
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
