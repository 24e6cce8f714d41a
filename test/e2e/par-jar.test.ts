import { setTimeout as sleep } from 'node:timers/promises';
import { SignJWT, UnsecuredJWT, type CryptoKey } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { recordSecret } from '../fixtures/log-capture.js';
import { Agent, authorize, clientKey, REDIRECT_URI, relyingParty, type RelyingParty } from '../fixtures/oauth.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';
import type { BuiltPerson } from '../fixtures/builders.js';

const PAR_PREFIX = 'urn:ietf:params:oauth:request_uri:';

/**
 * Pushed authorization requests (RFC 9126) and JWT-secured authorization requests (RFC 9101), on a
 * server in this process (oidc-provider's own checks, as Gatehouse configures them): a relying party
 * on oauth4webapi pushes, signs in through the pages (test/fixtures/flow.ts) and exchanges the code.
 */
describe('PAR and JAR', () => {
  let t: TestServer;
  let rp: RelyingParty;
  let person: BuiltPerson;

  beforeAll(async () => {
    vi.stubGlobal('fetch', () => Promise.reject(new Error('fetch over a socket in an in-process test: use t.fetch')));
    t = await startTestServer({ name: 'par-jar', listen: false });
    rp = await relyingParty(t);
    person = await t.build.person();
  });
  afterAll(async () => {
    vi.unstubAllGlobals();
    await t.close();
  });

  /** A confidential client (client_secret_basic) with the redirect URI; `extra` adds metadata. */
  async function secretClient(extra: Record<string, unknown> = {}) {
    const built = await t.build.client({ redirect_uris: [REDIRECT_URI], ...extra });
    return { ...built, client: { client_id: built.clientId } as oauth.Client, auth: oauth.ClientSecretBasic(built.clientSecret) };
  }

  /** A private_key_jwt client with a registered ES256 key; `extra` adds metadata. */
  async function keyClient(extra: Record<string, unknown> = {}) {
    const key = await clientKey();
    const built = await t.build.client({ redirect_uris: [REDIRECT_URI], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [key.jwk] }, ...extra });
    return { ...built, key, client: { client_id: built.clientId } as oauth.Client, auth: oauth.PrivateKeyJwt({ key: key.privateKey, kid: key.kid }) };
  }

  /** The authorization parameters of a code flow with PKCE, and the verifier. */
  async function codeParameters(clientId: string) {
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const parameters = {
      client_id: clientId,
      redirect_uri: REDIRECT_URI,
      response_type: 'code',
      scope: 'openid',
      state,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    };
    return { verifier, state, parameters };
  }

  /** Pushes `parameters` with the client's authentication; answers the raw response. */
  const push = (client: oauth.Client, auth: oauth.ClientAuth, parameters: Record<string, string>) =>
    oauth.pushedAuthorizationRequest(rp.as, client, auth, parameters, rp.options);

  /** A request object signed with `key` (ES256), with the claims RFC 9101 and FAPI 2.0 ask for. */
  const signedRequestObject = (key: { privateKey: CryptoKey; kid: string }, clientId: string, claims: Record<string, unknown>, lifetime = 60) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'oauth-authz-req+jwt' })
      .setIssuer(clientId)
      .setAudience(t.config.issuer)
      .setIssuedAt()
      .setNotBefore('0s')
      .setExpirationTime(`${lifetime}s`)
      .setJti(crypto.randomUUID())
      .sign(key.privateKey);

  /** GET /auth as a browser would, without following: the status, the Location and the page. */
  async function authorizationAnswer(agent: Agent, query: Record<string, string>) {
    const response = await agent.request(`/auth?${new URLSearchParams(query)}`);
    return { status: response.status, location: response.headers.get('location'), text: await response.text() };
  }

  /** What an authorization request was refused with: the error page's code, or the error at the redirect URI. */
  function refusal(answer: { status: number; location: string | null; text: string }): string | undefined {
    if (answer.location) {
      const target = new URL(answer.location, t.config.issuer);
      if (target.pathname.startsWith('/interaction/')) return undefined;
      return target.searchParams.get('error') ?? undefined;
    }
    return /<code>([a-z_]+)<\/code>/.exec(answer.text)?.[1];
  }

  /** The error_description of a refusal: at the redirect URI, or beneath the error page's code. */
  function described(answer: { location: string | null; text: string }): string | undefined {
    if (answer.location) return new URL(answer.location, t.config.issuer).searchParams.get('error_description') ?? undefined;
    return /<span class="detail">([^<]*)<\/span>/.exec(answer.text)?.[1];
  }

  it('discovery advertises PAR and signed request objects', () => {
    expect(rp.as.pushed_authorization_request_endpoint).toBe(`${t.config.issuer}/request`);
    expect(rp.as.request_parameter_supported).toBe(true);
    expect(rp.as.request_object_signing_alg_values_supported).toEqual(expect.arrayContaining(['PS256', 'ES256', 'RS256']));
    expect(rp.as.request_object_signing_alg_values_supported).not.toContain('none');
    // Not required of every client here (REQUIRE_PAR is false): RFC 9126 §5 reads an absent value as false.
    expect(rp.as.require_pushed_authorization_requests ?? false).toBe(false);
    expect(rp.as.authorization_response_iss_parameter_supported).toBe(true);
  });

  it('any client may push: a client_secret_basic client pushes, signs its person in with the request_uri and gets tokens', async () => {
    const { client, auth, clientId } = await secretClient();
    const { verifier, state, parameters } = await codeParameters(clientId);
    const response = await push(client, auth, parameters);
    expect(response.status).toBe(201);
    const pushed = await oauth.processPushedAuthorizationResponse(rp.as, client, response);
    expect(pushed.request_uri.startsWith(PAR_PREFIX)).toBe(true);
    expect(pushed.expires_in).toBe(60);

    const redirect = await authorize(new Agent(t.config.issuer, t.fetch), `/auth?${new URLSearchParams({ client_id: clientId, request_uri: pushed.request_uri })}`, person);
    const callback = oauth.validateAuthResponse(rp.as, client, redirect, state);
    const tokens = await oauth.processAuthorizationCodeResponse(
      rp.as,
      client,
      await oauth.authorizationCodeGrantRequest(rp.as, client, auth, callback, REDIRECT_URI, verifier, rp.options),
    );
    recordSecret(tokens.access_token);
    expect(tokens.token_type).toBe('bearer');
    expect(oauth.getValidatedIdTokenClaims(tokens)?.sub).toBe(person.id);
  });

  it('a client with require_pushed_authorization_requests is refused at /auth without a request_uri, and served with one', async () => {
    const { client, auth, clientId } = await secretClient({ require_pushed_authorization_requests: true });
    const { parameters } = await codeParameters(clientId);
    const agent = new Agent(t.config.issuer, t.fetch);
    const plain = await authorizationAnswer(agent, parameters);
    expect(refusal(plain)).toBe('invalid_request');
    expect(described(plain)).toBe('Pushed Authorization Request must be used');
    // Nothing was started: no interaction, no session cookie.
    expect(plain.location ?? '').not.toContain('/interaction/');

    const pushed = await oauth.processPushedAuthorizationResponse(rp.as, client, await push(client, auth, parameters));
    const answer = await authorizationAnswer(agent, { client_id: clientId, request_uri: pushed.request_uri });
    expect(answer.status).toBe(303);
    expect(answer.location).toMatch(/^\/interaction\//);
  });

  it('a request_uri is used once: the second use is refused with invalid_request_uri, as is an unknown one', async () => {
    const { client, auth, clientId } = await secretClient();
    const { parameters } = await codeParameters(clientId);
    const pushed = await oauth.processPushedAuthorizationResponse(rp.as, client, await push(client, auth, parameters));
    const redirect = await authorize(new Agent(t.config.issuer, t.fetch), `/auth?${new URLSearchParams({ client_id: clientId, request_uri: pushed.request_uri })}`, person);
    expect(redirect.searchParams.get('code')).toBeTruthy();

    const again = await authorizationAnswer(new Agent(t.config.issuer, t.fetch), { client_id: clientId, request_uri: pushed.request_uri });
    expect(refusal(again)).toBe('invalid_request_uri');
    expect(described(again)).toBe('request_uri is invalid, expired, or was already used');
    const unknown = await authorizationAnswer(new Agent(t.config.issuer, t.fetch), { client_id: clientId, request_uri: `${PAR_PREFIX}nope` });
    expect(refusal(unknown)).toBe('invalid_request_uri');
  });

  it('a request_uri expires: one pushed with a request object that lives 2 s is refused after it', async () => {
    const { client, auth, clientId, key } = await keyClient();
    const { parameters } = await codeParameters(clientId);
    const request = await signedRequestObject(key, clientId, parameters, 2);
    const response = await push(client, auth, { client_id: clientId, request });
    const pushed = await oauth.processPushedAuthorizationResponse(rp.as, client, response);
    expect(pushed.expires_in).toBeLessThanOrEqual(2);
    await sleep(3_200);
    const late = await authorizationAnswer(new Agent(t.config.issuer, t.fetch), { client_id: clientId, request_uri: pushed.request_uri });
    expect(refusal(late)).toBe('invalid_request_uri');
  });

  describe('JAR', () => {
    it('a request object signed with the registered key is taken at the PAR endpoint and at /auth', async () => {
      const { client, auth, clientId, key } = await keyClient({ require_signed_request_object: true });
      const { verifier, state, parameters } = await codeParameters(clientId);

      const pushed = await oauth.processPushedAuthorizationResponse(
        rp.as,
        client,
        await push(client, auth, { client_id: clientId, request: await signedRequestObject(key, clientId, parameters) }),
      );
      const viaPar = await authorize(new Agent(t.config.issuer, t.fetch), `/auth?${new URLSearchParams({ client_id: clientId, request_uri: pushed.request_uri })}`, person);
      const callback = oauth.validateAuthResponse(rp.as, client, viaPar, state);
      const tokens = await oauth.processAuthorizationCodeResponse(
        rp.as,
        client,
        await oauth.authorizationCodeGrantRequest(rp.as, client, auth, callback, REDIRECT_URI, verifier, rp.options),
      );
      recordSecret(tokens.access_token);
      expect(oauth.getValidatedIdTokenClaims(tokens)?.sub).toBe(person.id);

      const byValue = await codeParameters(clientId);
      const request = await signedRequestObject(key, clientId, byValue.parameters);
      const direct = await authorize(new Agent(t.config.issuer, t.fetch), `/auth?${new URLSearchParams({ client_id: clientId, request })}`, person);
      expect(oauth.validateAuthResponse(rp.as, client, direct, byValue.state).get('code')).toBeTruthy();
    });

    it('require_signed_request_object: plain parameters and an unsigned (alg none) request object are refused, at the PAR endpoint and at /auth', async () => {
      const { client, auth, clientId } = await keyClient({ require_signed_request_object: true });
      const { parameters } = await codeParameters(clientId);

      const plainPush = await push(client, auth, parameters);
      expect(plainPush.status).toBe(400);
      expect(await plainPush.json()).toMatchObject({ error: 'invalid_request', error_description: 'Request Object must be used by this client' });

      const unsigned = new UnsecuredJWT(parameters).setIssuer(clientId).setAudience(t.config.issuer).setIssuedAt().setNotBefore('0s').setExpirationTime('60s').encode();
      const unsignedPush = await push(client, auth, { client_id: clientId, request: unsigned });
      expect(unsignedPush.status).toBe(400);
      expect(await unsignedPush.json()).toMatchObject({ error: 'invalid_request_object' });

      expect(refusal(await authorizationAnswer(new Agent(t.config.issuer, t.fetch), parameters))).toBe('invalid_request');
      expect(refusal(await authorizationAnswer(new Agent(t.config.issuer, t.fetch), { client_id: clientId, request: unsigned }))).toBe('invalid_request_object');
    });

    it('a request object signed with a key the client did not register is refused, at the PAR endpoint and at /auth', async () => {
      const { client, auth, clientId, key } = await keyClient();
      const stranger = await clientKey();
      const { parameters } = await codeParameters(clientId);
      // Same kid as the registered key: only the signature tells them apart.
      const forged = await signedRequestObject({ privateKey: stranger.privateKey, kid: key.kid }, clientId, parameters);

      const pushedForged = await push(client, auth, { client_id: clientId, request: forged });
      expect(pushedForged.status).toBe(400);
      expect(await pushedForged.json()).toMatchObject({ error: 'invalid_request_object', error_description: 'could not validate Request Object' });
      expect(refusal(await authorizationAnswer(new Agent(t.config.issuer, t.fetch), { client_id: clientId, request: forged }))).toBe('invalid_request_object');

      // The control: the same request signed with the registered key is taken.
      const genuine = await push(client, auth, { client_id: clientId, request: await signedRequestObject(key, clientId, parameters) });
      expect(genuine.status).toBe(201);
    });
  });
});

