import type { Kysely } from 'kysely';
import { hashPassword } from '../accounts/passwords.js';
import type { MailComposer } from '../mail/compose.js';
import type { Mailer } from '../mail/mailer.js';
import { normaliseEmail } from '../registry/email.js';
import type { Database } from '../registry/tables.js';
import {
  deleteDurableRowsOfAccount,
  findUserByEmail,
  findUserByIdForUpdate,
  findUserLocale,
  updateUser,
  type UserRecord,
} from '../registry/user.repository.js';
import { createTranslator, LOCALES, parseLocale } from '../ui/i18n.js';
import { recordChange, type AuditActor, type RegistryServiceDeps } from './changes.js';
import { EMAIL_LINK_TTL_SECONDS, issueEmailLink, revokeEmailLinks, useEmailLink, type EmailLinkRefusal } from './email-links.service.js';
import { userToJson } from './users.service.js';

/** Where a reset link leads: `<ISSUER>/reset/password?token=<value>` (the value in the query, never the path: request logs record the path). */
export const RESET_PASSWORD_PATH = '/reset/password';

/** How long a reset link works, in minutes (what the mail and the pages say). */
export const RESET_LINK_MINUTES = Math.round(EMAIL_LINK_TTL_SECONDS.password_reset / 60);

/**
 * Whom a reset asked for an address would reach: a person with a password who may sign in, or why
 * nobody (`unknown` address, `disabled` person, a person with `no_password`, who signs in only
 * through an upstream provider or a passkey). The page answers the same in every case.
 */
export type ResetTarget = { kind: 'person'; user: UserRecord } | { kind: 'nobody'; why: 'unknown' | 'disabled' | 'no_password' };

/** The person a reset for `email` would go to: one indexed lookup, whoever it finds. */
export async function findResetTarget(db: Kysely<Database>, email: string): Promise<ResetTarget> {
  const user = await findUserByEmail(db, email);
  if (!user) return { kind: 'nobody', why: 'unknown' };
  if (user.disabled) return { kind: 'nobody', why: 'disabled' };
  if (!user.passwordHash) return { kind: 'nobody', why: 'no_password' };
  return { kind: 'person', user };
}

/** What sending a reset link needs: the registry, the mailer and the composer, and the issuer the link is under. */
export interface ResetMailDeps {
  db: Kysely<Database>;
  mailer: Mailer;
  compose: MailComposer;
  issuer: string;
  brandName: string;
}

/** The link of a reset, under the issuer. */
export function resetLinkUrl(issuer: string, value: string): string {
  return `${issuer.replace(/\/$/, '')}${RESET_PASSWORD_PATH}?token=${encodeURIComponent(value)}`;
}

/**
 * Issues a reset link for the person (its digest stored; an earlier unused one stops working) and
 * queues the mail, in the person's language (users.locale; English when unknown). The mail holds
 * the one link, says how long it works, and to ignore it when not asked for. Never waits for delivery.
 *
 * @example
 * await sendResetLink({ db, mailer, compose, issuer, brandName }, target.user);
 */
export async function sendResetLink(deps: ResetMailDeps, user: UserRecord): Promise<void> {
  const { value } = await issueEmailLink(deps.db, { purpose: 'password_reset', userId: user.id, email: user.email });
  const locale = parseLocale(await findUserLocale(deps.db, user.id)) ?? LOCALES[0];
  const t = createTranslator(locale);
  const brand = deps.brandName;
  deps.mailer.send(
    deps.compose(
      {
        kind: 'password_reset',
        to: user.email,
        locale,
        subject: t('mail.reset.subject', { brand }),
        greeting: t('mail.reset.greeting'),
        paragraphs: [t('mail.reset.intro', { brand, email: user.email }), t('mail.reset.expiry', { minutes: RESET_LINK_MINUTES })],
        action: { label: t('mail.reset.action'), url: resetLinkUrl(deps.issuer, value) },
        closing: [t('mail.reset.ignore')],
      },
      t,
    ),
  );
}

/** Why a reset link did not set a password: the link's refusal, or `disabled` (the person may not sign in). Nothing was changed. */
export class ResetRefusedError extends Error {
  constructor(readonly reason: EmailLinkRefusal | 'disabled') {
    super(`password reset refused: ${reason}`);
    this.name = 'ResetRefusedError';
  }
}

/**
 * Sets a new password with a reset link, in one transaction: the link is used (once: of two uses at
 * once, one wins), the person's row is locked, the argon2id hash replaces the old one,
 * `sessions_valid_after` ends every browser session, the person's grants and refresh tokens are
 * deleted (as a password change does: apps must be signed in to again), any other unused reset link
 * is dropped, and `user.password_reset` is recorded as `person:<id>`. A link that is unknown, used,
 * expired, for a disabled person, or for an address the person no longer has throws
 * ResetRefusedError and changes nothing (the link stays as it was). The password must already have
 * passed the rules (passwordProblemKind): this function hashes what it is given.
 *
 * @example
 * const user = await completePasswordReset(registry, { requestId, ip }, form.token, form.password);
 */
export async function completePasswordReset(
  deps: RegistryServiceDeps,
  context: Omit<AuditActor, 'actor'>,
  value: unknown,
  password: string,
): Promise<UserRecord> {
  // Hashed before the transaction: it holds the audit log's lock from its append to its commit only.
  const passwordHash = await hashPassword(password);
  return deps.db.transaction().execute(async (trx) => {
    const used = await useEmailLink(trx, value, 'password_reset');
    if (!used.ok) throw new ResetRefusedError(used.reason);
    const before = await findUserByIdForUpdate(trx, used.link.userId);
    // A link for an address the person no longer has is nobody's.
    if (!before || normaliseEmail(before.email) !== normaliseEmail(used.link.email)) throw new ResetRefusedError('unknown');
    if (before.disabled) throw new ResetRefusedError('disabled');
    // The link went to this address and came back: the address is the person's (email_verified).
    const user = await updateUser(trx, before.id, { password_hash: passwordHash, sessions_valid_after: new Date(), email_verified: true });
    if (!user) throw new ResetRefusedError('unknown');
    const revoked = await deleteDurableRowsOfAccount(trx, user.id);
    await revokeEmailLinks(trx, user.id, 'password_reset');
    await recordChange(deps.audit, trx, { ...context, actor: `person:${user.id}` }, {
      action: 'user.password_reset',
      target: `user:${user.id}`,
      details: { before: userToJson(before), after: userToJson(user), sessions_ended: true, grants_and_tokens_deleted: revoked },
    });
    return user;
  });
}
