import { sql, type Kysely } from 'kysely';

/**
 * Refresh, initial access and registration access tokens were stored under their own values (the
 * row's id, and `jti` in the payload): whoever read the table could use them. From now on they are
 * stored under `sha256$` + base64url(SHA-256(value)) and without `jti` (src/oidc/adapters/token-digest.ts,
 * which this SQL matches); the rows stored before are rewritten to that form here. Grants keep
 * their ids: a grant id is no credential. A row already in the new form is left alone.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    update oidc_durable
    set id = 'sha256$' || rtrim(translate(encode(sha256(convert_to(id, 'UTF8')), 'base64'), '+/', '-_'), '='),
        payload = payload - 'jti'
    where model in ('RefreshToken', 'InitialAccessToken', 'RegistrationAccessToken')
      and id not like 'sha256$%'`.execute(db);
}

/** A digest cannot be turned back into the token: going down would leave every stored token unusable. */
export function down(): Promise<void> {
  return Promise.reject(
    new Error('2026_12_03_110000_digest_stored_tokens cannot be undone: stored tokens are kept only as digests, which an older Gatehouse cannot look up'),
  );
}
