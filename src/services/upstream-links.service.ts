import { randomUUID } from 'node:crypto';
import { domainToASCII } from 'node:url';
import type { Transaction } from 'kysely';
import { normaliseEmail } from '../registry/email.js';
import { countPasskeysOfUser } from '../registry/passkey.repository.js';
import type { Database } from '../registry/tables.js';
import {
  deleteUpstreamLink,
  findUpstreamLink,
  insertUpstreamLink,
  listUpstreamLinksOfUser,
  touchUpstreamLink,
  type UpstreamLink,
  type UpstreamProvider,
} from '../registry/upstream.repository.js';
import { findUserByEmail, findUserById, findUserByIdForUpdate, insertUser, recordLogin, type UserRecord } from '../registry/user.repository.js';
import { recordChange, type AuditActor, type RegistryServiceDeps } from './changes.js';
import { ConflictError, isUniqueViolation, LastSignInMethodError, NotFoundError } from './errors.js';

export { LastSignInMethodError };
import { userToJson } from './users.service.js';

/** Who the upstream provider says signed in: the claims of its validated ID token that linking uses. */
export interface UpstreamIdentity {
  providerId: string;
  iss: string;
  sub: string;
  email: string | null;
  emailVerified: boolean;
  name: string | null;
}

/** Why an upstream identity does not sign anyone in here (the page names it; `upstream.failure` records it). */
export type UpstreamRefusal =
  | 'no_email'
  | 'email_not_verified'
  | 'email_domain_not_allowed'
  | 'signup_not_allowed'
  | 'account_disabled'
  | 'already_linked';

/**
 * What an upstream identity leads to (docs/design/sign-in-methods.md §6.3):
 * - `linked`: the identity is linked to this person (signs in);
 * - `signed_up`: a new person was made for it, with the link (sign-up allowed);
 * - `confirm`: a person has this verified email: they must sign in with their own method first;
 * - `refused`: nothing was written.
 */
export type UpstreamOutcome =
  | { kind: 'linked'; user: UserRecord }
  | { kind: 'signed_up'; user: UserRecord }
  | { kind: 'confirm'; user: UserRecord }
  | { kind: 'refused'; reason: UpstreamRefusal };

/** The domain of an email, lower-cased and IDNA-normalised (xn--), as allowed_email_domains are stored. */
export function emailDomain(email: string): string {
  const at = email.lastIndexOf('@');
  return at < 0 ? '' : domainToASCII(email.slice(at + 1).toLowerCase());
}

function domainAllowed(provider: UpstreamProvider, email: string): boolean {
  if (provider.allowedEmailDomains.length === 0) return true;
  const domain = emailDomain(email);
  return domain !== '' && provider.allowedEmailDomains.includes(domain);
}

const linkDetails = (identity: UpstreamIdentity) => ({ provider_id: identity.providerId, issuer: identity.iss, subject: identity.sub });

/**
 * Decides what an upstream identity leads to, and writes what the rules allow: the link's
 * last_used_at (and the person's last_login_at) for a linked identity; a new person and their link (one transaction, recorded as
 * `user.create` and `upstream.signup` by `upstream:<provider id>`) when the provider allows sign-up
 * and the email is verified, allowed and nobody's. An email is matched to an existing person only
 * when the provider says it is verified; even then nothing is linked here (`confirm`).
 */
