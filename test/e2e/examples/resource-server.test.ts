import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { decodeJwt, exportJWK, generateKeyPair, importJWK, SignJWT, UnsecuredJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createResourceServer, type ResourceServerOptions } from '../../../examples/resource-server/resource-server.js';
import { loadSigningJwks } from '../../../src/keys/key-store.js';
import { recordSecret } from '../../fixtures/log-capture.js';
import { freePort } from '../../fixtures/ports.js';
import { startTestServer, tokenRequest, type TestServer } from '../../fixtures/server.js';
import { listen } from './helpers.js';

/**
 * examples/resource-server against a live Gatehouse: tokens from the token endpoint are accepted or
 * refused by the API as RFC 6750 says, and so are tokens made here with Gatehouse's own signing key
 * (to change one thing at a time: typ, alg) or with another key.
 */
describe('examples/resource-server: verifies Gatehouse access tokens and enforces scopes', () => {
  let t: TestServer;
  let issuer: string;
  let audience: string;
  let shortLived: string;
  let other: string;
  const servers: Array<Awaited<ReturnType<typeof listen>>> = [];
  let api: string;
  let writer: { clientId: string; clientSecret: string };
  let reader: { clientId: string; clientSecret: string };

  const client = (scope: string, resource: string) => t.build.client({ client_name: `caller ${randomUUID().slice(0, 8)}`, default_resource: resource, scope });

  async function token(auth: { clientId: string; clientSecret: string }, scope: string) {
    const { status, body } = await tokenRequest(issuer, { grant_type: 'client_credentials', ...(scope ? { scope } : {}) }, auth);
    expect(status).toBe(200);
    return String(body.access_token);
  }

  async function start(options: Partial<ResourceServerOptions> = {}) {
    const server = await listen(createResourceServer({ issuer, audience, ...options }));
    servers.push(server);
    return server.url;
  }

  const get = (base: string, authorization?: string, path = '/orders') =>
    fetch(`${base}${path}`, { headers: authorization ? { authorization } : {} });
  const post = (base: string, authorization: string, body: unknown) =>
    fetch(`${base}/orders`, { method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: JSON.stringify(body) });

  beforeAll(async () => {
    t = await startTestServer({ name: 'example-resource-server' });
    issuer = t.config.issuer;
    audience = `https://orders-${t.config.port}.example.test`;
    shortLived = `https://orders-short-${t.config.port}.example.test`;
    other = `https://billing-${t.config.port}.example.test`;
    await t.build.resource({ identifier: audience, scope: 'read:orders write:orders' });
    // Two seconds: exp is whole seconds after iat, so a one-second token may be past exp within a few ms of being issued.
    await t.build.resource({ identifier: shortLived, scope: 'read:orders', access_token_ttl: 2 });
    await t.build.resource({ identifier: other, scope: 'read:orders' });
    writer = await client('read:orders write:orders', audience);
    reader = await client('read:orders', audience);
    api = await start();
  }, 60_000);

  afterAll(async () => {
    for (const server of servers) await server.close();
    await t.close();
  });

  it('accepts a token with the scope each route needs', async () => {
    const bearer = `Bearer ${await token(writer, 'read:orders write:orders')}`;
    const created = await post(api, bearer, { item: 'tea', quantity: 3 });
    expect(created.status).toBe(201);
    expect(await created.json()).toEqual({ id: 1, item: 'tea', quantity: 3, placedBy: writer.clientId });
    const listed = await get(api, bearer);
    expect(listed.status).toBe(200);
    expect(await listed.json()).toEqual({
      caller: { sub: writer.clientId, client_id: writer.clientId },
      orders: [{ id: 1, item: 'tea', quantity: 3, placedBy: writer.clientId }],
    });
    expect((await post(api, bearer, { item: 'tea', quantity: 0 })).status).toBe(400);
  });

  it('answers 403 insufficient_scope, naming the scope, to a token without it', async () => {
    const bearer = `Bearer ${await token(reader, 'read:orders')}`;
    expect((await get(api, bearer)).status).toBe(200);
    const refused = await post(api, bearer, { item: 'tea', quantity: 1 });
    expect(refused.status).toBe(403);
    expect(refused.headers.get('www-authenticate')).toBe(
      'Bearer realm="orders", error="insufficient_scope", error_description="this request needs the write:orders scope", scope="write:orders"',
    );
    expect(await refused.json()).toMatchObject({ error: 'insufficient_scope', scope: 'write:orders' });
    // A token that carries no scope at all is refused on reading too.
    const none = await get(api, `Bearer ${await token(writer, '')}`);
    expect(none.status).toBe(403);
    expect(none.headers.get('www-authenticate')).toContain('scope="read:orders"');
  });

  it('answers 401 with a bare Bearer challenge when there is no token, 400 to a malformed header', async () => {
    for (const authorization of [undefined, 'Basic dXNlcjpwYXNz']) {
      const response = await get(api, authorization);
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Bearer realm="orders", DPoP realm="orders", algs="ES256 Ed25519 EdDSA"');
    }
    const malformed = await get(api, 'Bearer two tokens');
    expect(malformed.status).toBe(400);
    expect(malformed.headers.get('www-authenticate')).toContain('error="invalid_request"');
    expect((await get(api, undefined, '/healthz')).status).toBe(200);
  });

  it('answers 401 invalid_token to garbage, another audience, an expired token and a token for another issuer', async () => {
    const invalid = async (response: Response, description = 'the access token is not valid for this API') => {
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe(`Bearer realm="orders", error="invalid_token", error_description="${description}"`);
      expect(await response.json()).toEqual({ error: 'invalid_token', error_description: description });
    };
    await invalid(await get(api, 'Bearer not-a-jwt'));
    await invalid(await get(api, 'Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl'));

    // A token Gatehouse issued for another API (its own control: that API's server accepts it).
    const billingToken = await token(await client('read:orders', other), 'read:orders');
    await invalid(await get(api, `Bearer ${billingToken}`));
    expect((await get(await start({ audience: other }), `Bearer ${billingToken}`)).status).toBe(200);

    // Expired: a resource whose tokens live two seconds; accepted at first, refused once past exp.
    const shortApi = await start({ audience: shortLived });
    const shortToken = await token(await client('read:orders', shortLived), 'read:orders');
    expect((await get(shortApi, `Bearer ${shortToken}`)).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 3100));
    await invalid(await get(shortApi, `Bearer ${shortToken}`), 'the access token has expired');

    // A good token, but this API trusts another issuer (with the same keys): iss is checked.
    const good = await token(reader, 'read:orders');
    expect((await get(api, `Bearer ${good}`)).status).toBe(200);
    await invalid(await get(await start({ issuer: `${issuer}/elsewhere`, jwksUri: `${issuer}/jwks` }), `Bearer ${good}`));
  });

  describe('tokens made with Gatehouse own signing key, one header changed at a time', () => {
    let jwk: JWK;
    const claims = () => ({ client_id: reader.clientId, scope: 'read:orders', jti: randomUUID() });
    async function forge(header: { alg: string; typ?: string; kid?: string }, key?: CryptoKey | Uint8Array) {
      const signed = await new SignJWT(claims())
        .setProtectedHeader({ kid: jwk.kid, ...header })
        .setIssuer(issuer)
        .setAudience(audience)
        .setSubject(reader.clientId)
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(key ?? ((await importJWK(jwk, header.alg)) as CryptoKey));
      recordSecret(signed);
      return `Bearer ${signed}`;
    }

    beforeAll(async () => {
      const [signing] = await loadSigningJwks(t.config.keysDir, { generateIfMissing: false });
      if (!signing) throw new Error('no signing key');
      jwk = signing;
      recordSecret(String(jwk.d));
      expect(jwk.alg).toBe('RS256');
    });

    it('accepts RS256 with typ at+jwt (the control), refuses typ JWT, PS256 with the same key, another key and alg none', async () => {
      expect((await get(api, await forge({ alg: 'RS256', typ: 'at+jwt' }))).status).toBe(200);
      // An ID token-like JWT: right key, right claims, wrong type.
      expect((await get(api, await forge({ alg: 'RS256', typ: 'JWT' }))).status).toBe(401);
      expect((await get(api, await forge({ alg: 'RS256' }))).status).toBe(401);
      // The same RSA key with another algorithm: a valid signature, refused twice over (the API takes
      // RS256 only, and Gatehouse's JWKS pins each key to its alg, so jose finds no key for PS256).
      expect((await get(api, await forge({ alg: 'PS256', typ: 'at+jwt' }))).status).toBe(401);
      // Someone else's key under Gatehouse's kid.
      const { privateKey } = await generateKeyPair('RS256');
      expect((await get(api, await forge({ alg: 'RS256', typ: 'at+jwt' }, privateKey))).status).toBe(401);
      // HS256 keyed with the public modulus (the classic confusion attack) and no signature at all.
      const hmac = await forge({ alg: 'HS256', typ: 'at+jwt' }, new TextEncoder().encode(String(jwk.n)));
      expect((await get(api, hmac)).status).toBe(401);
      const unsecured = new UnsecuredJWT(claims()).setIssuer(issuer).setAudience(audience).setSubject(reader.clientId).setIssuedAt().setExpirationTime('5m').encode();
      const none = await get(api, `Bearer ${unsecured}`);
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toContain('error="invalid_token"');
    });
  });

  it('answers 503, not 401, while the key set cannot be fetched', async () => {
    const closed = await freePort();
    const unreachable = await start({ jwksUri: `http://127.0.0.1:${closed}/jwks` });
    const good = `Bearer ${await token(reader, 'read:orders')}`;
    const response = await get(unreachable, good);
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('5');
    expect(response.headers.get('www-authenticate')).toBeNull();
    expect(await response.json()).toMatchObject({ error: 'temporarily_unavailable' });
    const notKeys = await start({ jwksUri: `${issuer}/.well-known/openid-configuration/missing` });
    expect((await get(notKeys, good)).status).toBe(503);
  });

  describe('DPoP-bound tokens (RFC 9449): the DPoP scheme and a proof of the bound key', () => {
    interface ProofKey { privateKey: CryptoKey; publicJwk: JWK }
    let key: ProofKey;
    const newKey = async (): Promise<ProofKey> => {
      const pair = await generateKeyPair('ES256');
      return { privateKey: pair.privateKey, publicJwk: await exportJWK(pair.publicKey) };
    };
    const ath = (token: string) => createHash('sha256').update(token).digest('base64url');
    const proof = (signer: ProofKey, claims: Record<string, unknown>, header: Record<string, unknown> = {}) =>
      new SignJWT({ jti: randomUUID(), ...claims })
        .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: signer.publicJwk, ...header })
        .setIssuedAt(typeof claims.iat === 'number' ? claims.iat : Math.floor(Date.now() / 1000))
        .sign(signer.privateKey);

    /** A client-credentials token bound to `key` (a proof at Gatehouse's token endpoint). */
    async function dpopToken(auth: { clientId: string; clientSecret: string }, scope: string, signer = key) {
      const basic = Buffer.from(`${auth.clientId}:${auth.clientSecret}`).toString('base64');
      const response = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded', dpop: await proof(signer, { htm: 'POST', htu: `${issuer}/token` }) },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope }),
      });
      const body = (await response.json()) as { access_token: string; token_type: string };
      expect(response.status).toBe(200);
      expect(body.token_type).toBe('DPoP');
      recordSecret(body.access_token);
      return body.access_token;
    }
    const call = async (base: string, token: string, dpop: string | undefined, init: { method?: string; scheme?: string; body?: unknown } = {}) =>
      fetch(`${base}/orders`, {
        method: init.method ?? 'GET',
        headers: { authorization: `${init.scheme ?? 'DPoP'} ${token}`, ...(dpop ? { dpop } : {}), ...(init.body ? { 'content-type': 'application/json' } : {}) },
        ...(init.body ? { body: JSON.stringify(init.body) } : {}),
      });

    beforeAll(async () => {
      key = await newKey();
    });

    it('accepts a bound token with a proof for the request, as Gatehouse issued it (cnf.jkt)', async () => {
      const token = await dpopToken(writer, 'read:orders write:orders');
      expect(decodeJwt(token).cnf).toMatchObject({ jkt: expect.any(String) });
      const listed = await call(api, token, await proof(key, { htm: 'GET', htu: `${api}/orders`, ath: ath(token) }));
      expect(listed.status).toBe(200);
      const created = await call(api, token, await proof(key, { htm: 'POST', htu: `${api}/orders`, ath: ath(token) }), { method: 'POST', body: { item: 'dpop tea', quantity: 1 } });
      expect(created.status).toBe(201);
      // A query string is not part of htu (RFC 9449 §4.3).
      const withQuery = await fetch(`${api}/orders?page=1`, { headers: { authorization: `DPoP ${token}`, dpop: await proof(key, { htm: 'GET', htu: `${api}/orders`, ath: ath(token) }) } });
      expect(withQuery.status).toBe(200);
    });

    it('refuses a bound token sent as Bearer, or without a proof, with a DPoP challenge', async () => {
      const token = await dpopToken(reader, 'read:orders');
      const asBearer = await call(api, token, undefined, { scheme: 'Bearer' });
      expect(asBearer.status).toBe(401);
      expect(asBearer.headers.get('www-authenticate')).toMatch(/^DPoP realm="orders", error="invalid_token", error_description="this access token is DPoP-bound[^"]*", algs="ES256 Ed25519 EdDSA"$/);
      expect(await asBearer.json()).toMatchObject({ error: 'invalid_token' });
      // …even with a valid proof beside it: the scheme says how the token is meant.
      expect((await call(api, token, await proof(key, { htm: 'GET', htu: `${api}/orders`, ath: ath(token) }), { scheme: 'Bearer' })).status).toBe(401);
      const noProof = await call(api, token, undefined);
      expect(noProof.status).toBe(400);
      expect(noProof.headers.get('www-authenticate')).toMatch(/^DPoP realm="orders", error="invalid_request"/);
    });

    it('refuses a plain bearer token sent with the DPoP scheme', async () => {
      const plain = await token(reader, 'read:orders');
      const response = await call(api, plain, await proof(key, { htm: 'GET', htu: `${api}/orders`, ath: ath(plain) }));
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ error: 'invalid_token' });
    });

    it('refuses each bad proof with 401 invalid_dpop_proof (or invalid_token for another key), and serves nothing', async () => {
      const token = await dpopToken(reader, 'read:orders');
      const now = Math.floor(Date.now() / 1000);
      const good = { htm: 'GET', htu: `${api}/orders`, ath: ath(token) };
      const stranger = await newKey();
      const { privateKey: extractable } = await generateKeyPair('ES256', { extractable: true });
      const hmacSecret = randomBytes(32);
      const cases: Array<[string, () => Promise<string>, string]> = [
        ['htm POST for a GET', () => proof(key, { ...good, htm: 'POST' }), 'invalid_dpop_proof'],
        ['htu of another path', () => proof(key, { ...good, htu: `${api}/healthz` }), 'invalid_dpop_proof'],
        ['htu of another origin', () => proof(key, { ...good, htu: 'https://orders.example.test/orders' }), 'invalid_dpop_proof'],
        ['iat two minutes ago', () => proof(key, { ...good, iat: now - 120 }), 'invalid_dpop_proof'],
        ['iat two minutes ahead', () => proof(key, { ...good, iat: now + 120 }), 'invalid_dpop_proof'],
        ['ath of another token', () => proof(key, { ...good, ath: ath(`${token}x`) }), 'invalid_dpop_proof'],
        ['no ath', () => proof(key, { htm: good.htm, htu: good.htu }), 'invalid_dpop_proof'],
        ['typ JWT', () => proof(key, good, { typ: 'JWT' }), 'invalid_dpop_proof'],
        ['a private key in the header', async () => proof({ privateKey: extractable, publicJwk: await exportJWK(extractable) }, good), 'invalid_dpop_proof'],
        ['HS256 with the key in the header', () => new SignJWT({ ...good, jti: randomUUID() }).setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk: { kty: 'oct', k: hmacSecret.toString('base64url') } as JWK }).setIssuedAt().sign(hmacSecret), 'invalid_dpop_proof'],
        ['signed by a key other than the header names', () => proof({ privateKey: stranger.privateKey, publicJwk: key.publicJwk }, good), 'invalid_dpop_proof'],
        ['a valid proof of another key than the token is bound to', () => proof(stranger, good), 'invalid_token'],
      ];
      for (const [name, make, error] of cases) {
        const response = await call(api, token, await make());
        expect(response.status, name).toBe(401);
        expect(response.headers.get('www-authenticate'), name).toMatch(new RegExp(`^DPoP realm="orders", error="${error}"`));
        expect(await response.json(), name).toMatchObject({ error });
      }
    });

    it('refuses a proof used twice (jti cache), accepts a fresh one', async () => {
      const token = await dpopToken(reader, 'read:orders');
      const once = await proof(key, { htm: 'GET', htu: `${api}/orders`, ath: ath(token) });
      expect((await call(api, token, once)).status).toBe(200);
      const replayed = await call(api, token, once);
      expect(replayed.status).toBe(401);
      expect(await replayed.json()).toMatchObject({ error: 'invalid_dpop_proof', error_description: 'the DPoP proof was used before' });
      expect((await call(api, token, await proof(key, { htm: 'GET', htu: `${api}/orders`, ath: ath(token) }))).status).toBe(200);
    });

    it('behind a proxy, checks htu against publicOrigin', async () => {
      const proxied = await start({ publicOrigin: 'https://orders.example.test' });
      const token = await dpopToken(reader, 'read:orders');
      expect((await call(proxied, token, await proof(key, { htm: 'GET', htu: 'https://orders.example.test/orders', ath: ath(token) }))).status).toBe(200);
      expect((await call(proxied, token, await proof(key, { htm: 'GET', htu: `${proxied}/orders`, ath: ath(token) }))).status).toBe(401);
    });
  });

  it('answers CORS for the origins it lists, and lets their scripts read WWW-Authenticate', async () => {
    const withCors = await start({ allowedOrigins: ['http://localhost:5173'] });
    const preflight = await fetch(`${withCors}/orders`, {
      method: 'OPTIONS',
      headers: { origin: 'http://localhost:5173', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('http://localhost:5173');
    expect(preflight.headers.get('access-control-allow-headers')).toBe('Authorization, Content-Type, DPoP');
    const refused = await fetch(`${withCors}/orders`, { headers: { origin: 'http://localhost:5173' } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('access-control-allow-origin')).toBe('http://localhost:5173');
    expect(refused.headers.get('access-control-expose-headers')).toBe('WWW-Authenticate');
    const stranger = await fetch(`${withCors}/orders`, { headers: { origin: 'https://evil.example' } });
    expect(stranger.headers.get('access-control-allow-origin')).toBeNull();
    expect((await fetch(`${api}/orders`, { headers: { origin: 'http://localhost:5173' } })).headers.get('access-control-allow-origin')).toBeNull();
  });
});
