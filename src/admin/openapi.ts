import { z } from 'zod';
import { PROBLEMS, COMPONENTS } from './schemas.js';
import { RESPONSE_HEADERS, TAGS, type AdminRoute, type ProblemSpec, type SuccessSpec } from './route.js';

type JsonObject = Record<string, unknown>;
type ComponentName = keyof typeof COMPONENTS;

/** The component name of each schema the document names, by identity. */
const COMPONENT_NAMES = new Map<z.ZodType, ComponentName>(
  Object.entries(COMPONENTS).map(([name, { schema }]): [z.ZodType, ComponentName] => [schema, name as ComponentName]),
);

/** A $ref to the component of a schema a route names; a schema without one is a mistake of the declaration. */
function ref(schema: z.ZodType, where: string): JsonObject {
  const name = COMPONENT_NAMES.get(schema);
  if (!name) throw new Error(`${where}: the schema is not one of the named components (add it to COMPONENTS in schemas.ts)`);
  return { $ref: `#/components/schemas/${name}` };
}

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonObject {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as JsonObject;
  return rest;
}

/** One parameter: its schema from zod (as the client sends it), its description lifted beside it. */
function parameter(name: string, location: 'path' | 'query' | 'header', schema: z.ZodType): JsonObject {
  const { description, ...rest } = jsonSchema(schema, 'input');
  const required = location === 'path' || !schema.safeParse(undefined).success;
  return { name, in: location, ...(required ? { required: true } : {}), ...(typeof description === 'string' ? { description } : {}), schema: rest };
}

const pathNames = (path: string, pattern: RegExp) => [...path.matchAll(pattern)].map((match) => match[1] ?? '');

/** The document's path of a route, and the document's name of each of its path parameters. */
function documentPath(route: AdminRoute): { path: string; names: Map<string, string> } {
  const own = pathNames(route.path, /:(\w+)/g);
  if (!route.docPath) return { path: route.path.replace(/:(\w+)/g, '{$1}'), names: new Map(own.map((name) => [name, name])) };
  const documented = pathNames(route.docPath, /\{(\w+)\}/g);
  if (documented.length !== own.length || route.docPath.replace(/\{\w+\}/g, ':') !== route.path.replace(/:\w+/g, ':')) {
    throw new Error(`${route.operationId}: docPath ${route.docPath} does not match the pattern ${route.path}`);
  }
  return { path: route.docPath, names: new Map(own.map((name, index) => [name, documented[index] ?? name])) };
}

const PROBLEM_MEDIA_TYPE = 'application/problem+json';

function responses(route: AdminRoute): JsonObject {
  const out: JsonObject = {};
  for (const [status, declared] of Object.entries(route.responses as Record<string, SuccessSpec | ProblemSpec | string>)) {
    const spec: SuccessSpec = typeof declared === 'string' ? { description: declared } : declared;
    const code = Number(status);
    const schema = code >= 400 ? PROBLEMS[code as keyof typeof PROBLEMS] : spec.body;
    if (code >= 400 && !schema) throw new Error(`${route.operationId}: ${status} has no problem schema`);
    out[status] = {
      description: spec.description,
      ...(spec.headers?.length ? { headers: Object.fromEntries(spec.headers.map((name) => [name, RESPONSE_HEADERS[name]])) } : {}),
      ...(schema ? { content: { [code >= 400 ? PROBLEM_MEDIA_TYPE : 'application/json']: { schema: ref(schema, `${route.operationId} ${status}`) } } } : {}),
    };
  }
  // Refused at the edge, before any route (src/http/app.ts), on every path: declared here for each.
  out['421'] ??= {
    description: "The request's Host (or, behind TRUST_PROXY, forwarded host) is not the issuer's",
    content: { [PROBLEM_MEDIA_TYPE]: { schema: ref(PROBLEMS[421], `${route.operationId} 421`) } },
  };
  out.default = {
    description: 'Anything unexpected (500): a problem document that says only "internal error"; the log has the rest',
    content: { [PROBLEM_MEDIA_TYPE]: { schema: ref(COMPONENTS.Problem.schema, `${route.operationId} default`) } },
  };
  return out;
}

function operation(route: AdminRoute, names: Map<string, string>): JsonObject {
  const parameters = [
    ...Object.entries(route.params?.shape ?? {}).map(([name, schema]) => parameter(names.get(name) ?? name, 'path', schema as z.ZodType)),
    ...Object.entries(route.query?.shape ?? {}).map(([name, schema]) => parameter(name, 'query', schema as z.ZodType)),
    ...Object.entries(route.headers?.shape ?? {}).map(([name, schema]) => parameter(name, 'header', schema as z.ZodType)),
  ];
  return {
    operationId: route.operationId,
    tags: [route.tag],
    summary: route.summary,
    description: route.description,
    ...(route.public ? { security: [] } : {}),
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(route.body ? { requestBody: { required: true, content: { 'application/json': { schema: ref(route.body, `${route.operationId} body`) } } } } : {}),
    responses: responses(route),
  };
}

function componentSchemas(): Record<string, JsonObject> {
  return Object.fromEntries(Object.entries(COMPONENTS).map(([name, { schema, io }]) => [name, jsonSchema(schema, io)]));
}

/**
 * The admin API's OpenAPI 3.1 document, generated from the routes' declarations (their zod
 * schemas, operation ids, descriptions, tags and answers): there is no second, hand-written copy
 * of any of it.
 *
 * @example
 * const document = buildOpenApi(config.issuer, [...clientRoutes(deps), ...userRoutes(deps)]);
 */
export function buildOpenApi(issuer: string, routes: readonly AdminRoute[]): JsonObject {
  const paths: Record<string, JsonObject> = {};
  for (const route of routes) {
    const { path, names } = documentPath(route);
    const item = (paths[path] ??= {});
    if (item[route.method]) throw new Error(`${route.operationId}: ${route.method.toUpperCase()} ${path} is declared twice`);
    item[route.method] = operation(route, names);
  }
  const usedTags = new Set(routes.map((route) => route.tag));
  return {
    openapi: '3.1.0',
    info: {
      title: 'Gatehouse admin API',
      version: '1',
      description:
        'Manage the clients, resource servers (APIs), users and registration tokens of a Gatehouse authorization server, and read its audit log. Every call but this document needs an access token issued by this server to an admin client, with scope admin. Every refusal is an RFC 9457 problem document (application/problem+json) whose errors[] names each offending field.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    servers: [{ url: `${issuer}/admin/v1` }],
    security: [{ adminToken: ['admin'] }],
    tags: Object.entries(TAGS)
      .filter(([name]) => usedTags.has(name as keyof typeof TAGS))
      .map(([name, description]) => ({ name, description })),
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
    paths,
  };
}
