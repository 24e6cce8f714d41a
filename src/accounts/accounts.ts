import type { Kysely } from 'kysely';
import type { Logger } from '../observability/logger.js';
import { normaliseEmail } from '../registry/email.js';
import type { Database } from '../registry/tables.js';
import { findUserByEmail, prepareFindUserById, recordLogin, type UserRecord } from '../registry/user.repository.js';
import { hashPassword, isOverlongPassword, needsRehash, verifyDummy, verifyPassword } from './passwords.js';

/** No stored email is longer (the users service refuses them): a longer one is unknown without a query. */
const MAX_EMAIL_LENGTH = 254;

/**
 * The outcome of a sign-in attempt. `invalid` and `disabled` are told apart for the log and the
 * caller's counters; the person sees the same message for both.
 */
export type AuthenticationResult = { ok: true; user: UserRecord } | { ok: false; reason: 'invalid' | 'disabled' };

export interface AccountService {
  authenticate(email: string, password: string): Promise<AuthenticationResult>;
  findById(id: string): Promise<UserRecord | undefined>;
}

export interface AccountServiceDeps {
  db: Kysely<Database>;
  logger: Logger;
}

/**
 * Signs people in against the users table: argon2id, a dummy verify for unknown emails (so timing
 * does not tell which accounts exist), and hashes upgraded to the current parameters on success.
 *
 * @example
 * const accounts = createAccountService({ db: registry.db, logger });
 * const result = await accounts.authenticate(email, password);
 * if (!result.ok) return showForm('Wrong email or password'); // same words for 'invalid' and 'disabled'
 * const accountId = result.user.id;
 */
export function createAccountService({ db, logger }: AccountServiceDeps): AccountService {
  const findUserById = prepareFindUserById(db);
  return {
    async authenticate(email, password) {
      // Caps the work an attacker can ask for; the same answer whether or not the email exists.
      if (isOverlongPassword(password)) return { ok: false, reason: 'invalid' };
      // Measured in the normalised form the lookup uses (NFKC may shorten or lengthen it).
      const key = normaliseEmail(email);
      const user = key.length <= MAX_EMAIL_LENGTH ? await findUserByEmail(db, key) : undefined;
      // No such person, or one without a password (they came through an upstream provider): the
      // same work as a real verify, and the same answer, so timing tells neither apart.
      if (!user || user.passwordHash === null) {
        await verifyDummy(password);
        return { ok: false, reason: 'invalid' };
      }
      // Verified for a disabled user too: the time taken must not tell a disabled account apart.
      if (!(await verifyPassword(user.passwordHash, password))) return { ok: false, reason: 'invalid' };
      if (user.disabled) return { ok: false, reason: 'disabled' };
      const rehash = needsRehash(user.passwordHash) ? { from: user.passwordHash, to: await hashPassword(password) } : undefined;
      const updated = await recordLogin(db, user.id, new Date(), rehash);
      // Deleted between the read and the write: it no longer exists to sign in to.
      if (!updated) return { ok: false, reason: 'invalid' };
      if (rehash && updated.passwordHash === rehash.to) logger.info({ userId: user.id }, 'password hash upgraded');
      return { ok: true, user: updated };
    },

    findById(id) {
      return findUserById(id);
    },
  };
}
