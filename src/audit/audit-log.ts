import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { AuditKey, AuditKeyring } from '../keys/audit-key.js';
import { PRIVATE_JWK_MEMBERS } from '../keys/jwk.js';
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
  /**
   * Who: for a registry change `cli:<os user>`, `admin:<client id>`, `registration:<client id>` or
   * `person:<id>` (see AuditActor); for a security event `client:<id>`, `user:<id>`, `anonymous`;
   * `system` for the log's own rows.
   */
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
  /** The audit key the row's hash is an HMAC with; null for a row written before the chain was keyed. */
  kid: string | null;
}

/** Key names (compared lower-case, without `_` and `-`) that never reach the log. */
const SECRET_KEYS = new Set(['authorization', 'cookie', 'setcookie', 'jwk', 'privatejwk', 'digestkey']);
/** …nor any key ending in one of these: client_secret, new_password, password_hash, refresh_token, secret_digest, client_assertion, private_key. */
const SECRET_SUFFIXES = ['secret', 'password', 'passwordhash', 'secretdigest', 'token', 'assertion', 'privatekey'];

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
    // A JWK's private members are dropped from any object with a `kty`.
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

/**
 * The hash of a row written before the chain was keyed (kid null): sha256(prev_hash + canonical
 * JSON of the row's content), hex. Anyone can recompute it, so such rows are trusted only as the
 * prefix that the first keyed row seals (see verifyAuditChain).
 */
export function auditRowHash(prevHash: string, content: HashedContent): string {
  const canonical = canonicalJson({ ...content, at: content.at.toISOString() });
  return createHash('sha256').update(prevHash).update(canonical).digest('hex');
}

/**
 * The hash of a keyed row: HMAC-SHA-256 with the audit key over prev_hash and the canonical JSON of
 * the row's content and kid, hex. Without the key (kept in KEYS_DIR, not in the database) no row can
 * be rewritten or forged with a hash that verifies.
 */
export function auditRowMac(key: AuditKey, prevHash: string, content: HashedContent): string {
  const canonical = canonicalJson({ ...content, at: content.at.toISOString(), kid: key.kid });
  return createHmac('sha256', key.secret).update(prevHash).update(canonical).digest('hex');
}

function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
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
    kid: row.kid,
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
    kid: record.kid,
  };
}

export type AuditJson = ReturnType<typeof auditToJson>;

/** The key a new row is keyed with: the newest known, after reloading when the last row names a key this process has not seen. */
async function keyForAppend(keyring: AuditKeyring, headKid: string | null): Promise<AuditKey> {
  if (headKid !== null && !keyring.keys().some((key) => key.kid === headKid)) await keyring.reload();
  const keys = keyring.keys();
  const current = keys[keys.length - 1];
  if (!current) throw new Error('audit log: no audit key');
  return current;
}

async function appendIn(trx: Transaction<Database>, keyring: AuditKeyring, entry: AuditEntry): Promise<AuditRecord> {
  // Held until this transaction ends: the next appender reads the last hash only after we commit.
  // A service appends as the last step of its change's transaction (after any row locks of its
  // own), so every transaction takes its locks in one order, entity rows then this one, and two
  // changes wait on each other here only for the time it takes the first to commit.
  await sql`select pg_advisory_xact_lock(${AUDIT_APPEND_LOCK})`.execute(trx);
  // A statement after the lock sees every row committed before it (read committed takes a new
  // snapshot per statement). The time comes from the database, to the millisecond, so that it
  // reads back exactly as it was hashed and follows seq order whichever node appends.
  const { rows } = await sql<{ prev_hash: string | null; kid: string | null; at: Date }>`
    select head_row.hash as prev_hash, head_row.kid, date_trunc('milliseconds', clock_timestamp()) as at
    from (select 1) as one left join (select hash, kid from audit_log order by seq desc limit 1) as head_row on true`.execute(trx);
  const head = rows[0];
  if (!head) throw new Error('audit log: no answer for the chain head');
  const prevHash = head.prev_hash ?? AUDIT_GENESIS_HASH;
  const key = await keyForAppend(keyring, head.kid);
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
    .values({ ...content, details: JSON.stringify(details), prev_hash: prevHash, hash: auditRowMac(key, prevHash, content), kid: key.kid })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toAuditRecord(row);
}

