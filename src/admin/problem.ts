import type { Context, Middleware } from 'koa';
import { ConflictError, NotFoundError, PreconditionFailedError, ValidationError, type FieldError } from '../services/errors.js';
import { isUnreachable, RETRY_AFTER_SECONDS } from '../services/dependency-outage.js';

/** An admin API refusal, rendered as an RFC 9457 problem document. `code` is stable; `detail` is for people. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly errors: readonly FieldError[];
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, code: string, detail: string, options: { errors?: readonly FieldError[]; headers?: Record<string, string> } = {}) {
    super(detail);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.errors = options.errors ?? [];
    this.headers = options.headers ?? {};
  }
}

/** The title of each status a problem document may carry. */
export const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  412: 'Precondition Failed',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  421: 'Misdirected Request',
  428: 'Precondition Required',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/**
 * The stable codes (the problem `type` is `urn:gatehouse:problem:<code>`) each status may carry on
 * a route of the admin API. The route declarations and the OpenAPI document take them from here.
 */
export const PROBLEM_CODES = {
  400: ['validation_failed', 'invalid_json', 'bad_request'],
  401: ['invalid_token', 'invalid_dpop_proof'],
  403: ['insufficient_scope', 'forbidden'],
  404: ['not_found'],
  409: ['conflict', 'mail_unavailable'],
  412: ['precondition_failed'],
  413: ['body_too_large', 'bad_request'],
  415: ['unsupported_media_type'],
  421: ['misdirected_request'],
  503: ['temporarily_unavailable'],
} as const satisfies Record<number, readonly string[]>;

export type ProblemStatus = keyof typeof PROBLEM_CODES;

export const problemType = (code: string) => `urn:gatehouse:problem:${code}`;

function toApiError(error: unknown): ApiError | undefined {
  if (error instanceof ApiError) return error;
  if (error instanceof ValidationError) return new ApiError(400, 'validation_failed', 'the request body is not valid', { errors: error.errors });
  if (error instanceof NotFoundError) return new ApiError(404, 'not_found', error.message);
  if (error instanceof ConflictError) {
    return new ApiError(409, 'conflict', error.message, { errors: [{ field: error.field, message: error.message.slice(error.field.length + 2) }] });
  }
  if (error instanceof PreconditionFailedError) return new ApiError(412, 'precondition_failed', `${error.message}: read it again and retry`);
  if (isUnreachable(error)) {
    return new ApiError(503, 'temporarily_unavailable', 'the registry database is unreachable: nothing was changed, try again shortly', {
      headers: { 'Retry-After': RETRY_AFTER_SECONDS },
    });
  }
  return undefined;
}

/**
 * Renders what a route threw as an `application/problem+json` answer with `type`, `title`,
 * `status`, `detail`, `errors[]` (one per offending field) and the request id. Anything unexpected
 * is logged once, with its stack, and answered "internal error".
 */
export function renderProblem(ctx: Context, error: unknown): void {
  let problem = toApiError(error);
  if (!problem) {
    const err = error as { message?: string; stack?: string; status?: number };
    if (typeof err.status === 'number' && err.status >= 400 && err.status < 500) {
      problem = new ApiError(err.status, 'bad_request', err.status === 413 ? 'request body too large' : 'the request could not be read');
    } else {
      ctx.state.log?.error({ err: { message: err.message, stack: err.stack }, method: ctx.method, path: ctx.path }, 'admin request failed');
      problem = new ApiError(500, 'internal_error', 'internal error');
    }
  }
  for (const [name, value] of Object.entries(problem.headers)) ctx.set(name, value);
  ctx.status = problem.status;
  ctx.type = 'application/problem+json';
  ctx.body = {
    type: problemType(problem.code),
    title: TITLES[problem.status] ?? 'Error',
    status: problem.status,
    detail: problem.message,
    errors: problem.errors,
    request_id: ctx.state.requestId,
  };
}

/** The admin API's error handler: every refusal becomes a problem document (see renderProblem). */
export const problemDetails: Middleware = async (ctx, next) => {
  try {
    await next();
    if (ctx.status === 404 && ctx.body === undefined) throw new ApiError(404, 'not_found', `no such endpoint: ${ctx.method} ${ctx.path}`);
  } catch (error) {
    renderProblem(ctx, error);
  }
};
