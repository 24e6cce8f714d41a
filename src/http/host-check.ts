import type { Context } from 'koa';

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
