import { z } from 'zod';
import { PROBLEM_CODES, problemType, TITLES, type ProblemStatus } from './problem.js';
import { clientCreateSchema, clientUpdateSchema, grantBodySchema } from '../services/clients.service.js';
import { CLIENT_PROFILES } from '../registry/tables.js';
import { initialAccessTokenCreateSchema } from '../services/registration.service.js';
import { resourceCreateSchema, resourceUpdateSchema } from '../services/resources.service.js';
import { providerCreateSchema, providerUpdateSchema } from '../services/upstream-providers.service.js';
import { ROLES, userCreateSchema, userUpdateSchema } from '../services/users.service.js';
import { apiKeyCreateSchema } from '../services/api-keys.service.js';
import { keyRotateSchema } from '../services/signing-keys.service.js';
import { SIGNING_ALGS } from '../keys/key-store.js';
import { secondFactorResetSchema } from '../services/person-access.service.js';

/**
 * What the admin API answers: zod schemas too, so that the OpenAPI document, the routes' declarations
 * and the response checks of test mode share them. Strict objects: an answer carries no member its
 * schema does not name.
 */
const timestamp = z.iso.datetime({ offset: true });

export const clientOut = z.strictObject({
  client_id: z.string(),
  client_name: z.string(),
  redirect_uris: z.array(z.string()),
  post_logout_redirect_uris: z.array(z.string()),
  grant_types: z.array(z.string()),
  token_endpoint_auth_method: z.string(),
  scope: z.string(),
  default_resource: z.string().nullable(),
  grants: z.array(z.strictObject({ resource: z.string(), scope: z.string() })),
  jwks: z.strictObject({ keys: z.array(z.record(z.string(), z.unknown())) }).nullable(),
  logo_uri: z.string().nullable(),
  first_party: z.boolean(),
  require_mfa: z.boolean(),
  backchannel_logout_uri: z.string().nullable(),
  backchannel_logout_session_required: z.boolean(),
  dpop_bound_access_tokens: z.boolean(),
  require_pushed_authorization_requests: z.boolean(),
  require_signed_request_object: z.boolean(),
  profile: z.enum(CLIENT_PROFILES).nullable().describe('fapi2: held to the FAPI 2.0 Security Profile (see ClientCreate); null: no profile'),
  may_act: z.array(z.string()),
  admin: z.boolean(),
  client_id_issued_at: z.number().int(),
  created_at: timestamp,
  updated_at: timestamp,
});

export const clientCreatedOut = clientOut.extend({ client_secret: z.string().optional() });
export const clientSecretOut = z.strictObject({ client_id: z.string(), client_secret: z.string() });

export const resourceOut = z.strictObject({
  id: z.string(),
  identifier: z.string(),
  name: z.string().nullable(),
  scope: z.string(),
  access_token_ttl: z.number().int(),
  created_at: timestamp,
  updated_at: timestamp,
});

export const providerOut = z.strictObject({
  id: z.string(),
  name: z.string(),
  issuer: z.string(),
  client_id: z.string(),
  client_secret_set: z.boolean().describe('whether a client secret is stored (sealed); the secret itself is never returned'),
  scope: z.string(),
  allow_signup: z.boolean(),
  allowed_email_domains: z.array(z.string()),
  enabled: z.boolean(),
  created_at: timestamp,
  updated_at: timestamp,
});
export const providerList = z.strictObject({ data: z.array(providerOut) });

export const userOut = z.strictObject({
  id: z.string(),
  email: z.string(),
  email_verified: z.boolean(),
  name: z.string().nullable(),
  disabled: z.boolean(),
  roles: z.array(z.enum(ROLES)).describe('what the person may do beyond their own account: admin opens the console'),
  last_login_at: timestamp.nullable(),
  created_at: timestamp,
  updated_at: timestamp,
});

