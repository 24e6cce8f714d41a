import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tailAudit } from '../../src/audit/audit-log.js';
import { loadDataKeyring } from '../../src/keys/data-key.js';
import { insertPasskey } from '../../src/registry/passkey.repository.js';
import { recentSecurityEvents } from '../../src/services/account-self.service.js';
import { beginTotpEnrolment, confirmTotpEnrolment, secondFactorStatus } from '../../src/services/second-factors.service.js';
import type { BuiltClient, BuiltPerson } from '../fixtures/builders.js';
import { consolePerson, consoleSession } from '../fixtures/console.js';
import { Agent, codeFlow } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';
import { totpCode } from '../fixtures/totp.js';

type Json = Record<string, unknown>;

/*
 * The admin API's People routes (src/admin/people.routes.ts), in process through the admin API with
 * an admin client's token: a person's second factors (reset), browser sessions and sign-ins (sign
 * out everywhere: the sessions end, the refresh tokens are refused, the apps are told by back-channel
 * logout), connected apps (remove one: its refresh tokens are refused). Every refusal (unknown
 * person, a token that is not an admin's, bad input) is a problem document and changes nothing.
 */

const REDIRECT = 'https://app.example.test/cb';
const LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/** An app's back-channel logout endpoint on a loopback port: records every logout token it is sent. */
async function startLogoutReceiver() {
  const tokens: string[] = [];
  const waiters = new Set<() => void>();
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const token = new URLSearchParams(body).get('logout_token') ?? '';
      recordSecret(token);
      tokens.push(token);
      res.writeHead(200).end();
      for (const wake of waiters) wake();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    uri: `http://127.0.0.1:${(server.address() as AddressInfo).port}/bcl`,
    tokens,
    /** Resolves once `count` tokens came in all. */
    waitFor(count: number, timeoutMs = 15_000): Promise<string[]> {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`${tokens.length} of ${count} logout tokens came`));
        }, timeoutMs);
        function check() {
          if (tokens.length < count) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(tokens.slice());
        }
        waiters.add(check);
        check();
      });
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

