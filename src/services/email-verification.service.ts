import { randomUUID } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import { z } from 'zod';
import { hashPassword, MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, passwordProblem } from '../accounts/passwords.js';
import type { MailComposer, MailContent } from '../mail/compose.js';
import type { Mailer } from '../mail/mailer.js';
import { normaliseEmail } from '../registry/email.js';
import type { Database } from '../registry/tables.js';
import { findUserByEmail, findUserById, findUserByIdForUpdate, insertUser, updateUser, type UserRecord } from '../registry/user.repository.js';
import { createTranslator, parseLocale, type Locale, type Translate } from '../ui/i18n.js';
import { recordChange, type AuditActor, type RegistryServiceDeps } from './changes.js';
import { checkEmailLink, issueEmailLink, revokeEmailLinks, useEmailLink, type EmailLinkRefusal } from './email-links.service.js';
import { ConflictError, isUniqueViolation, NotFoundError, ValidationError } from './errors.js';
import { userToJson } from './users.service.js';

/*
 * Email addresses (issue 17 part 2, docs/design/self-service.md "Email addresses"): the link that
 * confirms a person's address (users.email_verified, which the ID token's email_verified follows),
 * self sign-up, and changing one's address (a link to the new address, notices to the old one).
 * Every change is recorded in its transaction; every mail is sent after the commit, in the person's
 * language (users.locale; English when unknown), and only ever to the address it concerns.
 */

/** Where the links point: the value rides in the query string (request logs record the path only). */
export const VERIFY_EMAIL_PATH = '/verify-email';
export const CONFIRM_EMAIL_PATH = '/confirm-email';

/** What the service needs to send mail: the mailer, the composer (brand) and the issuer the links start with. */
export interface EmailMailDeps {
  mailer: Mailer;
  compose: MailComposer;
  issuer: string;
  /** The brand's name, as the mails call the service. */
  brandName: string;
}

export type EmailServiceDeps = RegistryServiceDeps & { mail: EmailMailDeps };

/** No mail can be sent (production without SMTP_URL): the feature is refused, nothing was changed. */
export class MailUnavailableError extends Error {
  constructor() {
    super('no mail can be sent: SMTP_URL is not set');
    this.name = 'MailUnavailableError';
  }
}

/** Why a link was not taken: the link's own refusals, or the person's state. Nothing was changed. */
export type EmailLinkOutcome =
  | { ok: true; userId: string; email: string }
  | { ok: false; reason: EmailLinkRefusal | 'disabled' | 'address_changed' | 'taken' };

/** Who a change made through a link is recorded as: the person the link belongs to, with the request. */
export interface RequestOrigin {
  requestId?: string | null | undefined;
  ip?: string | null | undefined;
}

const personActor = (userId: string, origin: RequestOrigin): AuditActor => ({ actor: `person:${userId}`, requestId: origin.requestId ?? null, ip: origin.ip ?? null });

/** A link's URL: the issuer, the path, the value in the query. */
export function emailLinkUrl(issuer: string, path: string, value: string): string {
  return `${issuer.replace(/\/$/, '')}${path}?token=${encodeURIComponent(value)}`;
}

async function localeOf(db: Kysely<Database> | Transaction<Database>, userId: string): Promise<Locale> {
  const row = await db.selectFrom('users').select('locale').where('id', '=', userId).executeTakeFirst();
  return parseLocale(row?.locale) ?? 'en';
}

function greeting(t: Translate, name: string | null): string {
  return name ? t('mail.verify.greeting', { name }) : t('mail.verify.greeting_anonymous');
}

type Mail = Omit<MailContent, 'locale' | 'greeting'>;

function send(mail: EmailMailDeps, locale: Locale, name: string | null, build: (t: Translate) => Mail): void {
  const t = createTranslator(locale);
  mail.mailer.send(mail.compose({ ...build(t), locale, greeting: greeting(t, name) }, t));
}

