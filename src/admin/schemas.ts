import { z } from 'zod';
import { clientCreateSchema, clientUpdateSchema, grantBodySchema } from '../services/clients.service.js';
import { initialAccessTokenCreateSchema } from '../services/registration.service.js';
import { resourceCreateSchema, resourceUpdateSchema } from '../services/resources.service.js';
import { userCreateSchema, userUpdateSchema } from '../services/users.service.js';

/** What the admin API answers: zod schemas too, so that the OpenAPI document and the tests share them. */
const timestamp = z.iso.datetime({ offset: true });

export const clientOut = z.object({
  client_id: z.string(),
  client_name: z.string(),
  redirect_uris: z.array(z.string()),
  post_logout_redirect_uris: z.array(z.string()),
  grant_types: z.array(z.string()),
  token_endpoint_auth_method: z.string(),
  scope: z.string(),
  default_resource: z.string().nullable(),
  grants: z.array(z.object({ resource: z.string(), scope: z.string() })),
  jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())) }).nullable(),
  logo_uri: z.string().nullable(),
  first_party: z.boolean(),
  admin: z.boolean(),
  client_id_issued_at: z.number().int(),
  created_at: timestamp,
  updated_at: timestamp,
});

export const clientCreatedOut = clientOut.extend({ client_secret: z.string().optional() });
export const clientSecretOut = z.object({ client_id: z.string(), client_secret: z.string() });

export const resourceOut = z.object({
  id: z.string(),
  identifier: z.string(),
  name: z.string().nullable(),
  scope: z.string(),
  access_token_ttl: z.number().int(),
  created_at: timestamp,
  updated_at: timestamp,
});

export const userOut = z.object({
  id: z.string(),
  email: z.string(),
  email_verified: z.boolean(),
  name: z.string().nullable(),
  disabled: z.boolean(),
  last_login_at: timestamp.nullable(),
  created_at: timestamp,
  updated_at: timestamp,
});

export const registrationTokenOut = z.object({
  id: z.string().describe('derived from the stored token (SHA-256), never the token itself'),
  created_at: timestamp,
  expires_at: timestamp.nullable(),
  expired: z.boolean(),
});
export const registrationTokenCreatedOut = z.object({
  id: z.string(),
  initial_access_token: z.string().describe('shown this once'),
  expires_at: timestamp,
});

const page = <T extends z.ZodType>(item: T) => z.object({ data: z.array(item), next_cursor: z.string().nullable() });

export const problemOut = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  errors: z.array(z.object({ field: z.string(), message: z.string() })),
  request_id: z.string().optional(),
});

export const auditEntryOut = z.object({
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

/** Every schema the document names, by component name. */
export const COMPONENTS = {
  ClientCreate: { schema: clientCreateSchema, io: 'input' },
  ClientUpdate: { schema: clientUpdateSchema, io: 'input' },
  Client: { schema: clientOut, io: 'output' },
  ClientCreated: { schema: clientCreatedOut, io: 'output' },
  ClientSecret: { schema: clientSecretOut, io: 'output' },
  ClientPage: { schema: page(clientOut), io: 'output' },
  GrantUpdate: { schema: grantBodySchema, io: 'input' },
  ResourceCreate: { schema: resourceCreateSchema, io: 'input' },
  ResourceUpdate: { schema: resourceUpdateSchema, io: 'input' },
  Resource: { schema: resourceOut, io: 'output' },
  ResourcePage: { schema: page(resourceOut), io: 'output' },
  UserCreate: { schema: userCreateSchema, io: 'input' },
  UserUpdate: { schema: userUpdateSchema, io: 'input' },
  User: { schema: userOut, io: 'output' },
  UserPage: { schema: page(userOut), io: 'output' },
  AuditPage: { schema: page(auditEntryOut), io: 'output' },
  RegistrationTokenCreate: { schema: initialAccessTokenCreateSchema, io: 'input' },
  RegistrationTokenList: { schema: z.object({ data: z.array(registrationTokenOut) }), io: 'output' },
  RegistrationTokenCreated: { schema: registrationTokenCreatedOut, io: 'output' },
  Problem: { schema: problemOut, io: 'output' },
} as const satisfies Record<string, { schema: z.ZodType; io: 'input' | 'output' }>;
