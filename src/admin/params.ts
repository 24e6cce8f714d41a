import { z } from 'zod';
import { MAX_QUERY_LENGTH } from './guard.js';

/** The most entries one page holds. */
export const MAX_LIMIT = 200;

const LIMIT_MESSAGE = `must be a whole number from 1 to ${MAX_LIMIT}`;

/** `limit`: digits only (not 1e2, not -1), 1 to 200, 50 when absent. */
export const limitParam = z
  .preprocess((value) => (typeof value === 'string' && /^\d{1,3}$/.test(value) ? Number(value) : value), z.number({ error: LIMIT_MESSAGE }).int(LIMIT_MESSAGE).min(1, LIMIT_MESSAGE).max(MAX_LIMIT, LIMIT_MESSAGE))
  .default(50)
  .describe('how many entries one page holds (50 when absent)');

/** A text query parameter (the guard has refused a repeated, overlong or NUL-carrying one). */
export const textParam = (description: string) => z.string().max(MAX_QUERY_LENGTH).optional().describe(description);

/** `limit`, `cursor` and one filter: the query of every list but the audit log's. */
export function pageQuery<F extends string>(filter: F, description: string) {
  return z.object({
    limit: limitParam,
    cursor: textParam('next_cursor of the previous page'),
    ...({ [filter]: textParam(description) } as Record<F, ReturnType<typeof textParam>>),
  });
}

/** RFC 3339 date-times and plain dates, years 0001 to 9999 (PostgreSQL holds more, JavaScript and people less). */
const TIME = /^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:[Zz]|[+-]\d{2}:\d{2})?)?$/;
const TIME_MESSAGE = 'must be an ISO 8601 date or time from year 0001 to 9999, such as 2026-01-31T12:00:00Z';

/** A point in time, or a 400 naming the parameter. */
export const timeParam = (description: string) =>
  z
    .string()
    .max(MAX_QUERY_LENGTH)
    .transform((value, ctx) => {
      const date = TIME.test(value) ? new Date(value) : undefined;
      if (!date || Number.isNaN(date.getTime()) || value.startsWith('0000')) {
        ctx.addIssue({ code: 'custom', message: TIME_MESSAGE });
        return z.NEVER;
      }
      return date;
    })
    .optional()
    .describe(description);

/** A cursor that is a sequence number: digits only, at most 2^53 - 1. */
export const seqCursorParam = z
  .string()
  .regex(/^\d{1,16}$/, 'must be the next_cursor of a previous page')
  .transform(Number)
  .refine((seq) => Number.isSafeInteger(seq), 'must be the next_cursor of a previous page')
  .optional()
  .describe('next_cursor of the previous page');

/** A path parameter: any text; one that names nothing is a 404. */
export const idParam = (description: string) => z.string().describe(description);
