import { sql, type Kysely } from 'kysely';
import { hashPassword, isOverlongPassword, passwordProblem, verifyDummy, verifyPassword } from '../accounts/passwords.js';
import type { Database } from '../registry/tables.js';
import { findUserById, findUserByIdForUpdate, updateUser, type UserRecord } from '../registry/user.repository.js';
import { ACCOUNT_CLIENT_ID } from './built-in-clients.js';
import { recordChange, type AuditActor, type RegistryServiceDeps } from './changes.js';
import { NotFoundError, ValidationError } from './errors.js';

/*
 * What a person changes about themselves on the account page (docs/design/self-service.md §3):
 * their display name, their password, the apps holding a grant for them, their browser sessions.
 * Each change is audited as `person:<id>` with target `user:<id>` in the transaction that makes it,
 * so "Recent security events" (recentSecurityEvents) finds it.
 */

/** The longest display name (as the admin API's `name`). */
export const DISPLAY_NAME_MAX = 200;

/** Line breaks, other control characters (C0, DEL, C1) and the Unicode line/paragraph separators: a name is one line. */
function hasLineBreakOrControl(text: string): boolean {
  for (const character of text) {
    const code = character.codePointAt(0) ?? 0;
    if (code <= 0x1f || (code >= 0x7f && code <= 0x9f) || code === 0x2028 || code === 0x2029) return true;
  }
  return false;
}

/** Why a display name is refused, or undefined when it is fine (an empty name clears it). */
export function displayNameProblem(name: string): 'too_long' | 'not_one_line' | undefined {
  if ([...name.trim()].length > DISPLAY_NAME_MAX) return 'too_long';
  if (hasLineBreakOrControl(name)) return 'not_one_line';
  return undefined;
}

/** Why a new password is refused (the same rules as everywhere: accounts/passwords.ts), or undefined. */
export function newPasswordProblem(password: string): 'too_short' | 'too_long' | 'breached' | undefined {
  if (isOverlongPassword(password)) return 'too_long';
  const problem = passwordProblem(password);
  if (!problem) return undefined;
  if (problem.startsWith('must be at least')) return 'too_short';
  if (problem.startsWith('must be at most')) return 'too_long';
  return 'breached';
}

/**
 * Sets the person's display name (trimmed; empty clears it). Refused with a ValidationError (field
 * `name`) when too long or not one line; nothing changes then. Recorded `account.name_change`.
 */
export async function changeDisplayName(deps: RegistryServiceDeps, by: AuditActor, userId: string, input: string): Promise<UserRecord> {
  const problem = displayNameProblem(input);
  if (problem) throw new ValidationError([{ field: 'name', message: problem }]);
  const name = input.trim() === '' ? null : input.trim();
  return deps.db.transaction().execute(async (trx) => {
    const before = await findUserByIdForUpdate(trx, userId);
    if (!before) throw new NotFoundError(`user ${userId}`);
    const user = await updateUser(trx, userId, { name });
    if (!user) throw new NotFoundError(`user ${userId}`);
    await recordChange(deps.audit, trx, by, { action: 'account.name_change', target: `user:${userId}`, details: { from: before.name, to: user.name } });
    return user;
  });
}

/**
 * Checks the person's current password: `right`, `wrong`, or `none` (they have no password: they
 * came through an upstream provider). A wrong or absent one costs the same time as a check.
 */
export async function checkCurrentPassword(db: Kysely<Database>, userId: string, password: string): Promise<'right' | 'wrong' | 'none'> {
  const user = await findUserById(db, userId);
  if (!user?.passwordHash) {
    await verifyDummy(password);
    return 'none';
  }
  if (isOverlongPassword(password)) {
    await verifyDummy(password);
    return 'wrong';
  }
  return (await verifyPassword(user.passwordHash, password)) ? 'right' : 'wrong';
}

/**
 * Sets the person's own password (after the caller has checked the current one or a recent
 * sign-in). What else it does, so that a password change after a suspected compromise locks out
 * whoever else had it, while the browser making the change stays signed in:
 * - `sessions_valid_after` moves to the sign-in time of the session making the change
 *   (`keepSessionLoginTs`, epoch seconds; never backwards): every session that signed in before it
 *   ends (the caller ends the later ones it knows of through the session index);
 * - every refresh token of the person is revoked (apps sign in again); their consents (Grants)
 *   stay, so apps do not ask for consent again; "Connected apps" removes those.
 * Refused with a ValidationError (field `new_password`: too_short, too_long, breached).
 * Recorded `account.password_change` (`kind`: `change`, or `set` for a first password).
 */
