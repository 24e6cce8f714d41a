import { randomUUID } from 'node:crypto';
import { createRemoteJWKSet, customFetch, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tailAudit } from '../../src/audit/audit-log.js';
import { Agent, authorizeUrl, pkce, signIn } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';

const PASSWORD = 'correct horse battery staple 42';

describe('authorization code + PKCE sign-in', () => {
  let t: TestServer;
  let base: string;
  let email: string;
  let userId: string;
  const redirectUri = 'http://127.0.0.1:8765/callback';
  const api = `https://api-${randomUUID()}.example.test`;

  function webClient(options: { firstParty?: boolean; refresh?: boolean; resource?: boolean; authMethod?: 'client_secret_basic' | 'none'; name?: string } = {}) {
    return t.build.client({
      client_name: options.name ?? 'Photo App',
      redirect_uris: [redirectUri],
      grant_types: options.refresh ? ['authorization_code', 'refresh_token'] : ['authorization_code'],
      token_endpoint_auth_method: options.authMethod ?? 'client_secret_basic',
      ...(options.firstParty ? { first_party: true } : {}),
      ...(options.resource ? { default_resource: api } : {}),
    });
  }

  async function exchange(client: { clientId: string; clientSecret: string }, code: string, verifier: string) {
    const form = { grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier };
    return client.clientSecret
      ? tokenRequest(base, form, client, t.fetch)
      : tokenRequest(base, { ...form, client_id: client.clientId }, undefined, t.fetch);
  }

  beforeAll(async () => {
    // The sign-in, consent, PKCE and refresh cases run in this process without a socket (t.fetch);
    // the proxy cases below listen, as what they check is the address a socket gives.
    t = await startTestServer({ name: 'sign-in', listen: false });
    base = t.server.url;
    await t.build.resource({ identifier: api, scope: 'photos:read photos:write', name: 'Photos API' });
    ({ email, id: userId } = await t.build.person({ email: `ada-${randomUUID()}@example.test`, password: PASSWORD, name: 'Ada Lovelace' }));
  });
  afterAll(() => t.close());

  it('signs in, asks consent, and issues verified ID and access tokens', async () => {
    const client = await webClient();
    const { verifier, challenge } = pkce();
    const agent = new Agent(base, t.fetch);
    const url = authorizeUrl({
      client_id: client.clientId,
      redirect_uri: redirectUri,
      scope: 'openid profile email',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      nonce: 'n-0S6_WzA2Mj',
    });
    const { redirect, sawConsent, loginHtml } = await signIn(agent, { url, email, password: PASSWORD });
    expect(loginHtml).toContain('Photo App');
    expect(sawConsent).toBe(true);
    expect(redirect.origin + redirect.pathname).toBe(redirectUri);
    const code = redirect.searchParams.get('code');
    expect(code).toBeTruthy();
    recordSecret(code);

    const { status, body } = await exchange(client, code!, verifier);
    expect(status).toBe(200);
    const jwks = createRemoteJWKSet(new URL(`${base}/jwks`), { [customFetch]: t.fetch });
    const idToken = String(body.id_token);
    recordSecret(idToken);
    expect(decodeProtectedHeader(idToken).alg).toBe('RS256');
    const { payload } = await jwtVerify(idToken, jwks, { issuer: t.config.issuer, audience: client.clientId });
    expect(payload).toMatchObject({ sub: userId, name: 'Ada Lovelace', email, email_verified: false, nonce: 'n-0S6_WzA2Mj' });
    expect(body.refresh_token).toBeUndefined();

    const userinfo = await t.fetch(`${base}/me`, { headers: { authorization: `Bearer ${String(body.access_token)}` } });
    expect(userinfo.status).toBe(200);
    expect(await userinfo.json()).toEqual({ sub: userId, name: 'Ada Lovelace', email, email_verified: false, updated_at: expect.any(Number) });
  });

  it('remembers consent and issues a JWT for the resource, with a rotating refresh token for offline_access', async () => {
    const client = await webClient({ refresh: true, resource: true });
    const agent = new Agent(base, t.fetch);
    const run = async () => {
      const { verifier, challenge } = pkce();
      const url = authorizeUrl({
        client_id: client.clientId,
        redirect_uri: redirectUri,
        scope: 'openid offline_access photos:read',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        prompt: 'consent',
      });
      const result = await signIn(agent, { url, email, password: PASSWORD });
      return { ...result, verifier };
    };
    const first = await run();
    expect(first.sawConsent).toBe(true);
    const { status, body } = await exchange(client, first.redirect.searchParams.get('code')!, first.verifier);
    expect(status).toBe(200);
    const jwks = createRemoteJWKSet(new URL(`${base}/jwks`), { [customFetch]: t.fetch });
    const { payload, protectedHeader } = await jwtVerify(String(body.access_token), jwks, { issuer: t.config.issuer, audience: api });
    expect(protectedHeader.typ).toBe('at+jwt');
    expect(payload).toMatchObject({ sub: userId, client_id: client.clientId, scope: 'photos:read' });
    const refresh1 = String(body.refresh_token);
    recordSecret(refresh1);
    expect(refresh1.length).toBeGreaterThan(20);

    const rotated = await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: refresh1 }, client, t.fetch);
    expect(rotated.status).toBe(200);
    const refresh2 = String(rotated.body.refresh_token);
    recordSecret(refresh2);
    expect(refresh2).not.toBe(refresh1);

    // Reuse of the spent token revokes the family: the newer one dies with it.
    const reuse = await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: refresh1 }, client, t.fetch);
    expect(reuse.status).toBe(400);
    expect(reuse.body.error).toBe('invalid_grant');
    const after = await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: refresh2 }, client, t.fetch);
    expect(after.body.error).toBe('invalid_grant');
  });

  it('keeps refresh tokens only as digests: a value read from the database is refused at /token, the token itself works', async () => {
    const client = await webClient({ refresh: true, resource: true, name: 'Stored Token App' });
    const { verifier, challenge } = pkce();
    const url = authorizeUrl({
      client_id: client.clientId,
      redirect_uri: redirectUri,
      scope: 'openid offline_access photos:read',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      prompt: 'consent',
    });
    const { redirect } = await signIn(new Agent(base, t.fetch), { url, email, password: PASSWORD });
    const { status, body } = await exchange(client, redirect.searchParams.get('code')!, verifier);
    expect(status).toBe(200);
    expect(typeof body.refresh_token).toBe('string');
    const refresh = String(body.refresh_token);
    recordSecret(refresh);

    // What a reader of the database (or of a backup) finds: neither in the id nor in the payload.
    const rows = await t.server.registry.db.selectFrom('oidc_durable').select(['id', 'payload']).where('model', '=', 'RefreshToken').where('client_id', '=', client.clientId).execute();
    expect(rows).toHaveLength(1);
    const stored = [rows[0]!.id, ...Object.values(rows[0]!.payload).filter((value): value is string => typeof value === 'string')];
    for (const value of stored) {
      const refused = await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: value }, client, t.fetch);
      expect(refused.status, value).toBe(400);
      expect(refused.body.error, value).toBe('invalid_grant');
    }
    expect(JSON.stringify(rows)).not.toContain(refresh);

    // The refusals revoked nothing: the token rotates, and reuse of the spent one still revokes the family.
    const rotated = await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: refresh }, client, t.fetch);
    expect(rotated.status).toBe(200);
    const next = String(rotated.body.refresh_token);
    recordSecret(next);
    const reuse = await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: refresh }, client, t.fetch);
    expect(reuse.body.error).toBe('invalid_grant');
    expect((await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: next }, client, t.fetch)).body.error).toBe('invalid_grant');
  });

  it('does not ask again for scopes already consented to, even from a new session', async () => {
    const client = await webClient({ name: 'Returning App' });
    const url = () =>
      authorizeUrl({ client_id: client.clientId, redirect_uri: redirectUri, scope: 'openid email', code_challenge: pkce().challenge, code_challenge_method: 'S256' });
    const first = await signIn(new Agent(base, t.fetch), { url: url(), email, password: PASSWORD });
    expect(first.sawConsent).toBe(true);
    const again = await signIn(new Agent(base, t.fetch), { url: url(), email, password: PASSWORD });
    expect(again.sawConsent).toBe(false);
    expect(again.redirect.searchParams.get('code')).toBeTruthy();
    // A new scope is asked for.
    const more = await signIn(new Agent(base, t.fetch), {
      url: authorizeUrl({ client_id: client.clientId, redirect_uri: redirectUri, scope: 'openid email profile', code_challenge: pkce().challenge, code_challenge_method: 'S256' }),
      email,
      password: PASSWORD,
    });
    expect(more.sawConsent).toBe(true);
    const stored = await t.server.registry.db.selectFrom('oidc_durable').select('id').where('model', '=', 'Grant').where('client_id', '=', client.clientId).execute();
    expect(stored.length).toBeGreaterThan(0);
  });

  it('issues refresh tokens to third-party clients only with offline_access, and to first-party clients without it', async () => {
    const run = async (client: { clientId: string; clientSecret: string }, scope: string) => {
      const { verifier, challenge } = pkce();
      const url = authorizeUrl({ client_id: client.clientId, redirect_uri: redirectUri, scope, code_challenge: challenge, code_challenge_method: 'S256', prompt: 'consent' });
      const { redirect } = await signIn(new Agent(base, t.fetch), { url, email, password: PASSWORD });
      const { body } = await exchange(client, redirect.searchParams.get('code')!, verifier);
      recordSecret(body.refresh_token as string | undefined);
      return body;
    };
    const thirdParty = await webClient({ refresh: true, name: 'Third Party' });
    expect((await run(thirdParty, 'openid')).refresh_token).toBeUndefined();
    expect(typeof (await run(thirdParty, 'openid offline_access')).refresh_token).toBe('string');
    const firstParty = await webClient({ refresh: true, firstParty: true, name: 'First Party' });
    expect(typeof (await run(firstParty, 'openid')).refresh_token).toBe('string');
    const noGrant = await webClient({ name: 'No Refresh Grant' });
    expect((await run(noGrant, 'openid offline_access')).refresh_token).toBeUndefined();
  });

  it('skips consent for first-party clients', async () => {
    const client = await webClient({ firstParty: true, name: 'Gatehouse Console' });
    const { verifier, challenge } = pkce();
    const url = authorizeUrl({ client_id: client.clientId, redirect_uri: redirectUri, scope: 'openid email', code_challenge: challenge, code_challenge_method: 'S256' });
    const { redirect, sawConsent } = await signIn(new Agent(base, t.fetch), { url, email, password: PASSWORD });
    expect(sawConsent).toBe(false);
    const { status } = await exchange(client, redirect.searchParams.get('code')!, verifier);
    expect(status).toBe(200);
  });

  it('returns access_denied when consent is denied', async () => {
    const client = await webClient();
    const { challenge } = pkce();
    const url = authorizeUrl({ client_id: client.clientId, redirect_uri: redirectUri, scope: 'openid profile', code_challenge: challenge, code_challenge_method: 'S256', prompt: 'consent' });
    const { redirect } = await signIn(new Agent(base, t.fetch), { url, email, password: PASSWORD, consent: 'deny' });
    expect(redirect.searchParams.get('error')).toBe('access_denied');
    expect(redirect.searchParams.get('code')).toBeNull();
  });

  it('lets a public client (none) sign in with PKCE', async () => {
    const client = await webClient({ authMethod: 'none', name: 'SPA' });
    expect(client.clientSecret).toBe('');
    const { verifier, challenge } = pkce();
    const url = authorizeUrl({ client_id: client.clientId, redirect_uri: redirectUri, scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' });
    const { redirect } = await signIn(new Agent(base, t.fetch), { url, email, password: PASSWORD });
    const { status, body } = await exchange(client, redirect.searchParams.get('code')!, verifier);
    expect(status).toBe(200);
    expect(typeof body.id_token).toBe('string');
  });
});

