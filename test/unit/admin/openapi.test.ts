import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { adminApiRoutes, buildAdminDocument } from '../../../src/admin/admin.routes.js';
import type { AdminRouteDeps } from '../../../src/admin/route.js';

type Json = Record<string, unknown>;
interface Operation {
  operationId?: string;
  summary?: string;
  description?: string;
  tags?: string[];
  security?: unknown[];
  parameters?: Array<{ name: string; in: string }>;
  requestBody?: { content: Record<string, { schema: { $ref: string } }> };
  responses: Record<string, { headers?: Record<string, unknown>; content?: Record<string, { schema: { $ref: string } }> }>;
}

// The document is generated from the declarations alone: no handler runs, so the deps are never used.
const routes = adminApiRoutes({} as unknown as AdminRouteDeps);
const document = buildAdminDocument('http://localhost:3000', routes) as Json & {
  paths: Record<string, Record<string, Operation>>;
  tags: Array<{ name: string; description: string }>;
  components: { schemas: Record<string, Json> };
};
const operations = Object.entries(document.paths).flatMap(([p, item]) => Object.entries(item).map(([method, op]) => ({ path: p, method, op })));

/** What the document said before it was generated from the routes: never renamed, never removed (CONTRACT.md). */
const TODAY: Array<[string, string, number[], string[]]> = [
  ['/clients', 'get', [200, 400, 401, 403], ['limit', 'cursor', 'name']],
  ['/clients', 'post', [201, 400, 409, 401, 403], []],
  ['/clients/{client_id}', 'get', [200, 404, 401, 403], ['client_id']],
  ['/clients/{client_id}', 'patch', [200, 400, 404, 412, 401, 403], ['client_id', 'If-Match']],
  ['/clients/{client_id}', 'delete', [204, 404, 401, 403], ['client_id']],
  ['/clients/{client_id}/secret', 'post', [200, 400, 404, 401, 403], ['client_id']],
  ['/clients/{client_id}/grants/{resource}', 'put', [200, 400, 404, 401, 403], ['client_id', 'resource']],
  ['/clients/{client_id}/grants/{resource}', 'delete', [200, 400, 404, 401, 403], ['client_id', 'resource']],
  ['/resources', 'get', [200, 400, 401, 403], ['limit', 'cursor', 'filter']],
  ['/resources', 'post', [201, 400, 409, 401, 403], []],
  ['/resources/{id}', 'get', [200, 404, 401, 403], ['id']],
  ['/resources/{id}', 'patch', [200, 400, 404, 401, 403], ['id']],
  ['/resources/{id}', 'delete', [204, 404, 401, 403], ['id']],
  ['/users', 'get', [200, 400, 401, 403], ['limit', 'cursor', 'email']],
  ['/users', 'post', [201, 400, 409, 401, 403], []],
  ['/users/{id}', 'get', [200, 404, 401, 403], ['id']],
  ['/users/{id}', 'patch', [200, 400, 404, 401, 403], ['id']],
  ['/users/{id}', 'delete', [204, 404, 401, 403], ['id']],
  ['/registration-tokens', 'get', [200, 401, 403], []],
  ['/registration-tokens', 'post', [201, 400, 401, 403], []],
  ['/registration-tokens/{id}', 'delete', [204, 404, 401, 403], ['id']],
  ['/audit', 'get', [200, 400, 401, 403], ['since', 'cursor', 'limit']],
];
const TODAY_COMPONENTS = [
  'ClientCreate', 'ClientUpdate', 'Client', 'ClientCreated', 'ClientSecret', 'ClientPage', 'GrantUpdate', 'ResourceCreate', 'ResourceUpdate',
  'Resource', 'ResourcePage', 'UserCreate', 'UserUpdate', 'User', 'UserPage', 'AuditPage', 'RegistrationTokenCreate', 'RegistrationTokenList',
  'RegistrationTokenCreated', 'Problem',
];

const componentOf = (schemaRef: string) => document.components.schemas[schemaRef.replace('#/components/schemas/', '')] as Json & { properties: Record<string, Json> };

