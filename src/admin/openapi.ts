import { z } from 'zod';
import { COMPONENTS } from './schemas.js';

type ComponentName = keyof typeof COMPONENTS;
type JsonObject = Record<string, unknown>;

const ref = (name: ComponentName) => ({ $ref: `#/components/schemas/${name}` });
const json = (name: ComponentName) => ({ 'application/json': { schema: ref(name) } });
const problem = (description: string) => ({ description, content: { 'application/problem+json': { schema: ref('Problem') } } });

const COMMON_ERRORS = {
  '401': problem('No access token, or one that is not an admin client token (WWW-Authenticate: Bearer error="invalid_token")'),
  '403': problem('The access token lacks the admin scope (insufficient_scope)'),
};

const listParameters = (filter: string, description: string) => [
  { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 200, default: 50 } },
  { name: 'cursor', in: 'query', schema: { type: 'string', maxLength: 256 }, description: 'next_cursor of the previous page' },
  { name: filter, in: 'query', schema: { type: 'string', maxLength: 256 }, description },
];
const idParameter = (name: string) => [{ name, in: 'path', required: true, schema: { type: 'string' } }];
const ifMatch = { name: 'If-Match', in: 'header', schema: { type: 'string' }, description: 'the ETag of the client as read; a stale one gets 412' };

function crud(options: {
  tag: string;
  id: string;
  create: ComponentName;
  update: ComponentName;
  item: ComponentName;
  created: ComponentName;
  /** What PATCH answers, when not `item`. */
  updated?: ComponentName;
  page: ComponentName;
  filter: [string, string];
  etag?: boolean;
}) {
  const { tag, id } = options;
  const etagHeader = options.etag ? { headers: { ETag: { schema: { type: 'string' } } } } : {};
  return {
    collection: {
      get: {
        tags: [tag],
        summary: `List ${tag}`,
        parameters: listParameters(...options.filter),
        responses: { '200': { description: 'One page', content: json(options.page) }, '400': problem('Bad query'), ...COMMON_ERRORS },
      },
      post: {
        tags: [tag],
        summary: `Create`,
        requestBody: { required: true, content: json(options.create) },
        responses: {
          '201': { description: 'Created', content: json(options.created), ...etagHeader },
          '400': problem('Invalid body: errors[] names each field'),
          '409': problem('Conflict with an existing entry'),
          ...COMMON_ERRORS,
        },
      },
    },
    item: {
      parameters: idParameter(id),
      get: {
        tags: [tag],
        summary: 'Get',
        responses: { '200': { description: 'Found', content: json(options.item), ...etagHeader }, '404': problem('Not found'), ...COMMON_ERRORS },
      },
      patch: {
        tags: [tag],
        summary: 'Update the fields given',
        ...(options.etag ? { parameters: [ifMatch] } : {}),
        requestBody: { required: true, content: json(options.update) },
        responses: {
          '200': { description: 'Updated', content: json(options.updated ?? options.item), ...etagHeader },
          '400': problem('Invalid body'),
          '404': problem('Not found'),
          ...(options.etag ? { '412': problem('The client changed since it was read') } : {}),
          ...COMMON_ERRORS,
        },
      },
      delete: {
        tags: [tag],
        summary: 'Delete',
        responses: { '204': { description: 'Deleted' }, '404': problem('Not found'), ...COMMON_ERRORS },
      },
    },
  };
}

function componentSchemas(): Record<string, JsonObject> {
  return Object.fromEntries(
    Object.entries(COMPONENTS).map(([name, { schema, io }]) => {
      const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as JsonObject;
      return [name, rest];
    }),
  );
}

/**
 * The admin API's OpenAPI 3.1 document, generated from the zod schemas that validate its requests
 * and describe its responses: there is no second, hand-written copy of any schema.
 */
