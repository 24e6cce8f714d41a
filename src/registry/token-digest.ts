import { hash } from 'node:crypto';

/**
 * The durable models whose id is a bearer credential: the token's own value, which oidc-provider
 * also keeps in the payload as `jti`. They are stored under a digest of that value, without it, so
 * whoever reads the table (or a backup of it) holds nothing the server takes as a token. A Grant's
 * id names a consent and proves nothing: it stays as it is, and so does every `grant_id`.
 */
export const DIGESTED_MODELS: ReadonlySet<string> = new Set(['RefreshToken', 'InitialAccessToken', 'RegistrationAccessToken']);

/** Marks a stored id as a digest; oidc-provider's token values (base64url) never contain `$`. */
export const TOKEN_DIGEST_PREFIX = 'sha256$';

/**
 * The stored id of a token: `sha256$` and the unkeyed SHA-256 of its value, base64url. Unkeyed on
 * purpose: these values are 256-bit random (oidc-provider's default opaque randomness), so no one
 * can find a value from its digest and a key would add nothing against a reader of the database;
 * with no key, no key rotation can lose every refresh token, the CLI can mint an initial access
 * token without KEYS_DIR, and the migration is plain SQL. The digest is no secret: it may be shown
 * as the token's id (a list of initial access tokens, say). Presented as a token, it is digested
 * again and found nowhere.
 *
 * The migration 2026_12_03_110000_digest_stored_tokens computes the same in SQL.
 *
 * @example
 * digestTokenValue('zJ3…') // 'sha256$Fq0…' (50 characters)
 */
export function digestTokenValue(value: string): string {
  return TOKEN_DIGEST_PREFIX + hash('sha256', value, 'base64url');
}

/** The payload to store for a digested model: everything but the token's value. */
export function withoutTokenValue<P extends { jti?: unknown }>(payload: P): Omit<P, 'jti'> {
  if (!('jti' in payload)) return payload as Omit<P, 'jti'>;
  const { jti: _value, ...rest } = payload;
  return rest;
}
