import type { Kysely } from 'kysely';
import type { AuditKeyring } from '../keys/audit-key.js';
import type { Database } from '../registry/tables.js';
import { auditRowIntact, verifyAuditChain, type AuditChainPoint } from './audit-log.js';

/** The audit chain's state as this node last verified it. */
export interface AuditChainStatus {
  /** null: this node's first verification is still running (not done within the wait; see createAuditChainMonitor). */
  ok: boolean | null;
  /** Rows verified (the whole log, when ok). */
  rows: number;
  /** The last row verified; null for an empty log. */
  head: { seq: number; at: Date } | null;
  /** Where the chain breaks and why, when it does. */
  brokenAt: number | null;
  reason: string | null;
  /** When this result was computed. */
  checkedAt: Date;
  /** 'full': every row recomputed; 'incremental': the rows after the last verified head only. */
  mode: 'full' | 'incremental';
  /** When every row was last recomputed (the full check this result builds on). */
  fullCheckAt: Date;
}

/** Reads the chain's status, bounded in cost (see createAuditChainMonitor). */
export interface AuditChainMonitor {
  status(): Promise<AuditChainStatus>;
}

/** How long a result is served before the chain is read again. */
export const AUDIT_STATUS_MAX_AGE_MS = 60_000;
/** How long a request waits for a check (a full one reads about 27,000 rows a second on the bench machine). */
export const AUDIT_STATUS_WAIT_MS = 2000;
/** How often every row is recomputed; in between, only the rows appended since. */
export const AUDIT_FULL_CHECK_EVERY_MS = 60 * 60_000;

/**
 * The audit chain's verification for the admin API's overview and audit log, kept cheap on a long
 * chain. verifyAuditChain recomputes every row (about a thousand per batch read); here:
 *
 * - a result is served for `maxAgeMs` (a minute), and callers meanwhile share one verification in flight;
 * - after the first full check, a check reads only the rows appended since the head it verified,
 *   after checking that the head row is still there, with the hash it had and its content still
 *   hashing to it (a removed or rewritten head, or any break, makes the check a full one);
 * - every `fullEveryMs` (an hour) every row is recomputed again, which is what would find an older
 *   row rewritten with its hashes recomputed by whoever holds the audit key.
 *
 * - a caller waits at most `waitMs` (2 s) for a check: past that it gets the last result, or,
 *   before this node's first check has finished, `ok: null` (still running).
 *
 * So a check costs the rows written in the last minute, and a full recomputation at most once an
 * hour per node (about 27,000 rows a second were recomputed on the bench machine: a million-row log
 * takes some 40 s, which no request waits for). The result is this node's, in this process; `gatehouse audit verify` remains the
 * full check on demand (and with a checkpoint, the check against truncation).
 *
 * @example
 * const chain = createAuditChainMonitor({ db: registry.db, keyring: auditKeys });
 * const { ok, rows, checkedAt } = await chain.status();
 */
export function createAuditChainMonitor(deps: {
  db: Kysely<Database>;
  keyring: AuditKeyring;
  maxAgeMs?: number;
  fullEveryMs?: number;
  /** How long a caller waits for a check before it is given the last result (or "still running"). */
  waitMs?: number;
  now?: () => number;
  /** The verification itself (verifyAuditChain; a test may slow it down). */
  verify?: typeof verifyAuditChain;
}): AuditChainMonitor {
  const waitMs = deps.waitMs ?? AUDIT_STATUS_WAIT_MS;
  const verify = deps.verify ?? verifyAuditChain;
  const maxAgeMs = deps.maxAgeMs ?? AUDIT_STATUS_MAX_AGE_MS;
  const fullEveryMs = deps.fullEveryMs ?? AUDIT_FULL_CHECK_EVERY_MS;
  const now = deps.now ?? Date.now;
  let last: AuditChainStatus | undefined;
  /** The head of the last check that verified, and when its chain was last recomputed whole. */
  let trusted: { point: AuditChainPoint | null; fullCheckAt: number } | undefined;
  let inFlight: Promise<AuditChainStatus> | undefined;

  /** Whether the trusted head is still the row it was: same seq, same hash, its content still hashing to it. */
  const headUnchanged = (point: AuditChainPoint | null) => (point === null ? Promise.resolve(true) : auditRowIntact(deps.db, deps.keyring, point.seq, point.hash));

  async function check(): Promise<AuditChainStatus> {
    const started = now();
    // Another process may have rotated the audit key: rows keyed with it must verify here too.
    await deps.keyring.reload();
    const incremental = trusted !== undefined && started - trusted.fullCheckAt < fullEveryMs && (await headUnchanged(trusted.point));
    const from = incremental ? (trusted?.point ?? undefined) : undefined;
    const fullCheckAt = incremental && trusted ? trusted.fullCheckAt : started;
    const result = await verify(deps.db, deps.keyring, from);
    const checkedAt = new Date(now());
    const mode = incremental ? 'incremental' : 'full';
    if (!result.ok) {
      trusted = undefined;
      return { ok: false, rows: 0, head: null, brokenAt: result.brokenAt, reason: result.reason, checkedAt, mode, fullCheckAt: new Date(fullCheckAt) };
    }
    trusted = { point: result.head ? { ...result.head, rows: result.rows, legacyRows: result.legacyRows } : null, fullCheckAt };
    return {
      ok: true,
      rows: result.rows,
      head: result.head ? { seq: result.head.seq, at: result.head.at } : null,
      brokenAt: null,
      reason: null,
      checkedAt,
      mode,
      fullCheckAt: new Date(fullCheckAt),
    };
  }

  return {
    async status() {
      if (last && now() - last.checkedAt.getTime() < maxAgeMs) return last;
      const started = now();
      const running = (inFlight ??= check()
        .then((status) => (last = status))
        .finally(() => {
          inFlight = undefined;
        }));
      // A long check (a full one on a long log) is not waited for past waitMs: the last result is
      // given meanwhile, or, before the first one is known, that it is still running.
      let timer: NodeJS.Timeout | undefined;
      const waited = new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), waitMs);
      });
      // A check that fails later is not left unhandled while nobody awaits it (the next caller sees it).
      running.catch(() => undefined);
      try {
        const status = await Promise.race([running, waited]);
        if (status) return status;
      } finally {
        clearTimeout(timer);
      }
      if (last) return last;
      const at = new Date(started);
      return { ok: null, rows: 0, head: null, brokenAt: null, reason: 'the first verification on this node is still running', checkedAt: at, mode: 'full', fullCheckAt: at };
    },
  };
}