export async function changeOwnPassword(
  deps: RegistryServiceDeps,
  by: AuditActor,
  userId: string,
  newPassword: string,
  options: { keepSessionLoginTs: number },
): Promise<{ hadPassword: boolean; refreshTokensRevoked: number }> {
  const problem = newPasswordProblem(newPassword);
  if (problem) throw new ValidationError([{ field: 'new_password', message: problem }]);
  // Hashed before the transaction (it holds the audit log's lock from its append to its commit only).
  const passwordHash = await hashPassword(newPassword);
  return deps.db.transaction().execute(async (trx) => {
    const before = await findUserByIdForUpdate(trx, userId);
    if (!before) throw new NotFoundError(`user ${userId}`);
    const cutoff = new Date(options.keepSessionLoginTs * 1000);
    const validAfter = before.sessionsValidAfter && before.sessionsValidAfter > cutoff ? before.sessionsValidAfter : cutoff;
    await updateUser(trx, userId, { password_hash: passwordHash, sessions_valid_after: validAfter });
    const revoked = await trx.deleteFrom('oidc_durable').where('model', '=', 'RefreshToken').where('account_id', '=', userId).executeTakeFirst();
    const refreshTokensRevoked = Number(revoked.numDeletedRows);
    const hadPassword = before.passwordHash !== null;
    await recordChange(deps.audit, trx, by, {
      action: 'account.password_change',
      target: `user:${userId}`,
      details: { kind: hadPassword ? 'change' : 'set', refresh_tokens_revoked: refreshTokensRevoked, other_sessions_ended: true },
    });
    return { hadPassword, refreshTokensRevoked };
  });
}

/**
 * Ends every browser session of the person that signed in before `keepSessionLoginTs` (epoch
 * seconds; `sessions_valid_after`, never moved backwards), keeping the session that signed in then;
 * the caller ends the later ones it knows of through the session index and says how many in `ended`.
 * Recorded `account.sessions_end` (`scope`: `others` or `one`).
 */
export async function recordSessionsEnded(
  deps: RegistryServiceDeps,
  by: AuditActor,
  userId: string,
  change: { scope: 'others' | 'one'; ended: number; keepSessionLoginTs?: number },
): Promise<void> {
  await deps.db.transaction().execute(async (trx) => {
    const before = await findUserByIdForUpdate(trx, userId);
    if (!before) throw new NotFoundError(`user ${userId}`);
    if (change.keepSessionLoginTs !== undefined) {
      const cutoff = new Date(change.keepSessionLoginTs * 1000);
      if (!before.sessionsValidAfter || before.sessionsValidAfter < cutoff) await updateUser(trx, userId, { sessions_valid_after: cutoff });
    }
    await recordChange(deps.audit, trx, by, { action: 'account.sessions_end', target: `user:${userId}`, details: { scope: change.scope, ended: change.ended } });
  });
}

/** A consent (oidc-provider Grant) a person gave a client, as stored. */
export interface AccountGrantRow {
  grantId: string;
  clientId: string;
  /** The client's name; null when the client is no longer registered. */
  clientName: string | null;
  /** The stored Grant (oidc-provider's payload): read with oidc/upstream.ts grantScopes. */
  payload: Record<string, unknown>;
  createdAt: Date;
}

/**
 * The unexpired consents of the person, oldest first, without the account page's own client
 * (`gatehouse-account`: it is this page, and removing it would only sign the person out here).
 */
export async function listAccountGrants(db: Kysely<Database>, accountId: string): Promise<AccountGrantRow[]> {
  const rows = await db
    .selectFrom('oidc_durable as g')
    .leftJoin('clients', 'clients.client_id', 'g.client_id')
    .select(['g.id', 'g.client_id', 'g.payload', 'g.created_at', 'clients.client_name'])
    .where('g.model', '=', 'Grant')
    .where('g.account_id', '=', accountId)
    .where('g.client_id', 'is not', null)
    .where('g.client_id', '!=', ACCOUNT_CLIENT_ID)
    .where(sql<boolean>`(g.expires_at is null or g.expires_at > now())`)
    .orderBy('g.created_at')
    .orderBy('g.id')
    .execute();
  return rows.map((row) => ({ grantId: row.id, clientId: row.client_id as string, clientName: row.client_name, payload: row.payload, createdAt: row.created_at }));
}

