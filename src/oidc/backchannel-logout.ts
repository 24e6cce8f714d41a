import type { Kysely } from 'kysely';
import type { Provider } from 'oidc-provider';
import { tailAudit, type AuditRecord } from '../audit/audit-log.js';
import type { Logger } from '../observability/logger.js';
import type { Database } from '../registry/tables.js';
import type { EphemeralStore } from '../store/ephemeral-store.js';
import { takeAccountSessions, type AccountBrowserSession } from './adapters/session-index.js';
import { deliveryStatus, queueBackchannelLogout, type LogoutDelivery } from './upstream.js';

/*
 * OpenID Connect Back-Channel Logout 1.0 (docs/backchannel-logout.md). When a person's session ends,
 * every app that had a session with them and registered a backchannel_logout_uri is sent a logout
 * token, after the person's answer, never in its way: oidc-provider's own sign-out (end_session)
 * hands each delivery to this queue (upstream.ts, deferBackchannelLogout), and so do the sign-outs
 * Gatehouse makes itself (createSessionSignOut: the account page, the admin API, password changes
 * and resets). Each delivery is tried at most `attempts` times, each attempt bounded by `timeoutMs`,
 * with exponential backoff and jitter between them. The queue is in memory: a crash loses what is
 * pending (a durable outbox comes with issue 20's webhooks); a shutdown gives it a few seconds.
 */

/** What became of a delivery, for metrics (gatehouse_backchannel_logout_total{outcome}). */
export type BackchannelOutcome = 'delivered' | 'retried' | 'failed' | 'refused';

/** How a delivery is tried: `attempts` in all, each waiting at most `timeoutMs` for the app, base·2ⁿ (capped, with jitter) between them. */
export interface BackchannelRetry {
  attempts: number;
  timeoutMs: number;
  baseMs: number;
  maxMs: number;
}

/** Five attempts of at most 5 s each, 1, 2, 4, 8 s (±25%) apart: given up within about half a minute. */
export const DEFAULT_BACKCHANNEL_RETRY: BackchannelRetry = Object.freeze({ attempts: 5, timeoutMs: 5000, baseMs: 1000, maxMs: 30_000 });

/** Deliveries waiting at most; more are refused (logged, counted), so dead apps cannot eat the memory. */
const MAX_QUEUED = 10_000;
/** Deliveries on their way at once: one app that never answers holds up one slot, not the others. */
const MAX_IN_FLIGHT = 8;
/** How long close() waits for what is queued before it gives up on it. */
const CLOSE_GRACE_MS = 5000;

export interface BackchannelLogoutQueue {
  /** Queues one delivery and returns at once; never throws. */
  enqueue(delivery: LogoutDelivery): void;
  /** Stops taking deliveries, gives those waiting for a retry one last try, waits (bounded) for them, then aborts what is left. */
  close(): Promise<void>;
}

export interface BackchannelQueueDeps {
  logger: Logger;
  retry?: Partial<BackchannelRetry> | undefined;
  /** Called once per outcome (each failed attempt that will be retried counts as `retried`). */
  onOutcome?: ((outcome: BackchannelOutcome) => void) | undefined;
  maxQueued?: number | undefined;
  closeGraceMs?: number | undefined;
}

interface Job {
  delivery: LogoutDelivery;
  attempt: number;
}

/** An answer that says the app will never take this token (400 for a token it finds invalid): retrying cannot help. 408 and 429 can. */
function isPermanent(status: number | undefined): boolean {
  return status !== undefined && status < 500 && status !== 408 && status !== 429;
}

/** What of a failed attempt may be logged: the HTTP status, or the kind of failure and its code; never the token, the URL's query or the app's answer. */
function describe(error: unknown, signal: AbortSignal): Record<string, unknown> {
  const status = deliveryStatus(error);
  if (status !== undefined) return { status };
  if (signal.aborted) return { reason: 'timeout' };
  const cause = (error as { cause?: { code?: unknown } } | undefined)?.cause;
  return { reason: 'network', ...(typeof cause?.code === 'string' ? { code: cause.code } : {}) };
}

/**
 * The delivery queue of one server.
 *
 * @example
 * const queue = createBackchannelLogoutQueue({ logger, retry: { timeoutMs: 5000, attempts: 5 }, onOutcome: metrics.backchannelLogout });
 * deferBackchannelLogout(provider, queue.enqueue, { allowLoopback: !config.production });
 * await queue.close();
 */
