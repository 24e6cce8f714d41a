import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Agent, authorizeUrl, pkce, signIn } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';

// Protocol cases: the servers listen on no port; every request goes to the app's handler in this
// process (t.fetch); nothing may go over a socket (global fetch fails here).
beforeAll(() => {
  vi.stubGlobal('fetch', () => Promise.reject(new Error('fetch over a socket in an in-process test: use t.fetch')));
});
afterAll(() => {
  vi.unstubAllGlobals();
});

const REDIRECT = 'http://127.0.0.1:8791/cb';

type DPoPKeyPair = Parameters<typeof oauth.DPoP>[1];

interface ProofKey {
  privateKey: CryptoKey;
  publicJwk: JWK;
  thumbprint: string;
  /** The same pair as oauth4webapi takes it (a WebCrypto CryptoKeyPair). */
  pair: DPoPKeyPair;
}

async function proofKey(): Promise<ProofKey> {
  const pair = await generateKeyPair('ES256');
  const publicJwk = await exportJWK(pair.publicKey);
  return { privateKey: pair.privateKey, publicJwk, thumbprint: await calculateJwkThumbprint(publicJwk), pair: pair as unknown as DPoPKeyPair };
}

/** A DPoP proof built by hand (jose), so that each field can be wrong on purpose. */
async function proof(
  key: ProofKey,
  claims: { htm: string; htu: string; iat?: number; jti?: string; ath?: string; nonce?: string },
  header: Record<string, unknown> = {},
): Promise<string> {
  const { iat = Math.floor(Date.now() / 1000), jti = randomUUID(), ...rest } = claims;
  return new SignJWT({ ...rest, jti })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.publicJwk, ...header })
    .setIssuedAt(iat)
    .sign(key.privateKey);
}

const ath = (token: string) => createHash('sha256').update(token).digest('base64url');

