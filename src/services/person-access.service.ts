import { sql, type Kysely } from 'kysely';
import { z } from 'zod';
import { deletePasskey, listPasskeysOfUser } from '../registry/passkey.repository.js';
import { deleteRecoveryCodes, deleteTotpFactors, findTotpFactor } from '../registry/second-factor.repository.js';
import type { Database } from '../registry/tables.js';
import { listUpstreamLinksOfUser } from '../registry/upstream.repository.js';
import { findUserById, findUserByIdForUpdate, updateUser } from '../registry/user.repository.js';
import { listAccountGrants, removeAppAccess, type AccountGrantRow } from './account-self.service.js';
import { recordChange, type AuditActor, type RegistryServiceDeps } from './changes.js';
import { ConflictError, NotFoundError } from './errors.js';
import { CONSOLE_CLIENT_ID } from './built-in-clients.js';
import { listPasskeys, type PasskeySummary } from './passkeys.service.js';
import { secondFactorStatus, type SecondFactorStatus } from './second-factors.service.js';
import { parseInput } from './validation.js';

/*
 * What an administrator does about a person's access (the admin API's People, docs/console.md):
 * see and reset their second factors, sign them out everywhere, see and remove the apps they have
 * connected. The person's own account page does the same to themselves through account-self.service.ts;
 * each change here is audited as the administrator, in the transaction that makes it, with the
 * actions the person's "Recent security events" already shows (`totp.disable`, `passkey.remove`,
 * `account.app_remove`) or, for signing out everywhere, `user.sessions_end`.
 */

async function requireUser(db: Kysely<Database>, userId: string): Promise<void> {
  if (!(await findUserById(db, userId))) throw new NotFoundError(`user ${userId}`);
}

/** A person's second factors as an administrator sees them: never a secret, a code or a credential id. */
export interface SecondFactorsOverview extends SecondFactorStatus {
  passkeys: PasskeySummary[];
}

/** The person's authenticator app state, unused recovery codes and passkeys; NotFoundError for an unknown person. */
export async function secondFactorsOf(db: Kysely<Database>, userId: string): Promise<SecondFactorsOverview> {
  await requireUser(db, userId);
  const [status, passkeys] = await Promise.all([secondFactorStatus(db, userId), listPasskeys(db, userId)]);
  return { ...status, passkeys };
}

export const secondFactorResetSchema = z.strictObject({
  include_passkeys: z
    .boolean()
    .optional()
    .describe(
      "true: remove the person's passkeys too (refused with 409, nothing changed, when a passkey is their only way to sign in: no password and no upstream account). By default passkeys stay: a passkey is a credential of its own, not the lost authenticator app",
    ),
});
export type SecondFactorResetInput = z.input<typeof secondFactorResetSchema>;

/** What a reset removed. */
export interface SecondFactorReset {
  totpRemoved: boolean;
  recoveryCodesRemoved: number;
  passkeysRemoved: number;
}

/**
 * Resets a person's second factor, for someone who lost their authenticator app: in one
 * transaction, their authenticator (and any pending enrolment) and every recovery code go, recorded
 * as `totp.disable` (with `reset: true`); with `include_passkeys`, every passkey goes too, each
 * recorded as `passkey.remove`. Their next sign-in asks for a password alone, or for a new
 * authenticator where MFA_REQUIRED or the app demands one. Sessions and tokens are not touched
 * (signOutEverywhere does that). Nothing to remove changes and records nothing.
 * NotFoundError for an unknown person; ConflictError (field `include_passkeys`) when removing the
 * passkeys would leave the person no way to sign in.
 */
export async function resetSecondFactors(deps: RegistryServiceDeps, by: AuditActor, userId: string, input: unknown): Promise<SecondFactorReset> {
  const options = parseInput(secondFactorResetSchema, input);
  return deps.db.transaction().execute(async (trx) => {
    // The person's row is locked first, as a passkey removal and an unlink do: none of them races this.
    const user = await findUserByIdForUpdate(trx, userId);
    if (!user) throw new NotFoundError(`user ${userId}`);
    const passkeys = options.include_passkeys ? await listPasskeysOfUser(trx, userId) : [];
    if (passkeys.length > 0 && user.passwordHash === null && (await listUpstreamLinksOfUser(trx, userId)).length === 0) {
      throw new ConflictError('include_passkeys', 'the passkeys are the only way this person signs in (no password, no upstream account): nothing was changed');
    }
    const active = await findTotpFactor(trx, userId, 'active');
    const factorRows = await deleteTotpFactors(trx, userId);
    const recoveryCodesRemoved = await deleteRecoveryCodes(trx, userId);
    if (factorRows > 0 || recoveryCodesRemoved > 0) {
      await recordChange(deps.audit, trx, by, {
        action: 'totp.disable',
        target: `user:${userId}`,
        details: { reset: true, authenticator: active ? 'active' : factorRows > 0 ? 'pending' : 'none', recovery_codes_removed: recoveryCodesRemoved },
      });
    }
    for (const passkey of passkeys) {
      if (!(await deletePasskey(trx, userId, passkey.id))) continue;
      await recordChange(deps.audit, trx, by, {
        action: 'passkey.remove',
        target: `passkey:${passkey.id}`,
        details: { user_id: userId, name: passkey.name, backup_eligible: passkey.backupEligible, reset: true },
      });
    }
    return { totpRemoved: active !== undefined, recoveryCodesRemoved, passkeysRemoved: passkeys.length };
  });
}

