import { z } from 'zod';
import { isLoopbackHostname } from '../config/protocol.js';
import { hasNul } from '../registry/text.js';
import type { FieldError } from './errors.js';
import { ValidationError } from './errors.js';

/** OpenID Connect scopes the provider itself understands; resource servers may not define these. */
export const OIDC_SCOPES = ['openid', 'profile', 'email', 'offline_access'] as const;

/** RFC 6749 §3.3 scope-token. */
export const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]{1,128}$/;

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

/**
 * Where the input holds a NUL character (in a value or a member name), as field paths: the registry
 * cannot store one (see hasNul), so it is refused here rather than failing in the database. Walked
 * without recursion: a JSON body may nest deeper than the stack.
 */
function nulFields(input: unknown): string[] {
  const found: string[] = [];
  const pending: Array<{ value: unknown; path: string[] }> = [{ value: input, path: [] }];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const { value, path } = next;
    if (typeof value === 'string') {
      if (hasNul(value)) found.push(path.length > 0 ? path.join('.') : 'body');
    } else if (Array.isArray(value)) {
      value.forEach((item, index) => pending.push({ value: item, path: [...path, String(index)] }));
    } else if (typeof value === 'object' && value !== null) {
      for (const [key, item] of Object.entries(value)) {
        if (hasNul(key)) found.push(path.length > 0 ? path.join('.') : 'body');
        pending.push({ value: item, path: [...path, key] });
      }
    }
  }
  return found;
}

/** Parses with a zod schema, turning its issues (and any NUL character) into a ValidationError that names each field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const result = schema.safeParse(input);
  const errors: FieldError[] = nulFields(input).map((field) => ({ field, message: 'must not contain a NUL character' }));
  if (result.success && errors.length === 0) return result.data;
  if (!result.success) {
    errors.push(
      ...result.error.issues.map((issue) => ({
        field: issue.path.length > 0 ? issue.path.map(String).join('.') : 'body',
        message: issue.message,
      })),
    );
  }
  throw new ValidationError(errors);
}
