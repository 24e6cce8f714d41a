import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import Router from '@koa/router';
import Koa, { type Middleware } from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { guardRoute } from '../../../src/admin/guard.js';
import { pageQuery } from '../../../src/admin/params.js';
import { ApiError } from '../../../src/admin/problem.js';
import { AUTH_ERRORS, BODY_ERRORS, defineRoute, type AdminRoute } from '../../../src/admin/route.js';
import { resourceOut } from '../../../src/admin/schemas.js';
import { NotFoundError } from '../../../src/services/errors.js';
import type { Logger } from '../../../src/observability/logger.js';

type Json = Record<string, unknown>;

const resource = {
  id: 'r1',
  identifier: 'https://api.example.test',
  name: null,
  scope: 'read',
  access_token_ttl: 600,
  created_at: '2026-01-01T00:00:00.000Z',
  updated_at: '2026-01-01T00:00:00.000Z',
};

/** What the handlers saw, by route. */
const seen: Record<string, unknown> = {};

const ROUTES: AdminRoute[] = [
  defineRoute({
    method: 'get',
    path: '/things',
    operationId: 'listThings',
    tag: 'resources',
    summary: 'List',
    description: 'A list that answers what it declares',
    query: pageQuery('name', 'a filter'),
    responses: { 200: { description: 'ok', body: resourceOut }, 400: 'bad query', ...AUTH_ERRORS },
    handler(ctx, { query }) {
      seen.listThings = query;
      ctx.body = resource;
    },
  }),
  defineRoute({
    method: 'post',
    path: '/things',
    operationId: 'createThing',
    tag: 'resources',
    summary: 'Create',
    description: 'Takes a body; answers 201 with Location',
    body: z.strictObject({ name: z.string().trim().min(1, 'must not be empty') }),
    responses: { 201: { description: 'created', body: resourceOut, headers: ['Location'] }, 400: 'bad body', ...BODY_ERRORS, ...AUTH_ERRORS },
    handler(ctx, { body }) {
      seen.createThing = body;
      ctx.status = 201;
      ctx.set('Location', '/admin/v1/things/r1');
      ctx.body = resource;
    },
  }),
  defineRoute({
    method: 'get',
    path: '/things/:id',
    operationId: 'getThing',
    tag: 'resources',
    summary: 'Get',
    description: 'Answers a member its schema does not name, a 404 it does not declare, or a 201 without its Location',
    params: z.object({ id: z.string() }),
    responses: { 200: { description: 'ok', body: resourceOut }, 201: { description: 'made', body: resourceOut, headers: ['Location'] }, ...AUTH_ERRORS },
    handler(ctx, { params }) {
      if (params.id === 'missing') throw new NotFoundError('thing missing');
      if (params.id === 'no-location') ctx.status = 201;
      ctx.body = { ...resource, secret_digest: 'x' };
    },
  }),
];

function start(verifyResponses: boolean, errors: string[]) {
  const app = new Koa();
  const logger = { error: (fields: unknown, message: string) => errors.push(`${message}: ${JSON.stringify(fields)}`) } as unknown as Logger;
  app.use(async (ctx, next) => {
    ctx.state.log = logger;
    ctx.state.requestId = 'req-1';
    await next();
  });
  const authenticate: Middleware = async (ctx, next) => {
    if (ctx.get('Authorization') !== 'Bearer admin') throw new ApiError(401, 'invalid_token', 'no', { headers: { 'WWW-Authenticate': 'Bearer error="invalid_token"' } });
    ctx.state.admin = { clientId: 'admin' };
    await next();
  };
  const router = new Router({ prefix: '/admin/v1' });
  for (const route of ROUTES) router.register(route.path, [route.method.toUpperCase()], [guardRoute(route, { authenticate, bodyLimitBytes: 1024, verifyResponses })]);
  app.use(router.routes());
  return new Promise<Server>((resolve) => {
    const server = app.listen(0, '127.0.0.1', () => resolve(server));
  });
}

