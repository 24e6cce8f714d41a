import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDataKeyring } from '../../src/keys/data-key.js';
import { beginTotpEnrolment, confirmTotpEnrolment, type SecondFactorDeps } from '../../src/services/second-factors.service.js';
import { Agent, authorizeUrl, codeFlow, hiddenInput, pkce } from '../fixtures/flow.js';
import { runCliCapture } from '../fixtures/cli.js';
import { createTestDatabase, type TestDatabase } from '../fixtures/database.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';
import { totpCode } from '../fixtures/totp.js';

const PASSWORD = 'count every sign-in twice 5';
const REDIRECT = 'http://127.0.0.1:8769/cb';

/** The value of one series in Prometheus text format, or undefined when it is absent. */
function series(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const labelText = /\{(.*)\}/.exec(line)?.[1] ?? '';
    if (Object.entries(labels).every(([key, value]) => labelText.includes(`${key}="${value}"`))) return Number(line.split(' ').pop());
  }
  return undefined;
}

describe('GET /metrics (Prometheus)', () => {
  let t: TestServer;
  let base: string;

  beforeAll(async () => {
    t = await startTestServer({ name: 'metrics', env: { LOGIN_MAX_FAILURES_PER_ACCOUNT: '2' } });
    base = t.server.url;
  });
  afterAll(() => t.close());

  it('counts tokens by grant (clients under "other"), token errors by code, sign-ins by outcome, rate-limit hits, latency by route, dependencies and key ages', async () => {
    const service = await t.build.serviceClient();
    for (let i = 0; i < 2; i += 1) expect((await tokenRequest(base, { grant_type: 'client_credentials', scope: 'read' }, service)).status).toBe(200);
    expect((await tokenRequest(base, { grant_type: 'client_credentials' }, { clientId: service.clientId, clientSecret: 'wrong' })).status).toBe(401);

    const { email } = await t.build.person({ email: `count-${randomUUID()}@example.test`, password: PASSWORD, name: 'Counted' });
    const created = await t.build.client({ client_name: 'Metrics App', redirect_uris: [REDIRECT], grant_types: ['authorization_code'], first_party: true });
    const exchanged = await codeFlow(new Agent(base), { client: created, redirectUri: REDIRECT, email, password: PASSWORD, params: { scope: 'openid' } });
    expect(exchanged.status).toBe(200);
    // Wrong passwords until the per-account limit (2 here) answers 429.
    const agent = new Agent(base);
    const { response } = await agent.follow(authorizeUrl({ client_id: created.clientId, redirect_uri: REDIRECT, scope: 'openid', code_challenge: pkce().challenge, code_challenge_method: 'S256' }));
    const html = await response.text();
    const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1] ?? '';
    const statuses: number[] = [];
    for (let i = 0; i < 3; i += 1) {
      statuses.push((await agent.postForm(action, { csrf: hiddenInput(html, 'csrf') ?? '', email, password: 'not the password at all' })).status);
    }
    expect(statuses).toEqual([401, 401, 429]);

    const answer = await fetch(`${base}/metrics`);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toContain('text/plain');
    const text = await answer.text();

    // No client's id is a label value unless METRICS_CLIENT_IDS names it: every client counts as "other".
    expect(series(text, 'gatehouse_tokens_issued_total', { grant_type: 'client_credentials', client_id: 'other' })).toBe(2);
    expect(series(text, 'gatehouse_token_errors_total', { grant_type: 'client_credentials', error: 'invalid_client' })).toBe(1);
    expect(series(text, 'gatehouse_tokens_issued_total', { grant_type: 'authorization_code', client_id: 'other' })).toBe(1);
    expect(text).not.toContain(service.clientId);
    expect(text).not.toContain(created.clientId);
    expect(series(text, 'gatehouse_sign_ins_total', { outcome: 'success' })).toBe(1);
    expect(series(text, 'gatehouse_sign_ins_total', { outcome: 'failure' })).toBe(2);
    expect(series(text, 'gatehouse_sign_ins_total', { outcome: 'locked' })).toBe(1);
    expect(series(text, 'gatehouse_rate_limited_total', { limiter: 'sign_in' })).toBe(1);
    expect(series(text, 'gatehouse_http_request_duration_seconds_count', { route: 'token', method: 'POST', status: '2xx' })).toBeGreaterThanOrEqual(3);
    expect(series(text, 'gatehouse_http_request_duration_seconds_count', { route: 'token', method: 'POST', status: '4xx' })).toBe(1);
    expect(series(text, 'gatehouse_http_request_duration_seconds_count', { route: '/interaction/:uid/login', method: 'POST' })).toBeGreaterThanOrEqual(1);
    expect(series(text, 'gatehouse_dependency_duration_seconds_count', { dependency: 'database', operation: 'query', outcome: 'ok' })).toBeGreaterThan(0);
    expect(series(text, 'gatehouse_dependency_duration_seconds_count', { dependency: 'store', operation: 'upsert', outcome: 'ok' })).toBeGreaterThan(0);
    const [key] = await t.cli<Array<{ kid: string }>>('keys', 'list');
    expect(series(text, 'gatehouse_signing_key_age_seconds', { kid: key!.kid, status: 'active' })).toBeGreaterThanOrEqual(0);
    expect(series(text, 'gatehouse_process_resident_memory_bytes')).toBeGreaterThan(0);
    // Nothing from the requests themselves: no secrets, no emails, no raw paths with ids.
    expect(text).not.toContain(service.clientSecret);
    expect(text).not.toContain(email);
  });
});