export function buildOpenApi(issuer: string): JsonObject {
  const clients = crud({ tag: 'clients', id: 'client_id', create: 'ClientCreate', update: 'ClientUpdate', item: 'Client', created: 'ClientCreated', updated: 'ClientCreated', page: 'ClientPage', filter: ['name', 'only clients whose name contains this'], etag: true });
  const resources = crud({ tag: 'resources', id: 'id', create: 'ResourceCreate', update: 'ResourceUpdate', item: 'Resource', created: 'Resource', page: 'ResourcePage', filter: ['filter', 'only resources whose identifier or name contains this'] });
  const users = crud({ tag: 'users', id: 'id', create: 'UserCreate', update: 'UserUpdate', item: 'User', created: 'User', page: 'UserPage', filter: ['email', 'only users whose email contains this'] });
  return {
    openapi: '3.1.0',
    info: { title: 'Gatehouse admin API', version: '1' },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    servers: [{ url: `${issuer}/admin/v1` }],
    security: [{ adminToken: ['admin'] }],
    components: {
      securitySchemes: {
        adminToken: {
          type: 'oauth2',
          description: 'client_credentials with scope admin, by a client created with --admin',
          flows: { clientCredentials: { tokenUrl: `${issuer}/token`, scopes: { admin: 'manage clients, resources and users' } } },
        },
      },
      schemas: componentSchemas(),
    },
    paths: {
      '/clients': clients.collection,
      '/clients/{client_id}': clients.item,
      '/clients/{client_id}/secret': {
        parameters: idParameter('client_id'),
        post: {
          tags: ['clients'],
          summary: 'Rotate the client secret; the new one is shown this once',
          responses: { '200': { description: 'Rotated', content: json('ClientSecret') }, '400': problem('The client has no secret'), '404': problem('Not found'), ...COMMON_ERRORS },
        },
      },
      '/clients/{client_id}/grants/{resource}': {
        parameters: [
          ...idParameter('client_id'),
          { name: 'resource', in: 'path', required: true, schema: { type: 'string' }, description: "the API's identifier (URL-encoded) or id" },
        ],
        put: {
          tags: ['clients'],
          summary: "Give the client a grant at this API, or replace its scopes there (every scope the API offers unless scope says)",
          requestBody: { required: true, content: json('GrantUpdate') },
          responses: {
            '200': { description: 'The client with its grants', content: json('Client') },
            '400': problem('Unknown API, or a scope it does not offer'),
            '404': problem('No such client'),
            ...COMMON_ERRORS,
          },
        },
        delete: {
          tags: ['clients'],
          summary: "Take the client's grant at this API away (not its default resource's)",
          responses: {
            '200': { description: 'The client with its grants', content: json('Client') },
            '400': problem("The API is the client's default resource"),
            '404': problem('No such client, API or grant'),
            ...COMMON_ERRORS,
          },
        },
      },
      '/resources': resources.collection,
      '/resources/{id}': resources.item,
      '/users': users.collection,
      '/users/{id}': users.item,
      '/registration-tokens': {
        get: {
          tags: ['registration'],
          summary: 'List the initial access tokens of dynamic registration (ids and times, never a token)',
          responses: { '200': { description: 'Every stored token', content: json('RegistrationTokenList') }, ...COMMON_ERRORS },
        },
        post: {
          tags: ['registration'],
          summary: 'Mint an initial access token; shown this once',
          requestBody: { required: true, content: json('RegistrationTokenCreate') },
          responses: {
            '201': { description: 'Minted', content: json('RegistrationTokenCreated') },
            '400': problem('Invalid body, or expires_in above REGISTRATION_TOKEN_MAX_TTL_SECONDS'),
            ...COMMON_ERRORS,
          },
        },
      },
      '/registration-tokens/{id}': {
        parameters: idParameter('id'),
        delete: {
          tags: ['registration'],
          summary: 'Revoke an initial access token by its listed id: /reg refuses it from then on',
          responses: { '204': { description: 'Revoked' }, '404': problem('No token has this id'), ...COMMON_ERRORS },
        },
      },
      '/audit': {
        get: {
          tags: ['audit'],
          summary: 'Read the audit log, oldest first (append-only, hash-chained)',
          parameters: [
            { name: 'since', in: 'query', schema: { type: 'string' }, description: 'entries at or after this time: an RFC 3339 date-time or a date (YYYY-MM-DD), years 0001 to 9999' },
            { name: 'cursor', in: 'query', schema: { type: 'string' }, description: 'next_cursor of the previous page' },
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 200, default: 50 } },
          ],
          responses: { '200': { description: 'One page', content: json('AuditPage') }, '400': problem('Bad query'), ...COMMON_ERRORS },
        },
      },
    },
  };
}
