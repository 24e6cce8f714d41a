import { z } from 'zod';
import type { AuditChainStatus } from '../audit/audit-chain-monitor.js';
import { auditToJson, findAudit } from '../audit/audit-log.js';
import { MAX_QUERY_LENGTH } from './guard.js';
import { limitParam, seqCursorParam, timeParam } from './params.js';
import { AUTH_ERRORS, defineRoute, type AdminRoute, type AdminRouteDeps } from './route.js';
import { auditPage, auditVerificationOut } from './schemas.js';

/** A filter value: printable, no control character, at most 256 characters (the guard refuses longer ones). */
const filterParam = (pattern: RegExp, message: string, description: string) => z.string().max(MAX_QUERY_LENGTH).regex(pattern, message).optional().describe(description);

/** `<kind>`, `<kind>:<id>` or `<kind>:*`; the id has no control character, space or `*`. */
const ACTOR = /^[a-z][a-z0-9_-]*(?::(?:\*|[^\s*\p{Cc}]+))?$/u;
/** `client.create`, or `client.*` for the family. */
const ACTION = /^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*(?:\.\*)?$/;
const ENTITY_TYPE = /^[a-z][a-z0-9_-]{0,63}$/;
const ENTITY_ID = /^[^\s\p{Cc}]+$/u;

export const auditQuery = z
  .object({
    actor: filterParam(ACTOR, 'must be an actor such as person:<id>, admin:<client id>, cli:<user>, system or anonymous, or <kind>:* for every actor of a kind', 'only rows by this actor (person:<id>, admin:<client id>, cli:<user>, system…), or by every actor of a kind (person:*)'),
    action: filterParam(ACTION, 'must be an action such as client.create, or a family such as client.*', 'only rows of this action (client.create), or of a family (client.*)'),
    entity_type: filterParam(ENTITY_TYPE, 'must be a kind of entity such as client, user, resource or provider (lower-case letters, digits, _ and -)', 'only rows about this kind of entity: targets <entity_type>:… (client, user, resource, provider, api_key, key…)'),
    entity_id: filterParam(ENTITY_ID, 'must be an id without spaces or control characters', 'only rows about this entity: with entity_type the target <entity_type>:<entity_id>; alone, any target <entity_id> or …:<entity_id>'),
    since: timeParam('entries at or after this time: an RFC 3339 date-time or a date (YYYY-MM-DD), years 0001 to 9999'),
    until: timeParam('entries before this time (same forms as since)'),
    order: z.enum(['asc', 'desc'], { error: 'must be asc (oldest first) or desc (newest first)' }).default('asc').describe('asc: oldest first (the default); desc: newest first'),
    cursor: seqCursorParam,
    limit: limitParam,
  })
  .superRefine((query, ctx) => {
    if (query.since && query.until && query.until <= query.since) ctx.addIssue({ code: 'custom', path: ['until'], message: 'must be after since' });
  });

/** The wire form of the chain's status. */
export function auditVerificationToJson(status: AuditChainStatus) {
  return {
    ok: status.ok,
    rows: status.rows,
    head: status.head ? { seq: status.head.seq, at: status.head.at.toISOString() } : null,
    broken_at: status.brokenAt,
    reason: status.reason,
    checked_at: status.checkedAt.toISOString(),
    mode: status.mode,
    full_check_at: status.fullCheckAt.toISOString(),
    node: 'this' as const,
  };
}

/**
 * The audit log, filtered by actor, action, entity and time, paged by seq (`cursor` is the last
 * seq seen, in either order); and the chain's verification as this node last made it.
 */
export function auditRoutes(deps: AdminRouteDeps): AdminRoute[] {
  return [
    defineRoute({
      method: 'get',
      path: '/audit',
      operationId: 'readAuditLog',
      tag: 'audit',
      summary: 'Read the audit log, filtered, oldest or newest first (append-only, hash-chained)',
      description:
        'Who changed what, when, from where: each entry carries the hash of the one before it. Every filter given must match. ' +
        '`next_cursor` reads the next page in the same order (with the same filters). The chain\'s verification is GET /audit/verification.',
      query: auditQuery,
      responses: { 200: { description: 'One page', body: auditPage }, 400: 'A query parameter is not valid: errors[] names it', ...AUTH_ERRORS },
      async handler(ctx, { query }) {
        const { limit, cursor, order, actor, action, entity_type: entityType, entity_id: entityId, since, until } = query;
        const rows = await findAudit(
          deps.db,
          { actor, action, entityType, entityId, since, until },
          order === 'asc' ? { order, limit: limit + 1, afterSeq: cursor ?? 0 } : { order, limit: limit + 1, beforeSeq: cursor },
        );
        const items = rows.slice(0, limit);
        ctx.body = { data: items.map(auditToJson), next_cursor: rows.length > limit ? String(items.at(-1)?.seq) : null };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/audit/verification',
      operationId: 'verifyAuditLog',
      tag: 'audit',
      summary: "The audit chain's verification, as this node last made it",
      description:
        'Whether every row of the keyed hash chain verifies, and if not where it breaks. Bounded in cost: a result is reused for up to a minute; ' +
        'between full recomputations (at most an hour apart) only the rows appended since the last verified head are read, that head checked unchanged. ' +
        'Removing the newest rows is seen only against a checkpoint kept outside the database (gatehouse audit verify --checkpoint).',
      responses: { 200: { description: 'The verification', body: auditVerificationOut }, ...AUTH_ERRORS },
      async handler(ctx) {
        ctx.body = auditVerificationToJson(await deps.auditChain.status());
      },
    }),
  ];
}
