import { randomInt } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDataKeyring } from '../../src/keys/data-key.js';
import { UPSTREAM_AUTH } from '../../src/services/upstream-sign-in.js';
import { createProvider } from '../../src/services/upstream-providers.service.js';
import { startFakeOp, type FakeOp } from '../fixtures/fake-op.js';
import { Agent, authorizeUrl, hiddenInput, pkce } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';
import { TEST_ACTOR } from '../fixtures/services.js';

/**
 * UPSTREAM_MAX_STARTS_PER_IP: every POST /interaction/:uid/upstream/:id/start keeps a state for 10
 * minutes, so one client address may start only so many (here 3) in that window; then 429 with
 * Retry-After and the error page, and nothing is stored. Counted in Redis (the shared one: each run
 * uses client addresses of its own, given through X-Forwarded-For behind TRUST_PROXY).
 */

const REDIRECT = 'http://127.0.0.1:8768/cb';
const OP_CLIENT_ID = 'gatehouse-at-fake';
const OP_SECRET = 'fake-op-client-secret-limit-0123456789';

describe('starting sign-ins with an upstream provider is limited per client address', () => {
  let t: TestServer;
  let op: FakeOp;
  let client: { clientId: string; clientSecret: string };

  beforeAll(async () => {
    recordSecret(OP_SECRET);
    t = await startTestServer({ name: 'upstream-start-limit', env: { UPSTREAM_MAX_STARTS_PER_IP: '3', TRUST_PROXY: 'true' } });
    op = await startFakeOp(OP_CLIENT_ID, OP_SECRET);
    const deps = { ...t.services, dataKeys: await loadDataKeyring(t.config.keysDir, { generateIfMissing: false }), production: false };
    await createProvider(deps, TEST_ACTOR, { id: 'fake', name: 'Fake OP', issuer: op.issuer, client_id: OP_CLIENT_ID, client_secret: OP_SECRET, allow_signup: true });
    client = await t.build.client({ client_name: 'limited app', redirect_uris: [REDIRECT], first_party: true });
  }, 60_000);
  afterAll(async () => {
    await op?.close();
    await t?.close();
  });

  /** An address of this run only (the limiter's Redis keys outlive the test). */
  const address = () => `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;

  async function loginPage(ip: string) {
    const agent = new Agent(t.config.issuer);
    const { challenge } = pkce();
    const { url, response } = await agent.follow(
      authorizeUrl({ client_id: client.clientId, redirect_uri: REDIRECT, code_challenge: challenge, code_challenge_method: 'S256', scope: 'openid email' }),
      { headers: { 'x-forwarded-for': ip } },
    );
    const html = await response.text();
    return { agent, uid: new URL(url).pathname.split('/')[2] ?? '', csrf: hiddenInput(html, 'csrf') ?? '' };
  }

  const start = (page: Awaited<ReturnType<typeof loginPage>>, ip: string) =>
    page.agent.postForm(`/interaction/${page.uid}/upstream/fake/start`, { csrf: page.csrf }, { 'x-forwarded-for': ip });

  const auditCount = async () =>
    Number((await t.server.registry.db.selectFrom('audit_log').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);

  it('three starts from one address go to the provider; the fourth is 429 with Retry-After and the error page, and stores nothing; another address still starts', async () => {
    const ip = address();
    const page = await loginPage(ip);
    for (let i = 0; i < 3; i += 1) {
      const answer = await start(page, ip);
      expect(answer.status, `start ${i + 1}`).toBe(303);
      const state = new URL(answer.headers.get('location') ?? '').searchParams.get('state');
      expect(state).toBeTruthy();
      expect(await t.server.store.find(UPSTREAM_AUTH, state!)).toBeTruthy();
    }
    const audits = await auditCount();
    const refused = await start(page, ip);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('location')).toBeNull();
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(600);
    expect(refused.headers.get('cache-control')).toBe('no-store');
    expect(refused.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
    const html = await refused.text();
    expect(html).toContain('Too many sign-ins started');
    expect(html).toContain('rate_limited');
    expect(html).toContain(`href="/interaction/${page.uid}"`);
    // A refused start writes no audit row (anyone could write rows at will).
    expect(await auditCount()).toBe(audits);
    const metrics = await (await fetch(`${t.config.issuer}/metrics`)).text();
    expect(metrics).toMatch(/^gatehouse_rate_limited_total\{limiter="upstream_start"\} 1$/m);
    // A new interaction from the same address is refused too: the limit is the address's.
    const again = await loginPage(ip);
    expect((await start(again, ip)).status).toBe(429);

    // Another address is not affected, and the password sign-in of the limited address still works.
    const other = address();
    expect((await start(await loginPage(other), other)).status).toBe(303);
    const person = await t.build.person();
    const login = await again.agent.postForm(`/interaction/${again.uid}/login`, { csrf: again.csrf, email: person.email, password: person.password }, { 'x-forwarded-for': ip });
    expect(login.status).toBe(303);
  });
});