/**
 * Appends one row to the audit log, chained to the last one and keyed with the newest audit key.
 * Appends are serialized across processes by a transaction-scoped advisory lock (PostgreSQL and
 * PGlite). Given a transaction, the row is written in it (and the lock held until it ends), so a
 * change and its record commit together.
 *
 * @example
 * await appendAudit(db, auditKeys, { actor: 'cli:ada', action: 'client.create', target: clientId, details: { after } });
 */
export function appendAudit(db: Db, keyring: AuditKeyring, entry: AuditEntry): Promise<AuditRecord> {
  if (db.isTransaction) return appendIn(db as Transaction<Database>, keyring, entry);
  return db.transaction().execute((trx) => appendIn(trx, keyring, entry));
}

/**
 * Who makes a change to the registry, as the caller tells the service that makes it:
 * `cli:<os user>` (the CLI), `admin:<client id>` (the admin API), `registration:<client id>` (a
 * client changing itself through dynamic registration), `person:<id>` (a person on their own
 * pages). A request's id and address go with it when there is a request.
 */
export interface AuditActor {
  actor: string;
  requestId?: string | null | undefined;
  ip?: string | null | undefined;
}

/**
 * Writes a registry change's audit row inside the transaction that makes the change: the row and
 * the change commit together or not at all. A failed append throws, and the service's
 * transaction, and with it the change, rolls back. Services get one from their caller, so that a
 * test can inject one that fails.
 */
export interface AuditWriter {
  append(trx: Transaction<Database>, entry: AuditEntry): Promise<AuditRecord>;
}

/**
 * The audit writer over the audit keys of KEYS_DIR: appendAudit in the caller's transaction. The
 * keyring may be given as a loader, read when the first row is written (the CLI reads KEYS_DIR only
 * for a command that changes something).
 *
 * @example
 * const audit = createAuditWriter(auditKeys);
 * await db.transaction().execute(async (trx) => {
 *   await insertSomething(trx);
 *   await audit.append(trx, { actor: 'cli:ada', action: 'thing.create', target: 'thing:1' });
 * });
 */
