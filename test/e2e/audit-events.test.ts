import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tailAudit, verifyAuditChain, type AuditRecord } from '../../src/audit/audit-log.js';
import { loadAuditKeyring } from '../../src/keys/audit-key.js';
import { emailFingerprint } from '../../src/audit/security-events.js';
import { TEST_ACTOR } from '../fixtures/services.js';
import { Agent, authorizeUrl, codeFlow, hiddenInput, pkce, signIn } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';

// Depends on src/server.ts passing `audit: createAuditSink(registry.db, logger)` to
// createInteractionRoutes, and on src/oidc/provider.ts attaching auditRefreshTokenReuse to the
// provider's grant.error event: until both are wired, these rows are never written.

const PASSWORD = 'a long and unusual passphrase 9';
const REDIRECT = 'http://127.0.0.1:8767/cb';

describe('security events in the audit log', () => {
  let t: TestServer;
  let base: string;
  let client: { clientId: string; clientSecret: string };

  async function rows(action: string): Promise<AuditRecord[]> {
    return (await tailAudit(t.server.registry.db, { limit: 1000 })).filter((row) => row.action === action);
  }

  /** A fresh authorization request's login page: the agent, its csrf and the form's action. */
  async function loginPage() {
    const agent = new Agent(base);
    const { response, url } = await agent.follow(
      authorizeUrl({ client_id: client.clientId, redirect_uri: REDIRECT, code_challenge: pkce().challenge, code_challenge_method: 'S256' }),
    );
    const html = await response.text();
    return { agent, csrf: hiddenInput(html, 'csrf') ?? '', action: `${new URL(url).pathname}/login` };
  }

  beforeAll(async () => {
    t = await startTestServer({ name: 'audit-events', env: { LOGIN_MAX_FAILURES_PER_ACCOUNT: '3' } });
    base = t.server.url;
    recordSecret(PASSWORD);
    // Through the CLI, not t.build: the last case expects the test actor's rows to be only the people it made.
    const created = await t.cli<{ client_id: string; client_secret: string }>(
      'clients', 'create', '--name', 'Audited App', '--redirect-uri', REDIRECT,
      '--grant-type', 'authorization_code', '--grant-type', 'refresh_token', '--first-party',
    );
    recordSecret(created.client_secret);
    client = { clientId: created.client_id, clientSecret: created.client_secret };
  });
  afterAll(() => t.close());

  it('records a failed sign-in with the email only as a hash, and the request id and IP', async () => {
    const { email } = await t.build.person({ email: `audit-${randomUUID()}@example.test`, password: PASSWORD });
    const page = await loginPage();
    const wrong = 'not the password, typed in full';
    recordSecret(wrong);
    const requestId = `audit-${randomUUID()}`;
    const response = await page.agent.postForm(page.action, { csrf: page.csrf, email, password: wrong }, { 'x-request-id': requestId });
    expect(response.status).toBe(401);

    const [row] = (await rows('signin.failure')).filter((r) => r.requestId === requestId);
    expect(row).toMatchObject({ actor: 'anonymous', target: emailFingerprint(email), ip: expect.stringMatching(/127\.0\.0\.1/) });
    expect(row!.details).toMatchObject({ reason: 'invalid', client_id: client.clientId });
    const text = JSON.stringify(row);
    expect(text).not.toContain(email);
    expect(text.toLowerCase()).not.toContain(email.split('@')[0]!.toLowerCase());
    expect(text).not.toContain(wrong);
  });

  it('records a successful sign-in as the user', async () => {
    const { email, id } = await t.build.person({ email: `audit-${randomUUID()}@example.test`, password: PASSWORD });
    await signIn(new Agent(base), {
      url: authorizeUrl({ client_id: client.clientId, redirect_uri: REDIRECT, code_challenge: pkce().challenge, code_challenge_method: 'S256' }),
      email,
      password: PASSWORD,
    });
    const [row] = (await rows('signin.success')).filter((r) => r.actor === `user:${id}`);
    expect(row).toMatchObject({ target: `user:${id}`, details: { client_id: client.clientId } });
    expect(row!.requestId).toEqual(expect.any(String));
    expect(row!.ip).toMatch(/127\.0\.0\.1/);
    expect(JSON.stringify(row)).not.toContain(PASSWORD);
  });

  it('records the lockout once, when the failure that reaches the limit is made', async () => {
    const { email } = await t.build.person({ email: `audit-${randomUUID()}@example.test`, password: PASSWORD });
    for (let i = 0; i < 3; i += 1) {
      const page = await loginPage();
      const response = await page.agent.postForm(page.action, { csrf: page.csrf, email, password: `wrong password number ${i}` });
      expect(response.status).toBe(401);
    }
    for (let i = 0; i < 2; i += 1) {
      const page = await loginPage();
      const refused = await page.agent.postForm(page.action, { csrf: page.csrf, email, password: PASSWORD });
      expect(refused.status).toBe(429);
    }
    const target = emailFingerprint(email);
    expect((await rows('signin.failure')).filter((r) => r.target === target)).toHaveLength(3);
    const lockouts = (await rows('signin.lockout')).filter((r) => r.target === target);
    expect(lockouts).toHaveLength(1);
    expect(lockouts[0]).toMatchObject({ actor: 'anonymous', details: { retry_after_seconds: expect.any(Number) } });
    expect(JSON.stringify(lockouts)).not.toContain(email);
  });

  it('records a refresh token presented twice, naming the client and the grant', async () => {
    const { email } = await t.build.person({ email: `audit-${randomUUID()}@example.test`, password: PASSWORD });
    const first = await codeFlow(new Agent(base), { client, redirectUri: REDIRECT, email, password: PASSWORD, params: { scope: 'openid' } });
    const refreshToken = String(first.body.refresh_token);
    const rotated = await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: refreshToken }, client);
    expect(rotated.status).toBe(200);
    recordSecret(String(rotated.body.refresh_token));
    const reuse = await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: refreshToken }, client);
    expect(reuse.body.error).toBe('invalid_grant');

    // The provider's event listener cannot hold the response: the row follows it shortly.
    const reuses = async () => (await rows('refresh_token.reuse')).filter((r) => r.actor === `client:${client.clientId}`);
    await expect.poll(reuses, { timeout: 5000 }).toHaveLength(1);
    const found = await reuses();
    expect(found[0]!.target).toMatch(/^grant:.+/);
    expect(JSON.stringify(found)).not.toContain(refreshToken);
  });

  it('keeps no password and no clear-text email anywhere, and the chain verifies', async () => {
    const rowsNow = await tailAudit(t.server.registry.db, { limit: 1000 });
    expect(JSON.stringify(rowsNow)).not.toContain(PASSWORD);
    // The set-up's user.create rows record the accounts made (with their email, as the CLI and the
    // admin API record theirs); what sign-ins wrote names no address that was typed.
    const setUp = rowsNow.filter((row) => row.actor === TEST_ACTOR.actor);
    expect(setUp.length).toBeGreaterThan(0);
    expect(setUp.map((row) => row.action)).toEqual(setUp.map(() => 'user.create'));
    expect(JSON.stringify(rowsNow.filter((row) => row.actor !== TEST_ACTOR.actor))).not.toMatch(/@example\.test/);
    expect(await verifyAuditChain(t.server.registry.db, await loadAuditKeyring(t.config.keysDir, { generateIfMissing: false }))).toMatchObject({ ok: true });
  });
});