describe.each([{ store: 'redis' as const }, { store: 'memory' as const }])('an authorization code redeemed concurrently, on the $store store', ({ store }) => {
  let t: TestServer;
  let base: string;
  let email: string;
  const redirectUri = 'http://127.0.0.1:8765/callback';

  beforeAll(async () => {
    t = await startTestServer({ name: `code-race-${store}`, store, listen: false });
    base = t.server.url;
    ({ email } = await t.build.person({ email: `race-${randomUUID()}@example.test`, password: PASSWORD, name: 'Katherine Johnson' }));
  });
  afterAll(() => t.close());

  it('lets exactly one of eight parallel redemptions win, refuses the rest with invalid_grant and revokes what the winner got', async () => {
    const client = await t.build.client({ client_name: 'Racing App', redirect_uris: [redirectUri], grant_types: ['authorization_code', 'refresh_token'], first_party: true });

    for (let trial = 0; trial < 10; trial += 1) {
      const { verifier, challenge } = pkce();
      const url = authorizeUrl({ client_id: client.clientId, redirect_uri: redirectUri, scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' });
      const { redirect } = await signIn(new Agent(base, t.fetch), { url, email, password: PASSWORD });
      const code = redirect.searchParams.get('code');
      expect(code).toBeTruthy();
      recordSecret(code);

      const form = { grant_type: 'authorization_code', code: code!, redirect_uri: redirectUri, code_verifier: verifier };
      const answers = await Promise.all(Array.from({ length: 8 }, () => tokenRequest(base, form, client, t.fetch)));
      for (const answer of answers) recordSecret(answer.body.refresh_token as string | undefined);

      const winners = answers.filter((answer) => answer.status === 200);
      expect(winners, `trial ${trial}: ${answers.map((answer) => answer.status).join(' ')}`).toHaveLength(1);
      for (const loser of answers.filter((answer) => answer.status !== 200)) {
        expect(loser.status).toBe(400);
        expect(loser.body.error).toBe('invalid_grant');
      }

      // What the winner got is revoked with the grant: its refresh token and its access token.
      const [winner] = winners;
      expect(typeof winner!.body.refresh_token).toBe('string');
      const refreshed = await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: String(winner!.body.refresh_token) }, client, t.fetch);
      expect(refreshed.status).toBe(400);
      expect(refreshed.body.error).toBe('invalid_grant');
      const userinfo = await t.fetch(`${base}/me`, { headers: { authorization: `Bearer ${String(winner!.body.access_token)}` } });
      expect(userinfo.status).toBe(401);
    }
    expect(t.logs.text()).not.toContain('"level":50');
  });
});

