import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLocalJWKSet, decodeJwt, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltClient, BuiltPerson } from '../fixtures/builders.js';
import { Agent, codeFlow, hiddenInput } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';
import { startSmtpSink, type SmtpSink } from '../fixtures/smtp-sink.js';

/*
 * OpenID Connect Back-Channel Logout 1.0 (docs/backchannel-logout.md), end to end: a real Gatehouse
 * on real PostgreSQL and Redis, and apps' back-channel endpoints served by this test on a loopback
 * port. Every sign-out — at the provider (RP-initiated logout), on the account page, by an admin, by a
 * password reset — sends each app the person had a session with (and that registered a
 * backchannel_logout_uri) one logout token, verified here against the server's JWKS; the person's
 * page never waits for the apps; a failed delivery is retried, then given up.
 */

const REDIRECT = 'http://127.0.0.1:8768/cb';
const LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
const NEW_PASSWORD = 'a new password after the reset 16180';

/** One POST an app's back-channel endpoint received. */
interface Received {
  app: string;
  contentType: string | undefined;
  logoutToken: string;
  receivedAt: number;
  /** When the connection ended (answered, or dropped by the sender); undefined while open. */
  closedAt: number | undefined;
  status: number | undefined;
}

/** How an app's endpoint answers: 200, 500 the first time then 200, or never (holds the request open). */
type Behaviour = 'ok' | 'flaky' | 'hang';