function verificationMail(mail: EmailMailDeps, to: string, value: string): (t: Translate) => Mail {
  return (t) => ({
    kind: 'email_verification',
    to,
    subject: t('mail.verify.subject'),
    paragraphs: [t('mail.verify.intro', { email: to, brand: mail.brandName })],
    action: { label: t('mail.verify.action'), url: emailLinkUrl(mail.issuer, VERIFY_EMAIL_PATH, value) },
    closing: [t('mail.verify.expiry'), t('mail.verify.ignore')],
  });
}

function requireMail(mail: EmailMailDeps): void {
  if (!mail.mailer.available) throw new MailUnavailableError();
}

/**
 * Sends the person a new link that confirms their current address (an earlier unused one stops
 * working); recorded as `user.verification_sent`. `already_verified` when there is nothing to
 * confirm (no link, no mail). A disabled person gets none (ConflictError).
 *
 * @example
 * await sendVerificationLink(deps, cliActor(), user.id);
 */
export async function sendVerificationLink(deps: EmailServiceDeps, by: AuditActor, userId: string): Promise<'sent' | 'already_verified'> {
  requireMail(deps.mail);
  const issued = await deps.db.transaction().execute(async (trx) => {
    const user = await findUserByIdForUpdate(trx, userId);
    if (!user) throw new NotFoundError(`user ${userId}`);
    if (user.disabled) throw new ConflictError('user', 'the user is disabled: no verification link is sent');
    if (user.emailVerified) return undefined;
    const { value, link } = await issueEmailLink(trx, { purpose: 'email_verification', userId, email: user.email });
    await recordChange(deps.audit, trx, by, { action: 'user.verification_sent', target: `user:${userId}`, details: { email: user.email, expires_at: link.expiresAt.toISOString() } });
    return { user, value, locale: await localeOf(trx, userId) };
  });
  if (!issued) return 'already_verified';
  send(deps.mail, issued.locale, issued.user.name, verificationMail(deps.mail, issued.user.email, issued.value));
  return 'sent';
}

/**
 * Uses a verification link: marks the person's address confirmed (`user.email_verify` by the
 * person), only if the link's address is still theirs and they are not disabled. Any refusal
 * changes nothing (the link stays as it was).
 */
export async function verifyEmail(deps: RegistryServiceDeps, origin: RequestOrigin, value: unknown): Promise<EmailLinkOutcome> {
  return refusable(deps.db, async (trx) => {
    const used = await useEmailLink(trx, value, 'email_verification');
    if (!used.ok) return used;
    const { link } = used;
    const user = await findUserByIdForUpdate(trx, link.userId);
    if (!user) return { ok: false, reason: 'unknown' };
    if (user.disabled) return { ok: false, reason: 'disabled' };
    if (normaliseEmail(link.email) !== user.email) return { ok: false, reason: 'address_changed' };
    const after = user.emailVerified ? user : await updateUser(trx, user.id, { email_verified: true });
    if (!after) return { ok: false, reason: 'unknown' };
    await recordChange(deps.audit, trx, personActor(user.id, origin), { action: 'user.email_verify', target: `user:${user.id}`, details: { before: userToJson(user), after: userToJson(after) } });
    return { ok: true, userId: user.id, email: user.email };
  });
}

/** A refusal thrown inside a transaction so it rolls back (the link marked used, say), then answered. */
class Refused extends Error {
  constructor(readonly outcome: Extract<EmailLinkOutcome, { ok: false }>) {
    super(outcome.reason);
  }
}

/** Runs `work` in a transaction; a refusal it answers rolls the transaction back (nothing changed) and is answered. */
async function refusable(db: Kysely<Database>, work: (trx: Transaction<Database>) => Promise<EmailLinkOutcome>): Promise<EmailLinkOutcome> {
  try {
    return await db.transaction().execute(async (trx) => {
      const outcome = await work(trx);
      if (!outcome.ok) throw new Refused(outcome);
      return outcome;
    });
  } catch (error) {
    if (error instanceof Refused) return error.outcome;
    throw error;
  }
}

