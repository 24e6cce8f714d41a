import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { prepareFindApiKeyForExchange } from '../../src/registry/api-key.repository.js';
import { apiKeyDigest, createApiKey, regenerateApiKey, revokeApiKey } from '../../src/services/api-keys.service.js';
import { disableUser, enableUser } from '../../src/services/users.service.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';
import { TEST_ACTOR } from '../fixtures/services.js';

type Json = Record<string, unknown>;

const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const API_KEY_TYPE = 'urn:gatehouse:params:oauth:token-type:api-key';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/**
 * Personal API keys at the token endpoint (CONTRACT "Personal API keys", RFC 8693): exchanged
 * without client authentication for an RS256 JWT access token whose sub is the person; every
 * refusal in OAuth JSON, and nothing changed by it. In process (no port).
 */
describe('personal API key exchange', () => {
  let t: TestServer;
  let api: string;
  let other: string;
  let person: { id: string; email: string };
  let jwks: ReturnType<typeof createLocalJWKSet>;

  async function exchange(form: Record<string, string>, headers: Record<string, string> = {}) {
    const response = await t.fetch('/token', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', ...headers },
      body: new URLSearchParams(form),
    });
    const body = (await response.json()) as Json;
    if (typeof body.access_token === 'string') recordSecret(body.access_token);
    return { status: response.status, body, headers: response.headers };
  }

  async function newKey(input: Record<string, unknown> = {}, userId = person.id) {
    const issued = await createApiKey(t.services, TEST_ACTOR, userId, { label: 'a script', resource: api, scope: 'read write', ...input });
    recordSecret(issued.apiKey);
    return issued;
  }

  const form = (apiKey: string, extra: Record<string, string> = {}) => ({ grant_type: GRANT, subject_token: apiKey, subject_token_type: API_KEY_TYPE, resource: api, ...extra });

  /** The key's row as the exchange reads it: what a refusal must leave as it was. */
  const stateOf = (apiKey: string) => prepareFindApiKeyForExchange(t.server.registry.db)(apiKeyDigest(apiKey));

  beforeAll(async () => {
    t = await startTestServer({ name: 'api-key-exchange', listen: false });
    api = (await t.build.resource({ scope: 'read write admin-ish' })).identifier;
    other = (await t.build.resource({ scope: 'read' })).identifier;
    person = await t.build.person();
    const keys = (await (await t.fetch('/jwks')).json()) as JSONWebKeySet;
    jwks = createLocalJWKSet(keys);
  });

  afterAll(async () => {
    await t?.close();
  });

  it('exchanges a key for an RS256 at+jwt access token whose sub is the person and aud the API, verified with the JWKS', async () => {
    const { apiKey } = await newKey();
    expect(apiKey).toMatch(/^gk_[A-Za-z0-9_-]{43}$/);
    const answer = await exchange(form(apiKey));
    expect(answer.status).toBe(200);
    expect(answer.body.issued_token_type).toBe(ACCESS_TOKEN_TYPE);
    expect(answer.body.token_type).toBe('Bearer');
    expect(answer.body.scope).toBe('read write');
    expect(answer.body).not.toHaveProperty('refresh_token');
    const token = String(answer.body.access_token);
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'RS256', typ: 'at+jwt' });
    const { payload } = await jwtVerify(token, jwks, { issuer: t.config.issuer, audience: api, algorithms: ['RS256'], typ: 'at+jwt' });
    expect(payload.sub).toBe(person.id);
    expect(payload.scope).toBe('read write');
    expect(payload.client_id).toBe('gatehouse-api-keys');
    expect(Number(answer.body.expires_in)).toBeGreaterThan(0);
    expect(Number(answer.body.expires_in)).toBeLessThanOrEqual(3600);
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(Number(answer.body.expires_in));
  });

  it('gives only the scopes asked for, and the resource may be left out (the key names its API)', async () => {
    const { apiKey } = await newKey();
    const answer = await exchange({ grant_type: GRANT, subject_token: apiKey, subject_token_type: API_KEY_TYPE, scope: 'read' });
    expect(answer.status).toBe(200);
    const { payload } = await jwtVerify(String(answer.body.access_token), jwks, { issuer: t.config.issuer, audience: api });
    expect(payload.scope).toBe('read');
  });

  it('costs one registry read per exchange (the key, its person and its API by the digest), and last_used_at at most one write a minute', async () => {
    const { apiKey } = await newKey();
    // Every query of the registry, built or prepared, goes through its executor.
    const spy = vi.spyOn(t.server.registry.db.getExecutor(), 'executeQuery');
    // Only the exchange's own queries: the registry cache's revision poll runs beside it every 100 ms.
    const keyQueries = () => spy.mock.calls.filter(([query]) => (query as { sql: string }).sql.includes('api_keys')).length;
    try {
      expect((await exchange(form(apiKey))).status).toBe(200);
      // The first use is recorded: the read and one update (which may land just after the answer).
      await expect.poll(keyQueries).toBe(2);
      spy.mockClear();
      for (let i = 0; i < 3; i += 1) expect((await exchange(form(apiKey))).status).toBe(200);
      expect(keyQueries()).toBe(3);
      expect(spy.mock.calls.filter(([query]) => /update/i.test((query as { sql: string }).sql) && (query as { sql: string }).sql.includes('api_keys'))).toHaveLength(0);
    } finally {
      spy.mockRestore();
    }
  });

  it('caps the token lifetime at one hour, whatever the API says', async () => {
    const longLived = (await t.build.resource({ scope: 'read', access_token_ttl: 86_400 })).identifier;
    const { apiKey } = await newKey({ resource: longLived, scope: 'read' });
    const answer = await exchange(form(apiKey, { resource: longLived }));
    expect(answer.status).toBe(200);
    expect(answer.body.expires_in).toBe(3600);
  });

  it('records the last use, and a regenerated key replaces the old one at once', async () => {
    const { key, apiKey } = await newKey();
    expect((await stateOf(apiKey))?.lastUsedAt).toBeNull();
    expect((await exchange(form(apiKey))).status).toBe(200);
    expect((await stateOf(apiKey))?.lastUsedAt).toBeInstanceOf(Date);
    const regenerated = await regenerateApiKey(t.services, TEST_ACTOR, person.id, key.id);
    recordSecret(regenerated.apiKey);
    const old = await exchange(form(apiKey));
    expect(old.status).toBe(400);
    expect(old.body.error).toBe('invalid_grant');
    expect((await exchange(form(regenerated.apiKey))).status).toBe(200);
  });

  describe('refusals: OAuth JSON, and nothing changed', () => {
    it('a key with another prefix, or none, is invalid_grant', async () => {
      const { apiKey } = await newKey();
      for (const wrong of [`xx_${apiKey.slice(3)}`, apiKey.slice(3), `${apiKey}x`, 'gk_<script>alert(1)</script>']) {
        const answer = await exchange(form(wrong));
        expect(answer.status, wrong).toBe(400);
        expect(answer.body.error).toBe('invalid_grant');
        expect(String(answer.body.error_description)).toContain('not a Gatehouse API key');
        expect(JSON.stringify(answer.body)).not.toContain('<script>');
      }
      expect((await stateOf(apiKey))?.lastUsedAt).toBeNull();
    });

    it('an unknown key is invalid_grant', async () => {
      const answer = await exchange(form(`gk_${'A'.repeat(43)}`));
      expect(answer.status).toBe(400);
      expect(answer.body).toMatchObject({ error: 'invalid_grant' });
    });

    it('a revoked key is invalid_grant', async () => {
      const { key, apiKey } = await newKey();
      await revokeApiKey(t.services, TEST_ACTOR, person.id, key.id);
      const answer = await exchange(form(apiKey));
      expect(answer.status).toBe(400);
      expect(answer.body.error).toBe('invalid_grant');
      expect(await stateOf(apiKey)).toBeUndefined();
    });

    it('an expired key is invalid_grant', async () => {
      const past = new Date(Date.now() - 3_600_000);
      const issued = await createApiKey(t.services, TEST_ACTOR, person.id, { label: 'old', resource: api, expires_in: 60 }, past);
      recordSecret(issued.apiKey);
      const answer = await exchange(form(issued.apiKey));
      expect(answer.status).toBe(400);
      expect(answer.body).toMatchObject({ error: 'invalid_grant', error_description: 'the API key has expired' });
      expect((await stateOf(issued.apiKey))?.lastUsedAt).toBeNull();
    });

    it("a disabled person's key is invalid_grant, and stays so once they are enabled again (it was made before their sessions ended)", async () => {
      const someone = await t.build.person();
      const { key, apiKey } = await newKey({}, someone.id);
      await disableUser(t.services, TEST_ACTOR, someone.id);
      const disabled = await exchange(form(apiKey));
      expect(disabled.status).toBe(400);
      expect(disabled.body.error).toBe('invalid_grant');
      await enableUser(t.services, TEST_ACTOR, someone.id);
      const after = await exchange(form(apiKey));
      expect(after.body.error).toBe('invalid_grant');
      expect(String(after.body.error_description)).toContain('regenerate');
      // A regenerated key works again.
      await new Promise((resolve) => setTimeout(resolve, 5));
      const fresh = await regenerateApiKey(t.services, TEST_ACTOR, someone.id, key.id);
      recordSecret(fresh.apiKey);
      expect((await exchange(form(fresh.apiKey))).status).toBe(200);
    });

    it('another API is invalid_target', async () => {
      const { apiKey } = await newKey();
      const answer = await exchange(form(apiKey, { resource: other }));
      expect(answer.status).toBe(400);
      expect(answer.body.error).toBe('invalid_target');
      expect((await stateOf(apiKey))?.lastUsedAt).toBeNull();
    });

    it('a scope the key does not carry, or an OpenID scope, is invalid_scope', async () => {
      const { apiKey } = await newKey({ scope: 'read' });
      for (const scope of ['write', 'admin-ish', 'openid', 'read nope']) {
        const answer = await exchange(form(apiKey, { scope }));
        expect(answer.status, scope).toBe(400);
        expect(answer.body.error).toBe('invalid_scope');
      }
      expect((await stateOf(apiKey))?.lastUsedAt).toBeNull();
    });

    it('a missing subject_token_type is invalid_request (and so is a missing client)', async () => {
      const { apiKey } = await newKey();
      const answer = await exchange({ grant_type: GRANT, subject_token: apiKey, resource: api });
      expect(answer.status).toBe(400);
      expect(answer.body.error).toBe('invalid_request');
      expect((await stateOf(apiKey))?.lastUsedAt).toBeNull();
    });

    it('an unknown subject_token_type is invalid_request, naming what is supported', async () => {
      const { apiKey } = await newKey();
      for (const type of [ACCESS_TOKEN_TYPE, 'urn:example:other']) {
        const answer = await exchange(form(apiKey, { subject_token_type: type }));
        expect(answer.status, type).toBe(400);
        expect(answer.body.error).toBe('invalid_request');
      }
      const wrongType = await exchange({ grant_type: GRANT, subject_token: apiKey, subject_token_type: 'urn:example:other', client_id: 'gatehouse-api-keys' });
      expect(wrongType.body.error).toBe('invalid_request');
      expect(String(wrongType.body.error_description)).toContain('unsupported subject_token_type');
      expect((await stateOf(apiKey))?.lastUsedAt).toBeNull();
    });

    it('a missing subject_token, an actor_token, another requested_token_type or a second resource is invalid_request', async () => {
      const { apiKey } = await newKey();
      const cases: Array<Record<string, string> | URLSearchParams> = [
        { grant_type: GRANT, subject_token_type: API_KEY_TYPE, resource: api },
        form(apiKey, { actor_token: apiKey, actor_token_type: API_KEY_TYPE }),
        form(apiKey, { requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' }),
      ];
      for (const body of cases) {
        const answer = await exchange(body as Record<string, string>);
        expect(answer.status).toBe(400);
        expect(answer.body.error).toBe('invalid_request');
      }
      const twice = new URLSearchParams(form(apiKey));
      twice.append('resource', other);
      const response = await t.fetch('/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: twice });
      expect(response.status).toBe(400);
      expect(((await response.json()) as Json).error).toBe('invalid_request');
      expect((await stateOf(apiKey))?.lastUsedAt).toBeNull();
    });

    it('a registered client cannot use the grant with a key (it is not registered for it)', async () => {
      const service = await t.build.serviceClient();
      const { apiKey } = await newKey();
      const basic = Buffer.from(`${service.clientId}:${service.clientSecret}`).toString('base64');
      const answer = await exchange(form(apiKey), { authorization: `Basic ${basic}` });
      expect(answer.status).toBe(400);
      expect(answer.body.error).toBe('unauthorized_client');
      expect((await stateOf(apiKey))?.lastUsedAt).toBeNull();
    });
  });

  it('the built-in client gatehouse-api-keys serves nothing else: no other grant, no sign-in, no change through the admin services', async () => {
    for (const grant of ['client_credentials', 'refresh_token', 'authorization_code']) {
      const answer = await exchange({ grant_type: grant, client_id: 'gatehouse-api-keys', refresh_token: 'x', code: 'x', redirect_uri: 'https://x.example/cb' });
      expect(answer.status, grant).toBe(400);
      expect(['unauthorized_client', 'invalid_request'], grant).toContain(answer.body.error);
      expect(answer.body).not.toHaveProperty('access_token');
    }
    const authorize = await t.fetch(`/auth?${new URLSearchParams({ client_id: 'gatehouse-api-keys', response_type: 'code', scope: 'openid', redirect_uri: 'https://x.example/cb', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' })}`, { redirect: 'manual' });
    expect(authorize.status).toBe(400);
    const cli = await t.cliRaw('clients', 'delete', 'gatehouse-api-keys', '--json');
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toContain('built into Gatehouse');
  });

  it('keys never reach the log', async () => {
    const { apiKey } = await newKey();
    await exchange(form(apiKey));
    await exchange(form(`${apiKey.slice(0, -1)}Z`));
    expect(t.logs.text()).not.toContain(apiKey);
    expect(t.logs.text()).not.toContain(apiKey.slice(3));
  });

  it('counts exchanges and refusals in the token metrics under the token-exchange grant type', async () => {
    const { apiKey } = await newKey();
    expect((await exchange(form(apiKey))).status).toBe(200);
    expect((await exchange(form(`gk_${'C'.repeat(43)}`))).status).toBe(400);
    const text = await (await t.fetch('/metrics')).text();
    const issued = new RegExp(`^gatehouse_tokens_issued_total\\{grant_type="${GRANT}",client_id="other"\\} (\\d+)`, 'm').exec(text);
    const refused = new RegExp(`^gatehouse_token_errors_total\\{grant_type="${GRANT}",error="invalid_grant"\\} (\\d+)`, 'm').exec(text);
    expect(Number(issued?.[1])).toBeGreaterThanOrEqual(1);
    expect(Number(refused?.[1])).toBeGreaterThanOrEqual(1);
  });

  it('discovery lists the token-exchange grant', async () => {
    const discovery = (await (await t.fetch('/.well-known/openid-configuration')).json()) as Json;
    expect(discovery.grant_types_supported).toContain(GRANT);
  });
});

describe('failed API key exchanges per client IP', () => {
  let t: TestServer;

  beforeAll(async () => {
    // The in-process limiter (no Redis): no other test's failures from 127.0.0.1 count here.
    t = await startTestServer({ name: 'api-key-limit', listen: false, store: 'memory', env: { LOGIN_MAX_FAILURES_PER_IP: '3' } });
  });

  afterAll(async () => {
    await t?.close();
  });

  const post = (subjectToken: string, resource: string) =>
    t.fetch('/token', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: GRANT, subject_token: subjectToken, subject_token_type: API_KEY_TYPE, resource }),
    });

  it('refuses every exchange from an address past the limit with 429 and Retry-After, a good key too, without reading it', async () => {
    const api = (await t.build.resource()).identifier;
    const person = await t.build.person();
    const good = await createApiKey(t.services, TEST_ACTOR, person.id, { label: 'good', resource: api });
    recordSecret(good.apiKey);
    expect((await post(good.apiKey, api)).status).toBe(200);
    for (let i = 0; i < 3; i += 1) expect((await post(`gk_${'B'.repeat(43)}`, api)).status).toBe(400);
    const limited = await post(good.apiKey, api);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await limited.json()).toMatchObject({ error: 'temporarily_unavailable' });
    expect(await (await t.fetch('/metrics')).text()).toContain('gatehouse_rate_limited_total{limiter="api_key"} 1');
    const state = await prepareFindApiKeyForExchange(t.server.registry.db)(apiKeyDigest(good.apiKey));
    expect(state?.lastUsedAt).toBeInstanceOf(Date);
  });
});