/**
 * Signs a person out everywhere, in one transaction: `sessions_valid_after` moves to now (every
 * browser session that signed in before it is over, at its next use, on every node, whether or not
 * the session index knows it) and every refresh token of the person is revoked (apps must sign them
 * in again; their consents stay, so no consent is asked again). Recorded as `user.sessions_end`.
 * The caller then ends the stored sessions and tells their apps (back-channel logout):
 * AdminRouteDeps.sessionsEnded. NotFoundError for an unknown person; ConflictError (field `id`) for
 * the administrator themselves (`person:<userId>`: the console would sign itself out).
 */
export async function signOutEverywhere(deps: RegistryServiceDeps, by: AuditActor, userId: string): Promise<{ refreshTokensRevoked: number }> {
  // The console would sign its own administrator out mid-change: their account page signs out everywhere else.
  if (by.actor === `person:${userId}`) throw new ConflictError('id', 'you cannot sign yourself out everywhere from the console: use "Sign out everywhere else" on your account page');
  return deps.db.transaction().execute(async (trx) => {
    const before = await findUserByIdForUpdate(trx, userId);
    if (!before) throw new NotFoundError(`user ${userId}`);
    // Never backwards; a sign-in in this same second counts as before it (accounts/account-record.ts sessionEnded).
    const now = new Date();
    const cutoff = before.sessionsValidAfter && before.sessionsValidAfter > now ? before.sessionsValidAfter : now;
    await updateUser(trx, userId, { sessions_valid_after: cutoff });
    const revoked = await trx.deleteFrom('oidc_durable').where('model', '=', 'RefreshToken').where('account_id', '=', userId).executeTakeFirst();
    const refreshTokensRevoked = Number(revoked.numDeletedRows);
    await recordChange(deps.audit, trx, by, { action: 'user.sessions_end', target: `user:${userId}`, details: { refresh_tokens_revoked: refreshTokensRevoked } });
    return { refreshTokensRevoked };
  });
}

/** An app a person has connected: their consents (Grants) to one client, and its live refresh tokens. */
export interface ConnectedApp {
  clientId: string;
  /** null when the client is no longer registered. */
  clientName: string | null;
  /** When the first of the consents was given. */
  since: Date;
  grants: AccountGrantRow[];
  refreshTokens: number;
}

/**
 * The apps the person has connected, by client, oldest consent first (without the account page's
 * own client, as on /account), each with how many unexpired refresh tokens it holds for them.
 * NotFoundError for an unknown person.
 */
export async function listConnectedApps(db: Kysely<Database>, userId: string): Promise<ConnectedApp[]> {
  await requireUser(db, userId);
  const [grants, tokens] = await Promise.all([
    listAccountGrants(db, userId),
    db
      .selectFrom('oidc_durable')
      .select(['client_id', sql<string | number>`count(*)`.as('n')])
      .where('model', '=', 'RefreshToken')
      .where('account_id', '=', userId)
      .where('consumed_at', 'is', null)
      .where(sql<boolean>`(expires_at is null or expires_at > now())`)
      .groupBy('client_id')
      .execute(),
  ]);
  const tokensOf = new Map(tokens.map((row) => [row.client_id, Number(row.n)]));
  const apps = new Map<string, ConnectedApp>();
  for (const grant of grants) {
    const app = apps.get(grant.clientId);
    if (app) app.grants.push(grant);
    else apps.set(grant.clientId, { clientId: grant.clientId, clientName: grant.clientName, since: grant.createdAt, grants: [grant], refreshTokens: tokensOf.get(grant.clientId) ?? 0 });
  }
  return [...apps.values()];
}

/**
 * Removes an app's access to a person as an administrator: account-self.service.ts removeAppAccess
 * (consents and refresh tokens, audited `account.app_remove`), except the console's own access of
 * the administrator making the change (ConflictError, field `client_id`: it would sign them out).
 */
export async function removeConnectedApp(deps: RegistryServiceDeps, by: AuditActor, userId: string, clientId: string): Promise<{ grantIds: string[]; refreshTokens: number }> {
  if (clientId === CONSOLE_CLIENT_ID && by.actor === `person:${userId}`) throw new ConflictError('client_id', 'you cannot remove the console from your own apps while you use it: sign out instead');
  await requireUser(deps.db, userId);
  return removeAppAccess(deps, by, userId, clientId);
}