/** What a sign-up form carries, checked as `users create` checks it (the same password rules). */
export const signUpSchema = z.strictObject({
  email: z
    .string()
    .transform(normaliseEmail)
    .pipe(z.string().max(254, 'must be at most 254 characters').pipe(z.email('must be an email address, such as name@example.com'))),
  password: z.string().superRefine((password, ctx) => {
    const problem = passwordProblem(password);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  }),
  name: z.string().trim().max(200, 'must be at most 200 characters').optional(),
});

/** Why a sign-up field was refused, by field: what the form shows (never the value). */
export type SignUpProblem = 'email' | 'password_short' | 'password_long' | 'password_common' | 'name';

/** The problems of a sign-up form, or an empty list. */
export function signUpProblems(input: { email: string; password: string; name: string }): SignUpProblem[] {
  const parsed = signUpSchema.safeParse(input);
  if (parsed.success) return [];
  const problems = new Set<SignUpProblem>();
  for (const issue of parsed.error.issues) {
    const field = issue.path[0];
    if (field === 'email') problems.add('email');
    else if (field === 'name') problems.add('name');
    else if (field === 'password') {
      const length = [...input.password].length;
      problems.add(length < MIN_PASSWORD_LENGTH ? 'password_short' : length > MAX_PASSWORD_LENGTH ? 'password_long' : 'password_common');
    }
  }
  return [...problems];
}

/**
 * Self sign-up (SIGNUP_ENABLED): a new person, unconfirmed, in the page's language, with a link to
 * confirm the address (`user.signup` by the new person, in one transaction with the link). An
 * address that already has an account is never revealed: the answer is the same, nothing is
 * created, and that account's owner is told someone tried (sign in, or reset the password). The
 * password is hashed either way, so the time taken does not tell the two apart either.
 * Throws ValidationError for a form `signUpProblems` refuses, MailUnavailableError when no mail can go.
 */
export async function signUp(
  deps: EmailServiceDeps,
  origin: RequestOrigin,
  input: { email: string; password: string; name?: string | undefined; locale: Locale },
): Promise<{ created: boolean; userId?: string }> {
  requireMail(deps.mail);
  const parsed = signUpSchema.safeParse({ email: input.email, password: input.password, ...(input.name ? { name: input.name } : {}) });
  if (!parsed.success) throw new ValidationError(parsed.error.issues.map((issue) => ({ field: String(issue.path[0] ?? 'body'), message: issue.message })));
  const { email, password } = parsed.data;
  const name = parsed.data.name ? parsed.data.name : null;
  const passwordHash = await hashPassword(password);
  const existing = await findUserByEmail(deps.db, email);
  if (existing) {
    await notifyExisting(deps, existing);
    return { created: false };
  }
  const now = new Date();
  const id = randomUUID();
  try {
    const value = await deps.db.transaction().execute(async (trx) => {
      const user = await insertUser(trx, { id, email, name, password_hash: passwordHash, locale: input.locale, created_at: now, updated_at: now });
      const issued = await issueEmailLink(trx, { purpose: 'email_verification', userId: user.id, email: user.email });
      await recordChange(deps.audit, trx, personActor(user.id, origin), {
        action: 'user.signup',
        target: `user:${user.id}`,
        details: { after: userToJson(user), locale: input.locale, verification_expires_at: issued.link.expiresAt.toISOString() },
      });
      return issued.value;
    });
    send(deps.mail, input.locale, name, verificationMail(deps.mail, email, value));
    return { created: true, userId: id };
  } catch (error) {
    if (!isUniqueViolation(error)) throw error;
    // Taken between the look-up and the insert: the same answer as any taken address.
    const owner = await findUserByEmail(deps.db, email);
    if (owner) await notifyExisting(deps, owner);
    return { created: false };
  }
}

