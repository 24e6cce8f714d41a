import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import { createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, type JSONWebKeySet } from 'jose';
import Koa from 'koa';
import compose from 'koa-compose';
import { errors, Provider, type Adapter, type AdapterPayload, type ExternalSigningKey } from 'oidc-provider';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACR_BASIC, ACR_MFA, ACR_VALUES } from '../../../src/accounts/authentication-context.js';
import { digestClientSecret, verifyClientSecret } from '../../../src/services/client-secrets.js';
import { isUnreachable } from '../../../src/services/dependency-outage.js';
import { newInitialAccessTokenValue } from '../../../src/services/registration.service.js';
import {
  AUTHENTICATION_CLAIMS,
  browserSession,
  CHECKED_AGAINST,
  compareClientSecretsWith,
  currentProviderRequest,
  deferBackchannelLogout,
  deliveryStatus,
  DependencyUnavailable,
  EXTERNAL_SIGNING,
  ignoreResumeQuery,
  initialAccessTokenPayload,
  isBodyTooLarge,
  isClientSecretUpdateRefusal,
  isRefreshTokenReuse,
  issuedClientSecret,
  matchedRoutePattern,
  outboundFetch,
  queueBackchannelLogout,
  sessionAuthorizations,
  type LogoutDelivery,
  policyWithLoginCheck,
  providerScriptHashes,
  providerRequestClient,
  providerSigningKey,
  refreshTokenReused,
  REPLAY_DETECTION_MODEL,
  grantScopes,
  sessionFields,
  rememberBuiltClients,
  invalidGrantSaying,
  supplyClientId,
  TooManyAttempts,
  unmetAuthenticationRequirements,
  beforeDeviceCodePoll,
  deviceCodeRefusalOf,
  type PolledDeviceCode,
} from '../../../src/oidc/upstream.js';
import type { ClientRecord } from '../../../src/registry/client.repository.js';
import type { RegistryCache } from '../../../src/registry/registry-cache.js';
import { Agent, hiddenInput, pkce } from '../../fixtures/flow.js';

/*
 * The contract test of src/oidc/upstream.ts: each reliance on oidc-provider's (and koa-router's)
 * internals, checked against the installed version on a bare provider in this process. A failure
 * here after an upgrade names the reliance that changed: see docs/upgrading-oidc-provider.md.
 */

const ISSUER = 'https://op.example';
const DIGEST_KEY = Buffer.alloc(32, 7);
const CLIENT_SECRET = 'the-client-secret';
const epoch = () => Math.floor(Date.now() / 1000);

/** One adapter call, with the request it was made in (Provider.ctx, through currentProviderRequest). */
interface Call {
  model: string;
  method: 'upsert' | 'find' | 'findByUid' | 'consume' | 'destroy' | 'revokeByGrantId';
  id: string;
  payload?: AdapterPayload | undefined;
  request: object | undefined;
}

const calls: Call[] = [];
const rows = new Map<string, AdapterPayload>();
/** Set to make the next RefreshToken lookup find the database unreachable. */
let refreshTokenStoreDown = false;

/**
 * An in-memory adapter that records every call. The Client model behaves as Gatehouse's does: it
 * keeps a client_secret the provider issued only as its digest, and hands the digest out.
 */
function recordingAdapter(model: string): Adapter {
  const key = (id: string) => `${model}:${id}`;
  const note = (method: Call['method'], id: string, payload?: AdapterPayload) =>
    calls.push({ model, method, id, payload: payload && structuredClone(payload), request: currentProviderRequest() });
  return {
    async upsert(id, payload) {
      note('upsert', id, payload);
      const issued = model === 'Client' ? issuedClientSecret(payload) : undefined;
      rows.set(key(id), structuredClone(issued ? { ...payload, client_secret: digestClientSecret(DIGEST_KEY, issued) } : payload));
    },
    async find(id) {
      note('find', id);
      if (model === 'RefreshToken' && refreshTokenStoreDown) {
        refreshTokenStoreDown = false;
        throw new DependencyUnavailable('database', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }));
      }
      const payload = rows.get(key(id));
      return payload && structuredClone(payload);
    },
    async findByUid(uid) {
      note('findByUid', uid);
      return [...rows].find(([stored, payload]) => stored.startsWith(`${model}:`) && payload.uid === uid)?.[1];
    },
    findByUserCode: () => Promise.resolve(undefined),
    async consume(id) {
      note('consume', id);
      const payload = rows.get(key(id));
      if (payload) payload.consumed = epoch();
    },
    async destroy(id) {
      note('destroy', id);
      rows.delete(key(id));
    },
    async revokeByGrantId(grantId) {
      note('revokeByGrantId', grantId);
      for (const [stored, payload] of rows) if (payload.grantId === grantId) rows.delete(stored);
    },
  };
}

let provider: Provider;
let server: Server;
let base: string;
let signingKey: ExternalSigningKey;
const grantErrors: Array<{ error?: string; error_detail?: string; message?: string; cause?: unknown }> = [];

