import { z } from 'zod';
import { auditToJson, tailAudit } from '../audit/audit-log.js';
import { limitParam, seqCursorParam, timeParam } from './params.js';
import { AUTH_ERRORS, defineRoute, type AdminRoute, type AdminRouteDeps } from './route.js';
import { auditPage } from './schemas.js';

/** The audit log, oldest first: `since` (ISO time), `cursor` (the last seq seen), `limit`. */
export function auditRoutes(deps: AdminRouteDeps): AdminRoute[] {
  const { db } = deps;
  return [
    defineRoute({
      method: 'get',
      path: '/audit',
      operationId: 'readAuditLog',
      tag: 'audit',
      summary: 'Read the audit log, oldest first (append-only, hash-chained)',
      description: 'Who changed what, when, from where: each entry carries the hash of the one before it.',
      query: z.object({
        since: timeParam('entries at or after this time: an RFC 3339 date-time or a date (YYYY-MM-DD), years 0001 to 9999'),
        cursor: seqCursorParam,
        limit: limitParam,
      }),
      responses: { 200: { description: 'One page', body: auditPage }, 400: 'A query parameter is not valid: errors[] names it', ...AUTH_ERRORS },
      async handler(ctx, { query }) {
        const { limit, cursor: afterSeq, since: sinceDate } = query;
        const rows = await tailAudit(db, { since: sinceDate, limit: limit + 1, afterSeq: afterSeq ?? 0 });
        const items = rows.slice(0, limit);
        ctx.body = { data: items.map(auditToJson), next_cursor: rows.length > limit ? String(items.at(-1)?.seq) : null };
      },
    }),
  ];
}
