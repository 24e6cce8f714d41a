/** A role name `gatehouse db roles` accepts: lower case, so that it needs no quoting anywhere. */
export const ROLE_NAME_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;

/** Why a name cannot be one of the two roles, or undefined when it can. */
export function roleNameProblem(name: string): string | undefined {
  if (!ROLE_NAME_PATTERN.test(name)) return 'must be 1 to 63 characters of a-z, 0-9 and _, not starting with a digit';
  if (name.startsWith('pg_')) return 'must not start with pg_ (PostgreSQL reserves those)';
  if (name === 'public' || name === 'none') return `"${name}" is reserved by PostgreSQL`;
  return undefined;
}

/**
 * Why a password cannot be the runtime role's, or undefined when it can. Printable ASCII only:
 * PostgreSQL prepares other passwords with SASLprep, which libpq repeats at login and node-postgres
 * does not, so such a password would log in from one client and not the other.
 */
export function runtimePasswordProblem(password: string): string | undefined {
  if (password.length === 0) return 'is empty';
  if (!/^[\x20-\x7e]+$/.test(password)) return 'must be printable ASCII (for example the output of openssl rand -base64 32)';
  return undefined;
}