/** GET /me: who a token stands for. */
export const meOut = z.strictObject({
  client_id: z.string().describe('the client the token was issued to (gatehouse-console for the console)'),
  person: z
    .strictObject({
      id: z.string(),
      email: z.string(),
      name: z.string().nullable(),
      roles: z.array(z.enum(ROLES)),
    })
    .nullable()
    .describe('the administrator signed in to the console; null for an admin client'),
});

export const registrationTokenOut = z.strictObject({
  id: z.string().describe('derived from the stored token (SHA-256), never the token itself'),
  created_at: timestamp,
  expires_at: timestamp.nullable(),
  expired: z.boolean(),
});
export const registrationTokenCreatedOut = z.strictObject({
  id: z.string(),
  initial_access_token: z.string().describe('shown this once'),
  expires_at: timestamp,
});

/** A personal API key as listed: never the key or its digest. */
export const apiKeyOut = z.strictObject({
  id: z.string(),
  label: z.string(),
  prefix: z.string().describe('the first characters of the key (gk_ and 8 more), to tell keys apart'),
  resource: z.string().describe('the API the key gets tokens for'),
  scope: z.string().describe('space-separated scopes the key may ask for (empty: the audience only)'),
  expires_at: timestamp.nullable(),
  created_at: timestamp,
  last_used_at: timestamp.nullable().describe('updated at most once a minute'),
});
export const apiKeyCreatedOut = apiKeyOut.extend({
  user_id: z.string(),
  api_key: z.string().describe('the key (gk_…), shown this once: only its digest is kept'),
});
export const apiKeyList = z.strictObject({ data: z.array(apiKeyOut) });

const page = <T extends z.ZodType>(item: T) =>
  z.strictObject({ data: z.array(item), next_cursor: z.string().nullable().describe('give it as cursor to read the next page; null on the last page') });

export const clientPage = page(clientOut);
export const resourcePage = page(resourceOut);
export const userPage = page(userOut);
export const registrationTokenList = z.strictObject({ data: z.array(registrationTokenOut) });

const fieldErrors = z.array(z.strictObject({ field: z.string(), message: z.string() })).describe('one entry per offending field (empty when no field is to blame)');

/** Any problem document (RFC 9457) the admin API answers, 500 included. */
export const problemOut = z.strictObject({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  errors: fieldErrors,
  request_id: z.string().optional(),
});

/** The problem document of one status: its title and the codes it may carry as `type`. */
function problemOf<S extends ProblemStatus>(status: S) {
  const types = PROBLEM_CODES[status].map(problemType) as [string, ...string[]];
  return z.strictObject({
    type: z.enum(types).describe('urn:gatehouse:problem:<code>, a stable code'),
    title: z.literal(TITLES[status] ?? 'Error'),
    status: z.literal(status),
    detail: z.string().describe('for people; never a secret, never a stack'),
    errors: fieldErrors,
    request_id: z.string().optional(),
  });
}

/** The problem document of each status a route may declare. */
export const PROBLEMS = {
  400: problemOf(400),
  401: problemOf(401),
  403: problemOf(403),
  404: problemOf(404),
  409: problemOf(409),
  412: problemOf(412),
  413: problemOf(413),
  415: problemOf(415),
  421: problemOf(421),
  503: problemOf(503),
} as const satisfies Record<ProblemStatus, z.ZodType>;

/** The admin API's own description, served at GET /admin/v1/openapi.json. */
export const openApiDocumentOut = z.looseObject({
  openapi: z.string(),
  info: z.looseObject({ title: z.string(), version: z.string() }),
  paths: z.record(z.string(), z.unknown()),
});

export const auditEntryOut = z.strictObject({
  seq: z.number().int(),
  at: timestamp,
  actor: z.string(),
  action: z.string(),
  target: z.string().nullable(),
  request_id: z.string().nullable(),
  ip: z.string().nullable(),
  details: z.record(z.string(), z.unknown()),
  prev_hash: z.string(),
  /** HMAC-SHA-256 with the audit key `kid` (SHA-256 for a row from before the chain was keyed, whose kid is null). */
  hash: z.string(),
  kid: z.string().nullable(),
});
export const auditPage = page(auditEntryOut);

