import type { EdgeStep } from './edge-step.js';

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
