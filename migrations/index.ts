import type { Migration } from 'kysely/migration';
import * as createRegistry from './2026_11_23_120000_create_registry.js';
import * as createUsersAndGrants from './2026_11_23_130000_create_users_and_grants.js';
import * as createAuditLog from './2026_11_23_140000_create_audit_log.js';
import * as clientGrants from './2026_12_03_100000_client_grants.js';
import * as digestStoredTokens from './2026_12_03_110000_digest_stored_tokens.js';
import * as normaliseEmails from './2026_12_03_120000_normalise_emails.js';
import * as keyAuditChain from './2026_12_03_130000_key_audit_chain.js';
import * as addUserSessionsValidAfter from './2026_12_03_140000_add_user_sessions_valid_after.js';
import * as createSecondFactors from './2026_12_08_120000_create_second_factors.js';
import * as addClientsRequireMfa from './2026_12_08_130000_add_clients_require_mfa.js';
import * as createUpstreamProviders from './2026_12_08_140000_create_upstream_providers.js';
import * as createSignIns from './2026_12_08_150000_create_sign_ins.js';
import * as createPasskeys from './2026_12_08_160000_create_passkeys.js';
import * as addUsersLocale from './2026_12_09_100000_add_users_locale.js';
import * as createEmailLinks from './2026_12_09_110000_create_email_links.js';
import * as createApiKeys from './2026_12_09_120000_create_api_keys.js';
import * as indexAuditLogByPerson from './2026_12_09_130000_index_audit_log_by_person.js';
import * as addClientsNewerProtocols from './2026_12_10_100000_add_clients_newer_protocols.js';
import * as addUsersRoles from './2026_12_11_100000_add_users_roles.js';
import * as indexAuditLogFilters from './2026_12_11_400000_index_audit_log_filters.js';

/** Every migration, by name; names sort in the order they run. Add new ones here; never edit old ones. */
export const MIGRATIONS: Record<string, Migration> = {
  '2026_11_23_120000_create_registry': createRegistry,
  '2026_11_23_130000_create_users_and_grants': createUsersAndGrants,
  '2026_11_23_140000_create_audit_log': createAuditLog,
  '2026_12_03_100000_client_grants': clientGrants,
  '2026_12_03_110000_digest_stored_tokens': digestStoredTokens,
  '2026_12_03_120000_normalise_emails': normaliseEmails,
  '2026_12_03_130000_key_audit_chain': keyAuditChain,
  '2026_12_03_140000_add_user_sessions_valid_after': addUserSessionsValidAfter,
  '2026_12_08_120000_create_second_factors': createSecondFactors,
  '2026_12_08_130000_add_clients_require_mfa': addClientsRequireMfa,
  '2026_12_08_140000_create_upstream_providers': createUpstreamProviders,
  '2026_12_08_150000_create_sign_ins': createSignIns,
  '2026_12_08_160000_create_passkeys': createPasskeys,
  '2026_12_09_100000_add_users_locale': addUsersLocale,
  '2026_12_09_110000_create_email_links': createEmailLinks,
  '2026_12_09_120000_create_api_keys': createApiKeys,
  '2026_12_09_130000_index_audit_log_by_person': indexAuditLogByPerson,
  '2026_12_10_100000_add_clients_newer_protocols': addClientsNewerProtocols,
  '2026_12_11_100000_add_users_roles': addUsersRoles,
  '2026_12_11_400000_index_audit_log_filters': indexAuditLogFilters,
};
