import { randomUUID } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consolePerson, consoleSession } from '../fixtures/console.js';
import { Agent, codeFlow } from '../fixtures/flow.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';

type Json = Record<string, unknown>;
interface KeyJson {
  kid: string;
  alg: string;
  use: string;
  profile: string | null;
  status: 'pending' | 'active' | 'retired';
  signing: boolean;
  created_at: string;
  activates_at: string | null;
  retired_at: string | null;
  age_seconds: number;
}

/** Members of a private JWK (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037) and names a private key could travel under. */
const PRIVATE_MEMBERS = new Set(['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'jwk', 'private_key', 'privateKey']);

/** Every member name anywhere in a JSON value. */
function memberNames(value: unknown, into = new Set<string>()): Set<string> {
  if (Array.isArray(value)) for (const item of value) memberNames(item, into);
  else if (typeof value === 'object' && value !== null) {
    for (const [name, member] of Object.entries(value)) {
      into.add(name);
      memberNames(member, into);
    }
  }
  return into;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * /admin/v1/keys and /admin/v1/resources/{id}/grants (in this process, no socket; every answer is
 * checked against its declaration in test mode): listing and rotating signing keys with an
 * activation delay, audited with the caller as actor, never an answer with private key material;
 * the grants clients hold at one API; the refusals (no admin token, a bad delay) as problem
 * documents that change nothing.
 */
describe('admin API: signing keys and the grants at an API', () => {
  let t: TestServer;
  let base: string;
  let token: string;
  let adminClientId: string;
  /** Every JSON answer of this file, for the check that none carries private key material. */
  const answers: unknown[] = [];

  async function call(method: string, path: string, options: { body?: unknown; token?: string | null; contentType?: string } = {}) {
    const bearer = options.token === undefined ? token : options.token;
    const headers: Record<string, string> = {};
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    if (options.body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
    const response = await t.fetch(`${base}/admin/v1${path}`, {
      method,
      headers,
      ...(options.body !== undefined ? { body: typeof options.body === 'string' ? options.body : JSON.stringify(options.body) } : {}),
    });
    const text = await response.text();
    const body = (text ? JSON.parse(text) : undefined) as Json;
    answers.push(body);
    return { status: response.status, type: response.headers.get('content-type') ?? '', headers: response.headers, body };
  }

  const jwks = async () => (await (await t.fetch(`${base}/jwks`)).json()) as JSONWebKeySet;
  const keyFiles = async () => (await readdir(t.config.keysDir)).filter((name) => name.endsWith('.json')).sort();
  const rotations = async () => t.server.registry.db.selectFrom('audit_log').selectAll().where('action', '=', 'keys.rotate').orderBy('seq').execute();
  const listKeys = async () => {
    const answer = await call('GET', '/keys');
    expect(answer.status).toBe(200);
    return (answer.body as { data: KeyJson[] }).data;
  };

  let service: { clientId: string; clientSecret: string; resource: string };
  const serviceToken = async () => {
    const answer = await tokenRequest(base, { grant_type: 'client_credentials', scope: 'read' }, service, t.fetch);
    expect(answer.status).toBe(200);
    return String(answer.body.access_token);
  };

  beforeAll(async () => {
    t = await startTestServer({ name: 'admin-keys', listen: false });
    base = t.config.issuer;
    const admin = await t.build.client({ client_name: `admin ${randomUUID()}`, admin: true });
    adminClientId = admin.clientId;
    service = await t.build.serviceClient();
    await t.server.cache.refresh();
    const answer = await tokenRequest(base, { grant_type: 'client_credentials', scope: 'admin' }, admin, t.fetch);
    expect(answer.status).toBe(200);
    token = String(answer.body.access_token);
  });
  afterAll(() => t?.close());

  describe('signing keys', () => {
    it('lists every published key with its status, age and whether it signs, in signing order, and nothing private', async () => {
      const keys = await listKeys();
      const published = (await jwks()).keys.map((key) => key.kid);
      expect(keys.map((key) => key.kid).sort()).toEqual([...published].sort());
      // The dev first start made the RS256 signing key and the ES256 key fapi2 clients get.
      expect(keys.map((key) => [key.alg, key.profile, key.status, key.signing])).toEqual([
        ['RS256', null, 'active', true],
        ['ES256', 'fapi2', 'active', true],
      ]);
      for (const key of keys) {
        expect(key.use).toBe('sig');
        expect(key.age_seconds).toBeGreaterThanOrEqual(0);
        expect(key.age_seconds).toBeLessThanOrEqual(Math.ceil((Date.now() - Date.parse(key.created_at)) / 1000));
      }
      // The token the server signs now carries the key listed first.
      expect(decodeProtectedHeader(await serviceToken()).kid).toBe(keys[0]?.kid);
      const one = await call('GET', `/keys/${keys[0]?.kid}`);
      expect(one.status).toBe(200);
      expect(one.body).toMatchObject({ kid: keys[0]?.kid, status: 'active', signing: true });
      const none = await call('GET', '/keys/no-such-kid');
      expect(none.status).toBe(404);
      expect(none.type).toMatch(/application\/problem\+json/);
    });

    it.each([
      ['a negative delay', { activate_in: -1 }, 'activate_in'],
      ['a fractional delay', { activate_in: 1.5 }, 'activate_in'],
      ['a delay given as text', { activate_in: '300' }, 'activate_in'],
      ['a delay over a day', { activate_in: 86_401 }, 'activate_in'],
      ['a delay of null', { activate_in: null }, 'activate_in'],
      ['an unknown algorithm', { alg: 'HS256' }, 'alg'],
      ['a private key of its own', { activate_in: 300, d: 'AAAA' }, 'body'],
    ])('refuses %s with a 400 problem naming the field, and changes nothing', async (_label, body, field) => {
      const filesBefore = await keyFiles();
      const keysBefore = await listKeys();
      const auditBefore = await rotations();
      const answer = await call('POST', '/keys/rotate', { body });
      expect(answer.status).toBe(400);
      expect(answer.type).toMatch(/application\/problem\+json/);
      expect(answer.body.type).toBe('urn:gatehouse:problem:validation_failed');
      expect((answer.body.errors as Array<{ field: string }>).map((error) => error.field)).toContain(field);
      expect(await keyFiles()).toEqual(filesBefore);
      expect((await listKeys()).map(({ age_seconds: _age, ...key }) => key)).toEqual(keysBefore.map(({ age_seconds: _age, ...key }) => key));
      expect(await rotations()).toHaveLength(auditBefore.length);
    });

    it('refuses a body that is not JSON, and a rotation without an admin token, changing nothing', async () => {
      const filesBefore = await keyFiles();
      const auditBefore = await rotations();
      const notJson = await call('POST', '/keys/rotate', { body: 'activate_in=5', contentType: 'application/x-www-form-urlencoded' });
      expect(notJson.status).toBe(415);
      const broken = await call('POST', '/keys/rotate', { body: '{"activate_in": ' });
      expect(broken.status).toBe(400);
      expect(broken.body.type).toBe('urn:gatehouse:problem:invalid_json');

      for (const bearer of [null, 'not-a-jwt', `${token.slice(0, -4)}AAAA`]) {
        const refused = await call('POST', '/keys/rotate', { body: { activate_in: 0 }, token: bearer });
        expect(refused.status).toBe(401);
        expect(refused.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
        expect((await call('GET', '/keys', { token: bearer })).status).toBe(401);
      }
      // A client token for a plain API (not the admin API's audience).
      expect((await call('POST', '/keys/rotate', { body: { activate_in: 0 }, token: await serviceToken() })).status).toBe(401);
      // An admin client's token without the admin scope.
      const unscoped = await t.build.client({ client_name: `admin-no-scope ${randomUUID()}`, admin: true });
      await t.server.cache.refresh();
      const plain = await tokenRequest(base, { grant_type: 'client_credentials' }, unscoped, t.fetch);
      const forbidden = await call('POST', '/keys/rotate', { body: { activate_in: 0 }, token: String(plain.body.access_token) });
      expect(forbidden.status).toBe(403);
      expect(forbidden.headers.get('www-authenticate')).toMatch(/error="insufficient_scope"/);
      // A person's token, even one for the admin API's audience.
      const person = await t.build.person({ email: `keys-person-${randomUUID()}@example.test`, password: 'people do not rotate keys 1' });
      const redirectUri = 'http://127.0.0.1:8771/cb';
      const app = await t.build.client({ client_name: 'sneaky keys', redirect_uris: [redirectUri], scope: 'openid' });
      await t.build.grant(app.clientId, 'urn:gatehouse:admin-api', 'admin');
      const resource = `${base}/admin/v1`;
      const flow = await codeFlow(new Agent(base, t.fetch), { client: app, redirectUri, email: person.email, password: person.password, params: { scope: 'openid admin', resource }, tokenParams: { resource } });
      expect((await call('POST', '/keys/rotate', { body: { activate_in: 0 }, token: String(flow.body.access_token) })).status).toBe(401);

      expect(await keyFiles()).toEqual(filesBefore);
      expect(await rotations()).toHaveLength(auditBefore.length);
    });

    it('rotates with an activation delay: the new key is published at once, signs only after the delay, and the rotation is audited with the caller as actor', async () => {
      const before = await listKeys();
      const oldServer = before.find((key) => key.signing && key.profile === null)!;
      const oldProfile = before.find((key) => key.signing && key.profile === 'fapi2')!;
      const tokenBefore = await serviceToken();

      const asked = Date.now();
      const rotated = await call('POST', '/keys/rotate', { body: { activate_in: 3 } });
      const answered = Date.now();
      expect(rotated.status).toBe(201);
      const key = rotated.body.key as KeyJson;
      const profileKey = rotated.body.profile_key as KeyJson;
      expect(rotated.headers.get('location')).toBe(`/admin/v1/keys/${key.kid}`);
      expect(key).toMatchObject({ alg: 'RS256', profile: null, status: 'pending', signing: false, retired_at: null });
      expect(profileKey).toMatchObject({ alg: 'ES256', profile: 'fapi2', status: 'pending', signing: false });
      expect(rotated.body.retired).toEqual(expect.arrayContaining([oldServer.kid, oldProfile.kid]));
      const activatesAt = Date.parse(key.activates_at!);
      expect(activatesAt).toBeGreaterThanOrEqual(asked + 3000);
      expect(activatesAt).toBeLessThanOrEqual(answered + 3000);

      // This node published the new keys before answering; the old ones stay published.
      const published = (await jwks()).keys.map((k) => k.kid);
      expect(published).toEqual(expect.arrayContaining([key.kid, profileKey.kid, oldServer.kid, oldProfile.kid]));
      const listed = await listKeys();
      expect(listed.find((k) => k.kid === key.kid)).toMatchObject({ status: 'pending', signing: false });
      expect(listed.find((k) => k.kid === oldServer.kid)).toMatchObject({ status: 'active', signing: true, retired_at: key.activates_at });
      // Before the delay is over, tokens are still signed with the old key.
      const early = await serviceToken();
      if (Date.now() < activatesAt - 200) expect(decodeProtectedHeader(early).kid).toBe(oldServer.kid);

      // After it, with the new one (the node reloads on schedule, KEYS_POLL_MS=200 here).
      let after = await serviceToken();
      const deadline = activatesAt + 5000;
      while (decodeProtectedHeader(after).kid !== key.kid && Date.now() < deadline) {
        await sleep(100);
        after = await serviceToken();
      }
      expect(decodeProtectedHeader(after).kid).toBe(key.kid);
      expect(Date.now()).toBeGreaterThanOrEqual(activatesAt);
      const keySet = createLocalJWKSet(await jwks());
      for (const signed of [tokenBefore, after]) await expect(jwtVerify(signed, keySet, { issuer: t.config.issuer, audience: service.resource })).resolves.toBeDefined();

      const now = await listKeys();
      expect(now[0]).toMatchObject({ kid: key.kid, status: 'active', signing: true });
      expect(now.find((k) => k.kid === oldServer.kid)).toMatchObject({ status: 'retired', signing: false });
      expect(now.find((k) => k.kid === profileKey.kid)).toMatchObject({ status: 'active', signing: true });

      const [row] = (await rotations()).slice(-1);
      expect(row).toMatchObject({ actor: `admin:${adminClientId}`, target: `key:${key.kid}` });
      expect(row?.request_id).toBeTruthy();
      expect(JSON.stringify(row?.details)).not.toMatch(/"(d|p|q|dp|dq|qi)"/);
    });

    it('from the console: a person without the admin role is refused (403) and nothing changes; an administrator rotates, audited as the person', async () => {
      const filesBefore = await keyFiles();
      const auditBefore = await rotations();
      const api = await t.build.resource();
      const outsider = await consoleSession(t, await consolePerson(t, { roles: [] }));
      for (const [method, path, body] of [
        ['POST', '/keys/rotate', { activate_in: 0 }],
        ['GET', '/keys', undefined],
        ['GET', `/resources/${api.id}/grants`, undefined],
      ] as const) {
        const answer = await outsider.call(method, path, body);
        expect(answer.status, `${method} ${path}`).toBe(403);
        expect(answer.headers.get('content-type')).toMatch(/application\/problem\+json/);
      }
      expect(await keyFiles()).toEqual(filesBefore);
      expect(await rotations()).toHaveLength(auditBefore.length);

      const person = await consolePerson(t);
      const administrator = await consoleSession(t, person);
      const rotated = await administrator.call('POST', '/keys/rotate', { activate_in: 60 });
      expect(rotated.status).toBe(201);
      const body = (await rotated.json()) as { key: KeyJson };
      answers.push(body);
      expect(body.key).toMatchObject({ status: 'pending', signing: false });
      expect((await rotations()).at(-1)).toMatchObject({ actor: `person:${person.id}`, target: `key:${body.key.kid}` });
      // Until it activates, the key that signed before still signs.
      expect(decodeProtectedHeader(await serviceToken()).kid).not.toBe(body.key.kid);
    });

    it('rotates at once with activate_in 0 (as after a leak)', async () => {
      const rotated = await call('POST', '/keys/rotate', { body: { activate_in: 0 } });
      expect(rotated.status).toBe(201);
      const key = rotated.body.key as KeyJson;
      expect(key).toMatchObject({ status: 'active', signing: true });
      expect(decodeProtectedHeader(await serviceToken()).kid).toBe(key.kid);
    });

  });

  describe('the grants clients hold at an API', () => {
    it('lists the clients holding a grant there with their scopes, by id or identifier, with paging and a filter', async () => {
      const api = await t.build.resource({ scope: 'read write delete' });
      const tag = randomUUID().slice(0, 8);
      const held = [];
      for (const [name, scope] of [[`reader ${tag}`, 'read'], [`writer ${tag}`, 'read write'], [`other ${tag}`, 'delete']] as const) {
        const client = await t.build.client({ client_name: name, grant_types: ['client_credentials'] });
        await t.build.grant(client.clientId, api.identifier, scope);
        held.push({ client_id: client.clientId, client_name: name, scope });
      }
      // A client without a grant there is not listed.
      await t.build.client({ client_name: `none ${tag}`, grant_types: ['client_credentials'] });
      const byId = (a: { client_id: unknown }, b: { client_id: unknown }) => String(a.client_id).localeCompare(String(b.client_id));

      const all = await call('GET', `/resources/${api.id}/grants`);
      expect(all.status).toBe(200);
      const listed = (all.body.data as Json[]).map(({ client_id, client_name, scope }) => ({ client_id, client_name, scope }));
      expect([...listed].sort(byId)).toEqual([...held].sort(byId));
      expect(all.body.next_cursor).toBeNull();
      // In client_id order as the database compares them (its collation): the pages below follow it.
      const expected = listed;
      const byIdentifier = await call('GET', `/resources/${encodeURIComponent(api.identifier)}/grants`);
      expect(byIdentifier.body.data).toEqual(all.body.data);

      const first = await call('GET', `/resources/${api.id}/grants?limit=2`);
      expect((first.body.data as Json[]).map((grant) => grant.client_id)).toEqual(expected.slice(0, 2).map((grant) => grant.client_id));
      const second = await call('GET', `/resources/${api.id}/grants?limit=2&cursor=${encodeURIComponent(String(first.body.next_cursor))}`);
      expect((second.body.data as Json[]).map((grant) => grant.client_id)).toEqual([expected[2]?.client_id]);
      expect(second.body.next_cursor).toBeNull();

      const filtered = await call('GET', `/resources/${api.id}/grants?filter=${encodeURIComponent(`WRITER ${tag}`)}`);
      expect((filtered.body.data as Json[]).map((grant) => grant.client_name)).toEqual([`writer ${tag}`]);
      // Wildcards are taken literally.
      expect((await call('GET', `/resources/${api.id}/grants?filter=%25`)).body.data).toEqual([]);

      // A grant taken away is no longer listed.
      expect((await call('DELETE', `/clients/${held[0]!.client_id}/grants/${encodeURIComponent(api.identifier)}`)).status).toBe(200);
      const left = await call('GET', `/resources/${api.id}/grants`);
      expect((left.body.data as Json[]).map((grant) => grant.client_id)).not.toContain(held[0]!.client_id);
      expect(left.body.data).toHaveLength(2);
    });

    it('lists the admin clients at the admin API', async () => {
      const admin = await call('GET', '/resources/admin/grants?limit=200');
      expect(admin.status).toBe(200);
      expect(admin.body.data).toEqual(expect.arrayContaining([expect.objectContaining({ client_id: adminClientId, scope: 'admin' })]));
    });

    it('refuses an unknown API, a bad limit and a caller without an admin token', async () => {
      const unknown = await call('GET', '/resources/no-such-api/grants');
      expect(unknown.status).toBe(404);
      expect(unknown.type).toMatch(/application\/problem\+json/);
      const api = await t.build.resource();
      for (const limit of ['0', '201', 'ten', '1e2']) {
        const bad = await call('GET', `/resources/${api.id}/grants?limit=${limit}`);
        expect(bad.status).toBe(400);
        expect((bad.body.errors as Array<{ field: string }>).map((error) => error.field)).toEqual(['limit']);
      }
      expect((await call('GET', `/resources/${api.id}/grants`, { token: null })).status).toBe(401);
      expect((await call('GET', `/resources/${api.id}/grants`, { token: await serviceToken() })).status).toBe(401);
    });
  });

  // Last: every answer of the tests above.
  it('never answers private key material', () => {
    expect(answers.length).toBeGreaterThan(30);
    const names = memberNames(answers);
    for (const name of PRIVATE_MEMBERS) expect(names.has(name), name).toBe(false);
  });
});