export function createAuditWriter(keyring: AuditKeyring | (() => Promise<AuditKeyring>)): AuditWriter {
  const keys = typeof keyring === 'function' ? keyring : () => Promise.resolve(keyring);
  return {
    async append(trx, entry) {
      return appendIn(trx, await keys(), entry);
    },
  };
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

/** What the audit log may be filtered by (every filter given must match). */
export interface AuditFilter {
  /** An actor (`person:<id>`), or every actor of a kind (`person:*`). */
  actor?: string | undefined;
  /** An action (`client.create`), or a family of actions (`client.*`). */
  action?: string | undefined;
  /** The kind of thing acted on: rows whose target is `<type>:…` (`client`, `user`, `resource`, …). */
  entityType?: string | undefined;
  /** The id of the thing acted on: with entityType the target `<type>:<id>`; alone, any target `<id>` or `…:<id>`. */
  entityId?: string | undefined;
  /** At or after this time. */
  since?: Date | undefined;
  /** Before this time. */
  until?: Date | undefined;
}

/** `text` for LIKE, its wildcards taken literally (the escape character is `\`, PostgreSQL's default). */
const likeLiteral = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

/**
 * One page of the audit log matching `filter`: oldest first after `afterSeq` (order asc), or newest
 * first before `beforeSeq` (order desc). Each filter reads an index (actor, action and target, each
 * with seq; the time by `at`).
 *
 * @example
 * await findAudit(db, { actor: 'person:*', action: 'client.*' }, { order: 'desc', limit: 51 });
 */
export async function findAudit(
  db: Db,
  filter: AuditFilter,
  page: { order: 'asc' | 'desc'; limit: number; afterSeq?: number | undefined; beforeSeq?: number | undefined },
): Promise<AuditRecord[]> {
  const limit = Math.min(Math.max(1, Math.floor(page.limit)), AUDIT_TAIL_MAX_LIMIT);
  let query = db.selectFrom('audit_log').selectAll();
  const { actor, action, entityType, entityId, since, until } = filter;
  if (actor !== undefined) query = actor.endsWith(':*') ? query.where('actor', 'like', `${likeLiteral(actor.slice(0, -1))}%`) : query.where('actor', '=', actor);
  if (action !== undefined) query = action.endsWith('.*') ? query.where('action', 'like', `${likeLiteral(action.slice(0, -1))}%`) : query.where('action', '=', action);
  if (entityType !== undefined && entityId !== undefined) query = query.where('target', '=', `${entityType}:${entityId}`);
  else if (entityType !== undefined) query = query.where('target', 'like', `${likeLiteral(entityType)}:%`);
  else if (entityId !== undefined) query = query.where((eb) => eb.or([eb('target', '=', entityId), eb('target', 'like', `%:${likeLiteral(entityId)}`)]));
  if (since) query = query.where('at', '>=', since);
  if (until) query = query.where('at', '<', until);
  if (page.order === 'asc') {
    if (page.afterSeq !== undefined) query = query.where('seq', '>', page.afterSeq);
    return (await query.orderBy('seq', 'asc').limit(limit).execute()).map(toAuditRecord);
  }
  if (page.beforeSeq !== undefined) query = query.where('seq', '<', page.beforeSeq);
  return (await query.orderBy('seq', 'desc').limit(limit).execute()).map(toAuditRecord);
}

/** The last row of a chain that verified: what a checkpoint anchors. */
export interface AuditHead {
  seq: number;
  hash: string;
  at: Date;
  /** The audit key the row is keyed with (null for an unkeyed row). */
  kid: string | null;
}

/** Where a verification ended, to resume from: the last verified row, and what was counted up to it. */
export interface AuditChainPoint extends AuditHead {
  rows: number;
  legacyRows: number;
}

export type AuditVerification =
  | {
      ok: true;
      rows: number;
      /** Rows written before the chain was keyed (kid null): the prefix the first keyed row seals. */
      legacyRows: number;
      /** The last row, or null for an empty log. */
      head: AuditHead | null;
    }
  | { ok: false; brokenAt: number; reason: string };

const VERIFY_BATCH = 1000;

/**
 * Recomputes the chain in seq order and reports the first row where it breaks: a row whose
 * content no longer matches its hash (edited, or its hash recomputed without the key), whose
 * prev_hash is not the hash of the row before it (a row before it was removed, inserted or
 * reordered), that is keyed with a key not in the keyring or older than the key of the row before
 * it, or that is unkeyed after the chain was keyed. Unkeyed rows (from before the key) are accepted
 * only as the prefix of the log, and counted. Removing the newest rows cannot be seen from the chain
 * alone: verify against a checkpoint for that (see audit-checkpoint.ts). With `from` (the head of
 * an earlier verification, see audit-chain-monitor.ts) only the rows after it are read and recomputed.
 */
export async function verifyAuditChain(db: Db, keyring: AuditKeyring, from?: AuditChainPoint): Promise<AuditVerification> {
  const keys = keyring.keys();
  const keyIndex = new Map(keys.map((key, index) => [key.kid, index]));
  // Resuming after `from` (a row verified before: the caller has checked it is still there, unchanged)
  // reads only the rows after it; a point keyed with a key no longer known starts over.
  if (from && from.kid !== null && !keyIndex.has(from.kid)) return verifyAuditChain(db, keyring);
  let expectedPrev = from?.hash ?? AUDIT_GENESIS_HASH;
  let lastSeq: number | undefined = from?.seq;
  let head: AuditHead | null = from ? { seq: from.seq, hash: from.hash, at: from.at, kid: from.kid } : null;
  let count = from?.rows ?? 0;
  let legacy = from?.legacyRows ?? 0;
  // The index of the key of the last keyed row; -1 while the chain is still in its unkeyed prefix.
  let lastKey = from?.kid ? (keyIndex.get(from.kid) ?? -1) : -1;
  for (;;) {
    let query = db.selectFrom('audit_log').selectAll().orderBy('seq', 'asc').limit(VERIFY_BATCH);
    if (lastSeq !== undefined) query = query.where('seq', '>', lastSeq);
    const rows = (await query.execute()).map(toAuditRecord);
    for (const row of rows) {
      const broken = (reason: string) => ({ ok: false as const, brokenAt: row.seq, reason });
      if (row.prevHash !== expectedPrev) {
        return broken(
          count === 0 ? 'the first row does not start from the genesis hash (rows before it were removed)' : 'prev_hash is not the hash of the row before it (a row was removed or reordered)',
        );
      }
      const content: HashedContent = {
        at: row.at,
        actor: row.actor,
        action: row.action,
        target: row.target,
        request_id: row.requestId,
        ip: row.ip,
        details: row.details,
      };
      if (row.kid === null) {
        if (lastKey >= 0) return broken('an unkeyed row after the chain was keyed (it was inserted without the audit key)');
        if (!sameHash(auditRowHash(row.prevHash, content), row.hash)) return broken('hash does not match the row content (the row was altered)');
        legacy += 1;
      } else {
        const index = keyIndex.get(row.kid);
        const key = index === undefined ? undefined : keys[index];
        if (index === undefined || !key) return broken(`keyed with audit key ${row.kid}, which is not in KEYS_DIR (a forged row, or the wrong keys directory)`);
        if (index < lastKey) return broken(`keyed with audit key ${row.kid}, older than the key of the row before it (the chain never goes back to a retired key)`);
        if (!sameHash(auditRowMac(key, row.prevHash, content), row.hash)) return broken('hash does not match the row content (the row was altered)');
        lastKey = index;
      }
      expectedPrev = row.hash;
      lastSeq = row.seq;
      head = { seq: row.seq, hash: row.hash, at: row.at, kid: row.kid };
      count += 1;
    }
    if (rows.length < VERIFY_BATCH) {
      // Unkeyed rows are trusted only as what the first keyed row seals: a log that is all unkeyed
      // could have been rewritten whole by whoever can write to the database.
      if (legacy > 0 && lastKey < 0) {
        return {
          ok: false,
          brokenAt: head?.seq ?? 0,
          reason: 'no row is keyed: unkeyed rows are trusted only before a keyed row (run gatehouse migrate, which seals them, on an upgraded log)',
        };
      }
      return { ok: true, rows: count, legacyRows: legacy, head };
    }
  }
}

/**
 * Whether the row at `seq` is still there with `hash` and its content still hashes to it (keyed
 * with its kid, or unkeyed): one row's check, not its place in the chain. The audit chain monitor
 * checks the head it verified before this way before reading only the rows after it.
 */
export async function auditRowIntact(db: Db, keyring: AuditKeyring, seq: number, hash: string): Promise<boolean> {
  const stored = await db.selectFrom('audit_log').selectAll().where('seq', '=', seq).executeTakeFirst();
  if (!stored) return false;
  const row = toAuditRecord(stored);
  const content: HashedContent = { at: row.at, actor: row.actor, action: row.action, target: row.target, request_id: row.requestId, ip: row.ip, details: row.details };
  if (!sameHash(row.hash, hash)) return false;
  if (row.kid === null) return sameHash(auditRowHash(row.prevHash, content), row.hash);
  const key = keyring.keys().find((candidate) => candidate.kid === row.kid);
  return key !== undefined && sameHash(auditRowMac(key, row.prevHash, content), row.hash);
}

/**
 * Seals the unkeyed rows of a log written before the chain was keyed: when the last row is unkeyed,
 * appends a keyed `audit.chain_keyed` row after it. Its HMAC covers the last unkeyed hash, so none of
 * those rows can change from then on without the key. Returns whether a row was appended.
 */
export async function sealLegacyAuditChain(db: Kysely<Database>, keyring: AuditKeyring): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(${AUDIT_APPEND_LOCK})`.execute(trx);
    const last = await trx.selectFrom('audit_log').select(['kid']).orderBy('seq', 'desc').limit(1).executeTakeFirst();
    if (!last || last.kid !== null) return false;
    const { count } = await trx
      .selectFrom('audit_log')
      .select((eb) => eb.fn.countAll<string>().as('count'))
      .where('kid', 'is', null)
      .executeTakeFirstOrThrow();
    await appendIn(trx, keyring, { actor: 'system', action: 'audit.chain_keyed', details: { legacy_rows: Number(count) } });
    return true;
  });
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
 * const audit = createAuditSink(registry.db, auditKeys, logger);
 * await audit.record({ actor: `user:${id}`, action: 'signin.success', ip: ctx.ip });
 */
export function createAuditSink(db: Kysely<Database>, keyring: AuditKeyring, logger: Logger): AuditSink {
  return {
    async record(entry) {
      try {
        await appendAudit(db, keyring, entry);
      } catch (error) {
        logger.error({ err: { message: (error as Error)?.message ?? String(error) }, action: entry.action }, 'audit record could not be written');
      }
    },
  };
}
