import createClient from 'openapi-fetch';
import { authorizedFetch, SignedOutError } from './auth.js';
import type { paths } from './generated/admin-api.js';
import { createStore } from './store.js';

/**
 * The admin API, typed from its own OpenAPI document (generated/admin-api.d.ts, `npm run
 * console:types`): a path, parameter or body the API does not have fails `tsc -p console`. Every call
 * carries the access token and a DPoP proof (auth.ts).
 */
export const api = createClient<paths>({ baseUrl: '/admin/v1', fetch: (request: Request) => authorizedFetch(request) });

/** An RFC 9457 problem from the admin API, with its field errors by field name (shown beside the field). */
export class Problem extends Error {
  readonly status: number;
  readonly title: string;
  readonly detail: string;
  readonly fields: Readonly<Record<string, string>>;

  constructor(status: number, title: string, detail: string, fields: Record<string, string> = {}) {
    super(detail || title);
    this.name = 'Problem';
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.fields = fields;
  }
}

/** The API cannot be reached (network down, 502/503/504): the banner offers to retry. */
export const outage = createStore<string | null>(null);
const retries = new Set<() => void>();

/** Registers what to run again when the banner's Retry is pressed; answers how to take it off. */
export function onRetry(run: () => void): () => void {
  retries.add(run);
  return () => retries.delete(run);
}

/** The banner's Retry: clears the outage and runs every registered load again. */
export function retryAll(): void {
  outage.set(null);
  for (const run of [...retries]) run();
}

interface ProblemBody {
  title?: unknown;
  detail?: unknown;
  errors?: unknown;
}

/** A problem from an answer that was not 2xx. */
export function problemOf(status: number, body: unknown): Problem {
  const problem = (typeof body === 'object' && body !== null ? body : {}) as ProblemBody;
  const fields: Record<string, string> = {};
  if (Array.isArray(problem.errors)) {
    for (const item of problem.errors as Array<{ field?: unknown; message?: unknown }>) {
      if (typeof item.field === 'string' && typeof item.message === 'string' && !(item.field in fields)) fields[item.field] = item.message;
    }
  }
  const title = typeof problem.title === 'string' ? problem.title : `HTTP ${status}`;
  const detail = typeof problem.detail === 'string' ? problem.detail : title;
  return new Problem(status, title, detail, fields);
}

/**
 * The data of an openapi-fetch answer, or a thrown Problem. A network failure or a 502/503/504 also
 * raises the outage banner.
 */
export async function call<T>(request: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  let result: { data?: T; error?: unknown; response: Response };
  try {
    result = await request;
  } catch (error) {
    if (error instanceof SignedOutError) throw error;
    outage.set('The admin API cannot be reached.');
    throw new Problem(0, 'unreachable', 'The admin API cannot be reached.');
  }
  const { response } = result;
  if (response.ok) return result.data as T;
  if ([502, 503, 504].includes(response.status)) outage.set(`The admin API is unavailable (${response.status}).`);
  throw problemOf(response.status, result.error);
}