beforeAll(async () => {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  signingKey = providerSigningKey({ ...(await exportJWK(privateKey)), alg: 'RS256', kid: 'contract-key', use: 'sig' });
  provider = new Provider(ISSUER, {
    adapter: recordingAdapter,
    jwks: { keys: [signingKey] },
    features: {
      devInteractions: { enabled: false },
      externalSigningSupport: EXTERNAL_SIGNING,
      registration: { enabled: true, initialAccessToken: true },
      registrationManagement: { enabled: true },
    },
    scopes: ['openid', 'offline_access'],
    findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
    expiresWithSession: () => false,
    rotateRefreshToken: () => true,
    ttl: { AccessToken: 600, Grant: 3600, IdToken: 600, RefreshToken: 3600 },
    renderError: (ctx, out) => {
      ctx.body = out;
    },
  });
  compareClientSecretsWith(provider, (presented, stored) => verifyClientSecret(DIGEST_KEY, presented, stored));
  // The resume-route workaround, only on requests that ask for it, so the bug itself stays observable.
  const workaround = ignoreResumeQuery(provider.pathFor('authorization'));
  provider.use((ctx, next) => (ctx.get('X-Workaround') ? workaround(ctx, next) : next()));
  // A CSP with a script-src, set before the provider answers, as selfSubmittingPageCsp sets one.
  provider.use((ctx, next) => {
    if (ctx.get('X-Preset-Csp')) ctx.set('Content-Security-Policy', "default-src 'self'; script-src 'none'");
    return next();
  });
  (provider as unknown as NodeJS.EventEmitter).on('grant.error', (_ctx: unknown, error: (typeof grantErrors)[number]) => grantErrors.push(error));
  rows.set('Client:app', {
    client_id: 'app',
    client_secret: digestClientSecret(DIGEST_KEY, CLIENT_SECRET),
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: ['https://rp.example/cb'],
    token_endpoint_auth_method: 'client_secret_basic',
  });
  server = createServer(provider.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
});

const basic = (secret = CLIENT_SECRET) => `Basic ${Buffer.from(`app:${secret}`).toString('base64')}`;

function token(body: Record<string, string>, secret = CLIENT_SECRET) {
  return fetch(`${base}${provider.pathFor('token')}`, {
    method: 'POST',
    headers: { authorization: basic(secret), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(body),
  });
}

/** A consent and a refresh token under it, made through the provider's own models. */
async function issueRefreshToken(): Promise<{ grantId: string; value: string }> {
  const grant = new provider.Grant({ clientId: 'app', accountId: 'user-1' });
  grant.addOIDCScope('openid offline_access');
  const grantId = await grant.save();
  const client = await provider.Client.find('app');
  const refreshToken = new provider.RefreshToken({
    client: client!,
    accountId: 'user-1',
    grantId,
    scope: 'openid offline_access',
    gty: 'authorization_code',
    expiresWithSession: false,
  });
  return { grantId, value: await refreshToken.save() };
}

describe('the installed oidc-provider', () => {
  it(`is the version upstream.ts was checked against (${CHECKED_AGAINST})`, () => {
    const { version } = JSON.parse(readFileSync(new URL('../../../node_modules/oidc-provider/package.json', import.meta.url), 'utf8')) as { version: string };
    const [major, minor, patch] = version.split('.').map(Number);
    expect(
      major === 9 && minor === 13 && patch! >= 3,
      `oidc-provider ${version} is installed, upstream.ts was checked against ${CHECKED_AGAINST}: see docs/upgrading-oidc-provider.md`,
    ).toBe(true);
  });
});

describe('the refresh grant, as atomic rotation (oidc/adapters/rotation-scope.ts) relies on it', () => {
  it('consumes the presented token, then saves its successor, then the access token, all in the request’s Provider.ctx', async () => {
    const { value } = await issueRefreshToken();
    calls.length = 0;
    const response = await token({ grant_type: 'refresh_token', refresh_token: value });
    expect(response.status).toBe(200);
    const answer = (await response.json()) as { refresh_token: string; id_token: string };

    const writes = calls.filter((call) => ['upsert', 'consume', 'destroy'].includes(call.method)).map((call) => `${call.model}.${call.method}`);
    expect(writes).toEqual(['RefreshToken.consume', 'RefreshToken.upsert', 'AccessToken.upsert']);
    const consume = calls.find((call) => call.model === 'RefreshToken' && call.method === 'consume')!;
    const save = calls.find((call) => call.model === 'RefreshToken' && call.method === 'upsert')!;
    expect(consume.id).toBe(value);
    expect(save.id).toBe(answer.refresh_token);
    expect(consume.request).toBeDefined();
    expect(save.request).toBe(consume.request);
    // Outside a request there is none.
    expect(currentProviderRequest()).toBeUndefined();
  });

  it('answers a spent refresh token with the error isRefreshTokenReuse and refreshTokenReused name, and revokes the grant', async () => {
    const { value, grantId } = await issueRefreshToken();
    expect((await token({ grant_type: 'refresh_token', refresh_token: value })).status).toBe(200);
    grantErrors.length = 0;
    calls.length = 0;
    const again = await token({ grant_type: 'refresh_token', refresh_token: value });
    expect(again.status).toBe(400);
    expect(((await again.json()) as { error: string }).error).toBe('invalid_grant');
    expect(grantErrors).toHaveLength(1);
    const theirs = grantErrors[0]!;
    expect(isRefreshTokenReuse(theirs)).toBe(true);
    const ours = refreshTokenReused();
    expect({ error: ours.error, detail: ours.error_detail }).toEqual({ error: theirs.error, detail: theirs.error_detail });
    expect(calls.some((call) => call.method === 'revokeByGrantId' && call.id === grantId)).toBe(true);
    expect(isRefreshTokenReuse(new errors.InvalidGrant('refresh token not found'))).toBe(false);
  });
});

describe('replay detection, as the store adapter\'s atomic claim (oidc/adapters/store-adapter.ts) relies on it', () => {
  it(`${REPLAY_DETECTION_MODEL}.unique finds an id, saves that same id only when it found nothing, and answers false when it found one`, async () => {
    const exp = epoch() + 300;
    calls.length = 0;
    expect(await provider.ReplayDetection.unique('a-client', 'a-jti', exp)).toBe(true);
    const first = calls.filter((call) => call.model === REPLAY_DETECTION_MODEL);
    expect(first.map((call) => call.method)).toEqual(['find', 'upsert']);
    expect(first[1]!.id).toBe(first[0]!.id);
    calls.length = 0;
    expect(await provider.ReplayDetection.unique('a-client', 'a-jti', exp)).toBe(false);
    expect(calls.filter((call) => call.model === REPLAY_DETECTION_MODEL).map((call) => call.method)).toEqual(['find']);
    // Another issuer's jti of the same value is another id.
    expect(await provider.ReplayDetection.unique('another-client', 'a-jti', exp)).toBe(true);
  });
});

describe('errors', () => {
  it('DependencyUnavailable from an adapter is answered 503 temporarily_unavailable, and isUnreachable knows it', async () => {
    const { value } = await issueRefreshToken();
    refreshTokenStoreDown = true;
    const response = await token({ grant_type: 'refresh_token', refresh_token: value });
    expect(response.status).toBe(503);
    expect(((await response.json()) as { error: string }).error).toBe('temporarily_unavailable');
    // The subclass exists for the status: oidc-provider's own answers 400.
    expect(new errors.TemporarilyUnavailable('x').statusCode).toBe(400);
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    const unavailable = new DependencyUnavailable('store', refused);
    expect(isUnreachable(unavailable)).toBe(true);
    expect(unavailable).toBeInstanceOf(errors.TemporarilyUnavailable);
    expect(unavailable.error_detail).toBeUndefined();
  });

  it("recognises a body over oidc-provider's own limit by isBodyTooLarge", async () => {
    grantErrors.length = 0;
    const body = `grant_type=client_credentials&padding=${'a'.repeat(57 * 1024)}`;
    const response = await fetch(`${base}${provider.pathFor('token')}`, {
      method: 'POST',
      headers: { authorization: basic(), 'content-type': 'application/x-www-form-urlencoded' },
      body,
    }).catch(() => undefined);
    if (response) expect(response.status).toBe(400);
    expect(grantErrors.map((error) => isBodyTooLarge(error))).toEqual([true]);
    expect(isBodyTooLarge(new errors.InvalidRequest('failed to parse the request body'))).toBe(false);
  });
});

describe('clients', () => {
  it('looks clients up through the static Client.find, which rememberBuiltClients replaces', async () => {
    const record = { clientId: 'app' } as unknown as ClientRecord;
    const cache = { getClient: async (id: string) => (id === 'app' ? record : undefined) } as unknown as RegistryCache;
    const fresh = new Provider(ISSUER, {
      adapter: recordingAdapter,
      jwks: { keys: [signingKey] },
      features: { devInteractions: { enabled: false }, externalSigningSupport: EXTERNAL_SIGNING },
    });
    rememberBuiltClients(fresh, cache);
    const kept = await fresh.Client.find('app');
    expect(kept?.clientId).toBe('app');
    // The record is the same: the Client built for it is handed out without asking the adapter again.
    calls.length = 0;
    expect(await fresh.Client.find('app')).toBe(kept);
    expect(calls.filter((call) => call.model === 'Client')).toEqual([]);

    let lookups = 0;
    const find = provider.Client.find.bind(provider.Client);
    provider.Client.find = (id: string) => {
      lookups += 1;
      return find(id);
    };
    try {
      const response = await token({ grant_type: 'client_credentials' });
      expect(lookups).toBeGreaterThan(0);
      // Refused for the grant (the client has no client_credentials), after authenticating it.
      expect(response.status).toBe(400);
    } finally {
      provider.Client.find = find;
    }
  });

  it('compares a presented secret through the replaced compareClientSecret, against the stored digest', async () => {
    const { value } = await issueRefreshToken();
    expect((await token({ grant_type: 'refresh_token', refresh_token: value }, digestClientSecret(DIGEST_KEY, CLIENT_SECRET))).status).toBe(401);
    expect((await token({ grant_type: 'refresh_token', refresh_token: value }, 'wrong')).status).toBe(401);
    expect((await token({ grant_type: 'refresh_token', refresh_token: value })).status).toBe(200);
  });

  it('echoes the stored client_secret to the adapter unless it issued one, and refuses a client_secret in an update with the text isClientSecretUpdateRefusal knows', async () => {
    const iat = newInitialAccessTokenValue();
    rows.set(`InitialAccessToken:${iat}`, { ...initialAccessTokenPayload(epoch(), epoch() + 600), jti: iat });
    calls.length = 0;
    const registered = await fetch(`${base}${provider.pathFor('registration')}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${iat}`, 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: ['https://rp.example/cb'] }),
    });
    expect(registered.status).toBe(201);
    const client = (await registered.json()) as { client_id: string; client_secret: string; registration_access_token: string; registration_client_uri: string };
    const created = calls.find((call) => call.model === 'Client' && call.method === 'upsert')!;
    expect(issuedClientSecret(created.payload!)).toBe(client.client_secret);

    const update = (body: Record<string, unknown>) =>
      fetch(client.registration_client_uri.replace(ISSUER, base), {
        method: 'PUT',
        headers: { authorization: `Bearer ${client.registration_access_token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ client_id: client.client_id, redirect_uris: ['https://rp.example/cb'], ...body }),
      });
    const refused = await update({ client_secret: client.client_secret });
    expect(refused.status).toBe(400);
    expect(isClientSecretUpdateRefusal(((await refused.json()) as { error_description: string }).error_description)).toBe(true);

    calls.length = 0;
    expect((await update({})).status).toBe(200);
    const echoed = calls.find((call) => call.model === 'Client' && call.method === 'upsert')!;
    expect(echoed.payload!.client_secret).toBe(digestClientSecret(DIGEST_KEY, client.client_secret));
    expect(issuedClientSecret(echoed.payload!)).toBeUndefined();
  });
});

describe('initial access tokens', () => {
  it('are stored by the provider as initialAccessTokenPayload builds them, with a value like newInitialAccessTokenValue', async () => {
    calls.length = 0;
    const value = await new provider.InitialAccessToken({ expiresIn: 600 }).save();
    const saved = calls.find((call) => call.model === 'InitialAccessToken' && call.method === 'upsert')!;
    const { jti, ...stored } = saved.payload!;
    expect(jti).toBe(value);
    expect(stored).toEqual(initialAccessTokenPayload(stored.iat!, stored.exp!));
    expect(stored.exp! - stored.iat!).toBe(600);
    expect(value).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(newInitialAccessTokenValue()).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('minted without the provider, are found by it and register a client', async () => {
    const value = newInitialAccessTokenValue();
    const issuedAt = epoch();
    // As the durable adapter's find hands a stored token back: with its value as jti.
    rows.set(`InitialAccessToken:${value}`, { ...initialAccessTokenPayload(issuedAt, issuedAt + 600), jti: value });
    const found = await provider.InitialAccessToken.find(value);
    expect(found?.exp).toBe(issuedAt + 600);
    const registered = await fetch(`${base}${provider.pathFor('registration')}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${value}`, 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: ['https://rp.example/cb'] }),
    });
    expect(registered.status).toBe(201);
  });
});

describe('routes', () => {
  it('still crashes (500) on a query to the resume route, which ignoreResumeQuery prevents', async () => {
    const resume = `${base}${provider.pathFor('authorization')}/no-such-interaction?client_id=app`;
    const bare = await fetch(resume);
    expect(bare.status, 'oidc-provider no longer crashes here: ignoreResumeQuery may go (docs/upgrading-oidc-provider.md)').toBe(500);
    const worked = await fetch(resume, { headers: { 'X-Workaround': '1' } });
    expect(worked.status).toBeGreaterThanOrEqual(400);
    expect(worked.status).toBeLessThan(500);
  });

  it('adds the hash of a self-submitting page’s script to a script-src it finds, where providerScriptHashes reads it', async () => {
    const query = new URLSearchParams({
      client_id: 'app',
      response_type: 'code',
      response_mode: 'form_post',
      redirect_uri: 'https://rp.example/cb',
      scope: 'openid',
      prompt: 'none',
      state: 'xyz',
    });
    const page = await fetch(`${base}${provider.pathFor('authorization')}?${query}`, { headers: { 'X-Preset-Csp': '1' }, redirect: 'manual' });
    // The error (login_required: no session) posted back to the client by a page that submits itself.
    const html = await page.text();
    expect(html).toContain('name="error" value="login_required"');
    expect(html).toContain('action="https://rp.example/cb"');
    const scripts = [...html.matchAll(/<script[^>]*>([\s\S]*?)<\/script>/g)].map(([, script]) => script!);
    expect(scripts).toHaveLength(1);
    const expected = `'sha256-${createHash('sha256').update(scripts[0]!).digest('base64')}'`;
    expect(providerScriptHashes(page.headers.get('content-security-policy') ?? '')).toEqual([expected]);
    expect(providerScriptHashes("default-src 'self'")).toEqual([]);
  });

  it("reads koa-router's matched route pattern", async () => {
    const app = new Koa();
    const router = new Router();
    let seen: string | undefined = 'not run';
    router.get('/things/:id', (ctx) => {
      ctx.body = 'ok';
    });
    app.use(async (ctx, next) => {
      await next();
      seen = matchedRoutePattern(ctx);
    });
    app.use(router.routes());
    const routed = createServer(app.callback());
    await new Promise<void>((resolve) => routed.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(routed.address() as AddressInfo).port}`;
      expect((await fetch(`${url}/things/42`)).status).toBe(200);
      expect(seen).toBe('/things/:id');
      await fetch(`${url}/elsewhere`);
      expect(seen).toBeUndefined();
    } finally {
      await new Promise((resolve) => routed.close(resolve));
    }
  });
});

describe('external signing', () => {
  it('takes providerSigningKey under the EXTERNAL_SIGNING ack, publishes its public half and signs with it', async () => {
    const jwks = (await (await fetch(`${base}${provider.pathFor('jwks')}`)).json()) as JSONWebKeySet;
    expect(jwks.keys).toEqual([expect.objectContaining({ kid: 'contract-key', alg: 'RS256', kty: 'RSA', use: 'sig' })]);
    expect(jwks.keys[0]).not.toHaveProperty('d');
    const { value } = await issueRefreshToken();
    const answer = (await (await token({ grant_type: 'refresh_token', refresh_token: value })).json()) as { id_token: string };
    const { payload, protectedHeader } = await jwtVerify(answer.id_token, createLocalJWKSet(jwks), { issuer: ISSUER, audience: 'app' });
    expect(protectedHeader.kid).toBe('contract-key');
    expect(payload.sub).toBe('user-1');
  });

  it('refuses a provider whose ack names another draft', () => {
    expect(() => new Provider(ISSUER, { jwks: { keys: [signingKey] }, features: { externalSigningSupport: { enabled: true, ack: 'experimental-00' } } })).toThrow(
      /unacknowledged version of an experimental feature/,
    );
  });
});

/**
 * A provider with interactions, on a socket of its own: GET /interaction/:uid answers the prompt as
 * JSON, GET /interaction/:uid/finish finishes the interaction with `finishWith` (as Gatehouse's
 * routes call interactionResult) and follows on to the resume step. Consent is never asked (the
 * grant is made as Gatehouse makes a first-party client's).
 */
async function interactiveProvider(configuration: Partial<ConstructorParameters<typeof Provider>[1]>) {
  const state: { finishWith: Record<string, unknown> } = { finishWith: {} };
  const served = new Provider(ISSUER, {
    adapter: recordingAdapter,
    jwks: { keys: [signingKey] },
    cookies: { keys: ['a cookie key of the contract test only, 32+ chars'] },
    features: { devInteractions: { enabled: false }, externalSigningSupport: EXTERNAL_SIGNING },
    // offline_access keeps the refresh_token grant on, which the shared client `app` has.
    scopes: ['openid', 'offline_access'],
    findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
    async loadExistingGrant(ctx) {
      const { client, session } = ctx.oidc;
      if (!client || !session?.accountId) return undefined;
      const grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
      grant.addOIDCScope('openid');
      await grant.save();
      return grant;
    },
    renderError: (ctx, out) => {
      ctx.body = out;
    },
    ...configuration,
  });
  compareClientSecretsWith(served, (presented, stored) => verifyClientSecret(DIGEST_KEY, presented, stored));
  served.use(async (ctx, next) => {
    const match = /^\/interaction\/([^/]+)(\/finish)?$/.exec(ctx.path);
    if (!match) return next();
    if (match[2]) {
      const url = await served.interactionResult(ctx.req, ctx.res, state.finishWith, { mergeWithLastSubmission: false });
      ctx.status = 303;
      ctx.redirect(url);
      return;
    }
    const details = await served.interactionDetails(ctx.req, ctx.res);
    ctx.body = { uid: details.uid, prompt: details.prompt };
  });
  const listening = createServer(served.callback());
  await new Promise<void>((resolve) => listening.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(listening.address() as AddressInfo).port}`;
  const interaction = (answer: { response: Response; url: string }) => ({ ...answer, prompt: answer.response.status === 200 && new URL(answer.url).pathname.startsWith('/interaction/') });

  return {
    state,
    url,
    provider: served,
    close: () => new Promise((resolve) => listening.close(resolve)),
    /** Starts an authorization request for `app` on `agent`; where it stopped (an interaction, or the client's redirect_uri). */
    async authorize(agent: Agent, params: Record<string, string> = {}) {
      const { challenge, verifier } = pkce();
      const query = new URLSearchParams({
        client_id: 'app',
        response_type: 'code',
        redirect_uri: 'https://rp.example/cb',
        scope: 'openid',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        ...params,
      });
      return { ...interaction(await agent.follow(`/auth?${query}`)), verifier };
    },
    /** Finishes the interaction the agent is at with `result`; where that led. */
    async finish(agent: Agent, at: string, result: Record<string, unknown>) {
      state.finishWith = result;
      return interaction(await agent.follow(`${new URL(at).pathname}/finish`));
    },
    /** Exchanges a code of `app` for its ID token's payload, verified against the provider's JWKS. */
    async idToken(code: string, verifier: string) {
      const response = await fetch(`${url}${served.pathFor('token')}`, {
        method: 'POST',
        headers: { authorization: basic(), 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: 'https://rp.example/cb', code_verifier: verifier }),
      });
      expect(response.status).toBe(200);
      const jwks = (await (await fetch(`${url}${served.pathFor('jwks')}`)).json()) as JSONWebKeySet;
      const { id_token: idToken } = (await response.json()) as { id_token: string };
      return (await jwtVerify(idToken, createLocalJWKSet(jwks), { issuer: ISSUER, audience: 'app' })).payload;
    },
  };
}

describe('the authentication context (acr, amr)', () => {
  it('reaches every ID token from a login result only with AUTHENTICATION_CLAIMS listed under claims.openid', async () => {
    for (const listed of [true, false]) {
      const op = await interactiveProvider({ acrValues: [...ACR_VALUES], claims: { openid: ['sub', ...(listed ? AUTHENTICATION_CLAIMS : [])] } });
      try {
        const agent = new Agent(op.url);
        const started = await op.authorize(agent);
        expect(started.prompt).toBe(true);
        const done = await op.finish(agent, started.url, { login: { accountId: 'user-1', acr: ACR_BASIC, amr: ['pwd'] } });
        const redirect = new URL(done.url);
        expect(redirect.origin + redirect.pathname).toBe('https://rp.example/cb');
        const payload = await op.idToken(redirect.searchParams.get('code')!, started.verifier);
        expect(payload.sub).toBe('user-1');
        if (listed) expect({ acr: payload.acr, amr: payload.amr }).toEqual({ acr: ACR_BASIC, amr: ['pwd'] });
        else {
          expect(payload).not.toHaveProperty('acr');
          expect(payload).not.toHaveProperty('amr');
        }

        // The session keeps them: the next request of the same browser is answered at once, with the same values.
        const again = await op.authorize(agent, { prompt: 'none' });
        const code = new URL(again.url).searchParams.get('code');
        expect(code).toBeTruthy();
        const second = await op.idToken(code!, again.verifier);
        if (listed) expect({ acr: second.acr, amr: second.amr }).toEqual({ acr: ACR_BASIC, amr: ['pwd'] });
      } finally {
        await op.close();
      }
    }
  });

  it('advertises acrValues in discovery as acr_values_supported, and the claims as supported', async () => {
    const op = await interactiveProvider({ acrValues: [...ACR_VALUES], claims: { openid: ['sub', ...AUTHENTICATION_CLAIMS] } });
    try {
      const discovery = (await (await fetch(`${op.url}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
      expect(discovery.acr_values_supported).toEqual([ACR_BASIC, ACR_MFA]);
      expect(discovery.claims_supported).toEqual(expect.arrayContaining(['sub', 'acr', 'amr']));
    } finally {
      await op.close();
    }
  });
});

