import type { ColumnType, Generated, GeneratedAlways, Insertable, Selectable, Updateable } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

/** A JSON Web Key Set as stored with a client (public keys only). */
export interface StoredJwks {
  keys: Array<Record<string, unknown>>;
}

export interface ResourceServerTable {
  id: string;
  identifier: string;
  name: string | null;
  scopes: string[];
  access_token_ttl: number;
  created_at: Timestamp;
  updated_at: Timestamp;
}

/** The security profiles a client may be held to. */
export const CLIENT_PROFILES = ['fapi2'] as const;
export type ClientProfile = (typeof CLIENT_PROFILES)[number];

export interface ClientTable {
  client_id: string;
  client_name: string;
  secret_digest: string | null;
  token_endpoint_auth_method: string;
  grant_types: string[];
  redirect_uris: string[];
  post_logout_redirect_uris: string[];
  scopes: string[];
  default_resource: string | null;
  jwks: ColumnType<StoredJwks | null, string | null, string | null>;
  logo_uri: string | null;
  first_party: boolean;
  /** Sign-ins for this client need a second factor (an administrator's setting; default false). */
  require_mfa: Generated<boolean>;
  /** OpenID Connect Back-Channel Logout 1.0: where logout tokens are posted (none: not notified). */
  backchannel_logout_uri: ColumnType<string | null, string | null | undefined, string | null>;
  backchannel_logout_session_required: Generated<boolean>;
  /** RFC 9449: every access token of this client is DPoP-bound (a request without a proof is refused). */
  dpop_bound_access_tokens: Generated<boolean>;
  /** RFC 9126: authorization requests only through the pushed authorization request endpoint. */
  require_pushed_authorization_requests: Generated<boolean>;
  /** RFC 9101: a request object must be signed with one of the client's registered keys. */
  require_signed_request_object: Generated<boolean>;
  /** A security profile the client is held to ('fapi2': FAPI 2.0 Security Profile), or none. */
  profile: ColumnType<ClientProfile | null, ClientProfile | null | undefined, ClientProfile | null>;
  /** RFC 8693: the APIs (identifiers) whose access tokens this client may exchange as subject tokens. */
  may_act: ColumnType<string[], string[] | undefined, string[]>;
  version: Generated<number>;
  secret_rotated_at: Timestamp | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

/** What a client may ask for at one API: its grant there (one row per client and API). */
export interface ClientGrantTable {
  client_id: string;
  resource_id: string;
  scopes: string[];
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface RegistryRevisionTable {
  id: number;
  revision: ColumnType<string, string | number, string | number>;
}

export interface UserTable {
  id: string;
  email: string;
  email_verified: Generated<boolean>;
  name: string | null;
  /** null for a person who came only through an upstream provider (no password to sign in with). */
  password_hash: string | null;
  disabled: Generated<boolean>;
  last_login_at: Timestamp | null;
  /** Browser sessions that signed in before this time are over (a password change, a disable). */
  sessions_valid_after: Timestamp | null;
  /** The language of this person's mail (ui/i18n.ts LOCALES); null: not known yet, English. */
  locale: Generated<string | null>;
  /** The person's roles (users.service.ts ROLES): `admin` opens the console. */
  roles: Generated<string[]>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

/**
 * oidc-provider's durable models (Grant, RefreshToken, InitialAccessToken, RegistrationAccessToken),
 * one row per model instance. A token's `id` is the digest of its value (registry/token-digest.ts).
 */
export interface OidcDurableTable {
  model: string;
  id: string;
  grant_id: string | null;
  account_id: string | null;
  client_id: string | null;
  payload: ColumnType<Record<string, unknown>, string, string>;
  consumed_at: Timestamp | null;
  expires_at: Timestamp | null;
  created_at: Timestamp;
}

/**
 * The append-only audit log. No column is updatable (`never`): the application only inserts.
 * `seq` is int8, which pg returns as a string and PGlite as a number.
 */
export interface AuditLogTable {
  seq: GeneratedAlways<string | number>;
  at: ColumnType<Date, Date | string | undefined, never>;
  actor: ColumnType<string, string, never>;
  action: ColumnType<string, string, never>;
  target: ColumnType<string | null, string | null | undefined, never>;
  request_id: ColumnType<string | null, string | null | undefined, never>;
  ip: ColumnType<string | null, string | null | undefined, never>;
  details: ColumnType<Record<string, unknown>, string | undefined, never>;
  prev_hash: ColumnType<string, string, never>;
  hash: ColumnType<string, string, never>;
  /** The audit key the hash is an HMAC with; null for rows from before the chain was keyed. */
  kid: ColumnType<string | null, string | null | undefined, never>;
}

/**
 * A person's TOTP authenticator: at most one confirmed (`active`) and one `pending` enrolment
 * (primary key user_id, state). The secret is stored only sealed (services/sealed-secrets.ts).
 */
export interface TotpFactorTable {
  user_id: string;
  state: 'pending' | 'active';
  /** Compact JWE of the base32 secret, sealed for `totp:<user id>`. */
  secret_jwe: string;
  /** The data key it is sealed under (also in the JWE's header): rows under older keys are found by it. */
  key_id: string;
  /** int8 (pg: string, PGlite: number): the time step of the last accepted code; -1 for none. */
  last_used_step: ColumnType<string | number, number | undefined, number>;
  created_at: Timestamp;
  confirmed_at: Timestamp | null;
}

/** One single-use recovery code, stored only as a digest (ten per person; regenerating replaces the set). */
export interface RecoveryCodeTable {
  id: Generated<string | number>;
  user_id: string;
  /** `sha256$` + base64url(SHA-256(normalised code)), as registry/token-digest.ts. */
  digest: string;
  used_at: Timestamp | null;
  created_at: Timestamp;
}

/** One passkey (WebAuthn credential) of a person (docs/design/sign-in-methods.md §2.2). */
export interface PasskeyTable {
  /** Our id (a random UUID): in URLs and audit targets (`passkey:<id>`). */
  id: string;
  user_id: string;
  /** base64url, as the browser sends it (WebAuthnCredential.id); unique. */
  credential_id: string;
  /** The COSE public key bytes. */
  public_key: Buffer;
  /** int8 (pg: string, PGlite: number): the signature counter last seen. */
  counter: ColumnType<string | number, number | undefined, number>;
  transports: string[];
  /** The BE flag at registration (a synced passkey); permanent. */
  backup_eligible: boolean;
  /** The BS flag, as last seen. */
  backup_state: boolean;
  aaguid: string | null;
  name: string;
  created_at: Timestamp;
  last_used_at: Timestamp | null;
}

/** An upstream OpenID provider registered by an administrator (docs/design/sign-in-methods.md §6). */
export interface UpstreamProviderTable {
  /** Slug [a-z0-9-]{1,40}: the login page's [data-provider="<id>"]. */
  id: string;
  /** Display name: "Continue with <name>". */
  name: string;
  issuer: string;
  client_id: string;
  /** Compact JWE of the client secret, sealed for `upstream:<id>`; null for a public (PKCE-only) registration. */
  client_secret_jwe: string | null;
  key_id: string | null;
  scopes: string[];
  allow_signup: Generated<boolean>;
  /** Lower-cased domains an upstream email must be in (empty: any). */
  allowed_email_domains: ColumnType<string[], string[] | undefined, string[]>;
  enabled: Generated<boolean>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

/** An upstream identity (issuer, subject) linked to a person; one per provider and person. */
export interface UpstreamLinkTable {
  provider_id: string;
  issuer: string;
  subject: string;
  user_id: string;
  email_at_link: string | null;
  created_at: Timestamp;
  last_used_at: Timestamp | null;
}

/** One successful sign-in, for the account page ("Recent sign-ins"); failures are in the audit log. */
export interface SignInTable {
  /** bigserial (pg: string, PGlite: number, as audit_log.seq). */
  id: Generated<string | number>;
  user_id: string;
  at: ColumnType<Date, Date | string | undefined, never>;
  method: SignInMethod;
  amr: string[];
  acr: string;
  client_id: string | null;
  upstream_provider_id: string | null;
  ip: string | null;
  /** Truncated to 256 characters. */
  user_agent: string | null;
}

/** How a sign-in was made: a password (with or without a second factor), a passkey, an upstream provider, or a step-up of a session. */
export type SignInMethod = 'password' | 'passkey' | 'upstream' | 'step_up';

/** Every table of the registry, as Kysely sees it. */
/** What a link sent by mail is for. */
export type EmailLinkPurpose = 'password_reset' | 'email_verification' | 'email_change';

/** A link sent by mail, kept as the digest of its value (migration 2026_12_09_110000_create_email_links). */
export interface EmailLinkTable {
  id: Generated<string>;
  digest: string;
  purpose: EmailLinkPurpose;
  user_id: string;
  /** The address it was sent to (for email_change: the new address). */
  email: string;
  created_at: ColumnType<Date, Date | string | undefined, Date | string>;
  expires_at: Timestamp;
  used_at: Timestamp | null;
}

export interface Database {
  resource_servers: ResourceServerTable;
  clients: ClientTable;
  client_grants: ClientGrantTable;
  registry_revision: RegistryRevisionTable;
  users: UserTable;
  oidc_durable: OidcDurableTable;
  audit_log: AuditLogTable;
  totp_factors: TotpFactorTable;
  recovery_codes: RecoveryCodeTable;
  passkeys: PasskeyTable;
  sign_ins: SignInTable;
  upstream_providers: UpstreamProviderTable;
  upstream_links: UpstreamLinkTable;
  email_links: EmailLinkTable;
  api_keys: ApiKeyTable;
}

export type ResourceServerRow = Selectable<ResourceServerTable>;
export type NewResourceServerRow = Insertable<ResourceServerTable>;
export type ResourceServerRowUpdate = Updateable<ResourceServerTable>;
export type ClientRow = Selectable<ClientTable>;
export type NewClientRow = Insertable<ClientTable>;
export type ClientRowUpdate = Updateable<ClientTable>;
export type ClientGrantRow = Selectable<ClientGrantTable>;
export type UserRow = Selectable<UserTable>;
export type NewUserRow = Insertable<UserTable>;
export type UserRowUpdate = Updateable<UserTable>;
export type OidcDurableRow = Selectable<OidcDurableTable>;
export type AuditLogRow = Selectable<AuditLogTable>;
export type EmailLinkRow = Selectable<EmailLinkTable>;
export type NewAuditLogRow = Insertable<AuditLogTable>;
export type TotpFactorRow = Selectable<TotpFactorTable>;
export type NewTotpFactorRow = Insertable<TotpFactorTable>;
export type RecoveryCodeRow = Selectable<RecoveryCodeTable>;
export type PasskeyRow = Selectable<PasskeyTable>;
export type NewPasskeyRow = Insertable<PasskeyTable>;
export type SignInRow = Selectable<SignInTable>;
export type UpstreamProviderRow = Selectable<UpstreamProviderTable>;
export type NewUpstreamProviderRow = Insertable<UpstreamProviderTable>;
export type UpstreamProviderRowUpdate = Updateable<UpstreamProviderTable>;
export type UpstreamLinkRow = Selectable<UpstreamLinkTable>;

/** A person's personal API key (migration 2026_12_09_120000_create_api_keys): its digest, never the key. */
export interface ApiKeyTable {
  /** Our id (a random UUID): in URLs and audit targets (`api_key:<id>`). */
  id: string;
  user_id: string;
  label: string;
  /** The key's first characters (`gk_` and 8 more): shown in lists. */
  prefix: string;
  /** `sha256$` and the SHA-256 of the key (registry/token-digest.ts); unique. */
  digest: string;
  resource_id: string;
  scopes: string[];
  expires_at: Timestamp | null;
  created_at: Timestamp;
  /** When the current key was made (created or regenerated). */
  secret_issued_at: Timestamp;
  last_used_at: Timestamp | null;
}

export type ApiKeyRow = Selectable<ApiKeyTable>;
export type NewApiKeyRow = Insertable<ApiKeyTable>;