async function notifyExisting(deps: EmailServiceDeps, owner: UserRecord): Promise<void> {
  // A disabled account's owner is not written to: nothing they could do here would work.
  if (owner.disabled) return;
  const locale = await localeOf(deps.db, owner.id);
  send(deps.mail, locale, owner.name, (t) => ({
    kind: 'signup_exists',
    to: owner.email,
    subject: t('mail.signup_exists.subject'),
    paragraphs: [t('mail.signup_exists.intro', { email: owner.email, brand: deps.mail.brandName }), t('mail.signup_exists.advice')],
    closing: [t('mail.signup_exists.ignore')],
  }));
}

/** The address a person asked to change to, while its link is unused and unexpired. */
export async function pendingEmailChange(db: Kysely<Database>, userId: string): Promise<{ email: string; expiresAt: Date } | undefined> {
  const row = await db
    .selectFrom('email_links')
    .select(['email', 'expires_at'])
    .where('user_id', '=', userId)
    .where('purpose', '=', 'email_change')
    .where('used_at', 'is', null)
    .where('expires_at', '>', new Date())
    .orderBy('created_at', 'desc')
    .executeTakeFirst();
  return row ? { email: row.email, expiresAt: row.expires_at } : undefined;
}

const newEmailSchema = z
  .string()
  .transform(normaliseEmail)
  .pipe(z.string().max(254, 'must be at most 254 characters').pipe(z.email('must be an email address, such as name@example.com')));

/**
 * Starts a change of address (the caller made sure of a fresh sign-in): a link to the NEW address
 * (purpose email_change, the link's address is the new one; an earlier unused one stops working),
 * recorded as `user.email_change_requested`, and a notice to the OLD address. When the new address
 * already has an account, no link is made and nothing is recorded, but the answer and the notice to
 * the old address are the same (`taken` is only for the caller's log): who has an account is not
 * told. `same` when it is the person's address already; ValidationError when it is no address.
 */
export async function startEmailChange(deps: EmailServiceDeps, by: AuditActor, userId: string, newEmail: string): Promise<'sent' | 'same' | 'taken'> {
  requireMail(deps.mail);
  const parsed = newEmailSchema.safeParse(newEmail);
  if (!parsed.success) throw new ValidationError([{ field: 'email', message: parsed.error.issues[0]?.message ?? 'must be an email address' }]);
  const to = parsed.data;
  const result = await deps.db.transaction().execute(async (trx) => {
    const user = await findUserByIdForUpdate(trx, userId);
    if (!user) throw new NotFoundError(`user ${userId}`);
    if (user.disabled) throw new ConflictError('user', 'the user is disabled');
    if (user.email === to) return { user, outcome: 'same' as const };
    const locale = await localeOf(trx, userId);
    if (await findUserByEmail(trx, to)) return { user, outcome: 'taken' as const, locale };
    const { value, link } = await issueEmailLink(trx, { purpose: 'email_change', userId, email: to });
    await recordChange(deps.audit, trx, by, { action: 'user.email_change_requested', target: `user:${userId}`, details: { from: user.email, to, expires_at: link.expiresAt.toISOString() } });
    return { user, outcome: 'sent' as const, locale, value };
  });
  if (result.outcome === 'same') return 'same';
  const { user, locale } = result;
  if (result.outcome === 'sent') {
    const value = result.value;
    send(deps.mail, locale, user.name, (t) => ({
      kind: 'email_change',
      to,
      subject: t('mail.email_change.subject'),
      paragraphs: [t('mail.email_change.intro', { email: to, brand: deps.mail.brandName })],
      action: { label: t('mail.email_change.action'), url: emailLinkUrl(deps.mail.issuer, CONFIRM_EMAIL_PATH, value) },
      closing: [t('mail.email_change.expiry'), t('mail.email_change.ignore')],
    }));
  }
  send(deps.mail, locale, user.name, (t) => ({
    kind: 'email_change_notice',
    to: user.email,
    subject: t('mail.email_change_notice.subject'),
    paragraphs: [t('mail.email_change_notice.intro', { old: user.email, new: to, brand: deps.mail.brandName })],
    closing: [t('mail.email_change_notice.not_you')],
  }));
  return result.outcome;
}