/** Every series of `name` as its label text, with its value. */
function allSeries(text: string, name: string): Record<string, number> {
  const found: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`)) found[/\{(.*)\}/.exec(line)?.[1] ?? ''] = Number(line.split(' ').pop());
  }
  return found;
}

describe('gatehouse_second_factors_total', () => {
  let t: TestServer;
  let deps: SecondFactorDeps;
  let plain: { clientId: string; clientSecret: string };
  let strict: { clientId: string; clientSecret: string };
  const REDIRECT_URI = 'http://127.0.0.1:8769/mfa-cb';

  beforeAll(async () => {
    // Two wrong codes lock an account out of second factors (the limiter takes the password's settings).
    t = await startTestServer({ name: 'metrics-mfa', listen: false, env: { LOGIN_MAX_FAILURES_PER_ACCOUNT: '2' } });
    deps = { ...t.services, dataKeys: await loadDataKeyring(t.config.keysDir, { generateIfMissing: false }) };
    plain = await t.build.client({ client_name: 'Plain App', redirect_uris: [REDIRECT_URI], first_party: true });
    strict = await t.build.client({ client_name: 'Strict App', redirect_uris: [REDIRECT_URI], first_party: true, require_mfa: true });
  });
  afterAll(() => t.close());

  const scrape = async () => {
    const answer = await t.fetch('/metrics');
    expect(answer.status).toBe(200);
    return answer.text();
  };
  const count = (text: string, method: string, outcome: string) => series(text, 'gatehouse_second_factors_total', { method, outcome }) ?? 0;

  /** A person with an authenticator app set up through the service (confirmed with the previous step's code) and their recovery codes. */
  async function enrolled() {
    const person = await t.build.person({ email: `mfa-metrics-${randomUUID()}@example.test` });
    const { secret } = await beginTotpEnrolment(deps, person.id, { issuer: 'Gatehouse' });
    recordSecret(secret);
    const { recoveryCodes } = await confirmTotpEnrolment(deps, { actor: `person:${person.id}` }, person.id, await totpCode(secret, -30_000));
    for (const code of recoveryCodes) recordSecret(code);
    return { ...person, secret, recoveryCodes };
  }

  /** The password on a new browser, up to the page after it (the second factor, or its enrolment): that page's first form. */
  async function afterPassword(person: { email: string; password: string }, clientId = plain.clientId) {
    const agent = new Agent(t.server.url, t.fetch);
    const { response } = await agent.follow(authorizeUrl({ client_id: clientId, redirect_uri: REDIRECT_URI, scope: 'openid', code_challenge: pkce().challenge, code_challenge_method: 'S256' }));
    const login = await response.text();
    const loginAction = /<form method="post" action="([^"]+)"/.exec(login)?.[1] ?? '';
    const posted = await agent.postForm(loginAction, { csrf: hiddenInput(login, 'csrf') ?? '', email: person.email, password: person.password });
    expect(posted.status).toBe(303);
    const html = await (await agent.follow(posted.headers.get('location')!)).response.text();
    const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1] ?? '';
    const post = (code: string) => agent.postForm(action, { csrf: hiddenInput(html, 'csrf') ?? '', code });
    return { html, action, post };
  }

  it('counts a TOTP code and a recovery code accepted at sign-in as successes, by method', async () => {
    const person = await enrolled();
    const first = await afterPassword(person);
    expect(first.action).toMatch(/\/mfa$/);
    expect((await first.post(await totpCode(person.secret))).status).toBe(303);
    const second = await afterPassword(person);
    expect((await second.post(person.recoveryCodes[0]!)).status).toBe(303);

    const text = await scrape();
    expect(count(text, 'totp', 'success')).toBe(1);
    expect(count(text, 'recovery_code', 'success')).toBe(1);
  });

  it('counts wrong codes as failures by what they read as, then the lockout; input that is no code is not counted and invents no label value', async () => {
    const before = await scrape();
    const person = await enrolled();
    const page = await afterPassword(person);
    // Neither six digits nor a recovery code: refused without a comparison, counted nowhere.
    const junk = '<img src=x>-NOT-A-CODE-\u202e';
    expect((await page.post(junk)).status).toBe(400);
    expect((await page.post('12345')).status).toBe(400);
    expect(allSeries(await scrape(), 'gatehouse_second_factors_total')).toEqual(allSeries(before, 'gatehouse_second_factors_total'));

    // A wrong six-digit code (the current one, off by one digit), then a wrong recovery code: the limit (2) is reached.
    const right = await totpCode(person.secret);
    const wrong = `${right.slice(0, 5)}${(Number(right[5]) + 1) % 10}`;
    expect((await page.post(wrong)).status).toBe(401);
    expect((await page.post('ABCD-EFGH-JKMN-PQRS')).status).toBe(401);
    // Locked out: even the right code is not checked.
    expect((await page.post(right)).status).toBe(429);
    // And input that is no code, while locked: still counted nowhere under this metric.
    expect((await page.post(junk)).status).toBe(429);

    const text = await scrape();
    expect(count(text, 'totp', 'failure') - count(before, 'totp', 'failure')).toBe(1);
    expect(count(text, 'recovery_code', 'failure') - count(before, 'recovery_code', 'failure')).toBe(1);
    expect(count(text, 'totp', 'locked') - count(before, 'totp', 'locked')).toBe(1);
    expect(count(text, 'recovery_code', 'locked') - count(before, 'recovery_code', 'locked')).toBe(0);
    expect(series(text, 'gatehouse_rate_limited_total', { limiter: 'mfa' })).toBe(2);
    // Every series has a method and an outcome of the fixed sets, and nothing typed reached the text.
    for (const labels of Object.keys(allSeries(text, 'gatehouse_second_factors_total'))) {
      expect(labels).toMatch(/^method="(totp|recovery_code|passkey)",outcome="(success|failure|locked)"$/);
    }
    expect(text).not.toContain('NOT-A-CODE');
    expect(text).not.toContain('ABCD');
    expect(text).not.toContain(wrong);
  });

  it('counts the confirming code of an authenticator app set up at sign-in: a wrong one as a failure, the right one as a success', async () => {
    const before = await scrape();
    const person = await t.build.person({ email: `mfa-enrol-metrics-${randomUUID()}@example.test` });
    const page = await afterPassword(person, strict.clientId);
    expect(page.action).toMatch(/\/mfa\/enrol$/);
    const uri = /<code id="totp-uri">([^<]+)<\/code>/.exec(page.html)?.[1] ?? '';
    const secret = new URL(uri.replaceAll('&amp;', '&')).searchParams.get('secret') ?? '';
    recordSecret(secret);
    const right = await totpCode(secret);
    const wrong = `${right.slice(0, 5)}${(Number(right[5]) + 1) % 10}`;
    expect((await page.post(wrong)).status).toBe(401);
    expect((await page.post('abc')).status).toBe(400);
    expect((await page.post(right)).status).toBe(200);

    const text = await scrape();
    expect(count(text, 'totp', 'failure') - count(before, 'totp', 'failure')).toBe(1);
    expect(count(text, 'totp', 'success') - count(before, 'totp', 'success')).toBe(1);
    expect(count(text, 'recovery_code', 'failure') - count(before, 'recovery_code', 'failure')).toBe(0);
  });
});

describe('METRICS_PORT', () => {
  let t: TestServer;
  let metricsPort: number;

  beforeAll(async () => {
    t = await startTestServer({ name: 'metrics-port', metricsPort: true });
    metricsPort = t.metricsPort!;
  });
  afterAll(() => t.close());

  it('serves /metrics on its own port only', async () => {
    expect((await fetch(`${t.server.url}/metrics`)).status).toBe(404);
    const answer = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(answer.status).toBe(200);
    expect(await answer.text()).toContain('gatehouse_http_request_duration_seconds');
    expect((await fetch(`http://127.0.0.1:${metricsPort}/token`)).status).toBe(404);
  });
});