/** The audit chain as this node last verified it (see audit-chain-monitor.ts). */
export const auditVerificationOut = z.strictObject({
  ok: z.boolean().nullable().describe('true: every row verified (the keyed hash chain is intact up to head); false: it breaks at broken_at; null: this node\'s first verification is still running (asked again, it answers when done)'),
  rows: z.number().int().describe('rows verified (0 when the chain is broken)'),
  head: z.strictObject({ seq: z.number().int(), at: timestamp }).nullable().describe('the last row verified; null for an empty log or a broken chain'),
  broken_at: z.number().int().nullable().describe('the seq of the first row where the chain breaks, when it does'),
  reason: z.string().nullable().describe('why it breaks, when it does'),
  checked_at: timestamp.describe('when this result was computed (results are reused for up to a minute)'),
  mode: z.enum(['full', 'incremental']).describe('full: every row recomputed; incremental: the rows after the last verified head, that head checked unchanged'),
  full_check_at: timestamp.describe('when every row was last recomputed (at most an hour before checked_at)'),
  node: z.literal('this').describe('the result is this node\'s, kept in its process'),
});

/** GET /overview: what the console's first page shows. */
export const overviewOut = z.strictObject({
  counts: z.strictObject({
    clients: z.number().int().describe('registered clients (the built-in ones are not in the registry)'),
    apis: z.number().int().describe('resource servers (APIs)'),
    people: z.number().int().describe('people (users), disabled ones included'),
    people_disabled: z.number().int(),
    upstream_providers: z.number().int(),
  }),
  signing_keys: z.strictObject({
    newest_active: z
      .strictObject({ kid: z.string(), alg: z.string(), age_seconds: z.number().int(), created_at: timestamp })
      .nullable()
      .describe('the key the server signs with (the newest active key that is not a profile key); null: none'),
    oldest_active_age_seconds: z.number().int().nullable().describe('the age of the oldest key still active'),
    active: z.number().int(),
    pending: z.number().int().describe('published, not signing yet (activation delay)'),
    retired: z.number().int().describe('published only, until deleted'),
  }),
  tokens_last_hour: z.strictObject({
    count: z.number().int().describe('tokens issued by the token endpoint of this node (gatehouse_tokens_issued_total) over window_seconds'),
    window_seconds: z.number().int().describe('3600, or less when this node has run less than an hour'),
    since: timestamp,
    node: z.literal('this').describe('the figure is this node\'s: each node counts its own (sum them in Prometheus for the whole service)'),
  }),
  audit_chain: auditVerificationOut,
});


/** A signing key as listed: public facts only, never private key material (nor the public JWK: the JWKS has it). */
export const signingKeyOut = z.strictObject({
  kid: z.string(),
  alg: z.enum(SIGNING_ALGS),
  use: z.literal('sig'),
  profile: z.enum(['fapi2']).nullable().describe('fapi2: signs only for clients of the FAPI 2.0 profile; null: a signing key of the server'),
  status: z.enum(['pending', 'active', 'retired']).describe('pending: published, signing from activates_at; active: may sign; retired: published only, until 48 hours after retired_at'),
  signing: z.boolean().describe("it signs now: the server's signing key, or the key fapi2 clients' tokens are signed with"),
  created_at: timestamp,
  activates_at: timestamp.nullable().describe('when it starts (or started) signing; null: from its creation'),
  retired_at: timestamp.nullable().describe('when it stops (or stopped) signing; null: not planned'),
  age_seconds: z.number().int().min(0).describe('seconds since it was created'),
});
export const signingKeyList = z.strictObject({ data: z.array(signingKeyOut) });
export const signingKeyRotation = z.strictObject({
  key: signingKeyOut.describe('the new signing key: pending until activates_at'),
  retired: z.array(z.string()).describe('the kids that stop signing at activates_at (published 48 hours more)'),
  removed: z.array(z.string()).describe('the kids deleted: retired more than 48 hours ago'),
  profile_key: signingKeyOut.nullable().describe('the new FAPI 2.0 profile key, made when one was in use'),
});

