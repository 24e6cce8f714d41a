import { calculateJwkThumbprint, createLocalJWKSet, decodeProtectedHeader, exportJWK, jwtVerify, type JSONWebKeySet } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadKeys } from '../../src/keys/key-store.js';
import { ValidationError } from '../../src/services/errors.js';
import type { BuiltPerson } from '../fixtures/builders.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { Agent, authorize, clientKey, REDIRECT_URI, relyingParty, type RelyingParty } from '../fixtures/oauth.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';

type Json = Record<string, unknown>;

/**
 * The FAPI 2.0 Security Profile for clients of profile fapi2, on a server in this process: a full
 * flow as a FAPI 2.0 relying party does it on oauth4webapi (PAR with private_key_jwt and DPoP,
 * sign-in through the pages, iss checked, code exchange with DPoP and private_key_jwt, ES256 ID
 * token and DPoP-bound ES256 access token), then each rule of the profile refused where it applies.
 */
describe('FAPI 2.0 profile (profile fapi2)', () => {
  let t: TestServer;
  let rp: RelyingParty;
  let person: BuiltPerson;
  let api: string;
  let jwks: JSONWebKeySet;

  beforeAll(async () => {
    vi.stubGlobal('fetch', () => Promise.reject(new Error('fetch over a socket in an in-process test: use t.fetch')));
    t = await startTestServer({ name: 'fapi2', listen: false, env: { REGISTRATION_ENABLED: 'true' } });
    rp = await relyingParty(t);
    person = await t.build.person();
    api = (await t.build.resource({ scope: 'read write' })).identifier;
    jwks = (await (await t.fetch('/jwks')).json()) as JSONWebKeySet;
  });
  afterAll(async () => {
    vi.unstubAllGlobals();
    await t.close();
  });

  /** A fapi2 client: private_key_jwt with an ES256 key that names its alg, the API as its default resource. */
  async function fapiClient() {
    const key = await clientKey('ES256');
    const built = await t.build.client({
      redirect_uris: [REDIRECT_URI],
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: { keys: [key.jwk] },
      profile: 'fapi2',
      default_resource: api,
      scope: 'openid read',
    });
    const client: oauth.Client = { client_id: built.clientId, id_token_signed_response_alg: 'ES256' };
    return { clientId: built.clientId, key, client, auth: oauth.PrivateKeyJwt({ key: key.privateKey, kid: key.kid }) };
  }

  async function codeParameters(clientId: string, overrides: Record<string, string | undefined> = {}) {
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const nonce = oauth.generateRandomNonce();
    const parameters = Object.fromEntries(
      Object.entries({
        client_id: clientId,
        redirect_uri: REDIRECT_URI,
        response_type: 'code',
        scope: 'openid read',
        state,
        nonce,
        code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        ...overrides,
      }).filter((entry): entry is [string, string] => entry[1] !== undefined),
    );
    return { verifier, state, nonce, parameters };
  }

  /** Runs oauth4webapi's request once more when the server asks for a DPoP nonce (RFC 9449 §8). */
  async function withNonceRetry(request: () => Promise<Response>): Promise<Response> {
    const first = await request();
    if (first.status !== 400 || !first.headers.get('dpop-nonce')) return first;
    return request();
  }

  /** PAR with DPoP, then sign-in: the redirect back and what the token request needs. */
  async function pushAndSignIn(fapi: Awaited<ReturnType<typeof fapiClient>>, dpop: oauth.DPoPHandle) {
    const { verifier, state, nonce, parameters } = await codeParameters(fapi.clientId);
    const pushedResponse = await withNonceRetry(() => oauth.pushedAuthorizationRequest(rp.as, fapi.client, fapi.auth, parameters, { ...rp.options, DPoP: dpop }));
    const pushed = await oauth.processPushedAuthorizationResponse(rp.as, fapi.client, pushedResponse);
    const redirect = await authorize(new Agent(t.config.issuer, t.fetch), `/auth?${new URLSearchParams({ client_id: fapi.clientId, request_uri: pushed.request_uri })}`, person);
    return { redirect, verifier, state, nonce };
  }

  it('serves the full flow: PAR + private_key_jwt + DPoP, iss in the response, ES256 ID token, DPoP-bound ES256 access token', async () => {
    const fapi = await fapiClient();
    const dpopKeys = await oauth.generateKeyPair('ES256');
    const dpop = oauth.DPoP(fapi.client, dpopKeys);
    const { redirect, verifier, state, nonce } = await pushAndSignIn(fapi, dpop);

    // RFC 9207: the authorization response names its issuer; oauth4webapi checks it against discovery.
    expect(rp.as.authorization_response_iss_parameter_supported).toBe(true);
    expect(redirect.searchParams.get('iss')).toBe(t.config.issuer);
    const callback = oauth.validateAuthResponse(rp.as, fapi.client, redirect, state);

    const response = await withNonceRetry(() =>
      oauth.authorizationCodeGrantRequest(rp.as, fapi.client, fapi.auth, callback, REDIRECT_URI, verifier, { ...rp.options, DPoP: dpop }),
    );
    const tokens = await oauth.processAuthorizationCodeResponse(rp.as, fapi.client, response, { expectedNonce: nonce });
    recordSecret(tokens.access_token);
    expect(tokens.token_type).toBe('dpop');

    const profileKid = (await loadKeys(t.config.keysDir)).find((key) => key.profile === 'fapi2')?.kid;
    expect(profileKid).toBeDefined();
    const keySet = createLocalJWKSet(jwks);
    const idToken = String(tokens.id_token);
    expect(decodeProtectedHeader(idToken)).toMatchObject({ alg: 'ES256', kid: profileKid });
    const { payload: idClaims } = await jwtVerify(idToken, keySet, { issuer: t.config.issuer, audience: fapi.clientId, algorithms: ['PS256', 'ES256'] });
    expect(idClaims).toMatchObject({ sub: person.id, nonce });

    expect(decodeProtectedHeader(tokens.access_token)).toMatchObject({ alg: 'ES256', typ: 'at+jwt', kid: profileKid });
    const { payload: access } = await jwtVerify(tokens.access_token, keySet, { issuer: t.config.issuer, audience: api, algorithms: ['PS256', 'ES256'] });
    expect(access).toMatchObject({ sub: person.id, client_id: fapi.clientId, scope: 'read' });
    expect(access.cnf).toEqual({ jkt: await calculateJwkThumbprint(await exportJWK(dpopKeys.publicKey)) });

    // The code lived at most 60 s (FAPI 2.0 §5.3.2.1): read from a second code's own expiry below.
    // Any other client at the same API is served RS256 as before.
    const other = await t.build.client({ default_resource: api, scope: 'read' });
    const plain = await tokenRequest(t.config.issuer, { grant_type: 'client_credentials', scope: 'read' }, other, t.fetch);
    expect(plain.status).toBe(200);
    expect(decodeProtectedHeader(String(plain.body.access_token)).alg).toBe('RS256');
  });

  it('issues codes that live no longer than 60 s', async () => {
    const fapi = await fapiClient();
    const { redirect } = await pushAndSignIn(fapi, oauth.DPoP(fapi.client, await oauth.generateKeyPair('ES256')));
    const code = await t.server.host.provider.AuthorizationCode.find(String(redirect.searchParams.get('code')));
    expect(code).toBeDefined();
    expect(code!.exp! - code!.iat!).toBeLessThanOrEqual(60);
    expect(code!.exp! - code!.iat!).toBeGreaterThan(0);
  });

  it('refuses an authorization request that was not pushed', async () => {
    const fapi = await fapiClient();
    const { parameters } = await codeParameters(fapi.clientId);
    const response = await new Agent(t.config.issuer, t.fetch).request(`/auth?${new URLSearchParams(parameters)}`);
    const location = new URL(String(response.headers.get('location')), t.config.issuer);
    expect(location.pathname).not.toMatch(/^\/interaction\//);
    expect(location.searchParams.get('error')).toBe('invalid_request');
    expect(location.searchParams.get('error_description')).toBe('Pushed Authorization Request must be used');
  });

  it('refuses plain PKCE and a request without PKCE at the PAR endpoint', async () => {
    const fapi = await fapiClient();
    const dpop = oauth.DPoP(fapi.client, await oauth.generateKeyPair('ES256'));
    const push = async (overrides: Record<string, string | undefined>) => {
      const { parameters } = await codeParameters(fapi.clientId, overrides);
      const response = await withNonceRetry(() => oauth.pushedAuthorizationRequest(rp.as, fapi.client, fapi.auth, parameters, { ...rp.options, DPoP: dpop }));
      return { status: response.status, body: (await response.json()) as Json };
    };
    const plain = await push({ code_challenge: 'a-plain-challenge-of-forty-three-characters-xx', code_challenge_method: 'plain' });
    expect(plain.status).toBe(400);
    expect(plain.body.error).toBe('invalid_request');
    const none = await push({ code_challenge: undefined, code_challenge_method: undefined });
    expect(none.status).toBe(400);
    expect(none.body).toMatchObject({ error: 'invalid_request' });
    expect(String(none.body.error_description)).toMatch(/PKCE/);
  });

  it('refuses the code exchange without a DPoP proof; the code still works with one', async () => {
    const fapi = await fapiClient();
    const dpop = oauth.DPoP(fapi.client, await oauth.generateKeyPair('ES256'));
    const { redirect, verifier, state, nonce } = await pushAndSignIn(fapi, dpop);
    const callback = oauth.validateAuthResponse(rp.as, fapi.client, redirect, state);

    const bare = await oauth.authorizationCodeGrantRequest(rp.as, fapi.client, fapi.auth, callback, REDIRECT_URI, verifier, rp.options);
    expect(bare.status).toBe(400);
    expect(await bare.json()).toMatchObject({ error: 'invalid_grant', error_description: 'grant request is invalid' });
    // The reason is logged, not answered (oidc-provider keeps it as error_detail).
    const requestId = bare.headers.get('x-request-id');
    expect(t.logs.entries().find((entry) => entry.requestId === requestId && entry.event === 'grant.error')?.error_detail).toBe('DPoP proof JWT not provided');

    const bound = await withNonceRetry(() => oauth.authorizationCodeGrantRequest(rp.as, fapi.client, fapi.auth, callback, REDIRECT_URI, verifier, { ...rp.options, DPoP: dpop }));
    const tokens = await oauth.processAuthorizationCodeResponse(rp.as, fapi.client, bound, { expectedNonce: nonce });
    recordSecret(tokens.access_token);
    expect(tokens.token_type).toBe('dpop');
  });

  it('refuses a client assertion signed RS256 (the profile allows PS256, ES256, EdDSA): the key names its alg', async () => {
    const fapi = await fapiClient();
    const { parameters } = await codeParameters(fapi.clientId);
    const assertion = await clientKey('RS256');
    // An RS256 key with the registered kid: the server finds no key for RS256 and refuses.
    const auth = oauth.PrivateKeyJwt({ key: assertion.privateKey, kid: fapi.key.kid });
    const dpop = oauth.DPoP(fapi.client, await oauth.generateKeyPair('ES256'));
    const response = await withNonceRetry(() => oauth.pushedAuthorizationRequest(rp.as, fapi.client, auth, parameters, { ...rp.options, DPoP: dpop }));
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ error: 'invalid_client' });
  });

  describe('registration refuses what the profile forbids', () => {
    const base = async () => ({
      client_name: 'FAPI client',
      redirect_uris: [REDIRECT_URI],
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: { keys: [(await clientKey('ES256')).jwk] },
      profile: 'fapi2',
    });

    it('in the clients service (CLI, admin API): client secrets, an explicit false for PAR or DPoP, keys without a FAPI alg, the device flow', async () => {
      const fields = async (input: Json) => {
        const error = await t.build.client(input as never).then(
          () => undefined,
          (caught: unknown) => caught,
        );
        expect(error).toBeInstanceOf(ValidationError);
        return (error as ValidationError).errors.map((field) => field.field);
      };
      expect(await fields({ ...(await base()), token_endpoint_auth_method: 'client_secret_basic', jwks: null })).toContain('token_endpoint_auth_method');
      expect(await fields({ ...(await base()), require_pushed_authorization_requests: false })).toEqual(['require_pushed_authorization_requests']);
      expect(await fields({ ...(await base()), dpop_bound_access_tokens: false })).toEqual(['dpop_bound_access_tokens']);
      const { alg: _alg, ...unnamed } = (await clientKey('ES256')).jwk;
      expect(await fields({ ...(await base()), jwks: { keys: [unnamed] } })).toEqual(['jwks.keys.0.alg']);
      expect(await fields({ ...(await base()), jwks: { keys: [(await clientKey('RS256')).jwk] } })).toEqual(['jwks.keys.0.alg']);
      expect(await fields({ ...(await base()), grant_types: ['urn:ietf:params:oauth:grant-type:device_code'], redirect_uris: [] })).toContain('grant_types');
      expect(await fields({ ...(await base()), grant_types: ['authorization_code', 'urn:ietf:params:oauth:grant-type:token-exchange'] })).toEqual(['grant_types']);

      // Implied, and shown: PAR and DPoP are on for a fapi2 client made without saying so.
      const made = await t.build.client(await base() as never);
      const stored = await t.server.cache.getClient(made.clientId);
      expect(stored).toMatchObject({ profile: 'fapi2', requirePushedAuthorizationRequests: true, dpopBoundAccessTokens: true });
      // A client_secret_basic client turned fapi2 later is refused the same way.
      const secret = await t.build.client({ redirect_uris: [REDIRECT_URI] });
      await expect(t.build.update(secret.clientId, { profile: 'fapi2' })).rejects.toBeInstanceOf(ValidationError);
    });

    it('at the admin API: 400 with a problem document naming each field', async () => {
      const admin = await t.build.client({ client_name: 'admin', admin: true });
      await t.server.cache.refresh();
      const token = await tokenRequest(t.config.issuer, { grant_type: 'client_credentials', scope: 'admin' }, admin, t.fetch);
      const response = await t.fetch('/admin/v1/clients', {
        method: 'POST',
        headers: { authorization: `Bearer ${String(token.body.access_token)}`, 'content-type': 'application/json' },
        body: JSON.stringify({ ...(await base()), token_endpoint_auth_method: 'client_secret_post', jwks: null, dpop_bound_access_tokens: false }),
      });
      expect(response.status).toBe(400);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      const problem = (await response.json()) as { errors: Array<{ field: string }> };
      expect(problem.errors.map((error) => error.field).sort()).toEqual(['dpop_bound_access_tokens', 'token_endpoint_auth_method']);
    });

    it('at dynamic registration (RFC 7591/7592): a client cannot give itself the profile; an administrator-made fapi2 client is refused forbidden updates with invalid_client_metadata', async () => {
      const register = async (body: Json) => {
        const { initial_access_token: iat } = await t.cli<{ initial_access_token: string }>('registration', 'token', 'create');
        recordSecret(iat);
        const response = await t.fetch('/reg', { method: 'POST', headers: { authorization: `Bearer ${iat}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
        const answer = (await response.json()) as Json;
        for (const secret of [answer.client_secret, answer.registration_access_token]) recordSecret(typeof secret === 'string' ? secret : undefined);
        return { status: response.status, body: answer };
      };
      // `profile` from a client is unknown metadata, ignored; the name Gatehouse passes it to oidc-provider under is refused.
      const ignored = await register(await base());
      expect(ignored.status).toBe(201);
      expect(ignored.body).not.toHaveProperty('profile');
      expect(await t.server.cache.getClient(String(ignored.body.client_id))).toMatchObject({ profile: null });
      const { profile: _profile, ...plain } = await base();
      const named = await register({ ...plain, gatehouse_profile: 'fapi2' });
      expect(named.status).toBe(400);
      expect(named.body).toMatchObject({ error: 'invalid_client_metadata' });

      // An administrator puts the registered client under the profile; it then updates itself (RFC 7592, which replaces its metadata).
      const registered = await register(plain);
      expect(registered.status).toBe(201);
      const clientId = String(registered.body.client_id);
      await t.build.update(clientId, { profile: 'fapi2' });
      await t.server.cache.refresh();
      let accessToken = String(registered.body.registration_access_token);
      const update = async (body: Json) => {
        const response = await t.fetch(String(registered.body.registration_client_uri), {
          method: 'PUT',
          headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
          body: JSON.stringify({ client_id: clientId, ...body }),
        });
        const answer = (await response.json()) as Json;
        if (typeof answer.registration_access_token === 'string') {
          recordSecret(answer.registration_access_token);
          accessToken = answer.registration_access_token;
        }
        return { status: response.status, body: answer };
      };
      const read = await t.fetch(String(registered.body.registration_client_uri), { headers: { authorization: `Bearer ${accessToken}` } });
      expect(await read.json()).toMatchObject({
        profile: 'fapi2',
        require_pushed_authorization_requests: true,
        dpop_bound_access_tokens: true,
        id_token_signed_response_alg: 'ES256',
      });

      const secretMethod = await update({ ...plain, token_endpoint_auth_method: 'client_secret_basic', jwks: undefined });
      expect(secretMethod.status).toBe(400);
      expect(secretMethod.body.error).toBe('invalid_client_metadata');
      expect(String(secretMethod.body.error_description)).toMatch(/private_key_jwt/);
      const noDpop = await update({ ...plain, require_pushed_authorization_requests: true, dpop_bound_access_tokens: false });
      expect(noDpop.status).toBe(400);
      expect(noDpop.body).toMatchObject({ error: 'invalid_client_metadata', error_description: 'dpop_bound_access_tokens: must be true for profile fapi2 (FAPI 2.0 requires sender-constrained tokens: DPoP here)' });
      const rsKey = await update({ ...plain, require_pushed_authorization_requests: true, dpop_bound_access_tokens: true, jwks: { keys: [(await clientKey('RS256')).jwk] } });
      expect(rsKey.status).toBe(400);
      expect(rsKey.body.error).toBe('invalid_client_metadata');
      const takeOff = await update({ ...plain, gatehouse_profile: null });
      expect(takeOff.status).toBe(400);
      expect(await t.server.cache.getClient(clientId)).toMatchObject({ clientName: 'FAPI client', profile: 'fapi2', tokenEndpointAuthMethod: 'private_key_jwt' });

      const renamed = await update({ ...plain, client_name: 'renamed', require_pushed_authorization_requests: true, dpop_bound_access_tokens: true });
      expect(renamed.status).toBe(200);
      expect(renamed.body).toMatchObject({ client_name: 'renamed', profile: 'fapi2', dpop_bound_access_tokens: true, id_token_signed_response_alg: 'ES256' });
    });
  });
});