describe('the client IP behind a trusted proxy (TRUST_PROXY, PROXY_HOPS)', () => {
  // X-Forwarded-For as a client would forge it ahead of what the proxy appended: "1.2.3.4" is the
  // client's own text, "10.0.0.5" the address the (one) proxy saw.
  const FORWARDED_FOR = '1.2.3.4, 10.0.0.5';

  it.each([
    { hops: undefined, seenAs: '10.0.0.5' },
    { hops: '1', seenAs: '10.0.0.5' },
    { hops: '2', seenAs: '1.2.3.4' },
  ])('PROXY_HOPS=$hops: a failed sign-in is audited from $seenAs', async ({ hops, seenAs }) => {
    const t = await startTestServer({ name: 'sign-in-proxy-hops', env: { TRUST_PROXY: 'true', ...(hops ? { PROXY_HOPS: hops } : {}) } });
    try {
      const redirectUri = 'http://127.0.0.1:8765/callback';
      const created = await t.build.client({ client_name: 'Proxied App', redirect_uris: [redirectUri] });
      const agent = new Agent(t.server.url);
      const { response, url } = await agent.follow(
        authorizeUrl({ client_id: created.clientId, redirect_uri: redirectUri, code_challenge: pkce().challenge, code_challenge_method: 'S256' }),
      );
      const csrf = /name="csrf" value="([^"]*)"/.exec(await response.text())?.[1] ?? '';
      const requestId = `proxy-hops-${randomUUID()}`;
      const wrong = 'not the password of anyone here 7';
      recordSecret(wrong);
      const login = await agent.postForm(
        `${new URL(url).pathname}/login`,
        { csrf, email: `nobody-${randomUUID()}@example.test`, password: wrong },
        { 'x-forwarded-for': FORWARDED_FOR, 'x-request-id': requestId },
      );
      expect(login.status).toBe(401);
      const rows = (await tailAudit(t.server.registry.db, { limit: 1000 })).filter((row) => row.requestId === requestId);
      expect(rows.map((row) => [row.action, row.ip])).toEqual([['signin.failure', seenAs]]);
    } finally {
      await t.close();
    }
  });
});