export function createBackchannelLogoutQueue(deps: BackchannelQueueDeps): BackchannelLogoutQueue {
  const retry: BackchannelRetry = { ...DEFAULT_BACKCHANNEL_RETRY, ...deps.retry };
  const maxQueued = deps.maxQueued ?? MAX_QUEUED;
  const closeGraceMs = deps.closeGraceMs ?? CLOSE_GRACE_MS;
  const log = deps.logger.child({ component: 'backchannel-logout' });
  const outcome = (what: BackchannelOutcome) => deps.onOutcome?.(what);
  const queue: Job[] = [];
  /** Deliveries waiting out a backoff, by their timer. */
  const timers = new Map<NodeJS.Timeout, Job>();
  const shutdown = new AbortController();
  let inFlight = 0;
  let closing = false;
  let drained: (() => void) | undefined;

  const backoff = (attempt: number) => {
    const base = Math.min(retry.maxMs, retry.baseMs * 2 ** (attempt - 1));
    return Math.round(base * (0.75 + Math.random() * 0.5));
  };
  const idle = () => queue.length === 0 && timers.size === 0 && inFlight === 0;

  async function attempt(job: Job): Promise<void> {
    const { delivery } = job;
    const signal = AbortSignal.any([AbortSignal.timeout(retry.timeoutMs), shutdown.signal]);
    const fields = { clientId: delivery.clientId, attempt: job.attempt };
    try {
      await delivery.send(signal);
      outcome('delivered');
      log.info({ ...fields, outcome: 'delivered' }, 'back-channel logout delivered');
      return;
    } catch (error) {
      const failure = describe(error, signal);
      const status = deliveryStatus(error);
      if (isPermanent(status) || job.attempt >= retry.attempts || closing) {
        outcome('failed');
        log.warn({ ...fields, outcome: 'failed', ...failure }, isPermanent(status) ? 'back-channel logout refused by the app; not retried' : 'back-channel logout not delivered; given up');
        return;
      }
      outcome('retried');
      log.info({ ...fields, outcome: 'retried', ...failure }, 'back-channel logout attempt failed; will retry');
      const next = { delivery, attempt: job.attempt + 1 };
      const timer = setTimeout(() => {
        timers.delete(timer);
        queue.push(next);
        pump();
      }, backoff(job.attempt));
      timer.unref();
      timers.set(timer, next);
    }
  }

  function pump(): void {
    while (inFlight < MAX_IN_FLIGHT) {
      const job = queue.shift();
      if (!job) break;
      inFlight += 1;
      void attempt(job).finally(() => {
        inFlight -= 1;
        pump();
        if (idle()) drained?.();
      });
    }
  }

  return {
    enqueue(delivery) {
      if (closing || queue.length + timers.size >= maxQueued) {
        outcome('refused');
        log.error({ clientId: delivery.clientId, outcome: 'refused', queued: queue.length + timers.size }, closing ? 'back-channel logout not queued: shutting down' : 'back-channel logout not queued: too many waiting');
        return;
      }
      queue.push({ delivery, attempt: 1 });
      // After the answer: never in the request's path.
      setImmediate(pump);
    },
    async close() {
      closing = true;
      if (idle()) return;
      // Deliveries waiting for a retry get one last try now.
      for (const [timer, job] of timers) {
        clearTimeout(timer);
        timers.delete(timer);
        queue.push(job);
      }
      const done = await new Promise<boolean>((resolve) => {
        const give = setTimeout(() => resolve(false), closeGraceMs);
        give.unref();
        drained = () => {
          clearTimeout(give);
          resolve(true);
        };
        pump();
      });
      if (done) return;
      // Past the deadline: what is still queued is lost, what is on its way is aborted (and counted failed by its attempt).
      const lost = queue.splice(0);
      for (const job of lost) {
        outcome('failed');
        log.warn({ clientId: job.delivery.clientId, outcome: 'failed', attempt: job.attempt, reason: 'shutdown' }, 'back-channel logout not delivered; given up at shutdown');
      }
      shutdown.abort();
      await new Promise<void>((resolve) => {
        if (inFlight === 0) resolve();
        else drained = resolve;
      });
    },
  };
}

/** Ends an account's browser sessions (those `which` picks; all by default) and tells their apps; answers how many ended. */
export type SessionSignOut = (accountId: string, which?: (session: AccountBrowserSession) => boolean) => Promise<number>;

