import { sql, type Kysely } from 'kysely';

/**
 * Client metadata of the newer protocols (issue 18): back-channel logout (OpenID Connect
 * Back-Channel Logout 1.0), DPoP-bound access tokens (RFC 9449), pushed authorization requests
 * (RFC 9126), signed request objects (RFC 9101), the FAPI 2.0 profile, and the APIs whose access
 * tokens the client may exchange (RFC 8693 token exchange, `may_act`). Every existing client keeps
 * what it had: nothing required, no profile, no exchange.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('clients')
    .addColumn('backchannel_logout_uri', 'text')
    .addColumn('backchannel_logout_session_required', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('dpop_bound_access_tokens', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('require_pushed_authorization_requests', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('require_signed_request_object', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('profile', 'text', (c) => c.check(sql`profile in ('fapi2')`))
    .addColumn('may_act', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('clients')
    .dropColumn('backchannel_logout_uri')
    .dropColumn('backchannel_logout_session_required')
    .dropColumn('dpop_bound_access_tokens')
    .dropColumn('require_pushed_authorization_requests')
    .dropColumn('require_signed_request_object')
    .dropColumn('profile')
    .dropColumn('may_act')
    .execute();
}