describe('a check of our own on the login prompt (policyWithLoginCheck), and unmetAuthenticationRequirements', () => {
  it('runs with the built-in checks, prompts, answers prompt=none with login_required, runs again on resume, and the unmet result reaches the client', async () => {
    const op = await interactiveProvider({
      acrValues: [...ACR_VALUES],
      claims: { openid: ['sub', ...AUTHENTICATION_CLAIMS] },
      interactions: {
        url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
        policy: policyWithLoginCheck({
          reason: 'strong_needed',
          description: 'a stronger sign-in is needed',
          check: async (ctx) => ctx.oidc.params?.acr_values === ACR_MFA && ctx.oidc.session?.acr !== ACR_MFA,
          details: async () => ({ why: 'asked' }),
        }),
      },
    });
    try {
      const agent = new Agent(op.url);
      // No session: every prompting check of the login prompt is listed, no_session first, and the details merged.
      const first = await op.authorize(agent, { acr_values: ACR_MFA });
      const details = (await first.response.json()) as { prompt: { name: string; reasons: string[]; details: Record<string, unknown> } };
      expect(details.prompt).toMatchObject({ name: 'login', reasons: ['no_session', 'strong_needed'], details: { why: 'asked' } });
      // A login at basic: the resume step runs the policy again, and the check asks once more.
      const basic = await op.finish(agent, first.url, { login: { accountId: 'user-2', acr: ACR_BASIC, amr: ['pwd'] } });
      expect(basic.prompt).toBe(true);
      const again = (await basic.response.json()) as typeof details;
      expect(again.prompt.reasons).toEqual(['strong_needed']);

      // The unmet result ends at the client with that error and no code.
      const unmet = await op.finish(agent, basic.url, unmetAuthenticationRequirements('no second factor'));
      const refused = new URL(unmet.url);
      expect(refused.origin + refused.pathname).toBe('https://rp.example/cb');
      expect(refused.searchParams.get('error')).toBe('unmet_authentication_requirements');
      expect(refused.searchParams.get('code')).toBeNull();

      // prompt=none with the basic session: login_required, the check's error, at the redirect_uri.
      const silent = await op.authorize(agent, { acr_values: ACR_MFA, prompt: 'none' });
      const silentUrl = new URL(silent.url);
      expect(silentUrl.origin + silentUrl.pathname).toBe('https://rp.example/cb');
      expect(silentUrl.searchParams.get('error')).toBe('login_required');
      expect(silentUrl.searchParams.get('code')).toBeNull();

      // Without acr_values the basic session is enough.
      const plain = await op.authorize(agent, { prompt: 'none' });
      expect(new URL(plain.url).searchParams.get('code')).toBeTruthy();

      // A login at mfa satisfies the check on resume: a code, and the ID token says mfa.
      const stepUp = await op.authorize(agent, { acr_values: ACR_MFA });
      expect(stepUp.prompt).toBe(true);
      const done = await op.finish(agent, stepUp.url, { login: { accountId: 'user-2', acr: ACR_MFA, amr: ['pwd', 'otp', 'mfa'] } });
      const code = new URL(done.url).searchParams.get('code');
      expect(code).toBeTruthy();
      const payload = await op.idToken(code!, stepUp.verifier);
      expect({ acr: payload.acr, amr: payload.amr }).toEqual({ acr: ACR_MFA, amr: ['pwd', 'otp', 'mfa'] });
    } finally {
      await op.close();
    }
  });
});