/**
 * Ends sessions outside oidc-provider's end_session (the account page, an admin's disable, delete or
 * password change, a password reset): deletes them from the store, as the session index finds them,
 * and queues one logout token for each app each session signed in to that registered a
 * backchannel_logout_uri (through the provider's own Client#backchannelLogout, replaced by
 * deferBackchannelLogout), with that session's `sid`. Returns once they are queued.
 *
 * @example
 * const signOut = createSessionSignOut({ store, provider: () => host.provider, logger });
 * await signOut(userId); // every session of the person
 */
export function createSessionSignOut(deps: { store: EphemeralStore; provider: () => Provider; logger: Logger }): SessionSignOut {
  const log = deps.logger.child({ component: 'backchannel-logout' });
  return async (accountId, which = () => true) => {
    const ended = await takeAccountSessions(deps.store, accountId, which);
    const provider = deps.provider();
    for (const { clientId, sid } of ended.flatMap((session) => session.apps)) {
      try {
        await queueBackchannelLogout(provider, clientId, accountId, sid);
      } catch (error) {
        // The client could not be read (the registry is down): its app is not told; the session is over all the same.
        log.warn({ clientId, err: { message: (error as Error)?.message } }, 'back-channel logout not queued: the client could not be read');
      }
    }
    return ended.length;
  };
}

/** Audit rows per poll of watchCliSignOuts. */
const AUDIT_PAGE = 500;

/**
 * The person whose sessions an audited change made with the CLI ended, if it did: the CLI
 * (`users disable`, `users delete`, `users set-password` without --keep-sessions) writes to the
 * registry and reaches no running node, so its changes are found in the audit log, where the users
 * service records each of them in the change's own transaction. Changes made in a node (the admin API,
 * the account page, a password reset) are told to the apps by that node directly.
 */
export function cliSignOutOf(record: Pick<AuditRecord, 'actor' | 'action' | 'target' | 'details'>): string | undefined {
  if (!record.actor.startsWith('cli:')) return undefined;
  const accountId = /^user:(.+)$/.exec(record.target ?? '')?.[1];
  if (!accountId) return undefined;
  if (record.action === 'user.disable' || record.action === 'user.delete') return accountId;
  if ((record.action === 'user.password_set' || record.action === 'user.update') && record.details.sessions_ended === true) return accountId;
  return undefined;
}

/**
 * Follows the audit log for sign-outs made with the CLI (cliSignOutOf) and ends those sessions
 * through `signOut`, which tells their apps. It starts at the end of the log (changes made while no
 * node ran are not told). Every node follows it: the first to get to a change ends the sessions
 * (taking them from the store), and the others find none left to tell.
 *
 * @example
 * const watcher = watchCliSignOuts({ db, signOut, logger, pollMs: 1000 });
 * watcher.start(); // … watcher.stop();
 */
export function watchCliSignOuts(deps: { db: Kysely<Database>; signOut: SessionSignOut; logger: Logger; pollMs: number }): { start(): void; stop(): void } {
  const log = deps.logger.child({ component: 'backchannel-logout' });
  let last: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  let polling = false;
  let failing = false;

  async function poll(): Promise<void> {
    if (polling) return;
    polling = true;
    try {
      if (last === undefined) {
        last = (await tailAudit(deps.db, { limit: 1 })).at(-1)?.seq ?? 0;
        return;
      }
      for (;;) {
        const records = await tailAudit(deps.db, { afterSeq: last, limit: AUDIT_PAGE });
        for (const record of records) {
          last = record.seq;
          const accountId = cliSignOutOf(record);
          if (!accountId) continue;
          // Only sessions from before the change (as the registry's cutoff has it): one signed in since stays.
          const before = record.at.getTime();
          await deps.signOut(accountId, (session) => (session.loginTs ?? 0) * 1000 < before).then(
            (ended) => log.info({ accountId, sessionsEnded: ended, auditSeq: record.seq }, 'sessions ended with the CLI: their apps are told'),
            (error: unknown) => log.warn({ accountId, err: { message: (error as Error)?.message } }, 'sessions ended with the CLI could not be taken from the store; their apps are not told'),
          );
        }
        if (records.length < AUDIT_PAGE) break;
      }
      failing = false;
    } catch (error) {
      if (!failing) log.warn({ err: { message: (error as Error)?.message } }, 'could not read the audit log for sign-outs made with the CLI; will try again');
      failing = true;
    } finally {
      polling = false;
    }
  }

  return {
    start() {
      if (timer) return;
      void poll();
      timer = setInterval(() => void poll(), deps.pollMs);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}
