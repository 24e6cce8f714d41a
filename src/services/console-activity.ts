import type { EphemeralStore } from '../store/ephemeral-store.js';

/** The ephemeral-store model of a person's last console call (one entry per person, living the idle timeout). */
const MODEL = 'ConsoleActivity';

/**
 * When each administrator last used the console, as the server sees it: every admin API call made
 * with a console token renews an entry that lives CONSOLE_IDLE_TIMEOUT_SECONDS. The console's
 * sign-in (oidc/mfa-policy.ts) takes the Gatehouse session without a password only while the entry
 * lives, or within the timeout of the session's own sign-in: after an idle timeout, a new tab or a
 * hand-made authorization request for the console gets the password and the second factor asked
 * for again, whatever the page does (docs/design/console.md).
 */
export interface ConsoleActivity {
  /** Renews the person's entry (an admin API call with a console token). */
  touch(personId: string): Promise<void>;
  /** Whether the person used the console within the idle timeout. */
  isActive(personId: string): Promise<boolean>;
  readonly idleSeconds: number;
}

export function createConsoleActivity(store: Pick<EphemeralStore, 'upsert' | 'find'>, idleSeconds: number): ConsoleActivity {
  return {
    idleSeconds,
    touch: (personId) => store.upsert(MODEL, personId, { at: Date.now() }, idleSeconds),
    isActive: async (personId) => (await store.find(MODEL, personId)) !== undefined,
  };
}
