import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RETRY_AFTER_SECONDS } from '../../src/services/dependency-outage.js';
import { createTestDatabase, type TestDatabase } from '../fixtures/database.js';
import { Agent, authorizeUrl, codeFlow, hiddenInput, pkce, signIn } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startOwnRedis, type OwnRedis } from '../fixtures/redis-server.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';
import { startTcpProxy, type TcpProxy } from '../fixtures/tcp-proxy.js';

const PASSWORD = 'outage drill: the lights stay on 9';
const REDIRECT_URI = 'http://127.0.0.1:8765/callback';
type Client = { clientId: string; clientSecret: string };

/** Client-credentials requests from `workers` loops until stopped; every status is kept. */
function clientCredentialsLoad(base: string, client: Client, workers = 4) {
  const statuses: number[] = [];
  let running = true;
  const loops = Array.from({ length: workers }, async () => {
    while (running) {
      const { status } = await tokenRequest(base, { grant_type: 'client_credentials', scope: 'read' }, client).catch(() => ({ status: 0 }));
      statuses.push(status);
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return statuses;
    },
  };
}

/** Waits until `probe` holds (a bound on waiting, not a budget) and answers how long that took, for the report line. */
async function eventually(probe: () => Promise<boolean>, timeoutMs = 15_000): Promise<number> {
  const started = Date.now();
  while (!(await probe())) {
    if (Date.now() - started > timeoutMs) throw new Error(`not within ${timeoutMs} ms`);
    await sleep(50);
  }
  return Date.now() - started;
}

const ready = (base: string) => async () => (await fetch(`${base}/readyz`)).status === 200;

/** No stack trace, no source path, no driver message in what a client sees. */
function expectNoInternals(text: string) {
  expect(text).not.toMatch(/\bat .+\.(?:js|ts):\d+/);
  expect(text).not.toMatch(/ECONNREFUSED|Connection is closed|node_modules|MaxRetriesPerRequest/);
}

/** A first-party web client with refresh tokens, a person, and a sign-in that yields a refresh token. */
async function setUp(t: TestServer) {
  const { email } = await t.build.person({ email: `ops-${randomUUID()}@example.test`, password: PASSWORD, name: 'Grace Hopper' });
  const web = await t.build.client({
    client_name: 'Ops App',
    redirect_uris: [REDIRECT_URI],
    grant_types: ['authorization_code', 'refresh_token'],
    first_party: true,
  });
  const service = await t.build.serviceClient();
  return { email, web, service };
}

/** Signs in and returns the code with its verifier, not yet exchanged. */
async function obtainCode(base: string, web: Client, email: string) {
  const { verifier, challenge } = pkce();
  const url = authorizeUrl({ client_id: web.clientId, redirect_uri: REDIRECT_URI, scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' });
  const { redirect } = await signIn(new Agent(base), { url, email, password: PASSWORD });
  const code = redirect.searchParams.get('code');
  expect(code).toBeTruthy();
  recordSecret(code);
  return { code: code!, verifier };
}

function exchangeCode(base: string, web: Client, { code, verifier }: { code: string; verifier: string }) {
  return tokenRequest(base, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier }, web);
}

/** A 503 in the OAuth error format that says when to try again, and nothing of the server's insides. */
function expectUnavailable(answer: { status: number; body: Record<string, unknown>; headers: Headers }) {
  expect(answer.status).toBe(503);
  expect(answer.headers.get('retry-after')).toBe(RETRY_AFTER_SECONDS);
  expect(answer.body.error).toBe('temporarily_unavailable');
  expectNoInternals(JSON.stringify(answer.body));
}

/** Opens a login page (an interaction in the store) and returns how to post it later. */
async function openLoginPage(base: string, web: Client) {
  const agent = new Agent(base);
  const { challenge } = pkce();
  const { response } = await agent.follow(
    authorizeUrl({ client_id: web.clientId, redirect_uri: REDIRECT_URI, scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' }),
  );
  const html = await response.text();
  const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1];
  expect(action).toMatch(/\/login$/);
  return { agent, action: action!, csrf: hiddenInput(html, 'csrf') ?? '' };
}

async function refresh(base: string, web: Client, token: string) {
  const answer = await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: token }, web);
  if (typeof answer.body.refresh_token === 'string') recordSecret(answer.body.refresh_token);
  return answer;
}

describe('Redis goes away', () => {
  let redis: OwnRedis;
  let t: TestServer;

  beforeAll(async () => {
    redis = await startOwnRedis();
    t = await startTestServer({ name: 'outage-redis', env: { REDIS_URL: redis.url } });
  });
  afterAll(async () => {
    await t?.close();
    await redis?.stop();
  });

  it('keeps issuing client-credentials tokens, answers 503 where the store is needed, and recovers without a restart', async () => {
    const base = t.server.url;
    const { email, web, service } = await setUp(t);
    const browser = new Agent(base);
    const signedIn = await codeFlow(browser, { client: web, redirectUri: REDIRECT_URI, email, password: PASSWORD, params: { scope: 'openid' } });
    expect(signedIn.status).toBe(200);
    let refreshToken = String(signedIn.body.refresh_token);
    const unexchanged = await obtainCode(base, web, email);
    const pending = await openLoginPage(base, web);
    expect((await tokenRequest(base, { grant_type: 'client_credentials', scope: 'read' }, service)).status).toBe(200);

    const load = clientCredentialsLoad(base, service);
    await sleep(300);
    await redis.stop();
    await eventually(async () => (await fetch(`${base}/readyz`)).status === 503);

    // A new sign-in: the authorization request cannot keep its interaction.
    const { challenge } = pkce();
    const authorize = await fetch(
      `${base}${authorizeUrl({ client_id: web.clientId, redirect_uri: REDIRECT_URI, scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' })}`,
      { redirect: 'manual' },
    );
    if (authorize.status === 303 || authorize.status === 302) {
      // RFC 6749 §4.1.2.1: the error goes back to the app.
      const location = new URL(authorize.headers.get('location') ?? '');
      expect(location.origin + location.pathname).toBe(REDIRECT_URI);
      expect(location.searchParams.get('error')).toBe('temporarily_unavailable');
    } else {
      expect(authorize.status).toBe(503);
      expect(authorize.headers.get('retry-after')).toBe(RETRY_AFTER_SECONDS);
      const page = await authorize.text();
      expect(page).toContain('temporarily_unavailable');
      expectNoInternals(page);
    }

    // A sign-in already on its login page: posting it needs the interaction.
    const login = await pending.agent.postForm(pending.action, { csrf: pending.csrf, email, password: PASSWORD });
    expect(login.status).toBe(503);
    expect(login.headers.get('retry-after')).toBe(RETRY_AFTER_SECONDS);
    const loginPage = await login.text();
    expect(loginPage).toContain('Sign-in is temporarily unavailable');
    expectNoInternals(loginPage);

    // The account pages read the browser's session from the store: their 503 page, not a 500.
    for (const answer of [await browser.request('/account'), await browser.postForm('/account/links/corp/delete', { csrf: 'x' })]) {
      expect(answer.status).toBe(503);
      expect(answer.headers.get('retry-after')).toBe(RETRY_AFTER_SECONDS);
      const page = await answer.text();
      expect(page).toContain('Your account page is temporarily unavailable');
      expectNoInternals(page);
    }

    // A code lives in the store: its exchange is refused for now, saying when to try again.
    expectUnavailable(await exchangeCode(base, web, unexchanged));

    // Refresh lives in PostgreSQL: it keeps working, or says temporarily_unavailable; never a 500.
    const during = await refresh(base, web, refreshToken);
    expect([200, 503]).toContain(during.status);
    if (during.status === 200) refreshToken = String(during.body.refresh_token);
    else expectUnavailable(during);

    await sleep(1000);
    await redis.start();
    const recoveredMs = await eventually(ready(base));
    const statuses = await load.stop();

    expect(statuses.length).toBeGreaterThan(20);
    expect(statuses.filter((status) => status !== 200)).toEqual([]);
    // Back without a restart: a new sign-in works, and the refresh token issued before is intact.
    expect((await codeFlow(new Agent(base), { client: web, redirectUri: REDIRECT_URI, email, password: PASSWORD, params: { scope: 'openid' } })).status).toBe(200);
    const after = await refresh(base, web, refreshToken);
    expect(after.status).toBe(200);
    expect(t.logs.text()).not.toContain('"level":50');
    process.stdout.write(`outage (redis): ${statuses.length} client-credentials requests across the outage, 0 errors; refresh during it ${during.status}; ready ${recoveredMs} ms after Redis came back\n`);
  });
});

describe('PostgreSQL goes away', () => {
  let database: TestDatabase;
  let proxy: TcpProxy;
  let t: TestServer;

  beforeAll(async () => {
    database = await createTestDatabase();
    const url = new URL(database.url);
    proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
    url.host = `127.0.0.1:${proxy.port}`;
    t = await startTestServer({ name: 'outage-postgres', env: { DATABASE_URL: url.toString() } });
  });
  afterAll(async () => {
    await t?.close();
    await proxy?.close();
    await database?.drop();
  });

  it('serves cached clients, answers 503 temporarily_unavailable for the rest, and reconnects by itself', async () => {
    const base = t.server.url;
    const { email, web, service } = await setUp(t);
    const signedIn = await codeFlow(new Agent(base), { client: web, redirectUri: REDIRECT_URI, email, password: PASSWORD, params: { scope: 'openid' } });
    expect(signedIn.status).toBe(200);
    const refreshToken = String(signedIn.body.refresh_token);
    const unexchanged = await obtainCode(base, web, email);
    // Registered but never used: not in the registry cache when PostgreSQL goes.
    const uncached = await t.build.serviceClient();
    const uncachedWeb = await t.build.client({ client_name: 'Ops App 2', redirect_uris: [REDIRECT_URI], first_party: true });
    const admin = await t.build.client({ client_name: 'ops admin', admin: true });
    const adminToken = String((await tokenRequest(base, { grant_type: 'client_credentials', scope: 'admin' }, admin)).body.access_token);
    const pending = await openLoginPage(base, web);
    expect((await tokenRequest(base, { grant_type: 'client_credentials', scope: 'read' }, service)).status).toBe(200);

    const load = clientCredentialsLoad(base, service);
    await sleep(300);
    await proxy.cut();
    const readyz = await fetch(`${base}/readyz`);
    expect(readyz.status).toBe(503);
    expect(readyz.headers.get('retry-after')).toBe(RETRY_AFTER_SECONDS);
    expect(((await readyz.json()) as { failing: string[] }).failing).toEqual(['database']);

    const during = await refresh(base, web, refreshToken);
    expectUnavailable(during);
    // The code is in Redis, its grant in PostgreSQL.
    expectUnavailable(await exchangeCode(base, web, unexchanged));
    expectUnavailable(await tokenRequest(base, { grant_type: 'client_credentials', scope: 'read' }, uncached));

    // An authorization request for a client the cache does not hold: a page, saying when to try again.
    const { challenge } = pkce();
    const authorize = await fetch(
      `${base}${authorizeUrl({ client_id: uncachedWeb.clientId, redirect_uri: REDIRECT_URI, scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' })}`,
      { redirect: 'manual' },
    );
    expect(authorize.status).toBe(503);
    expect(authorize.headers.get('retry-after')).toBe(RETRY_AFTER_SECONDS);
    const authorizePage = await authorize.text();
    expect(authorizePage).toContain('temporarily_unavailable');
    expectNoInternals(authorizePage);

    const adminAnswer = await fetch(`${base}/admin/v1/clients`, { headers: { authorization: `Bearer ${adminToken}` } });
    expect(adminAnswer.status).toBe(503);
    expect(adminAnswer.headers.get('retry-after')).toBe(RETRY_AFTER_SECONDS);
    expect(adminAnswer.headers.get('content-type')).toContain('application/problem+json');
    const problem = (await adminAnswer.json()) as { type: string };
    expect(problem.type).toBe('urn:gatehouse:problem:temporarily_unavailable');
    expectNoInternals(JSON.stringify(problem));

    const login = await pending.agent.postForm(pending.action, { csrf: pending.csrf, email, password: PASSWORD });
    expect(login.status).toBe(503);
    expect(login.headers.get('retry-after')).toBe(RETRY_AFTER_SECONDS);
    expectNoInternals(await login.text());

    await sleep(1000);
    await proxy.restore();
    const recoveredMs = await eventually(ready(base));
    const statuses = await load.stop();

    expect(statuses.length).toBeGreaterThan(20);
    expect(statuses.filter((status) => status !== 200)).toEqual([]);
    // The refresh token refused during the outage was not spent by it.
    const after = await refresh(base, web, refreshToken);
    expect(after.status).toBe(200);
    expect((await fetch(`${base}/admin/v1/clients`, { headers: { authorization: `Bearer ${adminToken}` } })).status).toBe(200);
    process.stdout.write(`outage (postgresql): ${statuses.length} client-credentials requests across the outage, 0 errors; ready ${recoveredMs} ms after PostgreSQL came back\n`);
  });
});