describe('the sign-in lockout under other spellings of the email', () => {
  let t: TestServer;
  let clientId: string;
  const redirectUri = 'http://127.0.0.1:8765/callback';

  beforeAll(async () => {
    t = await startTestServer({ name: 'sign-in-spellings', env: { LOGIN_MAX_FAILURES_PER_ACCOUNT: '3' } });
    ({ clientId } = await t.build.client({ client_name: 'Spelling App', redirect_uris: [redirectUri] }));
  });
  afterAll(() => t.close());

  /** One sign-in attempt on a fresh login page: the status of the answer to the form. */
  async function attempt(email: string, password: string): Promise<number> {
    const agent = new Agent(t.server.url);
    const { response, url } = await agent.follow(
      authorizeUrl({ client_id: clientId, redirect_uri: redirectUri, code_challenge: pkce().challenge, code_challenge_method: 'S256' }),
    );
    const csrf = /name="csrf" value="([^"]*)"/.exec(await response.text())?.[1] ?? '';
    return (await agent.postForm(`${new URL(url).pathname}/login`, { csrf, email, password })).status;
  }

  it('holds for every spelling of the locked address, and a dotted capital I signs in to no one', async () => {
    const tag = randomUUID().slice(0, 8);
    const email = `victim-${tag}@example.test`;
    await t.build.person({ email, password: PASSWORD });
    const wrong = 'a wrong guess at the passphrase 3';
    recordSecret(wrong);
    // Three failures, each under another spelling of the same address: the account is locked.
    for (const spelling of [email, `ＶＩＣＴＩＭ-${tag}@example.test`, ` Victim-${tag.toUpperCase()}@EXAMPLE.test`]) {
      expect(await attempt(spelling, wrong), spelling).toBe(401);
    }
    // The right password under any spelling that is this address: still locked.
    for (const spelling of [email, `ｖｉｃｔｉｍ-${tag}@ｅｘａｍｐｌｅ．ｔｅｓｔ`, `VICTIM-${tag.toUpperCase()}@example.test`]) {
      expect(await attempt(spelling, PASSWORD), spelling).toBe(429);
    }
    // U+0130 lower-cases to i + U+0307 (PostgreSQL's lower() made it a plain i): another address,
    // which nobody has, so the right password of the locked account opens nothing.
    for (const spelling of [`vİctim-${tag}@example.test`, `VİCTİM-${tag.toUpperCase()}@example.test`]) {
      expect(await attempt(spelling, PASSWORD), spelling).toBe(401);
    }
  });
});
