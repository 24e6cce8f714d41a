import { z } from 'zod';
import type { FieldError } from './errors.js';
import { ValidationError } from './errors.js';

/** OpenID Connect scopes the provider itself understands; resource servers may not define these. */
export const OIDC_SCOPES = ['openid', 'profile', 'email', 'offline_access'] as const;

/** RFC 6749 §3.3 scope-token. */
export const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]{1,128}$/;

export function isLoopbackHostname(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/** Why a redirect URI is unacceptable, or undefined when it is fine. */
export function redirectUriProblem(value: string): string | undefined {
  if (value.includes('*')) return 'must not contain a wildcard';
  const url = URL.parse(value);
  if (!url) return 'must be an absolute URI';
  if (value.includes('#')) return 'must not contain a fragment';
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:') {
    return isLoopbackHostname(url.hostname) ? undefined : 'must use https (http is allowed only for localhost, 127.0.0.1 and [::1])';
  }
  return 'must use https (or http on a loopback address)';
}

export const redirectUri = z.string().superRefine((value, ctx) => {
  const problem = redirectUriProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** A space-separated scope string parsed into unique scope tokens. */
export const scopeString = z
  .string()
  .max(4096)
  .transform((value) => [...new Set(value.split(' ').filter(Boolean))])
  .superRefine((scopes, ctx) => {
    for (const scope of scopes) {
      if (!SCOPE_TOKEN.test(scope)) ctx.addIssue({ code: 'custom', message: `"${scope}" is not a valid scope token` });
    }
  });

export const resourceIdentifier = z.string().superRefine((value, ctx) => {
  const url = URL.parse(value);
  if (!url || !['https:', 'http:'].includes(url.protocol)) {
    ctx.addIssue({ code: 'custom', message: 'must be an absolute http(s) URI' });
  } else if (value.includes('#')) {
    ctx.addIssue({ code: 'custom', message: 'must not contain a fragment' });
  } else if (url.search) {
    ctx.addIssue({ code: 'custom', message: 'must not contain a query' });
  }
});

/** Parses with a zod schema, turning its issues into a ValidationError that names each field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const errors: FieldError[] = result.error.issues.map((issue) => ({
    field: issue.path.length > 0 ? issue.path.map(String).join('.') : 'body',
    message: issue.message,
  }));
  throw new ValidationError(errors);
}
