import { createHash } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Logger } from '../observability/logger.js';
import type { AuditLogRow, Database } from '../registry/tables.js';

type Db = Kysely<Database> | Transaction<Database>;

/** The prev_hash of the first row: what the chain starts from. */
export const AUDIT_GENESIS_HASH = '0'.repeat(64);

/**
 * The advisory lock every append takes for the length of its transaction, so that appends from any
 * number of processes sharing the database are serialized and never fork the chain.
 */
export const AUDIT_APPEND_LOCK = 7_461_200_001;

/** What a caller records; the log adds seq, at and the hashes. */
export interface AuditEntry {
  /** Who: `client:<id>`, `user:<id>`, `cli:<os user>`, `system`, `anonymous`. */
  actor: string;
  /** What: `client.create`, `signin.failure`, `keys.rotate`, … */
  action: string;
  /** What it was done to (a client id, user id, kid…), when there is one. */
  target?: string | null | undefined;
  requestId?: string | null | undefined;
  ip?: string | null | undefined;
  /** before/after snapshots, reasons; secrets are removed before anything is stored. */
  details?: Record<string, unknown> | undefined;
}

/** One row of the audit log. */
export interface AuditRecord {
  seq: number;
  at: Date;
  actor: string;
  action: string;
  target: string | null;
  requestId: string | null;
  ip: string | null;
  details: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

/** Key names (compared lower-case, without `_` and `-`) that never reach the log. */
const SECRET_KEYS = new Set(['authorization', 'cookie', 'setcookie', 'jwk', 'privatejwk', 'digestkey']);
/** …nor any key ending in one of these: client_secret, new_password, password_hash, refresh_token, secret_digest, client_assertion, private_key. */
const SECRET_SUFFIXES = ['secret', 'password', 'passwordhash', 'secretdigest', 'token', 'assertion', 'privatekey'];
/** A JWK's private members (RFC 7518): dropped from any object with a `kty`. */
const PRIVATE_JWK_MEMBERS = new Set(['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']);

function isSecretKey(key: string): boolean {
  const normalized = key.toLowerCase().replace(/[-_]/g, '');
  return SECRET_KEYS.has(normalized) || SECRET_SUFFIXES.some((suffix) => normalized.endsWith(suffix));
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function redact(value: unknown, ancestors: Set<object>): unknown {
  if (Array.isArray(value)) {
    if (ancestors.has(value)) return '[circular]';
    ancestors.add(value);
    const out = value.map((item) => redact(item, ancestors));
    ancestors.delete(value);
    return out;
  }
  if (!isPlainObject(value)) return value;
  if (ancestors.has(value)) return '[circular]';
  ancestors.add(value);
  const jwk = typeof value.kty === 'string';
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (isSecretKey(key) || (jwk && PRIVATE_JWK_MEMBERS.has(key))) continue;
    out[key] = redact(item, ancestors);
  }
  ancestors.delete(value);
  return out;
}

/**
 * A copy of `value` without secrets, at any depth: keys such as client_secret, secret_digest,
 * password, password_hash, *token, authorization and cookie are dropped, and so are the private
 * members of anything that looks like a JWK (has `kty`). Dates and other non-plain objects are kept.
 *
 * @example
 * redactSecrets({ after: { client_id: 'x', client_secret: 's' } }); // → { after: { client_id: 'x' } }
 */
export function redactSecrets<T>(value: T): T {
  return redact(value, new Set()) as T;
}

/** JSON with object keys sorted at every depth: the same content always gives the same text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item)).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** The fields a row's hash covers, as stored (at to the millisecond). */
interface HashedContent {
  at: Date;
  actor: string;
  action: string;
  target: string | null;
  request_id: string | null;
  ip: string | null;
  details: Record<string, unknown>;
}

/** sha256(prev_hash + canonical JSON of the row's content), hex. */
export function auditRowHash(prevHash: string, content: HashedContent): string {
  const canonical = canonicalJson({ ...content, at: content.at.toISOString() });
  return createHash('sha256').update(prevHash).update(canonical).digest('hex');
}

function toAuditRecord(row: AuditLogRow): AuditRecord {
  return {
    seq: Number(row.seq),
    at: row.at,
    actor: row.actor,
    action: row.action,
    target: row.target,
    requestId: row.request_id,
    ip: row.ip,
    details: row.details,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

/** The wire form of a row (CLI and admin API): snake_case, `at` as ISO 8601. */
export function auditToJson(record: AuditRecord) {
  return {
    seq: record.seq,
    at: record.at.toISOString(),
    actor: record.actor,
    action: record.action,
    target: record.target,
    request_id: record.requestId,
    ip: record.ip,
    details: record.details,
    prev_hash: record.prevHash,
    hash: record.hash,
  };
}

export type AuditJson = ReturnType<typeof auditToJson>;

async function appendIn(trx: Transaction<Database>, entry: AuditEntry): Promise<AuditRecord> {
  // Held until this transaction ends: the next appender reads the last hash only after we commit.
  await sql`select pg_advisory_xact_lock(${AUDIT_APPEND_LOCK})`.execute(trx);
  // A statement after the lock sees every row committed before it (read committed takes a new
  // snapshot per statement). The time comes from the database, to the millisecond, so that it
  // reads back exactly as it was hashed and follows seq order whichever node appends.
  const { rows } = await sql<{ prev_hash: string | null; at: Date }>`
    select (select hash from audit_log order by seq desc limit 1) as prev_hash,
           date_trunc('milliseconds', clock_timestamp()) as at`.execute(trx);
  const head = rows[0];
  if (!head) throw new Error('audit log: no answer for the chain head');
  const prevHash = head.prev_hash ?? AUDIT_GENESIS_HASH;
  // Through JSON first, so that what is redacted and hashed is exactly what jsonb gives back
  // (plain objects only, no undefined, Dates as text).
  const details = redactSecrets(JSON.parse(JSON.stringify(entry.details ?? {})) as Record<string, unknown>);
  const content: HashedContent = {
    at: new Date(head.at),
    actor: entry.actor,
    action: entry.action,
    target: entry.target ?? null,
    request_id: entry.requestId ?? null,
    ip: entry.ip ?? null,
    details,
  };
  const row = await trx
    .insertInto('audit_log')
    .values({ ...content, details: JSON.stringify(details), prev_hash: prevHash, hash: auditRowHash(prevHash, content) })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toAuditRecord(row);
}

/**
 * Appends one row to the audit log, chained to the last one. Appends are serialized across
 * processes by a transaction-scoped advisory lock (PostgreSQL and PGlite). Given a transaction, the
 * row is written in it (and the lock held until it ends), so a change and its record commit together.
 *
 * @example
 * await appendAudit(db, { actor: 'cli:ada', action: 'client.create', target: clientId, details: { after } });
 */
export function appendAudit(db: Db, entry: AuditEntry): Promise<AuditRecord> {
  if (db.isTransaction) return appendIn(db as Transaction<Database>, entry);
  return db.transaction().execute((trx) => appendIn(trx, entry));
}

export const AUDIT_TAIL_DEFAULT_LIMIT = 100;
export const AUDIT_TAIL_MAX_LIMIT = 10_000;

/**
 * Rows of the audit log, oldest first. With `afterSeq`, the first `limit` rows after it (paging
 * forward, or following the log); otherwise the last `limit` rows, from `since` on when given.
 */
export async function tailAudit(db: Db, options: { since?: Date | undefined; limit?: number | undefined; afterSeq?: number | undefined } = {}): Promise<AuditRecord[]> {
  const limit = Math.min(Math.max(1, Math.floor(options.limit ?? AUDIT_TAIL_DEFAULT_LIMIT)), AUDIT_TAIL_MAX_LIMIT);
  let query = db.selectFrom('audit_log').selectAll();
  if (options.since) query = query.where('at', '>=', options.since);
  if (options.afterSeq !== undefined) {
    const rows = await query.where('seq', '>', options.afterSeq).orderBy('seq', 'asc').limit(limit).execute();
    return rows.map(toAuditRecord);
  }
  const rows = await query.orderBy('seq', 'desc').limit(limit).execute();
  return rows.reverse().map(toAuditRecord);
}

export type AuditVerification = { ok: true; rows: number } | { ok: false; brokenAt: number; reason: string };

const VERIFY_BATCH = 1000;

/**
 * Recomputes the chain in seq order and reports the first row where it breaks: a row whose
 * content no longer matches its hash (edited), or whose prev_hash is not the hash of the row
 * before it (a row before it was removed, inserted or reordered). Removing the newest rows
 * cannot be seen from the chain alone.
 */
export async function verifyAuditChain(db: Db): Promise<AuditVerification> {
  let expectedPrev = AUDIT_GENESIS_HASH;
  let lastSeq: number | undefined;
  let count = 0;
  for (;;) {
    let query = db.selectFrom('audit_log').selectAll().orderBy('seq', 'asc').limit(VERIFY_BATCH);
    if (lastSeq !== undefined) query = query.where('seq', '>', lastSeq);
    const rows = (await query.execute()).map(toAuditRecord);
    for (const row of rows) {
      if (row.prevHash !== expectedPrev) {
        return {
          ok: false,
          brokenAt: row.seq,
          reason: count === 0 ? 'the first row does not start from the genesis hash (rows before it were removed)' : 'prev_hash is not the hash of the row before it (a row was removed or reordered)',
        };
      }
      const recomputed = auditRowHash(row.prevHash, {
        at: row.at,
        actor: row.actor,
        action: row.action,
        target: row.target,
        request_id: row.requestId,
        ip: row.ip,
        details: row.details,
      });
      if (recomputed !== row.hash) return { ok: false, brokenAt: row.seq, reason: 'hash does not match the row content (the row was altered)' };
      expectedPrev = row.hash;
      lastSeq = row.seq;
      count += 1;
    }
    if (rows.length < VERIFY_BATCH) return { ok: true, rows: count };
  }
}

/** Records security events from request paths: never throws into the request. */
export interface AuditSink {
  record(entry: AuditEntry): Promise<void>;
}

/**
 * An audit sink for security events (sign-ins, lockouts, refresh token reuse): a failed append is
 * logged as an error, never thrown, so auditing cannot break a sign-in or a token request.
 *
 * @example
 * const audit = createAuditSink(registry.db, logger);
 * await audit.record({ actor: `user:${id}`, action: 'signin.success', ip: ctx.ip });
 */
export function createAuditSink(db: Kysely<Database>, logger: Logger): AuditSink {
  return {
    async record(entry) {
      try {
        await appendAudit(db, entry);
      } catch (error) {
        logger.error({ err: { message: (error as Error)?.message ?? String(error) }, action: entry.action }, 'audit record could not be written');
      }
    },
  };
}