/** The grants clients hold at one API. */
export const resourceGrantOut = z.strictObject({
  client_id: z.string(),
  client_name: z.string(),
  scope: z.string().describe("space-separated scopes the client may ask for at this API (empty: the audience only)"),
  created_at: timestamp,
  updated_at: timestamp,
});
export const resourceGrantPage = page(resourceGrantOut);

/** POST /users: a user, and whether to mail them a link that confirms their address (the server's mailer). */
export const userCreateBody = userCreateSchema.extend({
  send_verification: z
    .boolean()
    .optional()
    .describe('true: mail the person a link that confirms their address (valid 3 days; email_verified becomes true when it is used). Refused with 409 mail_unavailable, nothing created, when the server cannot send mail (production without SMTP_URL)'),
});

/* People: what an administrator sees of a person's access, and changes (people.routes.ts). Never a secret, code or credential id. */
export const passkeyOut = z.strictObject({
  id: z.string(),
  name: z.string(),
  synced: z.boolean().describe('backup eligible (a synced passkey); false: bound to one device'),
  created_at: timestamp,
  last_used_at: timestamp.nullable(),
});
export const secondFactorsOut = z.strictObject({
  totp: z.enum(['none', 'pending', 'active']).describe('the authenticator app: none, an enrolment not confirmed yet, or confirmed'),
  recovery_codes_left: z.number().int(),
  passkeys: z.array(passkeyOut),
});
export const secondFactorResetOut = z.strictObject({
  totp_removed: z.boolean().describe('whether a confirmed authenticator app was removed'),
  recovery_codes_removed: z.number().int(),
  passkeys_removed: z.number().int(),
});
export const browserSessionOut = z.strictObject({
  uid: z.string().describe("the session's public id (never its cookie)"),
  signed_in_at: timestamp.nullable(),
  user_agent: z.string().nullable(),
  ip: z.string().nullable(),
  client_ids: z.array(z.string()).describe('the apps this session signed in to'),
});
export const browserSessionList = z.strictObject({ data: z.array(browserSessionOut) });
export const signOutEverywhereOut = z.strictObject({
  refresh_tokens_revoked: z.number().int().describe("the person's refresh tokens revoked (their consents stay)"),
});
export const signInOut = z.strictObject({
  at: timestamp,
  method: z.string().describe('password, passkey, upstream or step_up'),
  amr: z.array(z.string()),
  acr: z.string(),
  client_id: z.string().nullable(),
  upstream_provider_id: z.string().nullable(),
  ip: z.string().nullable(),
  user_agent: z.string().nullable(),
});
export const signInList = z.strictObject({ data: z.array(signInOut) });
export const connectedAppOut = z.strictObject({
  client_id: z.string(),
  client_name: z.string().nullable().describe('null when the client is no longer registered'),
  since: timestamp.describe('when the first consent was given'),
  scope: z.string().describe('the OpenID scopes consented to (openid, profile, email, offline_access …)'),
  apis: z.array(z.strictObject({ resource: z.string(), scope: z.string() })).describe('per API, the scopes consented to there'),
  refresh_tokens: z.number().int().describe('unexpired refresh tokens the app holds for the person'),
});
export const connectedAppList = z.strictObject({ data: z.array(connectedAppOut) });