describe('guardRoute', () => {
  const errors: string[] = [];
  let checked: Server;
  let unchecked: Server;
  const base = (server: Server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}/admin/v1`;

  beforeAll(async () => {
    checked = await start(true, errors);
    unchecked = await start(false, []);
  });
  afterAll(async () => {
    await Promise.all([checked, unchecked].map((server) => new Promise((resolve) => server.close(resolve))));
  });

  async function call(server: Server, method: string, path: string, options: { body?: string; type?: string; token?: string } = {}) {
    const headers: Record<string, string> = { authorization: `Bearer ${options.token ?? 'admin'}` };
    if (options.body !== undefined) headers['content-type'] = options.type ?? 'application/json';
    const response = await fetch(`${base(server)}${path}`, { method, headers, ...(options.body !== undefined ? { body: options.body } : {}) });
    const text = await response.text();
    return { status: response.status, type: response.headers.get('content-type'), body: (text ? JSON.parse(text) : undefined) as Json };
  }

  it('hands the handler the parsed query, with the limit defaulted', async () => {
    const { status } = await call(checked, 'GET', '/things?name=abc&other=ignored');
    expect(status).toBe(200);
    expect(seen.listThings).toEqual({ limit: 50, name: 'abc' });
    await call(checked, 'GET', '/things?limit=7&cursor=c');
    expect(seen.listThings).toEqual({ limit: 7, cursor: 'c' });
  });

  it('refuses a bad query with a problem document naming each field', async () => {
    for (const [query, field, message] of [
      ['limit=1e2', 'limit', 'must be a whole number from 1 to 200'],
      ['limit=0', 'limit', 'must be a whole number from 1 to 200'],
      ['limit=1&limit=2', 'limit', 'must be given once'],
      ['name=a%00b', 'name', 'must not contain a NUL character'],
      [`cursor=${'x'.repeat(257)}`, 'cursor', 'must be at most 256 characters'],
    ] as const) {
      const { status, type, body } = await call(checked, 'GET', `/things?${query}`);
      expect(status, query).toBe(400);
      expect(type).toMatch(/^application\/problem\+json/);
      expect(body).toMatchObject({ type: 'urn:gatehouse:problem:validation_failed', status: 400, errors: [{ field, message }] });
    }
  });

  it('reads and validates the body before the handler, and passes it on as sent', async () => {
    expect((await call(checked, 'POST', '/things', { body: '{"name":"  spaced  "}' })).status).toBe(201);
    expect(seen.createThing).toEqual({ name: '  spaced  ' });
    const invalid = await call(checked, 'POST', '/things', { body: '{"name":"","extra":1}' });
    expect(invalid.status).toBe(400);
    expect((invalid.body.errors as Array<{ field: string }>).map((e) => e.field).sort()).toEqual(['body', 'name']);
    expect((await call(checked, 'POST', '/things', { body: '{"name":' })).body.type).toBe('urn:gatehouse:problem:invalid_json');
    expect((await call(checked, 'POST', '/things', { body: 'x', type: 'text/plain' })).status).toBe(415);
    expect((await call(checked, 'POST', '/things', { body: JSON.stringify({ name: 'x'.repeat(2000) }) })).status).toBe(413);
  });

  it('checks the token before anything else', async () => {
    const { status, body } = await call(checked, 'GET', '/things?limit=0', { token: 'nope' });
    expect(status).toBe(401);
    expect(body.status).toBe(401);
  });

  it('in test mode, turns an answer its declaration does not allow into a logged 500', async () => {
    for (const [id, mismatch] of [
      ['extra-member', /secret_digest/],
      ['missing', /status 404 is not declared/],
      ['no-location', /header Location is declared but not sent/],
    ] as const) {
      errors.length = 0;
      const { status, body } = await call(checked, 'GET', `/things/${id}`);
      expect(status, id).toBe(500);
      expect(body).toMatchObject({ type: 'urn:gatehouse:problem:internal_error', detail: 'internal error' });
      expect(errors.join('\n'), id).toMatch(mismatch);
      expect(errors.join('\n')).toMatch(/getThing answered/);
    }
  });

  it('outside test mode, answers as the handler did', async () => {
    expect((await call(unchecked, 'GET', '/things/extra-member')).body).toHaveProperty('secret_digest');
    expect((await call(unchecked, 'GET', '/things/missing')).status).toBe(404);
  });
});
