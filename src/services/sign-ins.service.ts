import type { Kysely } from 'kysely';
import type { Logger } from '../observability/logger.js';
import { deleteSignInsBefore, insertSignIn, listRecentSignIns, type NewSignIn, type SignInRecord } from '../registry/sign-in.repository.js';
import type { Database } from '../registry/tables.js';

/** How many sign-ins the account page lists. */
export const RECENT_SIGN_INS = 20;

const DAY_MS = 24 * 60 * 60 * 1000;

/** One finished sign-in, as a sign-in method reports it (every method calls the same recorder). */
export type SignInEntry = Omit<NewSignIn, 'at'>;

/** Records finished sign-ins into `sign_ins` ("Recent sign-ins" on /account). */
export interface SignInRecorder {
  /**
   * Records one sign-in and drops the person's rows older than SIGN_IN_HISTORY_DAYS. Never throws:
   * a sign-in that succeeded is not failed by its history; a failure to record is logged (without
   * the user agent or address) and counted as such.
   */
  record(entry: SignInEntry): Promise<void>;
  /** The person's 20 newest sign-ins, newest first. */
  recent(userId: string): Promise<SignInRecord[]>;
  /**
   * Deletes everyone's rows older than SIGN_IN_HISTORY_DAYS (run by the hourly sweep, so the
   * history of people who never sign in again goes too, and a lowered setting takes effect); how
   * many went. Throws on a database error (the sweep logs it).
   */
  purge(): Promise<number>;
}

/**
 * The sign-in history: written by every sign-in method when a sign-in finishes (password, second
 * factor, step-up, and passkeys and upstream providers with their own `method`), read by the account
 * page.
 *
 * @example
 * const signIns = createSignInRecorder({ db, historyDays: config.signInHistoryDays, logger });
 * await signIns.record({ userId, method: 'password', amr: ['pwd'], acr: ACR_BASIC, clientId, ip: ctx.ip, userAgent: ctx.get('user-agent') });
 */
export function createSignInRecorder(deps: { db: Kysely<Database>; historyDays: number; logger: Logger; now?: () => number }): SignInRecorder {
  const now = deps.now ?? Date.now;
  return {
    async record(entry) {
      try {
        await insertSignIn(deps.db, entry, new Date(now() - deps.historyDays * DAY_MS));
      } catch (error) {
        deps.logger.warn({ err: { message: (error as Error)?.message ?? String(error) }, accountId: entry.userId, method: entry.method }, 'sign-in not recorded in the sign-in history');
      }
    },
    recent: (userId) => listRecentSignIns(deps.db, userId, RECENT_SIGN_INS),
    purge: () => deleteSignInsBefore(deps.db, new Date(now() - deps.historyDays * DAY_MS)),
  };
}