export async function resolveUpstreamIdentity(
  deps: RegistryServiceDeps,
  provider: UpstreamProvider,
  identity: UpstreamIdentity,
  context: { requestId?: string | null; ip?: string | null } = {},
): Promise<UpstreamOutcome> {
  const link = await findUpstreamLink(deps.db, identity.iss, identity.sub);
  if (link) {
    const user = await findUserById(deps.db, link.userId);
    if (!user || user.disabled) return { kind: 'refused', reason: 'account_disabled' };
    const now = new Date();
    await touchUpstreamLink(deps.db, identity.iss, identity.sub, now);
    await recordLogin(deps.db, user.id, now);
    return { kind: 'linked', user };
  }
  if (!identity.email) return { kind: 'refused', reason: 'no_email' };
  if (!domainAllowed(provider, identity.email)) return { kind: 'refused', reason: 'email_domain_not_allowed' };
  if (identity.emailVerified !== true) return { kind: 'refused', reason: 'email_not_verified' };
  const existing = await findUserByEmail(deps.db, identity.email);
  if (existing) return existing.disabled ? { kind: 'refused', reason: 'account_disabled' } : { kind: 'confirm', user: existing };
  if (!provider.allowSignup) return { kind: 'refused', reason: 'signup_not_allowed' };
  const by: AuditActor = { actor: `upstream:${provider.id}`, requestId: context.requestId ?? null, ip: context.ip ?? null };
  const now = new Date();
  try {
    const user = await deps.db.transaction().execute(async (trx) => {
      const created = await insertUser(trx, {
        id: randomUUID(),
        email: normaliseEmail(identity.email!),
        email_verified: true,
        name: identity.name?.trim().slice(0, 200) || null,
        password_hash: null,
        created_at: now,
        updated_at: now,
        last_login_at: now,
      });
      await insertUpstreamLink(trx, { providerId: provider.id, issuer: identity.iss, subject: identity.sub, userId: created.id, emailAtLink: created.email, at: now });
      await recordChange(deps.audit, trx, by, { action: 'user.create', target: `user:${created.id}`, details: { after: userToJson(created), via: `provider:${provider.id}` } });
      await recordChange(deps.audit, trx, by, { action: 'upstream.signup', target: `user:${created.id}`, details: linkDetails(identity) });
      return created;
    });
    return { kind: 'signed_up', user };
  } catch (error) {
    // Someone took the email, or linked the identity, between the checks and the insert: nothing was written.
    if (isUniqueViolation(error)) return { kind: 'refused', reason: 'already_linked' };
    throw error;
  }
}

/**
 * Links an upstream identity to a person who has just signed in with their own method (the
 * `confirm` outcome, finished): recorded as `upstream.link` by the person, in the transaction that
 * writes the link. Refused (ConflictError) when the identity is linked already, or the person has
 * another identity at this provider.
 */
export async function linkUpstream(deps: RegistryServiceDeps, by: AuditActor, userId: string, identity: UpstreamIdentity): Promise<UpstreamLink> {
  try {
    return await deps.db.transaction().execute(async (trx) => {
      const user = await findUserByIdForUpdate(trx, userId);
      if (!user) throw new NotFoundError(`user ${userId}`);
      const link = await insertUpstreamLink(trx, { providerId: identity.providerId, issuer: identity.iss, subject: identity.sub, userId, emailAtLink: identity.email, at: new Date() });
      await recordChange(deps.audit, trx, by, { action: 'upstream.link', target: `user:${userId}`, details: linkDetails(identity) });
      return link;
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw new ConflictError('provider', 'this identity, or another one at this provider, is linked already');
    throw error;
  }
}

/** What unlinking reads besides the registry: how many passkeys the person has (another way in). */
export interface UnlinkDeps extends RegistryServiceDeps {
  /** How many passkeys the person has, read in the unlink's transaction; the passkeys table (countPasskeysOfUser) when not given. */
  countPasskeys?: (trx: Transaction<Database>, userId: string) => Promise<number>;
}


/**
 * Removes a person's link at a provider (the account page's "Unlink"), recorded as
 * `upstream.unlink` by `by`. Refused with LastSignInMethodError when it is their last way in (a
 * password, a passkey or another link must remain; design §6.3), with NotFoundError when there is
 * no such link; nothing changes then.
 *
 * @example
 * await unlinkUpstream(registry, { actor: `person:${userId}`, requestId, ip }, userId, 'example-sso');
 */
export async function unlinkUpstream(deps: UnlinkDeps, by: AuditActor, userId: string, providerId: string): Promise<UpstreamLink> {
  return deps.db.transaction().execute(async (trx) => {
    // The person's row is locked first: two unlinks of their last two links run one after the other.
    const user = await findUserByIdForUpdate(trx, userId);
    if (!user) throw new NotFoundError(`user ${userId}`);
    const links = await listUpstreamLinksOfUser(trx, userId);
    if (!links.some((link) => link.providerId === providerId)) throw new NotFoundError(`link of user ${userId} at provider ${providerId}`);
    const passkeys = await (deps.countPasskeys ?? countPasskeysOfUser)(trx, userId);
    if (user.passwordHash === null && passkeys === 0 && links.length <= 1) throw new LastSignInMethodError();
    const removed = await deleteUpstreamLink(trx, userId, providerId);
    if (!removed) throw new NotFoundError(`link of user ${userId} at provider ${providerId}`);
    await recordChange(deps.audit, trx, by, {
      action: 'upstream.unlink',
      target: `user:${userId}`,
      details: { provider_id: providerId, issuer: removed.issuer, subject: removed.subject },
    });
    return removed;
  });
}

/** The person's links (for the account page). */
export function listLinksOfUser(deps: RegistryServiceDeps, userId: string): Promise<UpstreamLink[]> {
  return listUpstreamLinksOfUser(deps.db, userId);
}
