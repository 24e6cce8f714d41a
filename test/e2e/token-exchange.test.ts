import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, generateKeyPair, importJWK, jwtVerify, SignJWT, type JSONWebKeySet, type JWTPayload } from 'jose';
import { allowInsecureRequests, ClientSecretBasic, customFetch, discovery, genericGrantRequest, ResponseBodyError, type Configuration } from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSigningJwks } from '../../src/keys/key-store.js';
import { disableUser, setUserPassword } from '../../src/services/users.service.js';
import type { BuiltClient, BuiltPerson } from '../fixtures/builders.js';
import { Agent, codeFlow } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';
import { TEST_ACTOR } from '../fixtures/services.js';

type Json = Record<string, unknown>;

const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const REDIRECT_URI = 'http://127.0.0.1:8765/callback';

/**
 * Token exchange between services (RFC 8693, docs/token-exchange.md): a confidential client acting
 * for a person exchanges the person's access token for one API (in its may_act list) for an access
 * token at another API it holds a grant for, whose sub is the person and whose act names the client.
 * Every refusal in OAuth JSON, without a token. In process (no port); the exchange itself through
 * openid-client's genericGrantRequest, the refusals through the token endpoint directly.
 */
describe('token exchange between services', () => {
  let t: TestServer;
  let jwks: ReturnType<typeof createLocalJWKSet>;
  /** The API the person's tokens are for (the front service's), and the APIs the services call on. */
  let front: string;
  let orders: string;
  let stock: string;
  let unrelated: string;
  let notGranted: string;
  let spa: BuiltClient;
  /** May act on tokens for `front`; holds a grant at `orders` (read write) and `stock` (read). */
  let service: BuiltClient;
  let person: BuiltPerson;
  let exchanger: Configuration;

  const base = () => t.server.url;

  /** The person's access token for `front` (or another API the SPA holds), by the code flow of the first-party SPA. */
  async function personToken(who: BuiltPerson = person, scope = 'openid read write', resource = front): Promise<string> {
    const { status, body } = await codeFlow(new Agent(t.server.url, t.fetch), {
      client: spa,
      redirectUri: REDIRECT_URI,
      email: who.email,
      password: who.password,
      params: { scope, resource },
      tokenParams: { resource },
    });
    expect(status, JSON.stringify(body)).toBe(200);
    return String(body.access_token);
  }

  /** The exchange through the token endpoint as `auth` (or none): status and body as answered. */
  const exchange = (form: Record<string, string>, auth: BuiltClient | undefined = service) => tokenRequest(base(), { grant_type: GRANT, subject_token_type: ACCESS_TOKEN_TYPE, ...form }, auth, t.fetch);

  /** A refusal: the status and error code, a description matching `description`, and no token. */
  async function refused(form: Record<string, string>, error: string, description: RegExp, auth: BuiltClient | undefined = service, status = 400) {
    const answer = await exchange(form, auth);
    expect(answer.body.error, JSON.stringify(answer.body)).toBe(error);
    expect(answer.status).toBe(status);
    expect(String(answer.body.error_description)).toMatch(description);
    expect(answer.body).not.toHaveProperty('access_token');
    expect(answer.body).not.toHaveProperty('issued_token_type');
    return answer.body;
  }

  const verify = async (token: string, audience: string) =>
    (await jwtVerify(token, jwks, { issuer: t.config.issuer, audience, algorithms: ['RS256'], typ: 'at+jwt' })).payload;

  /** The payload of `token` signed again with `key` (the server's own, or another), header at+jwt with `kid`. */
  async function resign(payload: JWTPayload, key: Parameters<SignJWT['sign']>[0], kid: string | undefined) {
    const signed = await new SignJWT(payload).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', ...(kid ? { kid } : {}) }).sign(key);
    recordSecret(signed);
    return signed;
  }

  beforeAll(async () => {
    t = await startTestServer({ name: 'token-exchange', listen: false });
    front = (await t.build.resource({ scope: 'read write delete' })).identifier;
    orders = (await t.build.resource({ scope: 'read write', access_token_ttl: 86_400 })).identifier;
    stock = (await t.build.resource({ scope: 'read write', access_token_ttl: 60 })).identifier;
    unrelated = (await t.build.resource({ scope: 'read write' })).identifier;
    notGranted = (await t.build.resource({ scope: 'read write' })).identifier;
    spa = await t.build.client({
      client_name: 'Front SPA',
      redirect_uris: [REDIRECT_URI],
      token_endpoint_auth_method: 'none',
      first_party: true,
      grant_types: ['authorization_code'],
    });
    await t.build.grant(spa.clientId, front, 'read write delete');
    await t.build.grant(spa.clientId, unrelated, 'read write');
    service = await t.build.client({ client_name: 'Orders gateway', grant_types: [GRANT, 'client_credentials'], may_act: [front] });
    await t.build.grant(service.clientId, orders, 'read write');
    await t.build.grant(service.clientId, stock, 'read');
    person = await t.build.person();
    jwks = createLocalJWKSet((await (await t.fetch('/jwks')).json()) as JSONWebKeySet);
    exchanger = await discovery(new URL(t.config.issuer), service.clientId, undefined, ClientSecretBasic(service.clientSecret), {
      execute: [allowInsecureRequests],
      [customFetch]: (url: string, options: RequestInit) => t.fetch(url, options),
    });
  });

  afterAll(async () => {
    await t?.close();
  });

  it('exchanges a person\'s token for one at another API: sub the person, aud the target, client_id and act the acting client, verified with the JWKS', async () => {
    const subject = await personToken();
    const subjectClaims = await verify(subject, front);
    expect(subjectClaims.sub).toBe(person.id);
    expect(subjectClaims).not.toHaveProperty('act');

    const answer = await genericGrantRequest(exchanger, GRANT, { subject_token: subject, subject_token_type: ACCESS_TOKEN_TYPE, resource: orders, scope: 'read' });
    recordSecret(answer.access_token);
    expect(answer.issued_token_type).toBe(ACCESS_TOKEN_TYPE);
    expect(answer.token_type).toBe('bearer');
    expect(answer.scope).toBe('read');
    expect(answer).not.toHaveProperty('refresh_token');
    expect(decodeProtectedHeader(answer.access_token)).toMatchObject({ alg: 'RS256', typ: 'at+jwt' });
    const claims = await verify(answer.access_token, orders);
    expect(claims).toMatchObject({ sub: person.id, aud: orders, client_id: service.clientId, scope: 'read', act: { sub: service.clientId } });
    expect(claims.act).toEqual({ sub: service.clientId });
  });

  it('without scope, gives every scope both the subject token and the client\'s grant at the target have; audience names the target as resource does', async () => {
    const subject = await personToken(person, 'openid read');
    const wide = await genericGrantRequest(exchanger, GRANT, { subject_token: subject, subject_token_type: ACCESS_TOKEN_TYPE, audience: orders });
    recordSecret(wide.access_token);
    // The client holds read write at orders; the person's token has read only.
    expect(wide.scope).toBe('read');
    expect((await verify(wide.access_token, orders)).scope).toBe('read');
  });

  it('lives at most the target API\'s TTL and never beyond the subject token', async () => {
    const subject = await personToken();
    const subjectExp = Number(decodeJwt(subject).exp);
    // orders' TTL is a day: the subject token's end bounds it.
    const long = await exchange({ subject_token: subject, resource: orders });
    expect(long.status).toBe(200);
    const longClaims = await verify(String(long.body.access_token), orders);
    expect(Number(longClaims.exp)).toBeLessThanOrEqual(subjectExp);
    expect(Number(long.body.expires_in)).toBeLessThanOrEqual(subjectExp - Number(longClaims.iat));
    expect(Number(long.body.expires_in)).toBeGreaterThan(60);
    // stock's TTL is a minute: that bounds it.
    const short = await exchange({ subject_token: subject, resource: stock });
    expect(short.status).toBe(200);
    expect(short.body.expires_in).toBe(60);
    const shortClaims = await verify(String(short.body.access_token), stock);
    expect(Number(shortClaims.exp) - Number(shortClaims.iat)).toBe(60);
  });

  it('an exchanged token exchanged again nests the earlier actor under the new one', async () => {
    const second = await t.build.client({ client_name: 'Stock service', grant_types: [GRANT], may_act: [orders] });
    await t.build.grant(second.clientId, stock, 'read');
    const first = await exchange({ subject_token: await personToken(), resource: orders, scope: 'read' });
    expect(first.status).toBe(200);
    const again = await exchange({ subject_token: String(first.body.access_token), resource: stock }, second);
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    const claims = await verify(String(again.body.access_token), stock);
    expect(claims).toMatchObject({ sub: person.id, client_id: second.clientId, scope: 'read' });
    expect(claims.act).toEqual({ sub: second.clientId, act: { sub: service.clientId } });
  });

  it('takes the client\'s default resource when no target is named', async () => {
    const defaulted = await t.build.client({ client_name: 'Defaulted', grant_types: [GRANT], may_act: [front], default_resource: orders, scope: 'read' });
    const answer = await exchange({ subject_token: await personToken() }, defaulted);
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(await verify(String(answer.body.access_token), orders)).toMatchObject({ sub: person.id, scope: 'read', act: { sub: defaulted.clientId } });
  });

  it('puts act in exchanged tokens only: not in client credentials tokens', async () => {
    const cc = await tokenRequest(base(), { grant_type: 'client_credentials', resource: orders, scope: 'read' }, service, t.fetch);
    expect(cc.status).toBe(200);
    expect(await verify(String(cc.body.access_token), orders)).not.toHaveProperty('act');
  });

  it('counts exchanges and refusals under the token-exchange grant type; no token reaches the log', async () => {
    const counter = async (pattern: string) => {
      const text = await (await t.fetch('/metrics')).text();
      return Number(new RegExp(`^${pattern} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
    };
    const issued = `gatehouse_tokens_issued_total\\{grant_type="${GRANT}",client_id="other"\\}`;
    const errors = `gatehouse_token_errors_total\\{grant_type="${GRANT}",error="invalid_request"\\}`;
    const [issuedBefore, errorsBefore] = [await counter(issued), await counter(errors)];
    const subject = await personToken();
    const answer = await exchange({ subject_token: subject, resource: orders });
    expect(answer.status).toBe(200);
    expect((await exchange({ subject_token: `${subject}x`, resource: orders })).status).toBe(400);
    expect(await counter(issued)).toBe(issuedBefore + 1);
    expect(await counter(errors)).toBe(errorsBefore + 1);
    expect(t.logs.text()).not.toContain(subject.split('.')[2]);
    expect(t.logs.text()).not.toContain(String(answer.body.access_token).split('.')[2]);
  });

  describe('refusals: OAuth JSON, and no token', () => {
    it('the subject token is for an API the client may not act on: invalid_request, wrong audience', async () => {
      const subject = await personToken(person, 'openid read', unrelated);
      expect((await verify(subject, unrelated)).sub).toBe(person.id);
      await refused({ subject_token: subject, resource: orders }, 'invalid_request', new RegExp(`wrong audience: this client may not act on tokens for ${unrelated.replace(/[.]/g, '\\.')}`));
    });

    it('a client whose tokens must be DPoP-bound is refused: an exchange issues bearer tokens only', async () => {
      const bound = await t.build.client({ client_name: 'DPoP gateway', grant_types: [GRANT], may_act: [front], dpop_bound_access_tokens: true });
      await t.build.grant(bound.clientId, orders, 'read');
      await refused({ subject_token: await personToken(), resource: orders }, 'invalid_grant', /must use DPoP-bound tokens/, bound);
    });

    it('a client whose may_act list is empty exchanges nothing', async () => {
      const none = await t.build.client({ client_name: 'No may_act', grant_types: [GRANT] });
      await t.build.grant(none.clientId, orders, 'read');
      await refused({ subject_token: await personToken(), resource: orders }, 'invalid_request', /wrong audience/, none);
    });

    it('a target API the client holds no grant for, an unknown one, the admin API, or none: invalid_target', async () => {
      const subject = await personToken();
      await refused({ subject_token: subject, resource: notGranted }, 'invalid_target', /holds no grant for/);
      await refused({ subject_token: subject, resource: 'https://nowhere.example.test' }, 'invalid_target', /holds no grant for/);
      await refused({ subject_token: subject, resource: `${t.config.issuer}/admin/v1` }, 'invalid_target', /admin API/);
      await refused({ subject_token: subject, resource: 'urn:gatehouse:admin-api' }, 'invalid_target', /admin API/);
      await refused({ subject_token: subject }, 'invalid_target', /no default resource/);
      await refused({ subject_token: subject, resource: orders, audience: stock }, 'invalid_target', /different APIs/);
    });

    it('a scope the subject token does not have, or the client does not hold at the target: invalid_scope, never wider', async () => {
      const narrow = await personToken(person, 'openid read');
      await refused({ subject_token: narrow, resource: orders, scope: 'read write' }, 'invalid_scope', /scope "write" is not in the subject_token/);
      const wide = await personToken();
      await refused({ subject_token: wide, resource: stock, scope: 'write' }, 'invalid_scope', /scope "write" is not granted to this client/);
      await refused({ subject_token: wide, resource: orders, scope: 'delete' }, 'invalid_scope', /scope "delete" is not granted to this client/);
      await refused({ subject_token: wide, resource: orders, scope: 'openid' }, 'invalid_scope', /scope "openid"/);
    });

    it('an expired subject token, though signed by this server\'s own key: invalid_request', async () => {
      const claims = decodeJwt(await personToken());
      const [jwk] = await loadSigningJwks(t.config.keysDir, { generateIfMissing: false });
      const now = Math.floor(Date.now() / 1000);
      const expired = await resign({ ...claims, iat: now - 700, exp: now - 100 }, await importJWK(jwk!, 'RS256'), jwk!.kid);
      await refused({ subject_token: expired, resource: orders }, 'invalid_request', /the subject_token has expired/);
      // The same key and claims with a current exp pass: the refusal above is the expiry's.
      const current = await resign({ ...claims, iat: now, exp: now + 300 }, await importJWK(jwk!, 'RS256'), jwk!.kid);
      expect((await exchange({ subject_token: current, resource: orders })).status).toBe(200);
    });

    it('a subject token from another issuer, or signed with another key under this server\'s kid: invalid_request', async () => {
      const claims = decodeJwt(await personToken());
      const { privateKey } = await generateKeyPair('RS256');
      const foreign = await resign({ ...claims, iss: 'https://elsewhere.example.test' }, privateKey, 'elsewhere-1');
      await refused({ subject_token: foreign, resource: orders }, 'invalid_request', /not issued by this server/);
      const forged = await resign(claims, privateKey, decodeProtectedHeader(await personToken()).kid);
      await refused({ subject_token: forged, resource: orders }, 'invalid_request', /signature does not verify/);
    });

    it('a tampered subject token (a scope added to its payload): invalid_request', async () => {
      const subject = await personToken(person, 'openid read');
      const [header, payload, signature] = subject.split('.');
      const widened = { ...(JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Json), scope: 'read write' };
      const tampered = `${header}.${Buffer.from(JSON.stringify(widened)).toString('base64url')}.${signature}`;
      recordSecret(tampered);
      await refused({ subject_token: tampered, resource: orders, scope: 'write' }, 'invalid_request', /signature does not verify/);
    });

    it('what is no JWT access token of this server (garbage, an ID token): invalid_request', async () => {
      await refused({ subject_token: 'not-a-token', resource: orders }, 'invalid_request', /not a JWT access token/);
      const { status, body } = await codeFlow(new Agent(t.server.url, t.fetch), { client: spa, redirectUri: REDIRECT_URI, email: person.email, password: person.password, params: { scope: 'openid', resource: front }, tokenParams: { resource: front } });
      expect(status).toBe(200);
      await refused({ subject_token: String(body.id_token), resource: orders }, 'invalid_request', /typ at\+jwt/);
    });

    it('a client credentials token as the subject: invalid_request (only a person\'s token is exchanged)', async () => {
      const other = await t.build.client({ client_name: 'Front backend', grant_types: ['client_credentials'] });
      await t.build.grant(other.clientId, front, 'read');
      const cc = await tokenRequest(base(), { grant_type: 'client_credentials', resource: front, scope: 'read' }, other, t.fetch);
      expect(cc.status).toBe(200);
      await refused({ subject_token: String(cc.body.access_token), resource: orders }, 'invalid_request', /client credentials token/);
    });

    it('the token of a person since disabled, or whose sessions were ended after it was issued: invalid_request', async () => {
      const disabled = await t.build.person();
      const before = await personToken(disabled);
      expect((await exchange({ subject_token: before, resource: orders })).status).toBe(200);
      await disableUser(t.services, TEST_ACTOR, disabled.id);
      await refused({ subject_token: before, resource: orders }, 'invalid_request', /person is disabled/);

      const changed = await t.build.person();
      const old = await personToken(changed);
      expect((await exchange({ subject_token: old, resource: orders })).status).toBe(200);
      const password = 'a new password for this person 0815';
      recordSecret(password);
      await setUserPassword(t.services, TEST_ACTOR, changed.id, password);
      await refused({ subject_token: old, resource: orders }, 'invalid_request', /sessions were ended/);
    });

    it('a client without the token-exchange grant: unauthorized_client', async () => {
      // may_act itself needs the grant (the registry refuses it without): this client holds neither.
      const plain = await t.build.client({ client_name: 'No exchange grant', grant_types: ['client_credentials'] });
      await t.build.grant(plain.clientId, orders, 'read');
      await refused({ subject_token: await personToken(), resource: orders }, 'unauthorized_client', /not registered for the urn:ietf:params:oauth:grant-type:token-exchange grant/, plain);
    });

    it('a public client, or the built-in API key client, or none at all: refused', async () => {
      const subject = await personToken();
      const answer = await tokenRequest(base(), { grant_type: GRANT, subject_token: subject, subject_token_type: ACCESS_TOKEN_TYPE, resource: orders, client_id: spa.clientId }, undefined, t.fetch);
      expect(answer.body.error).toBe('unauthorized_client');
      expect(answer.body).not.toHaveProperty('access_token');
      // No public client can hold the grant at all; the built-in API key client (public, holding it) is refused by the exchange.
      await expect(t.build.client({ client_name: 'Public exchanger', token_endpoint_auth_method: 'none', grant_types: ['authorization_code', GRANT], redirect_uris: [REDIRECT_URI] })).rejects.toThrow(
        /cannot use token exchange/,
      );
      const byKeys = await tokenRequest(base(), { grant_type: GRANT, subject_token: subject, subject_token_type: ACCESS_TOKEN_TYPE, resource: orders, client_id: 'gatehouse-api-keys' }, undefined, t.fetch);
      expect(byKeys.body.error).toBe('unauthorized_client');
      expect(String(byKeys.body.error_description)).toMatch(/only a confidential client/);
      expect(byKeys.body).not.toHaveProperty('access_token');
      const anonymous = await tokenRequest(base(), { grant_type: GRANT, subject_token: subject, subject_token_type: ACCESS_TOKEN_TYPE, resource: orders }, undefined, t.fetch);
      expect(anonymous.body.error).toBe('invalid_request');
      expect(anonymous.body).not.toHaveProperty('access_token');
    });

    it('an actor_token, or another requested_token_type: invalid_request', async () => {
      const subject = await personToken();
      await refused({ subject_token: subject, resource: orders, actor_token: subject, actor_token_type: ACCESS_TOKEN_TYPE }, 'invalid_request', /the authenticated client is the actor/);
      await refused({ subject_token: subject, resource: orders, requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' }, 'invalid_request', /requested_token_type/);
    });

    it('no subject_token (impersonation without one), or no subject_token_type: invalid_request', async () => {
      await refused({ resource: orders }, 'invalid_request', /missing required parameter 'subject_token'/);
      const answer = await tokenRequest(base(), { grant_type: GRANT, subject_token: await personToken(), resource: orders }, service, t.fetch);
      expect(answer.status).toBe(400);
      expect(answer.body.error).toBe('invalid_request');
      expect(String(answer.body.error_description)).toMatch(/subject_token_type/);
      expect(answer.body).not.toHaveProperty('access_token');
    });

    it('through openid-client: the refusal is an OAuth error response', async () => {
      const subject = await personToken(person, 'openid read', unrelated);
      const error = await genericGrantRequest(exchanger, GRANT, { subject_token: subject, subject_token_type: ACCESS_TOKEN_TYPE, resource: orders }).then(
        () => undefined,
        (reason: unknown) => reason,
      );
      expect(error).toBeInstanceOf(ResponseBodyError);
      expect(error).toMatchObject({ error: 'invalid_request', status: 400 });
    });
  });
});