describe('in production', () => {
  let t: TestServer;
  let metricsPort: number;
  let database: TestDatabase;
  let keysDir: string;
  let labelled: { clientId: string; clientSecret: string };
  const LABELLED_API = 'https://labelled-api.example.test';

  beforeAll(async () => {
    // Production neither migrates nor makes keys by itself: done first, as an operator would.
    database = await createTestDatabase();
    keysDir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-metrics-keys-'));
    const setup = { NODE_ENV: 'test', DATABASE_URL: database.url, KEYS_DIR: keysDir, LOG_LEVEL: 'silent' };
    for (const command of [['migrate'], ['keys', 'generate'], ['resources', 'create', '--identifier', LABELLED_API, '--scope', 'read']]) {
      expect((await runCliCapture([...command, '--json'], setup)).code).toBe(0);
    }
    // A client that exists before the start, named in METRICS_CLIENT_IDS.
    const created = await runCliCapture(['clients', 'create', '--name', 'labelled', '--resource', LABELLED_API, '--scope', 'read', '--json'], setup);
    const { client_id, client_secret } = JSON.parse(created.stdout) as { client_id: string; client_secret: string };
    recordSecret(client_secret);
    labelled = { clientId: client_id, clientSecret: client_secret };
    t = await startTestServer({
      name: 'metrics-production',
      metricsPort: true,
      env: { NODE_ENV: 'production', DATABASE_URL: database.url, KEYS_DIR: keysDir, METRICS_CLIENT_IDS: `${client_id},not-a-client` },
    });
    metricsPort = t.metricsPort!;
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
    await rm(keysDir, { recursive: true, force: true });
  });

  it('answers 404 for /metrics on the main port and serves it on METRICS_PORT', async () => {
    expect(t.config.production).toBe(true);
    const service = await t.build.serviceClient();
    expect((await tokenRequest(t.server.url, { grant_type: 'client_credentials', scope: 'read' }, service)).status).toBe(200);
    const main = await fetch(`${t.server.url}/metrics`);
    expect(main.status).toBe(404);
    expect(await main.text()).not.toContain('gatehouse_');
    const answer = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(answer.status).toBe(200);
    const text = await answer.text();
    expect(series(text, 'gatehouse_tokens_issued_total', { grant_type: 'client_credentials', client_id: 'other' })).toBe(1);
    expect(text).not.toContain(service.clientId);
  });

  it('labels the clients METRICS_CLIENT_IDS names, and only them', async () => {
    for (let i = 0; i < 2; i += 1) expect((await tokenRequest(t.server.url, { grant_type: 'client_credentials', scope: 'read' }, labelled)).status).toBe(200);
    const unlisted = await t.build.serviceClient();
    expect((await tokenRequest(t.server.url, { grant_type: 'client_credentials', scope: 'read' }, unlisted)).status).toBe(200);
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(series(text, 'gatehouse_tokens_issued_total', { grant_type: 'client_credentials', client_id: labelled.clientId })).toBe(2);
    // The first test's client and this one: both "other".
    expect(series(text, 'gatehouse_tokens_issued_total', { grant_type: 'client_credentials', client_id: 'other' })).toBe(2);
    expect(text).not.toContain(unlisted.clientId);
    expect(text).not.toContain('not-a-client');
  });
});