describe('the browser session read by the parent Koa app (browserSession, for /account)', () => {
  it('reads the signed-in session of a route outside the provider, and a browser without one as no account; writes no cookie', async () => {
    const op = await interactiveProvider({ acrValues: [...ACR_VALUES], claims: { openid: ['sub', ...AUTHENTICATION_CLAIMS] } });
    // The parent app mounts the provider's middleware after its own route, as src/http/app.ts does.
    // Its keys are the provider's cookie keys (NOTES: the provider's middleware signs with the app's).
    const parent = new Koa({ keys: ['a cookie key of the contract test only, 32+ chars'] });
    const providerStack = compose(op.provider.middleware);
    parent.use(async (ctx, next) => {
      if (ctx.path !== '/whoami') return providerStack(ctx, next);
      const session = await browserSession(op.provider, ctx);
      ctx.body = { accountId: session.accountId ?? null, acr: session.acr ?? null, amr: session.amr ?? null, loginTs: session.loginTs ?? null, uid: session.uid };
    });
    const listening = createServer(parent.callback());
    await new Promise<void>((resolve) => listening.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(listening.address() as AddressInfo).port}`;
    try {
      const agent = new Agent(url);
      const before = await agent.request('/whoami');
      expect(before.headers.getSetCookie()).toEqual([]);
      expect(((await before.json()) as { accountId: unknown }).accountId).toBeNull();

      const started = await op.authorize(agent);
      expect(started.prompt).toBe(true);
      const done = await op.finish(agent, started.url, { login: { accountId: 'user-3', acr: ACR_MFA, amr: ['pwd', 'otp', 'mfa'] } });
      expect(new URL(done.url).searchParams.get('code')).toBeTruthy();
      const after = await agent.request('/whoami');
      expect(after.headers.getSetCookie()).toEqual([]);
      const read = (await after.json()) as { accountId: string; acr: string; amr: string[]; loginTs: number; uid: string };
      expect(read).toMatchObject({ accountId: 'user-3', acr: ACR_MFA, amr: ['pwd', 'otp', 'mfa'] });
      expect(Math.abs(read.loginTs - epoch())).toBeLessThan(3600);
      expect(read.uid).toMatch(/^[\w-]{10,}$/);

      // The session cookie without its signature is no session.
      const forged = await fetch(`${url}/whoami`, { headers: { cookie: `_session=${agent.cookies.get('_session')}` } });
      expect(((await forged.json()) as { accountId: unknown }).accountId).toBeNull();
    } finally {
      await new Promise((resolve) => listening.close(resolve));
      await op.close();
    }
  });
});

describe('the sessions of an account (oidc/adapters/session-index.ts, for /account "Sessions")', () => {
  it('saves a signed-in Session under its cookie value, in a provider request, with accountId, uid and loginTs that sessionFields reads', async () => {
    const op = await interactiveProvider({});
    try {
      const agent = new Agent(op.url);
      const started = await op.authorize(agent, {});
      const before = calls.length;
      await op.finish(agent, started.url, { login: { accountId: 'user-7' } });
      const saves = calls.slice(before).filter((call) => call.model === 'Session' && call.method === 'upsert' && sessionFields(call.payload)?.accountId === 'user-7');
      expect(saves.length).toBeGreaterThan(0);
      const last = saves.at(-1)!;
      // The id is the _session cookie's value (the browser's), and the save ran in the browser's request.
      expect(last.id).toBe(agent.cookies.get('_session'));
      const fields = sessionFields(last.payload)!;
      expect(fields.uid).toMatch(/^[\w-]{10,}$/);
      expect(Math.abs((fields.loginTs ?? 0) - epoch())).toBeLessThan(60);
      const client = providerRequestClient(last.request);
      expect(client).toBeDefined();
      expect(client!.ip).toBe('127.0.0.1');
      expect(typeof client!.userAgent === 'string' || client!.userAgent === null).toBe(true);
      // Before sign-in, or another shape: nothing.
      expect(sessionFields({ uid: 'x' })).toBeUndefined();
      expect(sessionFields(undefined)).toBeUndefined();
      expect(providerRequestClient(undefined)).toBeUndefined();
    } finally {
      await op.close();
    }
  });

  it('stores a Grant whose openid.scope and resources grantScopes reads, as Grant#getOIDCScope and #getResourceScope give them', async () => {
    const op = await interactiveProvider({});
    try {
      const grant = new op.provider.Grant({ clientId: 'app', accountId: 'user-8' });
      grant.addOIDCScope('openid email');
      grant.addResourceScope('https://api.example.test', 'read write');
      const id = await grant.save();
      const stored = calls.filter((call) => call.model === 'Grant' && call.method === 'upsert' && call.id === id).at(-1)!.payload!;
      const read = grantScopes(stored as Record<string, unknown>);
      expect(read).toEqual({ openid: ['openid', 'email'], resources: [{ resource: 'https://api.example.test', scopes: ['read', 'write'] }] });
      expect(read.openid.join(' ')).toBe(grant.getOIDCScope());
      expect(read.resources[0]!.scopes.join(' ')).toBe(grant.getResourceScope('https://api.example.test'));
      expect(grantScopes({})).toEqual({ openid: [], resources: [] });
    } finally {
      await op.close();
    }
  });
});

describe('token requests without client authentication (supplyClientId, for personal API keys)', () => {
  const GRANT = 'urn:example:params:oauth:grant-type:contract';

  beforeAll(() => {
    provider.registerGrantType(
      GRANT,
      (ctx) => {
        const { thing } = ctx.oidc.params as { thing?: unknown };
        if (thing === 'refuse') throw invalidGrantSaying('because this thing is refused');
        if (thing === 'busy') throw new TooManyAttempts('too many of these: wait');
        ctx.body = { client: ctx.oidc.client?.clientId, thing };
      },
      ['thing'],
    );
    rows.set('Client:keys', { client_id: 'keys', grant_types: [GRANT], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'none' });
    supplyClientId(provider, 'keys', (body) => body.grant_type === GRANT && body.thing === 'mine');
  });

  const post = (body: Record<string, string>, headers: Record<string, string> = {}) =>
    fetch(`${base}${provider.pathFor('token')}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(body) });

  it("serves a request the predicate takes as the named client's: the parsed body reaches the params through ctx.oidc.body", async () => {
    const response = await post({ grant_type: GRANT, thing: 'mine' });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ client: 'keys', thing: 'mine' });
  });

  it('leaves a request the predicate does not take, or one with client authentication, as it came', async () => {
    const other = await post({ grant_type: GRANT, thing: 'yours' });
    expect(other.status).toBe(400);
    expect(await other.json()).toMatchObject({ error: 'invalid_request', error_description: 'no client authentication mechanism provided' });
    // Authenticated as `app`, which is not registered for the grant: app's request, not keys'.
    const authenticated = await post({ grant_type: GRANT, thing: 'mine' }, { authorization: basic() });
    expect(authenticated.status).toBe(400);
    expect(await authenticated.json()).toMatchObject({ error: 'invalid_request', error_description: 'requested grant type is not allowed for this client' });
    const named = await post({ grant_type: GRANT, thing: 'mine', client_id: 'app' });
    expect(await named.json()).toMatchObject({ error: 'invalid_client' });
  });

  it('answers TooManyAttempts 429 temporarily_unavailable with its description', async () => {
    const response = await post({ grant_type: GRANT, thing: 'busy', client_id: 'keys' });
    expect(response.status).toBe(429);
    expect(await response.json()).toEqual({ error: 'temporarily_unavailable', error_description: 'too many of these: wait' });
  });

  it('answers invalidGrantSaying as invalid_grant with its own description', async () => {
    const response = await post({ grant_type: GRANT, thing: 'refuse', client_id: 'keys' });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ error: 'invalid_grant', error_description: 'because this thing is refused' });
  });

  it('touches no other endpoint: a refresh without a client is still refused as before', async () => {
    const response = await post({ grant_type: 'refresh_token', refresh_token: 'x', thing: 'mine' });
    expect(await response.json()).toMatchObject({ error: 'invalid_request', error_description: 'no client authentication mechanism provided' });
  });
});