/** Apps' back-channel endpoints: POST /bcl/<app> answers as the app's behaviour says, and records what came. */
async function startReceiver(behaviours: Map<string, Behaviour>) {
  const received: Received[] = [];
  const waiters = new Set<() => void>();
  const held = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    const app = /^\/bcl\/([\w-]+)$/.exec(req.url ?? '')?.[1];
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || !app) {
        res.writeHead(404).end();
        return;
      }
      const logoutToken = new URLSearchParams(body).get('logout_token') ?? '';
      recordSecret(logoutToken);
      const entry: Received = { app, contentType: req.headers['content-type'], logoutToken, receivedAt: Date.now(), closedAt: undefined, status: undefined };
      received.push(entry);
      res.on('close', () => (entry.closedAt = Date.now()));
      const behaviour = behaviours.get(app) ?? 'ok';
      const earlier = received.filter((other) => other.app === app).length - 1;
      if (behaviour === 'hang') held.add(res);
      else {
        entry.status = behaviour === 'flaky' && earlier === 0 ? 500 : 200;
        res.writeHead(entry.status).end();
      }
      for (const wake of waiters) wake();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    uri: (app: string) => `http://127.0.0.1:${port}/bcl/${app}`,
    received,
    of: (app: string) => received.filter((entry) => entry.app === app),
    /** Resolves once `count` requests for `app` came (the ones already here count). */
    waitFor(app: string, count: number, timeoutMs = 15_000): Promise<Received[]> {
      return new Promise((resolve, reject) => {
        const check = () => {
          const got = received.filter((entry) => entry.app === app);
          if (got.length < count) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(got);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`${app}: ${received.filter((entry) => entry.app === app).length} of ${count} logout tokens came`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close: async () => {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('back-channel logout', () => {
  const behaviours = new Map<string, Behaviour>([
    ['hang', 'hang'],
    ['flaky', 'flaky'],
  ]);
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let sink: SmtpSink;
  let t: TestServer;
  let issuer: string;
  let jwks: ReturnType<typeof createLocalJWKSet>;
  /** Session required (sid in every logout token). */
  let withSid: BuiltClient;
  /** A back-channel URI, no sid required. */
  let withoutSid: BuiltClient;
  /** No back-channel URI at all. */
  let silent: BuiltClient;
  /** A back-channel URI; nobody in these tests ever signs in to it. */
  let untouched: BuiltClient;
  let hanging: BuiltClient;
  let flaky: BuiltClient;

  beforeAll(async () => {
    receiver = await startReceiver(behaviours);
    sink = await startSmtpSink();
    // One attempt waits at most 1 s, and two attempts in all: a dead app is given up within seconds.
    t = await startTestServer({
      name: 'backchannel-logout',
      listen: false,
      env: { SMTP_URL: sink.url, RESET_MAX_PER_IP: '100000', REGISTRATION_ENABLED: 'true', BACKCHANNEL_LOGOUT_TIMEOUT_SECONDS: '1', BACKCHANNEL_LOGOUT_ATTEMPTS: '2' },
    });
    issuer = t.config.issuer;
    const app = (name: string, extra: Record<string, unknown>) =>
      t.build.client({ client_name: `${name} ${randomUUID()}`, redirect_uris: [REDIRECT], grant_types: ['authorization_code'], ...extra });
    withSid = await app('with sid', { backchannel_logout_uri: receiver.uri('with-sid'), backchannel_logout_session_required: true });
    withoutSid = await app('without sid', { backchannel_logout_uri: receiver.uri('without-sid') });
    silent = await app('silent', {});
    untouched = await app('untouched', { backchannel_logout_uri: receiver.uri('untouched'), backchannel_logout_session_required: true });
    hanging = await app('hanging', { backchannel_logout_uri: receiver.uri('hang'), backchannel_logout_session_required: true });
    flaky = await app('flaky', { backchannel_logout_uri: receiver.uri('flaky'), backchannel_logout_session_required: true });
    const published = (await (await t.fetch('/jwks')).json()) as JSONWebKeySet;
    jwks = createLocalJWKSet(published);
  });
  afterAll(async () => {
    await t?.close();
    await receiver?.close();
    await sink?.close();
  });

  const newPerson = () => t.build.person({ email: `bcl-${randomUUID()}@example.test` });
  const browser = () => new Agent(issuer, t.fetch);

  /** The app signs the person in on `agent` (consent allowed); answers the ID token's payload. */
  async function connect(agent: Agent, person: BuiltPerson, client: BuiltClient): Promise<JWTPayload> {
    const { status, body } = await codeFlow(agent, { client, redirectUri: REDIRECT, email: person.email, password: person.password });
    expect(status, JSON.stringify(body)).toBe(200);
    return (await jwtVerify(String(body.id_token), jwks, { issuer, audience: client.clientId })).payload;
  }

  /** Verifies a logout token as an app must (Back-Channel Logout 1.0 §2.6) and answers its claims. */
  async function verifiedLogoutToken(received: Received, client: BuiltClient): Promise<JWTPayload> {
    expect(received.contentType).toBe('application/x-www-form-urlencoded');
    const { payload, protectedHeader } = await jwtVerify(received.logoutToken, jwks, { issuer, audience: client.clientId, typ: 'logout+jwt', requiredClaims: ['iat', 'jti', 'sub'] });
    expect(protectedHeader.alg).toBe('RS256');
    expect(typeof protectedHeader.kid).toBe('string');
    expect(payload.events).toEqual({ [LOGOUT_EVENT]: {} });
    expect(payload).not.toHaveProperty('nonce');
    expect(Math.abs((payload.iat ?? 0) - Date.now() / 1000)).toBeLessThan(120);
    expect(payload.jti).toMatch(/^[\w-]{16,}$/);
    return payload;
  }

  /** The end_session page's form, confirmed with logout=yes (sign out of Gatehouse and every app); answers the confirm's response. */
  async function signOutAtProvider(agent: Agent, query = ''): Promise<Response> {
    const page = await agent.request(`/session/end${query}`);
    expect(page.status).toBe(200);
    const html = await page.text();
    const xsrf = hiddenInput(html, 'xsrf');
    expect(xsrf).toBeTruthy();
    return agent.postForm('/session/end/confirm', { xsrf: xsrf!, logout: 'yes' });
  }

  /** Signs in at /account on `agent`; answers the account page's CSRF token. */
  async function signInAtAccount(agent: Agent, person: BuiltPerson): Promise<string> {
    const { response } = await agent.follow('/account');
    const html = await response.text();
    const login = /<form method="post" action="([^"]+\/login)"/.exec(html)?.[1];
    expect(login).toBeTruthy();
    const posted = await agent.postForm(login!, { csrf: hiddenInput(html, 'csrf') ?? '', email: person.email, password: person.password });
    expect(posted.status).toBe(303);
    const end = await agent.follow(posted.headers.get('location')!);
    expect(end.url).toBe(`${issuer}/account`);
    return hiddenInput(await end.response.text(), 'csrf') ?? '';
  }

  async function adminToken(): Promise<string> {
    const admin = await t.build.client({ client_name: `admin ${randomUUID()}`, admin: true });
    await t.server.cache.refresh();
    const { status, body } = await tokenRequest(issuer, { grant_type: 'client_credentials', scope: 'admin' }, admin, t.fetch);
    expect(status).toBe(200);
    return String(body.access_token);
  }

  async function adminCall(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> | undefined }> {
    const response = await t.fetch(`/admin/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${await adminToken()}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
  }

  /** gatehouse_backchannel_logout_total by outcome, read from /metrics. */
  async function outcomes(): Promise<Record<string, number>> {
    const text = await (await t.fetch('/metrics')).text();
    const counts: Record<string, number> = {};
    for (const [, outcome, value] of text.matchAll(/^gatehouse_backchannel_logout_total\{outcome="(\w+)"\} (\d+)$/gm)) counts[outcome!] = Number(value);
    return counts;
  }
  const delta = (before: Record<string, number>, after: Record<string, number>) =>
    Object.fromEntries(Object.entries(after).map(([outcome, value]) => [outcome, value - (before[outcome] ?? 0)]).filter(([, value]) => value !== 0));

  /** Gives the queue time to deliver anything wrongly queued, by waiting for a delivery queued after it. */
  async function settled(): Promise<void> {
    const person = await newPerson();
    const agent = browser();
    await connect(agent, person, withoutSid);
    const before = receiver.of('without-sid').length;
    await adminCall('PATCH', `/users/${person.id}`, { disabled: true });
    await receiver.waitFor('without-sid', before + 1);
  }

  it('is advertised in discovery: backchannel_logout_supported and backchannel_logout_session_supported', async () => {
    const discovery = (await (await t.fetch('/.well-known/openid-configuration')).json()) as Record<string, unknown>;
    expect(discovery.backchannel_logout_supported).toBe(true);
    expect(discovery.backchannel_logout_session_supported).toBe(true);
  });

  it('RP-initiated logout: every app of the session with a back-channel URI gets one verified logout token (sid when required, the same as its ID token), the others nothing', async () => {
    const person = await newPerson();
    const agent = browser();
    const idWithSid = await connect(agent, person, withSid);
    const idWithoutSid = await connect(agent, person, withoutSid);
    await connect(agent, person, silent);
    expect(typeof idWithSid.sid).toBe('string');
    expect(idWithoutSid).not.toHaveProperty('sid');
    const counts = { withSid: receiver.of('with-sid').length, withoutSid: receiver.of('without-sid').length, untouched: receiver.of('untouched').length };
    const before = await outcomes();

    const confirmed = await signOutAtProvider(agent, `?client_id=${encodeURIComponent(withSid.clientId)}`);
    expect(confirmed.status).toBe(303);
    expect(confirmed.headers.get('location')).toContain('/session/end/success');

    const [first] = (await receiver.waitFor('with-sid', counts.withSid + 1)).slice(counts.withSid);
    const claims = await verifiedLogoutToken(first!, withSid);
    expect(claims.sub).toBe(person.id);
    expect(claims.sid).toBe(idWithSid.sid);
    const [second] = (await receiver.waitFor('without-sid', counts.withoutSid + 1)).slice(counts.withoutSid);
    const other = await verifiedLogoutToken(second!, withoutSid);
    expect(other.sub).toBe(person.id);
    expect(other).not.toHaveProperty('sid');
    // A token for one app is refused by another (its audience).
    await expect(jwtVerify(first!.logoutToken, jwks, { issuer, audience: withoutSid.clientId })).rejects.toThrow();

    await settled();
    expect(receiver.of('with-sid')).toHaveLength(counts.withSid + 1);
    expect(receiver.of('without-sid').filter((entry) => decodeJwt(entry.logoutToken).sub === person.id)).toHaveLength(1);
    // The app the person never signed in to, and the one without a back-channel URI (nowhere to send), got nothing.
    expect(receiver.of('untouched')).toHaveLength(counts.untouched);
    expect(receiver.received.filter((entry) => decodeJwt(entry.logoutToken).aud === untouched.clientId)).toEqual([]);
    expect(receiver.received.filter((entry) => decodeJwt(entry.logoutToken).aud === silent.clientId)).toEqual([]);
    // Nothing was even queued for the app without a URI: no attempt of it is logged.
    expect(t.logs.entries().filter((entry) => entry.component === 'backchannel-logout' && (entry.clientId === silent.clientId || entry.clientId === untouched.clientId))).toEqual([]);
    expect(t.logs.entries().filter((entry) => entry.component === 'backchannel-logout' && entry.clientId === withSid.clientId).map((entry) => entry.outcome)).toContain('delivered');
    expect(delta(before, await outcomes()).delivered).toBeGreaterThanOrEqual(2);
    // The session is over at Gatehouse too.
    expect(await t.server.host.provider.Session.find(agent.cookies.get('_session') ?? 'none')).toBeUndefined();
  });

  it("never holds up the person's sign-out: an app that does not answer is given up after its attempts, each cut off by the timeout", async () => {
    const person = await newPerson();
    const agent = browser();
    const id = await connect(agent, person, hanging);
    const before = await outcomes();
    const confirmed = await signOutAtProvider(agent);
    const answeredAt = Date.now();
    expect(confirmed.status).toBe(303);
    // Two attempts (BACKCHANNEL_LOGOUT_ATTEMPTS), each dropped by Gatehouse (its 1 s timeout) while
    // the app still held it: the person's answer came before the first was even dropped.
    const attempts = await receiver.waitFor('hang', 2);
    for (const attempt of attempts) expect((await verifiedLogoutToken(attempt, hanging)).sid).toBe(id.sid);
    await expect.poll(() => attempts.every((attempt) => attempt.closedAt !== undefined), { timeout: 10_000 }).toBe(true);
    expect(attempts[0]!.closedAt!).toBeGreaterThan(answeredAt);
    expect(attempts[0]!.status).toBeUndefined();
    // Each attempt is a token of its own.
    expect(decodeJwt(attempts[1]!.logoutToken).jti).not.toBe(decodeJwt(attempts[0]!.logoutToken).jti);
    await expect.poll(async () => delta(before, await outcomes()), { timeout: 10_000 }).toEqual({ retried: 1, failed: 1 });
    const logged = t.logs.entries().filter((entry) => entry.component === 'backchannel-logout' && entry.clientId === hanging.clientId);
    expect(logged.map((entry) => [entry.outcome, entry.reason])).toEqual([
      ['retried', 'timeout'],
      ['failed', 'timeout'],
    ]);
    // The log names the client and the outcome, never a token.
    for (const attempt of attempts) expect(t.logs.text()).not.toContain(attempt.logoutToken);
  });

  it('retries an app that answered 500: the next attempt delivers', async () => {
    const person = await newPerson();
    const agent = browser();
    await connect(agent, person, flaky);
    const before = await outcomes();
    expect((await signOutAtProvider(agent)).status).toBe(303);
    const [failed, delivered] = await receiver.waitFor('flaky', 2);
    expect(failed!.status).toBe(500);
    expect(delivered!.status).toBe(200);
    expect((await verifiedLogoutToken(delivered!, flaky)).sub).toBe(person.id);
    await expect.poll(async () => delta(before, await outcomes()), { timeout: 10_000 }).toEqual({ retried: 1, delivered: 1 });
    const logged = t.logs.entries().filter((entry) => entry.component === 'backchannel-logout' && entry.clientId === flaky.clientId);
    expect(logged.map((entry) => [entry.outcome, entry.status])).toEqual([
      ['retried', 500],
      ['delivered', undefined],
    ]);
  });

  it('account page, "Sign out everywhere else": the apps of the other sessions are told, with those sessions\' sid; this session\'s apps are not', async () => {
    const person = await newPerson();
    const other = browser();
    const otherId = await connect(other, person, withSid);
    const mine = browser();
    const csrf = await signInAtAccount(mine, person);
    const mineId = await connect(mine, person, withSid);
    const count = receiver.of('with-sid').length;
    const answer = await mine.postForm('/account/sessions/others/delete', { csrf });
    expect(answer.status).toBe(303);
    expect(answer.headers.get('location')).toBe('/account?self=others_ended#sessions');
    const [told] = (await receiver.waitFor('with-sid', count + 1)).slice(count);
    const claims = await verifiedLogoutToken(told!, withSid);
    expect(claims.sub).toBe(person.id);
    expect(claims.sid).toBe(otherId.sid);
    await settled();
    // Only the other session's: this browser stays signed in to the app and to Gatehouse.
    expect(receiver.of('with-sid').filter((entry) => decodeJwt(entry.logoutToken).sid === mineId.sid)).toEqual([]);
    expect((await mine.request('/account')).status).toBe(200);
  });

  it('an admin disabling or deleting a person, or setting their password: each app of each of their sessions is told', async () => {
    for (const change of ['disable', 'delete', 'password'] as const) {
      const person = await newPerson();
      const first = browser();
      const second = browser();
      const ids = [await connect(first, person, withSid), await connect(second, person, withSid)];
      const count = receiver.of('with-sid').length;
      const answer =
        change === 'delete'
          ? await adminCall('DELETE', `/users/${person.id}`)
          : await adminCall('PATCH', `/users/${person.id}`, change === 'disable' ? { disabled: true } : { password: NEW_PASSWORD });
      expect(answer.status, change).toBe(change === 'delete' ? 204 : 200);
      recordSecret(NEW_PASSWORD);
      const told = (await receiver.waitFor('with-sid', count + 2)).slice(count);
      const claims = await Promise.all(told.map((entry) => verifiedLogoutToken(entry, withSid)));
      expect(claims.map((claim) => claim.sub)).toEqual([person.id, person.id]);
      expect(claims.map((claim) => claim.sid).sort()).toEqual(ids.map((id) => id.sid).sort());
      // The sessions are gone from the store, not only past their cutoff.
      for (const agent of [first, second]) expect(await t.server.host.provider.Session.find(agent.cookies.get('_session')!)).toBeUndefined();
    }
  });

  it('the CLI disabling or deleting a person (its own registry connection, no node hears of it: found in the audit log): each app of their sessions is told', async () => {
    for (const command of ['disable', 'delete'] as const) {
      const person = await newPerson();
      const agent = browser();
      const id = await connect(agent, person, withSid);
      const count = receiver.of('with-sid').length;
      await t.cli('users', command, person.id);
      const [told] = (await receiver.waitFor('with-sid', count + 1)).slice(count);
      const claims = await verifiedLogoutToken(told!, withSid);
      expect(claims.sub, command).toBe(person.id);
      expect(claims.sid, command).toBe(id.sid);
      expect(await t.server.host.provider.Session.find(agent.cookies.get('_session')!)).toBeUndefined();
    }
  });

  it('keep_sessions: an admin change that keeps the sessions tells no app', async () => {
    const person = await newPerson();
    const agent = browser();
    const id = await connect(agent, person, withSid);
    const answer = await adminCall('PATCH', `/users/${person.id}`, { disabled: true, keep_sessions: true });
    expect(answer.status).toBe(200);
    await settled();
    expect(receiver.of('with-sid').filter((entry) => decodeJwt(entry.logoutToken).sid === id.sid)).toEqual([]);
    expect(await t.server.host.provider.Session.find(agent.cookies.get('_session')!)).toBeDefined();
  });

  it('a password reset by mail: the apps of every session of the person are told', async () => {
    const person = await newPerson();
    const signedIn = browser();
    const id = await connect(signedIn, person, withSid);
    const count = receiver.of('with-sid').length;
    const stranger = browser();
    const form = await stranger.request('/reset');
    const asked = await stranger.postForm('/reset', { csrf: hiddenInput(await form.text(), 'csrf') ?? '', email: person.email, return: '' });
    expect(asked.status).toBe(200);
    const mail = await sink.waitFor((message) => message.to.includes(person.email));
    const link = mail.links.find((candidate) => candidate.startsWith(`${issuer}/reset/password?token=`));
    expect(link).toBeTruthy();
    recordSecret(new URL(link!).searchParams.get('token'));
    const page = await stranger.request(link!);
    const html = await page.text();
    recordSecret(NEW_PASSWORD);
    const done = await stranger.postForm('/reset/password', { csrf: hiddenInput(html, 'csrf') ?? '', token: hiddenInput(html, 'token') ?? '', password: NEW_PASSWORD, confirm: NEW_PASSWORD });
    expect(done.status).toBe(200);
    const [told] = (await receiver.waitFor('with-sid', count + 1)).slice(count);
    const claims = await verifiedLogoutToken(told!, withSid);
    expect(claims.sub).toBe(person.id);
    expect(claims.sid).toBe(id.sid);
  });

  it('refuses a back-channel URI that is http off loopback, has a fragment or is relative: invalid_client_metadata at /reg, a field error at the admin API; nothing registered', async () => {
    const created = await t.cli<{ initial_access_token: string }>('registration', 'token', 'create', '--expires-in', '600');
    recordSecret(created.initial_access_token);
    const base = { redirect_uris: ['https://app.example.test/cb'], grant_types: ['authorization_code'], response_types: ['code'] };
    const countClients = async () => Number((await t.server.registry.db.selectFrom('clients').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    const clientsBefore = await countClients();
    for (const uri of ['http://app.example.test/bcl', 'https://app.example.test/bcl#here', '/bcl']) {
      const registered = await t.fetch('/reg', {
        method: 'POST',
        headers: { authorization: `Bearer ${created.initial_access_token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ ...base, client_name: `dcr ${randomUUID()}`, backchannel_logout_uri: uri }),
      });
      const body = (await registered.json()) as Record<string, unknown>;
      expect(registered.status, uri).toBe(400);
      expect(body.error, uri).toBe('invalid_client_metadata');
      expect(String(body.error_description), uri).toContain('backchannel_logout_uri');
      const refused = await adminCall('POST', '/clients', { ...base, client_name: `admin ${randomUUID()}`, backchannel_logout_uri: uri });
      expect(refused.status, uri).toBe(400);
      expect((refused.body?.errors as Array<{ field?: string }>).map((error) => error.field), uri).toContain('backchannel_logout_uri');
    }
    // adminCall made one admin client per call (three); nothing else was registered.
    expect(await countClients()).toBe(clientsBefore + 3);
    // The same URI over https, or http on loopback, is taken at /reg.
    const accepted = await t.fetch('/reg', {
      method: 'POST',
      headers: { authorization: `Bearer ${created.initial_access_token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ...base, client_name: `dcr ok ${randomUUID()}`, backchannel_logout_uri: 'https://app.example.test/bcl', backchannel_logout_session_required: true }),
    });
    const registered = (await accepted.json()) as Record<string, unknown>;
    recordSecret(typeof registered.client_secret === 'string' ? registered.client_secret : undefined);
    recordSecret(typeof registered.registration_access_token === 'string' ? registered.registration_access_token : undefined);
    expect(accepted.status, JSON.stringify(registered)).toBe(201);
    expect(registered).toMatchObject({ backchannel_logout_uri: 'https://app.example.test/bcl', backchannel_logout_session_required: true });
  });
});