/**
 * Uses a change link: the person's address becomes the link's (normalised, unique), confirmed,
 * recorded as `user.email_change` by the person; their other unused address links stop working;
 * the OLD address is told afterwards. Refused, with nothing changed, for a disabled person or an
 * address another account took meanwhile (`taken`).
 */
export async function completeEmailChange(deps: EmailServiceDeps, origin: RequestOrigin, value: unknown): Promise<EmailLinkOutcome> {
  let notice: { old: string; name: string | null; locale: Locale } | undefined;
  let outcome: EmailLinkOutcome;
  try {
    outcome = await refusable(deps.db, async (trx) => {
      const used = await useEmailLink(trx, value, 'email_change');
      if (!used.ok) return used;
      const { link } = used;
      const user = await findUserByIdForUpdate(trx, link.userId);
      if (!user) return { ok: false, reason: 'unknown' };
      if (user.disabled) return { ok: false, reason: 'disabled' };
      const to = normaliseEmail(link.email);
      const other = await findUserByEmail(trx, to);
      if (other && other.id !== user.id) return { ok: false, reason: 'taken' };
      const after = await updateUser(trx, user.id, { email: to, email_verified: true });
      if (!after) return { ok: false, reason: 'unknown' };
      await revokeEmailLinks(trx, user.id, 'email_verification');
      await revokeEmailLinks(trx, user.id, 'email_change');
      await recordChange(deps.audit, trx, personActor(user.id, origin), {
        action: 'user.email_change',
        target: `user:${user.id}`,
        details: { before: userToJson(user), after: userToJson(after) },
      });
      notice = { old: user.email, name: user.name, locale: await localeOf(trx, user.id) };
      return { ok: true, userId: user.id, email: to };
    });
  } catch (error) {
    // Taken by another account between the look-up and the update: the unique index decides.
    if (isUniqueViolation(error)) return { ok: false, reason: 'taken' };
    throw error;
  }
  if (outcome.ok && notice) {
    const { old } = notice;
    const to = outcome.email;
    send(deps.mail, notice.locale, notice.name, (t) => ({
      kind: 'email_changed',
      to: old,
      subject: t('mail.email_changed.subject'),
      paragraphs: [t('mail.email_changed.intro', { old, new: to, brand: deps.mail.brandName })],
      closing: [t('mail.email_changed.not_you')],
    }));
  }
  return outcome;
}

/**
 * Whether a link would be taken now, without using it (the page at the link shows its button only
 * for a live link, and says why otherwise): the link's refusals, a disabled person, for a
 * verification an address no longer the person's, for a change an address taken meanwhile.
 */
export async function checkEmailAddressLink(db: Kysely<Database>, value: unknown, purpose: 'email_verification' | 'email_change'): Promise<EmailLinkOutcome> {
  const checked = await checkEmailLink(db, value, purpose);
  if (!checked.ok) return checked;
  const { link } = checked;
  const user = await findUserById(db, link.userId);
  if (!user) return { ok: false, reason: 'unknown' };
  if (user.disabled) return { ok: false, reason: 'disabled' };
  const email = normaliseEmail(link.email);
  if (purpose === 'email_verification' && email !== user.email) return { ok: false, reason: 'address_changed' };
  if (purpose === 'email_change') {
    const other = await findUserByEmail(db, email);
    if (other && other.id !== user.id) return { ok: false, reason: 'taken' };
  }
  return { ok: true, userId: user.id, email };
}