describe('the device flow (oidc/device-flow.ts)', () => {
  const DEVICE = 'urn:ietf:params:oauth:grant-type:device_code';
  let device: Provider;
  let deviceServer: Server;
  let deviceBase: string;
  const refusals: unknown[] = [];
  const polled: Array<{ code: PolledDeviceCode; clientId: string | undefined }> = [];
  let slowDown = false;

  beforeAll(async () => {
    const { privateKey } = await generateKeyPair('RS256', { extractable: true });
    const key = providerSigningKey({ ...(await exportJWK(privateKey)), alg: 'RS256', kid: 'device-key', use: 'sig' });
    device = new Provider(ISSUER, {
      jwks: { keys: [key] },
      features: {
        devInteractions: { enabled: false },
        externalSigningSupport: EXTERNAL_SIGNING,
        deviceFlow: {
          enabled: true,
          userCodeInputSource(ctx, form, _out, err) {
            if (err) refusals.push(err);
            ctx.body = form;
          },
        },
      },
      clients: [{ client_id: 'tv', grant_types: [DEVICE], response_types: [], redirect_uris: [], token_endpoint_auth_method: 'none' }],
      findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
      renderError: (ctx, out) => {
        ctx.body = out;
      },
    });
    beforeDeviceCodePoll(device, async (code, clientId) => {
      polled.push({ code, clientId });
      if (slowDown) throw new errors.SlowDown();
    });
    deviceServer = createServer(device.callback());
    await new Promise<void>((resolve) => deviceServer.listen(0, '127.0.0.1', resolve));
    deviceBase = `http://127.0.0.1:${(deviceServer.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => deviceServer?.close(resolve));
  });

  const post = async (path: string, body: Record<string, string>) => {
    const response = await fetch(`${deviceBase}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(body) });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  it('reads a polled device code through DeviceCode.find, which beforeDeviceCodePoll replaces: the check sees it and the client, and what it throws is the answer', async () => {
    const started = await post(device.pathFor('device_authorization'), { client_id: 'tv', scope: 'openid' });
    expect(started.status).toBe(200);
    const deviceCode = String(started.body.device_code);
    const poll = () => post(device.pathFor('token'), { grant_type: DEVICE, device_code: deviceCode, client_id: 'tv' });
    expect((await poll()).body.error).toBe('authorization_pending');
    expect(polled).toHaveLength(1);
    expect(polled[0]!.clientId).toBe('tv');
    expect(polled[0]!.code).toMatchObject({ jti: deviceCode, clientId: 'tv', isExpired: false });
    expect(polled[0]!.code.accountId).toBeUndefined();
    slowDown = true;
    expect(await poll()).toMatchObject({ status: 400, body: { error: 'slow_down' } });
    slowDown = false;
    // The device authorization request itself read no code through find.
    expect(polled).toHaveLength(2);
  });

  it("hands userCodeInputSource refusals whose names deviceCodeRefusalOf knows", async () => {
    const agent = new Agent(deviceBase);
    const form = await (await agent.request(device.pathFor('code_verification'))).text();
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(form)?.[1] ?? '';
    const unknown = await agent.postForm(device.pathFor('code_verification'), { xsrf, user_code: 'BCDF-GHJK' });
    const next = /name="xsrf" value="([^"]+)"/.exec(await unknown.text())?.[1] ?? '';
    await agent.postForm(device.pathFor('code_verification'), { xsrf: next, user_code: '' });
    expect(refusals.map(deviceCodeRefusalOf)).toEqual(['not_found', 'no_code']);
    expect(deviceCodeRefusalOf(new errors.InvalidRequest('xsrf token invalid'))).toBeUndefined();
  });
});
describe('back-channel logout (deferBackchannelLogout, outboundFetch, for oidc/backchannel-logout.ts)', () => {
  /** An app's back-channel endpoint on a loopback port: answers each POST with the next status of `statuses` (200 when none is left), records the logout tokens. */
  async function appEndpoint(statuses: number[] = []) {
    const tokens: string[] = [];
    const listening = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        tokens.push(new URLSearchParams(body).get('logout_token') ?? '');
        res.writeHead(statuses.shift() ?? 200).end();
      });
    });
    await new Promise<void>((resolve) => listening.listen(0, '127.0.0.1', resolve));
    return { uri: `http://127.0.0.1:${(listening.address() as AddressInfo).port}/bcl`, tokens, close: () => new Promise((resolve) => listening.close(resolve)) };
  }

  /**
   * A provider with back-channel logout on and the client `bcl-<n>` (its backchannel_logout_uri at
   * `uri`, session required) signed in to by `user-bcl` on `agent`; deliveries are collected, and
   * every request the provider sends out is recorded with the options it went with.
   */
  let counter = 0;
  async function signedInProvider(uri: string, allowLoopback: boolean) {
    counter += 1;
    const clientId = `bcl-${counter}`;
    rows.set(`Client:${clientId}`, {
      client_id: clientId,
      client_secret: digestClientSecret(DIGEST_KEY, CLIENT_SECRET),
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: ['https://rp.example/cb'],
      token_endpoint_auth_method: 'client_secret_basic',
      backchannel_logout_uri: uri,
      backchannel_logout_session_required: true,
    });
    const outgoing: Array<{ url: string; init: (RequestInit & { dispatcher?: unknown }) | undefined }> = [];
    const op = await interactiveProvider({
      features: {
        devInteractions: { enabled: false },
        externalSigningSupport: EXTERNAL_SIGNING,
        backchannelLogout: { enabled: true },
        rpInitiatedLogout: { enabled: true },
      },
      fetch: outboundFetch((input, init) => {
        outgoing.push({ url: String(input), init: init as (RequestInit & { dispatcher?: unknown }) | undefined });
        return fetch(input, init);
      }),
    });
    const deliveries: LogoutDelivery[] = [];
    deferBackchannelLogout(op.provider, (delivery) => deliveries.push(delivery), { allowLoopback });
    const agent = new Agent(op.url);
    const started = await op.authorize(agent, { client_id: clientId });
    const finished = await op.finish(agent, started.url, { login: { accountId: 'user-bcl' } });
    expect(new URL(finished.url).origin).toBe('https://rp.example');
    return { op, agent, clientId, deliveries, outgoing };
  }

  /** The provider's end_session page, confirmed with logout=yes. */
  async function endSession(agent: Agent): Promise<Response> {
    const page = await agent.request('/session/end');
    expect(page.status).toBe(200);
    return agent.postForm('/session/end/confirm', { xsrf: hiddenInput(await page.text(), 'xsrf') ?? '', logout: 'yes' });
  }

  it('end_session hands each delivery over and answers without sending anything; send builds and posts the logout token under the given signal', async () => {
    const app = await appEndpoint();
    const { op, agent, clientId, deliveries, outgoing } = await signedInProvider(app.uri, true);
    try {
      // The stored session names the client with the sid of its authorization.
      const stored = calls.filter((call) => call.model === 'Session' && call.method === 'upsert' && call.id === agent.cookies.get('_session')).at(-1)!.payload;
      const [authorization] = sessionAuthorizations(stored);
      expect(authorization).toEqual({ clientId, sid: expect.stringMatching(/^[\w-]{10,}$/) });
      expect(sessionAuthorizations(undefined)).toEqual([]);

      const confirmed = await endSession(agent);
      expect(confirmed.status).toBe(303);
      expect(deliveries.map(({ clientId: id, accountId, sid }) => ({ clientId: id, accountId, sid }))).toEqual([{ clientId, accountId: 'user-bcl', sid: authorization!.sid }]);
      expect(app.tokens).toEqual([]);
      expect(outgoing).toEqual([]);

      const signal = AbortSignal.timeout(5000);
      await deliveries[0]!.send(signal);
      expect(app.tokens).toHaveLength(1);
      // Our signal, not oidc-provider's own 2.5 s one; no SSRF agent for a loopback name when allowed.
      expect(outgoing).toHaveLength(1);
      expect(outgoing[0]!.url).toBe(app.uri);
      expect(outgoing[0]!.init?.signal).toBe(signal);
      expect(outgoing[0]!.init).not.toHaveProperty('dispatcher');
      const jwks = (await (await fetch(`${op.url}${op.provider.pathFor('jwks')}`)).json()) as JSONWebKeySet;
      const { payload, protectedHeader } = await jwtVerify(app.tokens[0]!, createLocalJWKSet(jwks), { issuer: ISSUER, audience: clientId, typ: 'logout+jwt' });
      expect(protectedHeader.typ).toBe('logout+jwt');
      expect(payload).toMatchObject({ sub: 'user-bcl', sid: authorization!.sid, events: { 'http://schemas.openid.net/event/backchannel-logout': {} } });
      expect(payload).not.toHaveProperty('nonce');
      expect(typeof payload.jti).toBe('string');
      expect(payload.exp! - payload.iat!).toBe(120);

      // A send again is a token of its own.
      await deliveries[0]!.send(AbortSignal.timeout(5000));
      expect(decodeJwtPayload(app.tokens[1]!).jti).not.toBe(payload.jti);

      // Outside a delivery, a request goes out as oidc-provider made it.
      const plain = { signal: AbortSignal.timeout(2500), dispatcher: 'theirs' } as unknown as RequestInit;
      let seen: RequestInit | undefined;
      await outboundFetch((_input, init) => {
        seen = init;
        return Promise.resolve(new Response(null));
      })('https://example.test/jwks', plain);
      expect(seen).toBe(plain);
    } finally {
      await op.close();
      await app.close();
    }
  });

  it('send rejects with the status an app answered other than 200/204 (deliveryStatus), on an abort, and on a loopback address when not allowed (oidc-provider\'s SSRF agent)', async () => {
    const app = await appEndpoint([500, 400]);
    const allowed = await signedInProvider(app.uri, true);
    const strict = await signedInProvider(app.uri, false);
    try {
      expect((await endSession(allowed.agent)).status).toBe(303);
      const [delivery] = allowed.deliveries;
      const statusOf = (promise: Promise<void>) => promise.then(() => 'resolved', (error: unknown) => deliveryStatus(error));
      expect(await statusOf(delivery!.send(AbortSignal.timeout(5000)))).toBe(500);
      expect(await statusOf(delivery!.send(AbortSignal.timeout(5000)))).toBe(400);
      expect(await statusOf(delivery!.send(AbortSignal.timeout(5000)))).toBe('resolved');
      const aborted = new AbortController();
      aborted.abort();
      await expect(delivery!.send(aborted.signal)).rejects.toThrow();
      expect(app.tokens).toHaveLength(3);

      expect((await endSession(strict.agent)).status).toBe(303);
      const refused = await strict.deliveries[0]!.send(AbortSignal.timeout(5000)).then(() => undefined, (error: unknown) => error);
      expect(refused).toBeInstanceOf(Error);
      expect(deliveryStatus(refused)).toBeUndefined();
      expect(strict.outgoing[0]!.init).toHaveProperty('dispatcher');
      expect(app.tokens).toHaveLength(3);
    } finally {
      await allowed.op.close();
      await strict.op.close();
      await app.close();
    }
  });

  it('queueBackchannelLogout queues through the replaced method for a client with a back-channel URI, and nothing for one without or unknown', async () => {
    const app = await appEndpoint();
    const { op, clientId, deliveries } = await signedInProvider(app.uri, true);
    try {
      expect(await queueBackchannelLogout(op.provider, clientId, 'user-q', 'sid-q')).toBe(true);
      expect(deliveries.map(({ clientId: id, accountId, sid }) => ({ clientId: id, accountId, sid }))).toEqual([{ clientId, accountId: 'user-q', sid: 'sid-q' }]);
      expect(await queueBackchannelLogout(op.provider, 'app', 'user-q', 'sid-q')).toBe(false);
      expect(await queueBackchannelLogout(op.provider, 'no-such-client', 'user-q', 'sid-q')).toBe(false);
      expect(deliveries).toHaveLength(1);
      expect(app.tokens).toEqual([]);
    } finally {
      await op.close();
      await app.close();
    }
  });
});

function decodeJwtPayload(token: string): { jti?: unknown } {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { jti?: unknown };
}
