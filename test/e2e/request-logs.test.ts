import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../fixtures/server.js';

type Entry = Record<string, unknown>;

describe('request logs', () => {
  let t: TestServer;
  let quiet: TestServer;

  beforeAll(async () => {
    t = await startTestServer({ name: 'request-logs', env: { LOG_LEVEL: 'info' } });
    quiet = await startTestServer({ name: 'request-logs-warn', env: { LOG_LEVEL: 'warn' } });
  });
  afterAll(async () => {
    await t.close();
    await quiet.close();
  });

  const linesFor = (server: TestServer, requestId: string) =>
    server.logs.entries().filter((entry: Entry) => entry.requestId === requestId && entry.msg === 'request');

  async function token(server: TestServer, client: { clientId: string; clientSecret: string }, requestId: string) {
    const basic = Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64');
    return fetch(`${server.server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${basic}`, 'x-request-id': requestId },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'read' }),
    });
  }

  it('writes one JSON line per request with its request id, client, grant, route, status and outcome', async () => {
    const service = await t.build.serviceClient();
    const ok = randomUUID();
    const answer = await token(t, service, ok);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-request-id')).toBe(ok);
    await answer.arrayBuffer();
    const bad = randomUUID();
    expect((await token(t, { clientId: service.clientId, clientSecret: 'not-the-secret' }, bad)).status).toBe(401);
    const missing = randomUUID();
    await (await fetch(`${t.server.url}/admin/v1/nothing-here`, { headers: { 'x-request-id': missing } })).arrayBuffer();

    const [success] = linesFor(t, ok);
    expect(linesFor(t, ok)).toHaveLength(1);
    expect(success).toMatchObject({ level: 'info', method: 'POST', path: '/token', route: 'token', status: 200, outcome: 'ok', clientId: service.clientId, grant: 'client_credentials' });
    expect(typeof success!.ms).toBe('number');
    expect(linesFor(t, bad)).toEqual([expect.objectContaining({ route: 'token', status: 401, outcome: 'invalid_client', grant: 'client_credentials' })]);
    expect(linesFor(t, missing)).toEqual([expect.objectContaining({ status: 401, outcome: expect.stringMatching(/^[a-z_]+$/) })]);
    // Nothing of the request's secrets.
    expect(JSON.stringify(linesFor(t, ok))).not.toContain(service.clientSecret);
  });

  it('writes no request lines at LOG_LEVEL=warn', async () => {
    const service = await quiet.build.serviceClient();
    const id = randomUUID();
    expect((await token(quiet, service, id)).status).toBe(200);
    expect(linesFor(quiet, id)).toEqual([]);
    expect(quiet.logs.entries().filter((entry: Entry) => entry.level === 'info')).toEqual([]);
  });
});