describe('DPoP (RFC 9449)', () => {
  let t: TestServer;
  let base: string;
  let as: oauth.AuthorizationServer;
  let service: { clientId: string; clientSecret: string; resource: string };
  /** oauth4webapi's options for this in-process server. */
  let via: { [oauth.customFetch]: typeof fetch; [oauth.allowInsecureRequests]: true };

  /** POSTs client credentials with these extra headers; records any token it gets. */
  async function clientCredentials(headers: Record<string, string>, client = service) {
    const basic = Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`).toString('base64');
    const response = await t.fetch(`${base}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${basic}`, ...headers },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'read' }),
    });
    const body = (await response.json()) as Record<string, unknown>;
    if (typeof body.access_token === 'string') recordSecret(body.access_token);
    return { status: response.status, body, headers: response.headers };
  }

  beforeAll(async () => {
    t = await startTestServer({ name: 'dpop', listen: false });
    base = t.server.url;
    via = { [oauth.customFetch]: t.fetch as typeof fetch, [oauth.allowInsecureRequests]: true };
    as = await oauth.processDiscoveryResponse(new URL(t.config.issuer), await oauth.discoveryRequest(new URL(t.config.issuer), { ...via, algorithm: 'oidc' }));
    service = await t.build.serviceClient({ scope: 'read' });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('is announced in discovery with asymmetric algorithms only', () => {
    expect(as.dpop_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256']));
    expect(as.dpop_signing_alg_values_supported?.some((alg) => alg.startsWith('HS'))).toBe(false);
  });

  it('binds a client-credentials JWT access token to the proof key: token_type DPoP, cnf.jkt', async () => {
    const key = await proofKey();
    const client: oauth.Client = { client_id: service.clientId };
    const response = await oauth.clientCredentialsGrantRequest(as, client, oauth.ClientSecretBasic(service.clientSecret), { scope: 'read' }, { ...via, DPoP: oauth.DPoP(client, key.pair) });
    // The server hands out a nonce with every DPoP answer (it has a nonce secret), even when not required.
    expect(response.headers.get('dpop-nonce')).toMatch(/^[\w-]{20,}$/);
    const tokens = await oauth.processClientCredentialsResponse(as, client, response);
    recordSecret(tokens.access_token);
    expect(tokens.token_type).toBe('dpop');
    expect(decodeProtectedHeader(tokens.access_token).typ).toBe('at+jwt');
    const claims = decodeJwt(tokens.access_token);
    expect(claims.aud).toBe(service.resource);
    expect(claims.cnf).toEqual({ jkt: key.thumbprint });

    // Without a proof the same client gets a plain Bearer token, with no cnf.
    const plain = await clientCredentials({});
    expect(plain.status).toBe(200);
    expect(plain.body.token_type).toBe('Bearer');
    expect(decodeJwt(String(plain.body.access_token)).cnf).toBeUndefined();
  });

  describe('refuses a bad proof at the token endpoint with invalid_dpop_proof and no token', () => {
    const cases: Array<[string, (key: ProofKey) => Promise<string>]> = [
      ['htu of another endpoint', (key) => proof(key, { htm: 'POST', htu: `${base}/me` })],
      ['htu of another server', (key) => proof(key, { htm: 'POST', htu: 'https://elsewhere.example.test/token' })],
      ['htm GET', (key) => proof(key, { htm: 'GET', htu: `${base}/token` })],
      ['no jti', (key) => new SignJWT({ htm: 'POST', htu: `${base}/token` }).setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.publicJwk }).setIssuedAt().sign(key.privateKey)],
      ['typ JWT instead of dpop+jwt', (key) => proof(key, { htm: 'POST', htu: `${base}/token` }, { typ: 'JWT' })],
      [
        'a private key in the header',
        async (key) => {
          const { privateKey } = await generateKeyPair('ES256', { extractable: true });
          const privateJwk = await exportJWK(privateKey);
          return proof({ ...key, privateKey, publicJwk: privateJwk }, { htm: 'POST', htu: `${base}/token` });
        },
      ],
      [
        'a symmetric algorithm (HS256, key in the header)',
        () => {
          const secret = randomBytes(32);
          return new SignJWT({ htm: 'POST', htu: `${base}/token`, jti: randomUUID() })
            .setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk: { kty: 'oct', k: secret.toString('base64url') } as JWK })
            .setIssuedAt()
            .sign(secret);
        },
      ],
      [
        'a signature by another key than the header names',
        async (key) => {
          const other = await proofKey();
          return proof({ ...key, privateKey: other.privateKey }, { htm: 'POST', htu: `${base}/token` });
        },
      ],
      ['not a JWT at all', () => Promise.resolve('not-a-proof')],
    ];

    it.each(cases)('%s', async (_name, make) => {
      const { status, body, headers } = await clientCredentials({ dpop: await make(await proofKey()) });
      expect(status).toBe(400);
      expect(body.error).toBe('invalid_dpop_proof');
      expect(body.access_token).toBeUndefined();
      expect(headers.get('cache-control')).toBe('no-store');
    });
  });

  it('a client registered with dpop_bound_access_tokens gets no token without a proof, a DPoP-bound one with it', async () => {
    const bound = await t.build.serviceClient({ scope: 'read' });
    await t.build.update(bound.clientId, { dpop_bound_access_tokens: true });
    const refused = await clientCredentials({}, bound);
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('invalid_grant');
    expect(refused.body.access_token).toBeUndefined();

    const key = await proofKey();
    const client: oauth.Client = { client_id: bound.clientId };
    const response = await oauth.clientCredentialsGrantRequest(as, client, oauth.ClientSecretBasic(bound.clientSecret), { scope: 'read' }, { ...via, DPoP: oauth.DPoP(client, key.pair) });
    const tokens = await oauth.processClientCredentialsResponse(as, client, response);
    recordSecret(tokens.access_token);
    expect(tokens.token_type).toBe('dpop');
    expect(decodeJwt(tokens.access_token).cnf).toEqual({ jkt: key.thumbprint });

    // A bad proof is no way around it either.
    const stale = await clientCredentials({ dpop: await proof(key, { htm: 'GET', htu: `${base}/token` }) }, bound);
    expect(stale.status).toBe(400);
    expect(stale.body.error).toBe('invalid_dpop_proof');
  });

  // With a nonce secret, a stale or future iat is answered as RFC 9449 §8 says: use a nonce instead.
  it.each([
    ['ten minutes ago', -600],
    ['ten minutes ahead', 600],
  ])('answers a proof whose iat is %s use_dpop_nonce with a nonce, and no token', async (_name, offset) => {
    const iat = Math.floor(Date.now() / 1000) + offset;
    const { status, body, headers } = await clientCredentials({ dpop: await proof(await proofKey(), { htm: 'POST', htu: `${base}/token`, iat }) });
    expect(status).toBe(400);
    expect(body.error).toBe('use_dpop_nonce');
    expect(body.error_description).toMatch(/iat is not recent enough/);
    expect(body.access_token).toBeUndefined();
    expect(headers.get('dpop-nonce')).toMatch(/^[\w-]{20,}$/);
  });

  it('refuses a replayed proof (the same jti): the first use gets a token, the second nothing', async () => {
    const key = await proofKey();
    const once = await proof(key, { htm: 'POST', htu: `${base}/token` });
    const first = await clientCredentials({ dpop: once });
    expect(first.status).toBe(200);
    expect(first.body.token_type).toBe('DPoP');
    const again = await clientCredentials({ dpop: once });
    expect(again.status).toBe(400);
    // oidc-provider words every invalid_grant the same ("grant request is invalid"): only the proof's reuse differs from the first request.
    expect(again.body.error).toBe('invalid_grant');
    expect(again.body.access_token).toBeUndefined();

    // The jti is remembered in the ephemeral store (ReplayDetection → Redis), not in the process.
    const replay = await t.server.store.find('ReplayDetection', createHash('sha256').update(`${service.clientId}${decodeJwt(once).jti}`).digest('base64url'));
    expect(replay).toMatchObject({ iss: service.clientId });
  });

  it('of the same proof sent several times at once, exactly one gets a token', async () => {
    const key = await proofKey();
    for (let round = 0; round < 5; round += 1) {
      const once = await proof(key, { htm: 'POST', htu: `${base}/token` });
      const answers = await Promise.all(Array.from({ length: 4 }, () => clientCredentials({ dpop: once })));
      expect(answers.map((answer) => answer.status).sort()).toEqual([200, 400, 400, 400]);
      for (const refused of answers.filter((answer) => answer.status !== 200)) {
        expect(refused.body.error).toBe('invalid_grant');
        expect(refused.body.access_token).toBeUndefined();
      }
    }
  });

  describe('a public client: code flow, refresh token bound to the key, userinfo', () => {
    let publicClient: { clientId: string };
    let person: { email: string; password: string };
    let key: ProofKey;
    let dpop: oauth.DPoPHandle;
    let client: oauth.Client;
    let accessToken: string;
    let refreshToken: string;

    beforeAll(async () => {
      publicClient = await t.build.client({
        client_name: 'DPoP SPA',
        redirect_uris: [REDIRECT],
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        scope: 'openid email offline_access',
      });
      person = await t.build.person();
      key = await proofKey();
      client = { client_id: publicClient.clientId };
      dpop = oauth.DPoP(client, key.pair);
      const { verifier, challenge } = pkce();
      const state = randomBytes(8).toString('hex');
      const agent = new Agent(base, t.fetch);
      const url = authorizeUrl({ client_id: publicClient.clientId, redirect_uri: REDIRECT, code_challenge: challenge, code_challenge_method: 'S256', scope: 'openid email offline_access', prompt: 'consent', state });
      const { redirect } = await signIn(agent, { url, email: person.email, password: person.password });
      const params = oauth.validateAuthResponse(as, client, redirect.searchParams, state);
      const response = await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, REDIRECT, verifier, { ...via, DPoP: dpop });
      const tokens = await oauth.processAuthorizationCodeResponse(as, client, response, { requireIdToken: true });
      accessToken = tokens.access_token;
      refreshToken = tokens.refresh_token ?? '';
      for (const value of [tokens.access_token, tokens.refresh_token, tokens.id_token]) recordSecret(value);
      expect(tokens.token_type).toBe('dpop');
      expect(refreshToken).not.toBe('');
    });

    it('a public client registered with dpop_bound_access_tokens cannot redeem its code without a proof', async () => {
      const bound = await t.build.client({
        client_name: 'bound SPA',
        redirect_uris: [REDIRECT],
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        dpop_bound_access_tokens: true,
      });
      const { verifier, challenge } = pkce();
      const url = authorizeUrl({ client_id: bound.clientId, redirect_uri: REDIRECT, code_challenge: challenge, code_challenge_method: 'S256' });
      const { redirect } = await signIn(new Agent(base, t.fetch), { url, email: person.email, password: person.password });
      const code = redirect.searchParams.get('code');
      expect(code).toBeTruthy();
      recordSecret(code!);
      const response = await t.fetch(`${base}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'authorization_code', code: code!, redirect_uri: REDIRECT, code_verifier: verifier, client_id: bound.clientId }),
      });
      expect(response.status).toBe(400);
      const body = (await response.json()) as Record<string, unknown>;
      expect(body.error).toBe('invalid_grant');
      expect(body.access_token).toBeUndefined();
    });

    /** The refresh token's payload as the durable adapter stored it in PostgreSQL. */
    async function storedRefreshPayloads(): Promise<Array<Record<string, unknown>>> {
      const rows = await t.server.registry.db.selectFrom('oidc_durable').select(['payload']).where('model', '=', 'RefreshToken').where('client_id', '=', publicClient.clientId).execute();
      return rows.map((row) => row.payload as Record<string, unknown>);
    }

    it('stores the refresh token with its key binding (jkt) in PostgreSQL', async () => {
      const payloads = await storedRefreshPayloads();
      expect(payloads).toHaveLength(1);
      expect(payloads[0]?.jkt).toBe(key.thumbprint);
    });

    it('answers userinfo for the DPoP-bound token with a proof (ath), and refuses it as Bearer, with a wrong ath, or with another key', async () => {
      const ok = await oauth.userInfoRequest(as, client, accessToken, { ...via, DPoP: dpop });
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as { email?: string }).email).toBe(person.email);

      const bearer = await t.fetch(`${base}/me`, { headers: { authorization: `Bearer ${accessToken}` } });
      expect(bearer.status).toBe(401);
      expect(((await bearer.json()) as { error: string }).error).toBe('invalid_token');
      expect(bearer.headers.get('www-authenticate')).toMatch(/^DPoP /);

      const wrongAth = await t.fetch(`${base}/me`, {
        headers: { authorization: `DPoP ${accessToken}`, dpop: await proof(key, { htm: 'GET', htu: `${base}/me`, ath: ath(`${accessToken}x`) }) },
      });
      expect(wrongAth.status).toBe(401);
      expect(((await wrongAth.json()) as { error: string; error_description: string }).error).toBe('invalid_dpop_proof');
      expect(wrongAth.headers.get('www-authenticate')).toMatch(/^DPoP .*error="invalid_dpop_proof"/);

      const noAth = await t.fetch(`${base}/me`, { headers: { authorization: `DPoP ${accessToken}`, dpop: await proof(key, { htm: 'GET', htu: `${base}/me` }) } });
      expect(noAth.status).toBe(401);
      expect(((await noAth.json()) as { error: string }).error).toBe('invalid_dpop_proof');

      const other = await proofKey();
      const otherKey = await t.fetch(`${base}/me`, { headers: { authorization: `DPoP ${accessToken}`, dpop: await proof(other, { htm: 'GET', htu: `${base}/me`, ath: ath(accessToken) }) } });
      expect(otherKey.status).toBe(401);
      expect(((await otherKey.json()) as { error: string }).error).toBe('invalid_token');

      // The DPoP scheme without a proof is a malformed request.
      const noProof = await t.fetch(`${base}/me`, { headers: { authorization: `DPoP ${accessToken}` } });
      expect(noProof.status).toBe(400);
      expect(((await noProof.json()) as { error: string }).error).toBe('invalid_request');
    });

    it('refuses a refresh without a proof or with another key, spending nothing; the key holder refreshes and the new token keeps the binding', async () => {
      const form = (extra: Record<string, string> = {}) => new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: publicClient.clientId, ...extra });
      const post = async (headers: Record<string, string>) => {
        const response = await t.fetch(`${base}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: form() });
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      };
      const without = await post({});
      expect(without.status).toBe(400);
      expect(without.body).toMatchObject({ error: 'invalid_grant' });
      expect(without.body.access_token).toBeUndefined();

      const stranger = await post({ dpop: await proof(await proofKey(), { htm: 'POST', htu: `${base}/token` }) });
      expect(stranger.status).toBe(400);
      expect(stranger.body).toMatchObject({ error: 'invalid_grant' });
      expect(stranger.body.access_token).toBeUndefined();

      // Neither attempt spent the token (the durable row is unconsumed): the holder of the key refreshes.
      const response = await oauth.refreshTokenGrantRequest(as, client, oauth.None(), refreshToken, { ...via, DPoP: dpop });
      const tokens = await oauth.processRefreshTokenResponse(as, client, response);
      for (const value of [tokens.access_token, tokens.refresh_token, tokens.id_token]) recordSecret(value);
      expect(tokens.token_type).toBe('dpop');
      expect(tokens.refresh_token).toBeDefined();
      expect(tokens.refresh_token).not.toBe(refreshToken);

      // The rotation (written by the durable adapter as one statement) keeps the binding.
      const payloads = await storedRefreshPayloads();
      expect(payloads).toHaveLength(2);
      expect(payloads.map((payload) => payload.jkt)).toEqual([key.thumbprint, key.thumbprint]);

      // …and the successor, read back through the refresh read-ahead, is bound too.
      const stolen = await t.fetch(`${base}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: await proof(await proofKey(), { htm: 'POST', htu: `${base}/token` }) },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: String(tokens.refresh_token), client_id: publicClient.clientId }),
      });
      expect(stolen.status).toBe(400);
      expect(((await stolen.json()) as { error: string }).error).toBe('invalid_grant');
    });
  });

  describe('with DPOP_REQUIRE_NONCE on a second node sharing KEYS_DIR', () => {
    let n: TestServer;
    let nService: { clientId: string; clientSecret: string; resource: string };
    let nAs: oauth.AuthorizationServer;

    beforeAll(async () => {
      n = await startTestServer({ name: 'dpop-nonce', listen: false, env: { DPOP_REQUIRE_NONCE: 'true', KEYS_DIR: t.config.keysDir } });
      nService = await n.build.serviceClient({ scope: 'read' });
      const nVia = { [oauth.customFetch]: n.fetch as typeof fetch, [oauth.allowInsecureRequests]: true as const };
      nAs = await oauth.processDiscoveryResponse(new URL(n.config.issuer), await oauth.discoveryRequest(new URL(n.config.issuer), { ...nVia, algorithm: 'oidc' }));
    });
    afterAll(async () => {
      await n?.close();
    });

    const nTokenRequest = async (dpopProof: string | undefined) => {
      const basic = Buffer.from(`${encodeURIComponent(nService.clientId)}:${encodeURIComponent(nService.clientSecret)}`).toString('base64');
      const response = await n.fetch(`${n.server.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${basic}`, ...(dpopProof ? { dpop: dpopProof } : {}) },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'read' }),
      });
      const body = (await response.json()) as Record<string, unknown>;
      if (typeof body.access_token === 'string') recordSecret(body.access_token);
      return { status: response.status, body, nonce: response.headers.get('dpop-nonce') };
    };

    it('answers a proof without a nonce use_dpop_nonce with a DPoP-Nonce; oauth4webapi retries with it and gets a DPoP token', async () => {
      const key = await proofKey();
      const first = await nTokenRequest(await proof(key, { htm: 'POST', htu: `${n.server.url}/token` }));
      expect(first.status).toBe(400);
      expect(first.body.error).toBe('use_dpop_nonce');
      expect(first.body.access_token).toBeUndefined();
      expect(first.nonce).toMatch(/^[\w-]{20,}$/);

      const client: oauth.Client = { client_id: nService.clientId };
      const handle = oauth.DPoP(client, key.pair);
      const nVia = { [oauth.customFetch]: n.fetch as typeof fetch, [oauth.allowInsecureRequests]: true as const };
      const request = () => oauth.clientCredentialsGrantRequest(nAs, client, oauth.ClientSecretBasic(nService.clientSecret), { scope: 'read' }, { ...nVia, DPoP: handle });
      let caught: unknown;
      try {
        await oauth.processClientCredentialsResponse(nAs, client, await request());
      } catch (error) {
        caught = error;
      }
      expect(oauth.isDPoPNonceError(caught)).toBe(true);
      const tokens = await oauth.processClientCredentialsResponse(nAs, client, await request());
      recordSecret(tokens.access_token);
      expect(tokens.token_type).toBe('dpop');
      expect(decodeJwt(tokens.access_token).cnf).toEqual({ jkt: key.thumbprint });
    });

    it('accepts a nonce the other node handed out (one secret derived from the shared keys), refuses one it did not', async () => {
      const key = await proofKey();
      // Node t does not require nonces but hands one out with every DPoP answer.
      const fromT = await clientCredentials({ dpop: await proof(key, { htm: 'POST', htu: `${base}/token` }) });
      expect(fromT.status).toBe(200);
      const nonce = fromT.headers.get('dpop-nonce');
      expect(nonce).toMatch(/^[\w-]{20,}$/);

      const accepted = await nTokenRequest(await proof(key, { htm: 'POST', htu: `${n.server.url}/token`, nonce: nonce! }));
      expect(accepted.status).toBe(200);
      expect(accepted.body.token_type).toBe('DPoP');

      const forged = await nTokenRequest(await proof(key, { htm: 'POST', htu: `${n.server.url}/token`, nonce: randomBytes(32).toString('base64url') }));
      expect(forged.status).toBe(400);
      expect(forged.body.error).toBe('use_dpop_nonce');
      expect(forged.body.access_token).toBeUndefined();
      expect(forged.nonce).toMatch(/^[\w-]{20,}$/);
    });

    it('with a nonce, an old iat is no reason to refuse (the nonce proves freshness)', async () => {
      const key = await proofKey();
      const { nonce } = await nTokenRequest(undefined);
      expect(nonce).toBeNull();
      const challenge = await nTokenRequest(await proof(key, { htm: 'POST', htu: `${n.server.url}/token` }));
      const accepted = await nTokenRequest(await proof(key, { htm: 'POST', htu: `${n.server.url}/token`, nonce: challenge.nonce!, iat: Math.floor(Date.now() / 1000) - 3600 }));
      expect(accepted.status).toBe(200);
    });
  });
});
