import coBody from 'co-body';
import type { Context, Middleware } from 'koa';
import type { z } from 'zod';
import type { FieldError } from '../services/errors.js';
import { parseInput } from '../services/validation.js';
import { ApiError, renderProblem } from './problem.js';
import type { AdminRoute, ProblemSpec, SuccessSpec } from './route.js';
import { PROBLEMS } from './schemas.js';

/** Reads a JSON object body; anything else is refused before it reaches a service. */
async function jsonBody(ctx: Context, limitBytes: number): Promise<Record<string, unknown>> {
  if (!ctx.is('application/json')) throw new ApiError(415, 'unsupported_media_type', 'send the body as application/json');
  let body: unknown;
  try {
    body = await coBody.json(ctx.req, { limit: limitBytes, strict: true });
  } catch (error) {
    if ((error as { status?: number }).status === 413) throw new ApiError(413, 'body_too_large', `the body is larger than ${limitBytes} bytes`);
    throw new ApiError(400, 'invalid_json', 'the body is not valid JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ApiError(400, 'validation_failed', 'the body must be a JSON object', { errors: [{ field: 'body', message: 'must be a JSON object' }] });
  }
  return body as Record<string, unknown>;
}

/** The longest query value read: anything longer is refused, never passed on. */
export const MAX_QUERY_LENGTH = 256;

const badQuery = (errors: readonly FieldError[]) =>
  new ApiError(400, 'validation_failed', `${errors.map((e) => e.field).join(', ')} ${errors.length === 1 ? 'is' : 'are'} not valid`, { errors });

/**
 * The declared query parameters as given: undefined when absent or empty; refused when repeated,
 * longer than 256 characters or carrying a NUL byte (PostgreSQL text cannot hold one); then parsed
 * by the route's schema. A client's mistake is a 400 naming the field here, never a database error
 * later. Parameters the route does not declare are ignored.
 */
function readQuery(ctx: Context, schema: z.ZodObject): Record<string, unknown> {
  const raw: Record<string, string | undefined> = {};
  const errors: FieldError[] = [];
  for (const name of Object.keys(schema.shape)) {
    const value = ctx.query[name];
    if (Array.isArray(value)) errors.push({ field: name, message: 'must be given once' });
    else if (value !== undefined && value.length > MAX_QUERY_LENGTH) errors.push({ field: name, message: `must be at most ${MAX_QUERY_LENGTH} characters` });
    else if (value?.includes('\u0000')) errors.push({ field: name, message: 'must not contain a NUL character' });
    else raw[name] = value === '' ? undefined : value;
  }
  const result = schema.safeParse(raw);
  if (!result.success) {
    const refused = new Set(errors.map((e) => e.field));
    for (const issue of result.error.issues) {
      const field = String(issue.path[0] ?? 'query');
      if (!refused.has(field)) errors.push({ field, message: issue.message });
    }
  }
  if (errors.length > 0 || !result.success) throw badQuery(errors);
  return result.data;
}

/** Declared request headers by their canonical names; a header given empty counts as absent. */
function readHeaders(ctx: Context, schema: z.ZodObject): Record<string, unknown> {
  const raw = Object.fromEntries(Object.keys(schema.shape).map((name) => [name, ctx.get(name) || undefined]));
  const result = schema.safeParse(raw);
  if (!result.success) {
    throw new ApiError(400, 'validation_failed', 'a request header is not valid', {
      errors: result.error.issues.map((issue) => ({ field: String(issue.path[0] ?? 'headers'), message: issue.message })),
    });
  }
  return result.data;
}

function readParams(ctx: Context, schema: z.ZodObject): Record<string, unknown> {
  const params = (ctx as unknown as { params?: Record<string, string> }).params ?? {};
  const result = schema.safeParse(params);
  // A path parameter is any text koa-router matched: one that names nothing is a 404 of the service.
  if (!result.success) throw new ApiError(404, 'not_found', 'no such entry');
  return result.data;
}

const isProblemStatus = (status: number): status is keyof typeof PROBLEMS => status in PROBLEMS;

/**
 * Why an answer does not match its route's declaration (status, body, content type, headers), or
 * an empty list. A 500 is not checked: it is a failure already, logged with its stack.
 */
export function responseMismatches(route: AdminRoute, ctx: Context): string[] {
  const status = ctx.status;
  if (status === 500) return [];
  const declared = (route.responses as Record<number, SuccessSpec | ProblemSpec | string | undefined>)[status];
  if (declared === undefined) return [`status ${status} is not declared`];
  const spec: SuccessSpec = typeof declared === 'string' ? { description: declared } : declared;
  const problems: string[] = [];
  const schema = status >= 400 ? (isProblemStatus(status) ? PROBLEMS[status] : undefined) : spec.body;
  if (status >= 400 && !schema) problems.push(`status ${status} has no problem schema`);
  if (schema) {
    const result = schema.safeParse(ctx.body);
    if (!result.success) problems.push(...result.error.issues.map((issue) => `body.${issue.path.join('.')}: ${issue.message}`));
    const type = status >= 400 ? 'application/problem+json' : 'application/json';
    if (ctx.response.type !== type) problems.push(`content type ${ctx.response.type || 'none'}, not ${type}`);
  } else if (ctx.body !== undefined && ctx.body !== null) {
    problems.push(`status ${status} declares no body, but one was sent`);
  }
  for (const header of spec.headers ?? []) {
    if (!ctx.response.get(header)) problems.push(`header ${header} is declared but not sent`);
  }
  return problems;
}

/**
 * The guard of one route, in the manner of Logto's koa-guard: the admin token (unless the route
 * is public), then the path parameters, query, headers and JSON body, each validated against the
 * route's schemas (a 400 naming each field), then the handler with the parsed input. Every refusal
 * is rendered here as the problem document of its status. With `verifyResponses` (test mode) every
 * answer is checked against the route's declaration, and one that does not match becomes a 500
 * and an error in the log: an undeclared answer fails the tests loudly rather than the document
 * silently drifting.
 */
export function guardRoute(
  route: AdminRoute,
  options: { authenticate: Middleware; bodyLimitBytes: number; verifyResponses: boolean },
): Middleware {
  const run = async (ctx: Context) => {
    const params = route.params ? readParams(ctx, route.params) : {};
    const query = route.query ? readQuery(ctx, route.query) : {};
    const headers = route.headers ? readHeaders(ctx, route.headers) : {};
    // The body goes on as sent (its service parses it again, as it does for the CLI): known valid here.
    let body: unknown;
    if (route.body) {
      body = await jsonBody(ctx, options.bodyLimitBytes);
      parseInput(route.body, body);
    }
    await route.handler(ctx, { params, query, headers, body });
  };
  return async (ctx) => {
    try {
      if (route.public) {
        await run(ctx);
      } else {
        await options.authenticate(ctx, async () => {
          ctx.set('Cache-Control', 'no-store');
          await run(ctx);
        });
      }
    } catch (error) {
      renderProblem(ctx, error);
    }
    if (!options.verifyResponses) return;
    const mismatches = responseMismatches(route, ctx);
    if (mismatches.length === 0) return;
    // Logged once, with the mismatches, by renderProblem.
    renderProblem(ctx, new Error(`${route.operationId} answered ${ctx.status}, which its declaration does not allow: ${mismatches.join('; ')}`));
  };
}