/**
 * "Remove access": deletes every consent (Grant) the person gave this client, every refresh token
 * issued under one of them, and every other refresh token of the person at this client, in one
 * transaction. Answers the grant ids (the caller revokes their codes and opaque tokens in the
 * ephemeral store). NotFoundError when the person has no consent at this client (nothing changes:
 * another person's grant is never reached). Recorded `account.app_remove`.
 */
export async function removeAppAccess(deps: RegistryServiceDeps, by: AuditActor, accountId: string, clientId: string): Promise<{ grantIds: string[]; refreshTokens: number }> {
  if (clientId === ACCOUNT_CLIENT_ID) throw new NotFoundError(`grant of client ${clientId}`);
  return deps.db.transaction().execute(async (trx) => {
    const grants = await trx
      .selectFrom('oidc_durable')
      .select('id')
      .where('model', '=', 'Grant')
      .where('account_id', '=', accountId)
      .where('client_id', '=', clientId)
      .forUpdate()
      .execute();
    if (grants.length === 0) throw new NotFoundError(`grant of client ${clientId}`);
    const grantIds = grants.map((grant) => grant.id);
    const deleted = await trx
      .deleteFrom('oidc_durable')
      .where((eb) =>
        eb.or([
          eb('grant_id', 'in', grantIds),
          eb.and([eb('model', '=', 'RefreshToken'), eb('account_id', '=', accountId), eb('client_id', '=', clientId)]),
        ]),
      )
      .returning('model')
      .execute();
    const refreshTokens = deleted.filter((row) => row.model === 'RefreshToken').length;
    const clientName = (await trx.selectFrom('clients').select('client_name').where('client_id', '=', clientId).executeTakeFirst())?.client_name ?? null;
    await recordChange(deps.audit, trx, by, {
      action: 'account.app_remove',
      target: `user:${accountId}`,
      details: { client_id: clientId, client_name: clientName, grants_revoked: grantIds.length, refresh_tokens_revoked: refreshTokens },
    });
    return { grantIds, refreshTokens };
  });
}

/** The audit actions "Recent security events" shows (each has a sentence in the catalogue). */
export const SECURITY_EVENT_ACTIONS = [
  'account.password_change',
  'account.name_change',
  'account.app_remove',
  'account.sessions_end',
  'user.sessions_end',
  'user.password_set',
  'user.disable',
  'user.enable',
  'totp.enable',
  'totp.disable',
  'recovery_codes.generate',
  'passkey.register',
  'passkey.remove',
  'upstream.link',
  'upstream.unlink',
  'mfa.lockout',
  'api_key.create',
  'api_key.regenerate',
  'api_key.revoke',
  'user.password_reset',
  'user.email_verify',
  'user.email_change_requested',
  'user.email_change',
] as const;
export type SecurityEventAction = (typeof SECURITY_EVENT_ACTIONS)[number];

/** One security event about a person. */
export interface SecurityEvent {
  at: Date;
  action: SecurityEventAction;
  /** Made by an administrator (an admin client, `admin:<client id>`; the console, `person:<administrator's id>`; the CLI, `cli:<os user>`), not by the person or a sign-in. */
  byAdministrator: boolean;
  ip: string | null;
  details: Record<string, unknown>;
}

/**
 * The person's newest security events (SECURITY_EVENT_ACTIONS) from the audit log: rows whose
 * target is `user:<id>`, and rows about their passkeys (`details.user_id`), newest first.
 */
export async function recentSecurityEvents(db: Kysely<Database>, userId: string, limit = 10): Promise<SecurityEvent[]> {
  const actions = [...SECURITY_EVENT_ACTIONS];
  const rows = await db
    .selectFrom('audit_log')
    .select(['seq', 'at', 'actor', 'action', 'ip', 'details'])
    .where('action', 'in', actions)
    .where((eb) => eb.or([eb('target', '=', `user:${userId}`), sql<boolean>`(details ? 'user_id' and details->>'user_id' = ${userId})`]))
    .orderBy('seq', 'desc')
    .limit(limit)
    .execute();
  return rows.map((row) => ({
    at: row.at,
    action: row.action as SecurityEventAction,
    // An admin client, the CLI, or another person (an administrator in the console, `person:<their id>`).
    byAdministrator: row.actor.startsWith('admin:') || row.actor.startsWith('cli:') || (row.actor.startsWith('person:') && row.actor !== `person:${userId}`),
    ip: row.ip,
    details: row.details,
  }));
}