describe('REQUIRE_PAR=true', () => {
  let t: TestServer;
  let rp: RelyingParty;

  beforeAll(async () => {
    vi.stubGlobal('fetch', () => Promise.reject(new Error('fetch over a socket in an in-process test: use t.fetch')));
    t = await startTestServer({ name: 'par-required', listen: false, env: { REQUIRE_PAR: 'true' } });
    rp = await relyingParty(t);
  });
  afterAll(async () => {
    vi.unstubAllGlobals();
    await t.close();
  });

  it('discovery says so, every client is refused a plain authorization request, and a pushed one is served', async () => {
    expect(rp.as.require_pushed_authorization_requests).toBe(true);
    const built = await t.build.client({ redirect_uris: [REDIRECT_URI] });
    const client: oauth.Client = { client_id: built.clientId };
    const verifier = oauth.generateRandomCodeVerifier();
    const parameters = {
      client_id: built.clientId,
      redirect_uri: REDIRECT_URI,
      response_type: 'code',
      scope: 'openid',
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    };
    const agent = new Agent(t.config.issuer, t.fetch);
    const plain = await agent.request(`/auth?${new URLSearchParams(parameters)}`);
    const location = plain.headers.get('location') ?? '';
    const text = await plain.text();
    expect(location).not.toContain('/interaction/');
    expect(location ? new URL(location).searchParams.get('error') : /<code>([a-z_]+)<\/code>/.exec(text)?.[1]).toBe('invalid_request');

    const pushed = await oauth.processPushedAuthorizationResponse(
      rp.as,
      client,
      await oauth.pushedAuthorizationRequest(rp.as, client, oauth.ClientSecretBasic(built.clientSecret), parameters, rp.options),
    );
    const served = await agent.request(`/auth?${new URLSearchParams({ client_id: built.clientId, request_uri: pushed.request_uri })}`);
    expect(served.status).toBe(303);
    expect(served.headers.get('location')).toMatch(/^\/interaction\//);
  });
});