describe('the admin API document, generated from the routes', () => {
  it('keeps every path, method, status, parameter and component it had', () => {
    for (const [p, method, statuses, parameters] of TODAY) {
      const op = document.paths[p]?.[method];
      expect(op, `${method} ${p}`).toBeDefined();
      for (const status of statuses) expect(Object.keys(op!.responses), `${method} ${p}`).toContain(String(status));
      expect((op!.parameters ?? []).map((parameter) => parameter.name).sort(), `${method} ${p}`).toEqual(expect.arrayContaining(parameters));
    }
    expect(Object.keys(document.components.schemas)).toEqual(expect.arrayContaining(TODAY_COMPONENTS));
  });

  it('gives every operation a unique operationId, a summary, a description and a described tag', () => {
    const ids = operations.map(({ op }) => op.operationId);
    expect(new Set(ids).size).toBe(ids.length);
    const tags = new Map(document.tags.map((tag) => [tag.name, tag.description]));
    for (const { path: p, method, op } of operations) {
      expect(op.operationId, `${method} ${p}`).toMatch(/^[a-z][A-Za-z]+$/);
      expect(op.summary, `${method} ${p}`).toBeTruthy();
      expect(op.description, `${method} ${p}`).toBeTruthy();
      expect(op.tags, `${method} ${p}`).toHaveLength(1);
      expect(tags.get(op.tags![0]!), `${method} ${p}`).toBeTruthy();
    }
    expect(operations).toHaveLength(routes.length + 1);
  });

  it('declares Location on every 201, and the refusals each kind of route can give as problem documents', () => {
    for (const { path: p, method, op } of operations) {
      const where = `${method} ${p}`;
      const statuses = Object.keys(op.responses);
      if (op.responses['201']) expect(Object.keys(op.responses['201'].headers ?? {}), where).toContain('Location');
      if (op.security?.length === 0) {
        expect(p).toBe('/openapi.json');
      } else {
        expect(statuses, where).toEqual(expect.arrayContaining(['401', '403', '503']));
        expect(Object.keys(op.responses['401']!.headers ?? {}), where).toContain('WWW-Authenticate');
        expect(Object.keys(op.responses['503']!.headers ?? {}), where).toContain('Retry-After');
      }
      if (op.requestBody) expect(statuses, where).toEqual(expect.arrayContaining(['400', '413', '415']));
      if (op.parameters?.some((parameter) => parameter.in === 'query')) expect(statuses, where).toContain('400');
      for (const [status, response] of Object.entries(op.responses)) {
        if (status === 'default' || Number(status) < 400) continue;
        const content = response.content ?? {};
        expect(Object.keys(content), `${where} ${status}`).toEqual(['application/problem+json']);
        const problem = componentOf(content['application/problem+json']!.schema.$ref);
        // Its type is one of the stable codes of that status; its status is that status.
        expect(problem.properties.status, `${where} ${status}`).toMatchObject({ const: Number(status) });
        const codes = (problem.properties.type as { enum: string[] }).enum;
        expect(codes.length, `${where} ${status}`).toBeGreaterThan(0);
        for (const code of codes) expect(code).toMatch(/^urn:gatehouse:problem:[a-z_]+$/);
      }
    }
  });

  it('names the problem types the API has always answered', () => {
    const types = new Set(
      Object.values(document.components.schemas).flatMap((schema) => ((schema as { properties?: { type?: { enum?: string[] } } }).properties?.type?.enum ?? [])),
    );
    for (const code of ['validation_failed', 'invalid_json', 'unsupported_media_type', 'body_too_large', 'not_found', 'conflict', 'precondition_failed', 'temporarily_unavailable', 'invalid_token', 'insufficient_scope']) {
      expect(types).toContain(`urn:gatehouse:problem:${code}`);
    }
  });

  it('describes profile: fapi2 or null, with what the FAPI 2.0 profile asks of the other fields', () => {
    for (const name of ['ClientCreate', 'ClientUpdate', 'Client']) {
      const profile = (document.components.schemas[name] as { properties: Record<string, Json> }).properties.profile;
      expect(JSON.stringify(profile), name).toContain('"fapi2"');
      expect(String(profile?.description), name).toMatch(/FAPI 2\.0/);
    }
    const create = (document.components.schemas.ClientCreate as { properties: Record<string, Json> }).properties.profile;
    expect(String(create?.description)).toMatch(/private_key_jwt.*dpop_bound_access_tokens/s);
  });

  describe('redocly lint', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-openapi-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('passes the recommended rules, warning only that the server is localhost', () => {
      const file = path.join(dir, 'openapi.json');
      writeFileSync(file, JSON.stringify(document, null, 2));
      const redocly = path.resolve('node_modules/.bin/redocly');
      // No telemetry and no update check: the tests reach no network.
      const env = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' };
      const run = (format: string) => spawnSync(redocly, ['lint', file, '--extends=recommended', `--format=${format}`], { env, encoding: 'utf8', timeout: 60_000 });
      const stylish = run('stylish');
      // Shown in the test's output, as the closing note asks.
      console.log(`redocly lint (recommended):\n${stylish.stdout}${stylish.stderr}`);
      const json = run('json');
      expect(json.status, json.stderr).toBe(0);
      const report = JSON.parse(json.stdout) as { totals: { errors: number; warnings: number }; problems: Array<{ ruleId: string; severity: string; message: string }> };
      expect(report.totals.errors, JSON.stringify(report.problems, null, 2)).toBe(0);
      expect(report.problems.map((problem) => problem.ruleId)).toEqual(['no-server-example.com']);
    }, 90_000);
  });
});