/** Every schema the document names, by component name: a route's body or answer is one of these. */
export const COMPONENTS = {
  ClientCreate: { schema: clientCreateSchema, io: 'input' },
  ClientUpdate: { schema: clientUpdateSchema, io: 'input' },
  Client: { schema: clientOut, io: 'output' },
  ClientCreated: { schema: clientCreatedOut, io: 'output' },
  ClientSecret: { schema: clientSecretOut, io: 'output' },
  ClientPage: { schema: clientPage, io: 'output' },
  GrantUpdate: { schema: grantBodySchema, io: 'input' },
  ResourceCreate: { schema: resourceCreateSchema, io: 'input' },
  ResourceUpdate: { schema: resourceUpdateSchema, io: 'input' },
  Resource: { schema: resourceOut, io: 'output' },
  ResourcePage: { schema: resourcePage, io: 'output' },
  UserCreate: { schema: userCreateBody, io: 'input' },
  UserUpdate: { schema: userUpdateSchema, io: 'input' },
  User: { schema: userOut, io: 'output' },
  UserPage: { schema: userPage, io: 'output' },
  ProviderCreate: { schema: providerCreateSchema, io: 'input' },
  ProviderUpdate: { schema: providerUpdateSchema, io: 'input' },
  Provider: { schema: providerOut, io: 'output' },
  ProviderList: { schema: providerList, io: 'output' },
  AuditPage: { schema: auditPage, io: 'output' },
  RegistrationTokenCreate: { schema: initialAccessTokenCreateSchema, io: 'input' },
  RegistrationTokenList: { schema: registrationTokenList, io: 'output' },
  RegistrationTokenCreated: { schema: registrationTokenCreatedOut, io: 'output' },
  ApiKeyCreate: { schema: apiKeyCreateSchema, io: 'input' },
  ApiKeyCreated: { schema: apiKeyCreatedOut, io: 'output' },
  ApiKeyList: { schema: apiKeyList, io: 'output' },
  SigningKey: { schema: signingKeyOut, io: 'output' },
  SigningKeyList: { schema: signingKeyList, io: 'output' },
  SigningKeyRotate: { schema: keyRotateSchema, io: 'input' },
  SigningKeyRotation: { schema: signingKeyRotation, io: 'output' },
  ResourceGrantPage: { schema: resourceGrantPage, io: 'output' },
  SecondFactors: { schema: secondFactorsOut, io: 'output' },
  SecondFactorReset: { schema: secondFactorResetSchema, io: 'input' },
  SecondFactorResetResult: { schema: secondFactorResetOut, io: 'output' },
  BrowserSessionList: { schema: browserSessionList, io: 'output' },
  SignOutEverywhereResult: { schema: signOutEverywhereOut, io: 'output' },
  SignInList: { schema: signInList, io: 'output' },
  ConnectedAppList: { schema: connectedAppList, io: 'output' },
  OpenApiDocument: { schema: openApiDocumentOut, io: 'output' },
  AuditVerification: { schema: auditVerificationOut, io: 'output' },
  Overview: { schema: overviewOut, io: 'output' },
  Caller: { schema: meOut, io: 'output' },
  Problem: { schema: problemOut, io: 'output' },
  BadRequestProblem: { schema: PROBLEMS[400], io: 'output' },
  UnauthorizedProblem: { schema: PROBLEMS[401], io: 'output' },
  ForbiddenProblem: { schema: PROBLEMS[403], io: 'output' },
  NotFoundProblem: { schema: PROBLEMS[404], io: 'output' },
  ConflictProblem: { schema: PROBLEMS[409], io: 'output' },
  PreconditionFailedProblem: { schema: PROBLEMS[412], io: 'output' },
  ContentTooLargeProblem: { schema: PROBLEMS[413], io: 'output' },
  UnsupportedMediaTypeProblem: { schema: PROBLEMS[415], io: 'output' },
  MisdirectedRequestProblem: { schema: PROBLEMS[421], io: 'output' },
  ServiceUnavailableProblem: { schema: PROBLEMS[503], io: 'output' },
} as const satisfies Record<string, { schema: z.ZodType; io: 'input' | 'output' }>;
