import { randomBytes } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import {
  deleteUnusedEmailLinks,
  findEmailLinkByDigest,
  insertEmailLink,
  markEmailLinkUsed,
  type EmailLinkRecord,
} from '../registry/email-link.repository.js';
import type { Database, EmailLinkPurpose } from '../registry/tables.js';
import { digestTokenValue } from '../registry/token-digest.js';

type Db = Kysely<Database> | Transaction<Database>;

/** How long each kind of link works: a reset 30 minutes (the issue's figure), an address to verify 3 days, a new address 24 hours. */
export const EMAIL_LINK_TTL_SECONDS: Readonly<Record<EmailLinkPurpose, number>> = Object.freeze({
  password_reset: 30 * 60,
  email_verification: 3 * 86_400,
  email_change: 86_400,
});

/** The value in a link: 256 random bits, base64url (43 characters). */
const LINK_VALUE = /^[A-Za-z0-9_-]{43}$/;

/** Why a link was not taken: never seen (or not this kind), already used, or expired. */
export type EmailLinkRefusal = 'unknown' | 'used' | 'expired';

export type EmailLinkCheck = { ok: true; link: EmailLinkRecord } | { ok: false; reason: EmailLinkRefusal };

/**
 * Makes a link value for a person and stores its digest; earlier unused links of the same purpose
 * stop working. The value goes into the mail and nowhere else.
 *
 * @example
 * const { value } = await issueEmailLink(db, { purpose: 'password_reset', userId, email });
 * const url = `${issuer}/reset/password?token=${value}`; // in the query: request logs record paths
 */
export async function issueEmailLink(db: Db, input: { purpose: EmailLinkPurpose; userId: string; email: string; ttlSeconds?: number }): Promise<{ value: string; link: EmailLinkRecord }> {
  const value = randomBytes(32).toString('base64url');
  const ttl = input.ttlSeconds ?? EMAIL_LINK_TTL_SECONDS[input.purpose];
  const link = await insertEmailLink(db, { digest: digestTokenValue(value), purpose: input.purpose, userId: input.userId, email: input.email, expiresAt: new Date(Date.now() + ttl * 1000) });
  return { value, link };
}

async function refusal(db: Db, digest: string, purpose: EmailLinkPurpose): Promise<EmailLinkCheck> {
  const found = await findEmailLinkByDigest(db, digest, purpose);
  if (!found) return { ok: false, reason: 'unknown' };
  if (found.usedAt) return { ok: false, reason: 'used' };
  return { ok: false, reason: 'expired' };
}

/** Whether a link would be taken now, without using it (the page that asks for a new password shows only for a live link). */
export async function checkEmailLink(db: Db, value: unknown, purpose: EmailLinkPurpose): Promise<EmailLinkCheck> {
  if (typeof value !== 'string' || !LINK_VALUE.test(value)) return { ok: false, reason: 'unknown' };
  const digest = digestTokenValue(value);
  const found = await findEmailLinkByDigest(db, digest, purpose);
  if (found && !found.usedAt && found.expiresAt.getTime() > Date.now()) return { ok: true, link: found };
  return refusal(db, digest, purpose);
}

/**
 * Uses a link: marks it used if it is unused and unexpired, in one statement, and answers whose it
 * is. Run it in the transaction of what the link does, so a failure there leaves the link unused.
 */
export async function useEmailLink(db: Db, value: unknown, purpose: EmailLinkPurpose): Promise<EmailLinkCheck> {
  if (typeof value !== 'string' || !LINK_VALUE.test(value)) return { ok: false, reason: 'unknown' };
  const digest = digestTokenValue(value);
  const used = await markEmailLinkUsed(db, digest, purpose);
  if (used) return { ok: true, link: used };
  return refusal(db, digest, purpose);
}

/** Drops a person's unused links of one purpose. */
export async function revokeEmailLinks(db: Db, userId: string, purpose: EmailLinkPurpose): Promise<number> {
  return deleteUnusedEmailLinks(db, userId, purpose);
}
