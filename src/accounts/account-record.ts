/** The part of a user the provider needs: who they are and the claims their scopes allow. */
export interface AccountRecord {
  id: string;
  email: string;
  emailVerified: boolean;
  name: string | null;
  disabled: boolean;
  updatedAt: Date;
  /** Browser sessions that signed in before this time are over (a password change, a disable). */
  sessionsValidAfter?: Date | null;
}

/**
 * Whether a browser session that signed in at `loginTs` (epoch seconds, as oidc-provider keeps it)
 * is over for this account. The login time is known to the second only: a session of the same second
 * as the cutoff counts as before it (the sign-in page waits out that second, see interaction.routes.ts).
 */
export function sessionEnded(account: Pick<AccountRecord, 'sessionsValidAfter'>, loginTs: number | undefined): boolean {
  const cutoff = account.sessionsValidAfter;
  return cutoff != null && (loginTs ?? 0) * 1000 < cutoff.getTime();
}
