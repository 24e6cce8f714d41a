import { createRemoteJWKSet, customFetch, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, tokenRequest as tokenRequestVia, type TestServer } from '../fixtures/server.js';

// Protocol cases: the server listens on no port; every request goes to the app's handler in this
// process (t.fetch), and the clients, APIs and grants are set up through the services (t.build).
describe('client credentials with RS256 JWT access tokens', () => {
  let t: TestServer;
  let base: string;
  const tokenRequest = (url: string, form: Record<string, string>, auth?: { clientId: string; clientSecret: string }) => tokenRequestVia(url, form, auth, t.fetch);

  beforeAll(async () => {
    // Nothing in this file may go over a socket: a request that did would fail here.
    vi.stubGlobal('fetch', () => Promise.reject(new Error('fetch over a socket in an in-process test: use t.fetch')));
    t = await startTestServer({ name: 'client-credentials', listen: false });
    base = t.server.url;
  });
  afterAll(async () => {
    vi.unstubAllGlobals();
    await t.close();
  });

  it('issues an RFC 9068 access token that verifies with the JWKS alone', async () => {
    const { resource, clientId, clientSecret } = await t.build.serviceClient({ scope: 'read write', resourceScope: 'read write admin' });
    const { status, body } = await tokenRequest(base, { grant_type: 'client_credentials', scope: 'read' }, { clientId, clientSecret });
    expect(status).toBe(200);
    expect(body.token_type).toBe('Bearer');
    expect(body.expires_in).toBe(600);
    const token = String(body.access_token);
    const header = decodeProtectedHeader(token);
    expect(header.typ).toBe('at+jwt');
    expect(header.alg).toBe('RS256');
    expect(typeof header.kid).toBe('string');

    const jwks = createRemoteJWKSet(new URL(`${base}/jwks`), { [customFetch]: t.fetch });
    const { payload } = await jwtVerify(token, jwks, { issuer: t.config.issuer, audience: resource, typ: 'at+jwt' });
    expect(payload.sub).toBe(clientId);
    expect(payload.client_id).toBe(clientId);
    expect(payload.scope).toBe('read');
    expect(typeof payload.jti).toBe('string');
    expect(payload.exp! - payload.iat!).toBe(600);
  });

  it('accepts client_secret_post as well', async () => {
    const { clientId, clientSecret } = await t.build.serviceClient({ authMethod: 'client_secret_post' });
    const ok = await tokenRequest(base, { grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret });
    expect(ok.status).toBe(200);
    expect(typeof ok.body.access_token).toBe('string');
    const wrong = await tokenRequest(base, { grant_type: 'client_credentials', client_id: clientId, client_secret: `${clientSecret}x` });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toBe('invalid_client');
  });

  it('uses the resource server TTL and names the requested resource', async () => {
    const { identifier: resource } = await t.build.resource({ scope: 'x', access_token_ttl: 120 });
    const auth = await t.build.client({ client_name: 'no default' });
    await t.build.grant(auth.clientId, resource, 'x');
    const { status, body } = await tokenRequest(base, { grant_type: 'client_credentials', resource, scope: 'x' }, auth);
    expect(status).toBe(200);
    expect(body.expires_in).toBe(120);
    const payload = JSON.parse(Buffer.from(String(body.access_token).split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    expect(payload.aud).toBe(resource);

    const missing = await tokenRequest(base, { grant_type: 'client_credentials', scope: 'x' }, auth);
    expect(missing.status).toBe(400);
    expect(missing.body.error).toBe('invalid_target');
  });

  it('refuses a wrong secret with 401 invalid_client', async () => {
    const { clientId } = await t.build.serviceClient();
    const { status, body } = await tokenRequest(base, { grant_type: 'client_credentials' }, { clientId, clientSecret: 'not-the-secret' });
    expect(status).toBe(401);
    expect(body.error).toBe('invalid_client');
  });

  it('refuses an unknown client with 401 invalid_client', async () => {
    const { status, body } = await tokenRequest(base, { grant_type: 'client_credentials' }, { clientId: 'nobody', clientSecret: 'x' });
    expect(status).toBe(401);
    expect(body.error).toBe('invalid_client');
  });

  it('refuses an unregistered resource with invalid_target', async () => {
    const { clientId, clientSecret } = await t.build.serviceClient();
    const { status, body } = await tokenRequest(
      base,
      { grant_type: 'client_credentials', resource: 'https://unregistered.example.test' },
      { clientId, clientSecret },
    );
    expect(status).toBe(400);
    expect(body.error).toBe('invalid_target');
  });

  it('refuses a scope the resource does not offer, or the client may not ask for, with invalid_scope', async () => {
    const { clientId, clientSecret } = await t.build.serviceClient({ scope: 'read', resourceScope: 'read write' });
    const notOffered = await tokenRequest(base, { grant_type: 'client_credentials', scope: 'delete' }, { clientId, clientSecret });
    expect(notOffered.status).toBe(400);
    expect(notOffered.body.error).toBe('invalid_scope');
    const notAllowed = await tokenRequest(base, { grant_type: 'client_credentials', scope: 'write' }, { clientId, clientSecret });
    expect(notAllowed.status).toBe(400);
    expect(notAllowed.body.error).toBe('invalid_scope');
  });

  it('refuses a scope taken from the client after it was granted, on the next request after the change', async () => {
    const { clientId, clientSecret } = await t.build.serviceClient({ scope: 'read write', resourceScope: 'read write' });
    const asked = { grant_type: 'client_credentials', scope: 'read write' };
    for (let i = 0; i < 3; i += 1) expect((await tokenRequest(base, asked, { clientId, clientSecret })).status).toBe(200);
    await t.build.update(clientId, { scope: 'read' });
    // The registry cache sees the change within its poll interval (100 ms here).
    const deadline = Date.now() + 5_000;
    let answer = await tokenRequest(base, asked, { clientId, clientSecret });
    while (answer.status === 200 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      answer = await tokenRequest(base, asked, { clientId, clientSecret });
    }
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe('invalid_scope');
    const narrowed = await tokenRequest(base, { grant_type: 'client_credentials', scope: 'read' }, { clientId, clientSecret });
    expect(narrowed.status).toBe(200);
  });

  it('refuses a grant the client is not registered for with unauthorized_client', async () => {
    const { identifier: resource } = await t.build.resource({ scope: 'read' });
    const web = await t.build.client({
      client_name: 'web app',
      redirect_uris: ['https://app.example.test/cb'],
      grant_types: ['authorization_code'],
      default_resource: resource,
    });
    const { status, body } = await tokenRequest(base, { grant_type: 'client_credentials' }, web);
    expect(body).toMatchObject({ error: 'unauthorized_client' });
    expect(status).toBe(400);
  });

  describe('private_key_jwt', () => {
    async function keyClient() {
      const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
      const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
      const { identifier: resource } = await t.build.resource({ scope: 'read' });
      const created = await t.build.client({ client_name: 'key client', token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk] }, default_resource: resource });
      expect(created.clientSecret).toBe('');
      return { clientId: created.clientId, privateKey, resource };
    }

    type PrivateKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
    const assertion = (clientId: string, privateKey: PrivateKey, audience: string, jti = randomUUID(), alg = 'ES256') =>
      new SignJWT({})
        .setProtectedHeader({ alg, kid: 'k1' })
        .setIssuer(clientId)
        .setSubject(clientId)
        .setAudience(audience)
        .setJti(jti)
        .setIssuedAt()
        .setExpirationTime('1m')
        .sign(privateKey);

    it('issues a token for a signed client assertion and refuses its replay', async () => {
      const { clientId, privateKey, resource } = await keyClient();
      const jwt = await assertion(clientId, privateKey, t.config.issuer);
      recordSecret(jwt);
      const form = {
        grant_type: 'client_credentials',
        client_id: clientId,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: jwt,
      };
      const first = await tokenRequest(base, form);
      expect(first.status).toBe(200);
      const payload = JSON.parse(Buffer.from(String(first.body.access_token).split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
      expect(payload.aud).toBe(resource);

      const replay = await tokenRequest(base, form);
      expect(replay.status).toBe(401);
      expect(replay.body.error).toBe('invalid_client');
    });

    it('refuses an assertion signed by another key', async () => {
      const { clientId } = await keyClient();
      const other = await generateKeyPair('ES256');
      const jwt = await assertion(clientId, other.privateKey, t.config.issuer);
      const { status, body } = await tokenRequest(base, {
        grant_type: 'client_credentials',
        client_id: clientId,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: jwt,
      });
      expect(status).toBe(401);
      expect(body.error).toBe('invalid_client');
    });
  });
});