describe('admin API: a person’s second factors, sessions and connected apps', () => {
  let t: TestServer;
  let token: string;
  let adminClientId: string;
  let api: string;
  let app: BuiltClient;
  let receiver: Awaited<ReturnType<typeof startLogoutReceiver>>;

  async function call(method: string, path: string, options: { body?: unknown; token?: string | null; contentType?: string } = {}) {
    const bearer = options.token === undefined ? token : options.token;
    const headers: Record<string, string> = {};
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    if (options.body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
    const response = await t.fetch(`/admin/v1${path}`, {
      method,
      headers,
      ...(options.body !== undefined ? { body: typeof options.body === 'string' ? options.body : JSON.stringify(options.body) } : {}),
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: (text ? JSON.parse(text) : undefined) as Json };
  }

  /** An access token of an admin client (with `scope`), or of an ordinary service client for an API of its own. */
  async function clientToken(input: { admin: boolean; scope?: string }): Promise<{ token: string; clientId: string }> {
    const client = input.admin ? await t.build.client({ client_name: `admin ${randomUUID()}`, admin: true }) : await t.build.serviceClient();
    await t.server.cache.refresh();
    const answer = await tokenRequest(t.server.url, { grant_type: 'client_credentials', ...(input.scope === undefined ? {} : { scope: input.scope }) }, client, t.fetch);
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    return { token: String(answer.body.access_token), clientId: client.clientId };
  }

  beforeAll(async () => {
    receiver = await startLogoutReceiver();
    t = await startTestServer({ name: 'admin-people', listen: false, env: { BACKCHANNEL_LOGOUT_TIMEOUT_SECONDS: '2' } });
    api = (await t.build.resource({ scope: 'read write', name: 'Photo API' })).identifier;
    app = await t.build.client({
      client_name: `Photo <b>App</b> ${randomUUID().slice(0, 6)}`,
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'],
      backchannel_logout_uri: receiver.uri,
    });
    await t.build.grant(app.clientId, api, 'read write');
    ({ token, clientId: adminClientId } = await clientToken({ admin: true, scope: 'admin' }));
  });
  afterAll(async () => {
    await t?.close();
    await receiver?.close();
  });

  const db = () => t.server.registry.db;
  const newPerson = (): Promise<BuiltPerson> => t.build.person({ email: `people-${randomUUID()}@example.test` });
  const lastSeq = async () => (await tailAudit(db(), { limit: 1 })).at(-1)?.seq ?? 0;
  const auditSince = async (seq: number) => (await tailAudit(db(), { afterSeq: seq })).map((row) => ({ actor: row.actor, action: row.action, target: row.target, details: row.details }));
  const asAdmin = () => `admin:${adminClientId}`;

  /** The app signs the person in on `agent` (consent, offline_access, the API's read scope): its refresh token. */
  async function connect(person: BuiltPerson, agent = new Agent(t.server.url, t.fetch)): Promise<string> {
    const { status, body } = await codeFlow(agent, {
      client: app,
      redirectUri: REDIRECT,
      email: person.email,
      password: person.password,
      params: { scope: 'openid offline_access read', resource: api, prompt: 'consent' },
      tokenParams: { resource: api },
    });
    expect(status, JSON.stringify(body)).toBe(200);
    return String(body.refresh_token);
  }
  const refresh = (refreshToken: string) => tokenRequest(t.server.url, { grant_type: 'refresh_token', refresh_token: refreshToken, resource: api }, app, t.fetch);

  /** Whether the browser of `agent` is still signed in at Gatehouse (its account page, not the sign-in form). */
  async function signedIn(agent: Agent): Promise<boolean> {
    const { response, url } = await agent.follow('/account');
    const html = await response.text();
    return url === `${t.server.url}/account` && !/<form method="post" action="[^"]+\/login"/.test(html);
  }

  async function withAuthenticator(person: BuiltPerson): Promise<void> {
    const deps = { ...t.services, dataKeys: await loadDataKeyring(t.config.keysDir, { generateIfMissing: false }) };
    const enrolment = await beginTotpEnrolment(deps, person.id, { issuer: 'Gatehouse' });
    recordSecret(enrolment.secret);
    await confirmTotpEnrolment(deps, { actor: `person:${person.id}` }, person.id, await totpCode(enrolment.secret, -30_000), { startedAt: enrolment.startedAt });
  }

  async function withPasskey(person: { id: string }, name: string): Promise<string> {
    const id = randomUUID();
    await insertPasskey(db(), {
      id,
      user_id: person.id,
      credential_id: randomBytes(16).toString('base64url'),
      public_key: randomBytes(77),
      counter: 0,
      transports: ['internal'],
      backup_eligible: true,
      backup_state: true,
      aaguid: null,
      name,
      created_at: new Date(),
      last_used_at: null,
    });
    return id;
  }

  describe('second factors', () => {
    it('lists them, and a reset removes the authenticator and recovery codes but keeps the passkeys; the person signs in with a password alone', async () => {
      const person = await newPerson();
      await withAuthenticator(person);
      const passkeyId = await withPasskey(person, 'Laptop <i>key</i>');

      const before = await call('GET', `/users/${person.id}/second-factors`);
      expect(before.status).toBe(200);
      expect(before.body).toMatchObject({ totp: 'active', recovery_codes_left: 10 });
      expect(before.body.passkeys).toEqual([{ id: passkeyId, name: 'Laptop <i>key</i>', synced: true, created_at: expect.any(String), last_used_at: null }]);
      expect(JSON.stringify(before.body)).not.toMatch(/secret|credential/i);

      const seq = await lastSeq();
      const reset = await call('POST', `/users/${person.id}/second-factors/reset`, { body: {} });
      expect(reset.status).toBe(200);
      expect(reset.body).toEqual({ totp_removed: true, recovery_codes_removed: 10, passkeys_removed: 0 });
      expect(await auditSince(seq)).toEqual([
        { actor: asAdmin(), action: 'totp.disable', target: `user:${person.id}`, details: { reset: true, authenticator: 'active', recovery_codes_removed: 10 } },
      ]);
      const after = await call('GET', `/users/${person.id}/second-factors`);
      expect(after.body).toMatchObject({ totp: 'none', recovery_codes_left: 0 });
      expect((after.body.passkeys as Json[]).map((passkey) => passkey.id)).toEqual([passkeyId]);

      // The person sees it among their security events, made by an administrator.
      const events = await recentSecurityEvents(db(), person.id);
      expect(events[0]).toMatchObject({ action: 'totp.disable', byAdministrator: true });

      // With include_passkeys, the passkeys go too, each audited.
      const seq2 = await lastSeq();
      const all = await call('POST', `/users/${person.id}/second-factors/reset`, { body: { include_passkeys: true } });
      expect(all.body).toEqual({ totp_removed: false, recovery_codes_removed: 0, passkeys_removed: 1 });
      expect(await auditSince(seq2)).toEqual([
        { actor: asAdmin(), action: 'passkey.remove', target: `passkey:${passkeyId}`, details: { user_id: person.id, name: 'Laptop <i>key</i>', backup_eligible: true, reset: true } },
      ]);
      expect((await call('GET', `/users/${person.id}/second-factors`)).body).toEqual({ totp: 'none', recovery_codes_left: 0, passkeys: [] });

      // Nothing left: a reset changes and records nothing.
      const seq3 = await lastSeq();
      expect((await call('POST', `/users/${person.id}/second-factors/reset`, { body: { include_passkeys: true } })).body).toEqual({ totp_removed: false, recovery_codes_removed: 0, passkeys_removed: 0 });
      expect(await auditSince(seq3)).toEqual([]);

      // A password alone finishes the sign-in now.
      expect(typeof (await connect(person))).toBe('string');
    });

    it('a reset of an enrolment never confirmed removes it (audited as pending), and leaves no authenticator', async () => {
      const person = await newPerson();
      const deps = { ...t.services, dataKeys: await loadDataKeyring(t.config.keysDir, { generateIfMissing: false }) };
      recordSecret((await beginTotpEnrolment(deps, person.id, { issuer: 'Gatehouse' })).secret);
      expect((await call('GET', `/users/${person.id}/second-factors`)).body).toEqual({ totp: 'pending', recovery_codes_left: 0, passkeys: [] });
      const seq = await lastSeq();
      expect((await call('POST', `/users/${person.id}/second-factors/reset`, { body: {} })).body).toEqual({ totp_removed: false, recovery_codes_removed: 0, passkeys_removed: 0 });
      expect(await auditSince(seq)).toEqual([
        { actor: asAdmin(), action: 'totp.disable', target: `user:${person.id}`, details: { reset: true, authenticator: 'pending', recovery_codes_removed: 0 } },
      ]);
      expect((await call('GET', `/users/${person.id}/second-factors`)).body).toEqual({ totp: 'none', recovery_codes_left: 0, passkeys: [] });
    });

    it('refuses to remove the passkeys of someone who has no other way in (409 naming include_passkeys), changing nothing', async () => {
      const person = await newPerson();
      await withAuthenticator(person);
      const passkeyId = await withPasskey(person, 'Only key');
      await db().updateTable('users').set({ password_hash: null }).where('id', '=', person.id).execute();
      const seq = await lastSeq();
      const refused = await call('POST', `/users/${person.id}/second-factors/reset`, { body: { include_passkeys: true } });
      expect(refused.status).toBe(409);
      expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect((refused.body.errors as Array<{ field: string }>).map((error) => error.field)).toEqual(['include_passkeys']);
      expect(await auditSince(seq)).toEqual([]);
      const status = await call('GET', `/users/${person.id}/second-factors`);
      expect(status.body).toMatchObject({ totp: 'active', recovery_codes_left: 10 });
      expect((status.body.passkeys as Json[]).map((passkey) => passkey.id)).toEqual([passkeyId]);
    });

    it('answers bad input with a problem document naming the field, and changes nothing', async () => {
      const person = await newPerson();
      await withAuthenticator(person);
      const seq = await lastSeq();
      const cases: Array<[unknown, string]> = [
        [{ include_passkeys: 'yes' }, 'include_passkeys'],
        // An unknown member is the body's fault (as on every admin route): its message names it.
        [{ include_passkeys: true, everything: true }, 'body'],
        [[], 'body'],
      ];
      for (const [body, field] of cases) {
        const answer = await call('POST', `/users/${person.id}/second-factors/reset`, { body });
        expect(answer.status, JSON.stringify(body)).toBe(400);
        expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        expect((answer.body.errors as Array<{ field: string }>).map((error) => error.field)).toContain(field);
      }
      expect((await call('POST', `/users/${person.id}/second-factors/reset`, { body: '{"include_passkeys":', contentType: 'application/json' })).status).toBe(400);
      expect((await call('POST', `/users/${person.id}/second-factors/reset`, { body: 'include_passkeys=true', contentType: 'application/x-www-form-urlencoded' })).status).toBe(415);
      expect(await auditSince(seq)).toEqual([]);
      expect(await secondFactorStatus(db(), person.id)).toEqual({ totp: 'active', recoveryCodesLeft: 10 });
    });
  });

  describe('sessions and sign-ins', () => {
    it('lists the browser sessions and sign-ins; sign out everywhere ends the sessions, refuses the refresh tokens, tells the app, is audited', async () => {
      const person = await newPerson();
      const browser = new Agent(t.server.url, t.fetch);
      const refreshToken = await connect(person, browser);
      expect(await signedIn(browser)).toBe(true);

      const sessions = await call('GET', `/users/${person.id}/sessions`);
      expect(sessions.status).toBe(200);
      const listed = sessions.body.data as Json[];
      expect(listed).toHaveLength(1);
      expect(listed[0]).toMatchObject({ uid: expect.any(String), signed_in_at: expect.any(String), client_ids: expect.arrayContaining([app.clientId]) });
      const sessionCookie = browser.cookies.get('_session');
      expect(sessionCookie).toBeTruthy();
      expect(JSON.stringify(sessions.body)).not.toContain(sessionCookie);

      const signIns = await call('GET', `/users/${person.id}/sign-ins`);
      expect(signIns.status).toBe(200);
      expect(signIns.body.data).toEqual([expect.objectContaining({ method: 'password', amr: ['pwd'], client_id: app.clientId })]);

      const tokensBefore = receiver.tokens.length;
      const seq = await lastSeq();
      const ended = await call('DELETE', `/users/${person.id}/sessions`);
      expect(ended.status).toBe(200);
      expect(ended.body).toEqual({ refresh_tokens_revoked: 1 });
      expect(await auditSince(seq)).toEqual([{ actor: asAdmin(), action: 'user.sessions_end', target: `user:${person.id}`, details: { refresh_tokens_revoked: 1 } }]);

      // The app is told, with a logout token for this person.
      const logoutToken = (await receiver.waitFor(tokensBefore + 1))[tokensBefore]!;
      const jwks = createLocalJWKSet((await (await t.fetch('/jwks')).json()) as JSONWebKeySet);
      const { payload } = await jwtVerify(logoutToken, jwks, { issuer: t.config.issuer, audience: app.clientId, typ: 'logout+jwt' });
      expect(payload.sub).toBe(person.id);
      expect(payload.events).toEqual({ [LOGOUT_EVENT]: {} });

      expect((await call('GET', `/users/${person.id}/sessions`)).body.data).toEqual([]);
      expect(await signedIn(browser)).toBe(false);
      const refused = await refresh(refreshToken);
      expect(refused.status).toBe(400);
      expect(refused.body.error).toBe('invalid_grant');
      // The consent stays: the app is still connected, with no refresh token.
      expect((await call('GET', `/users/${person.id}/apps`)).body.data).toEqual([expect.objectContaining({ client_id: app.clientId, refresh_tokens: 0 })]);
      expect((await recentSecurityEvents(db(), person.id))[0]).toMatchObject({ action: 'user.sessions_end', byAdministrator: true });
    });

    it('signing one person out leaves another signed in', async () => {
      const person = await newPerson();
      const someoneElse = await newPerson();
      const othersBrowser = new Agent(t.server.url, t.fetch);
      const othersToken = await connect(someoneElse, othersBrowser);
      await connect(person);
      expect((await call('DELETE', `/users/${person.id}/sessions`)).status).toBe(200);
      expect(await signedIn(othersBrowser)).toBe(true);
      expect((await call('GET', `/users/${someoneElse.id}/sessions`)).body.data).toHaveLength(1);
      expect((await refresh(othersToken)).status).toBe(200);
    });
  });

  describe('connected apps', () => {
    it('lists the apps with their scopes; removing one revokes its refresh tokens (invalid_grant), is audited, leaves another person’s', async () => {
      const person = await newPerson();
      const someoneElse = await newPerson();
      const refreshToken = await connect(person);
      const othersToken = await connect(someoneElse);

      const listed = await call('GET', `/users/${person.id}/apps`);
      expect(listed.status).toBe(200);
      expect(listed.body.data).toEqual([
        {
          client_id: app.clientId,
          client_name: expect.stringMatching(/^Photo <b>App<\/b>/),
          since: expect.any(String),
          scope: expect.stringContaining('offline_access'),
          apis: [{ resource: api, scope: 'read' }],
          refresh_tokens: 1,
        },
      ]);

      // Through someone else's id, the app is not theirs to remove: 404, nothing changes.
      const stranger = await newPerson();
      const seq0 = await lastSeq();
      expect((await call('DELETE', `/users/${stranger.id}/apps/${encodeURIComponent(app.clientId)}`)).status).toBe(404);
      expect(await auditSince(seq0)).toEqual([]);
      const still = await refresh(refreshToken);
      expect(still.status).toBe(200);
      // Rotated: the spent token's row stays beside its successor's until it expires; both go.
      const current = String(still.body.refresh_token);
      recordSecret(current);

      const seq = await lastSeq();
      const removed = await call('DELETE', `/users/${person.id}/apps/${encodeURIComponent(app.clientId)}`);
      expect(removed.status).toBe(204);
      expect(await auditSince(seq)).toEqual([
        {
          actor: asAdmin(),
          action: 'account.app_remove',
          target: `user:${person.id}`,
          details: { client_id: app.clientId, client_name: expect.stringMatching(/^Photo/), grants_revoked: 1, refresh_tokens_revoked: 2 },
        },
      ]);
      expect((await call('GET', `/users/${person.id}/apps`)).body.data).toEqual([]);
      const refused = await refresh(current);
      expect(refused.status).toBe(400);
      expect(refused.body.error).toBe('invalid_grant');
      expect((await refresh(othersToken)).status).toBe(200);
      expect((await call('DELETE', `/users/${person.id}/apps/${encodeURIComponent(app.clientId)}`)).status).toBe(404);
    });
  });

  describe('refusals', () => {
    /** Every People route, with a body where it takes one. */
    const routes = (id: string): Array<[string, string, unknown?]> => [
      ['GET', `/users/${id}/second-factors`],
      ['POST', `/users/${id}/second-factors/reset`, { include_passkeys: true }],
      ['GET', `/users/${id}/sessions`],
      ['DELETE', `/users/${id}/sessions`],
      ['GET', `/users/${id}/sign-ins`],
      ['GET', `/users/${id}/apps`],
      ['DELETE', `/users/${id}/apps/${encodeURIComponent(app.clientId)}`],
    ];

    it('answers 404 for an unknown person on every route', async () => {
      for (const [method, path, body] of routes(randomUUID())) {
        const answer = await call(method, path, { body });
        expect(answer.status, `${method} ${path}`).toBe(404);
        expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        expect(answer.body.type).toBe('urn:gatehouse:problem:not_found');
      }
    });

    it('refuses a missing token, a token of a client that is not an admin, and an admin token without the admin scope; nothing changes', async () => {
      const person = await newPerson();
      const browser = new Agent(t.server.url, t.fetch);
      const refreshToken = await connect(person, browser);
      await withAuthenticator(person);
      const passkeyId = await withPasskey(person, 'Phone');
      const notAdmin = (await clientToken({ admin: false })).token;
      const noScope = (await clientToken({ admin: true })).token;
      const seq = await lastSeq();
      for (const [method, path, body] of routes(person.id)) {
        for (const [bearer, status] of [
          [null, 401],
          [notAdmin, 401],
          [noScope, 403],
        ] as const) {
          const answer = await call(method, path, { body, token: bearer });
          expect(answer.status, `${method} ${path} with ${bearer === null ? 'no token' : bearer === notAdmin ? 'a client token' : 'no admin scope'}`).toBe(status);
          expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
          expect(answer.headers.get('www-authenticate')).toMatch(/^Bearer /);
        }
      }
      expect(await auditSince(seq)).toEqual([]);
      expect(await secondFactorStatus(db(), person.id)).toEqual({ totp: 'active', recoveryCodesLeft: 10 });
      expect(((await call('GET', `/users/${person.id}/second-factors`)).body.passkeys as Json[]).map((passkey) => passkey.id)).toEqual([passkeyId]);
      expect(await signedIn(browser)).toBe(true);
      expect((await refresh(refreshToken)).status).toBe(200);
    });
  });

  describe('from the console (a person with the admin role)', () => {
    it('is audited as the administrator; a person without the admin role is refused (403) and changes nothing', async () => {
      const admin = await consolePerson(t);
      const session = await consoleSession(t, admin);
      const person = await newPerson();
      await withAuthenticator(person);
      const seq = await lastSeq();
      const reset = await session.call('POST', `/users/${person.id}/second-factors/reset`, {});
      expect(reset.status).toBe(200);
      expect((await auditSince(seq)).map((row) => [row.actor, row.action])).toEqual([[`person:${admin.id}`, 'totp.disable']]);
      // The person sees it as made by an administrator.
      expect((await recentSecurityEvents(db(), person.id))[0]).toMatchObject({ action: 'totp.disable', byAdministrator: true });

      const other = await newPerson();
      await withAuthenticator(other);
      const plain = await consolePerson(t, { roles: [] });
      const refusedSession = await consoleSession(t, plain);
      const seq2 = await lastSeq();
      for (const [method, path, body] of [
        ['POST', `/users/${other.id}/second-factors/reset`, { include_passkeys: true }],
        ['DELETE', `/users/${other.id}/sessions`, undefined],
        ['GET', `/users/${other.id}/sessions`, undefined],
        ['DELETE', `/users/${other.id}/apps/${encodeURIComponent(app.clientId)}`, undefined],
      ] as const) {
        const answer = await refusedSession.call(method, path, body);
        expect(answer.status, `${method} ${path}`).toBe(403);
        expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      }
      expect(await auditSince(seq2)).toEqual([]);
      expect(await secondFactorStatus(db(), other.id)).toEqual({ totp: 'active', recoveryCodesLeft: 10 });
    });

    it('an administrator cannot sign themselves out everywhere, nor remove the console from their own apps (409, nothing changed)', async () => {
      const admin = await consolePerson(t);
      const session = await consoleSession(t, admin);
      const seq = await lastSeq();
      const everywhere = await session.call('DELETE', `/users/${admin.id}/sessions`);
      expect(everywhere.status).toBe(409);
      expect(((await everywhere.json()) as { errors: Array<{ field: string }> }).errors.map((error) => error.field)).toEqual(['id']);
      const console = await session.call('DELETE', `/users/${admin.id}/apps/gatehouse-console`);
      expect(console.status).toBe(409);
      expect(((await console.json()) as { errors: Array<{ field: string }> }).errors.map((error) => error.field)).toEqual(['client_id']);
      expect(await auditSince(seq)).toEqual([]);
      // Still signed in: the console's token works and its refresh token is kept.
      expect((await session.call('GET', `/users/${admin.id}/sessions`)).status).toBe(200);
      const consoleTokens = await db().selectFrom('oidc_durable').select('id').where('model', '=', 'RefreshToken').where('account_id', '=', admin.id).where('client_id', '=', 'gatehouse-console').execute();
      expect(consoleTokens).toHaveLength(1);
    });
  });

  it('is in the OpenAPI document', async () => {
    const document = (await (await t.fetch('/admin/v1/openapi.json')).json()) as { paths: Record<string, Record<string, { operationId: string }>> };
    expect(document.paths['/users/{id}/second-factors']?.get?.operationId).toBe('getSecondFactors');
    expect(document.paths['/users/{id}/second-factors/reset']?.post?.operationId).toBe('resetSecondFactors');
    expect(document.paths['/users/{id}/sessions']?.get?.operationId).toBe('listBrowserSessions');
    expect(document.paths['/users/{id}/sessions']?.delete?.operationId).toBe('signOutEverywhere');
    expect(document.paths['/users/{id}/sign-ins']?.get?.operationId).toBe('listSignIns');
    expect(document.paths['/users/{id}/apps']?.get?.operationId).toBe('listConnectedApps');
    expect(document.paths['/users/{id}/apps/{client_id}']?.delete?.operationId).toBe('removeConnectedApp');
  });
});
