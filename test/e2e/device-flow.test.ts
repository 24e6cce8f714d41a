import { randomInt } from 'node:crypto';
import * as client from 'openid-client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadDataKeyring } from '../../src/keys/data-key.js';
import { beginTotpEnrolment, confirmTotpEnrolment } from '../../src/services/second-factors.service.js';
import { approveDevice, confirmDevice, DEVICE_GRANT, openDevicePage, submitUserCode } from '../fixtures/device.js';
import { Agent, hiddenInput } from '../fixtures/flow.js';
import { totpCode } from '../fixtures/totp.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { isBackgroundQuery, startTestServer, type TestServer } from '../fixtures/server.js';

type Json = Record<string, unknown>;

/** A user code as oidc-provider makes them here: 8 letters of base-20, XXXX-XXXX. */
const USER_CODE = /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/;
const APP_NAME = 'Living-room TV <b>"Photos"</b> & more';
const ESCAPED_APP_NAME = 'Living-room TV &lt;b&gt;&quot;Photos&quot;&lt;/b&gt; &amp; more';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The device's side over plain HTTP: the device authorization request and a poll of the token endpoint (a public client). */
function deviceSide(t: TestServer) {
  const post = async (path: string, form: Record<string, string>, headers: Record<string, string> = {}) => {
    const response = await t.fetch(path, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', ...headers }, body: new URLSearchParams(form) });
    const body = (await response.json()) as Json;
    for (const key of ['device_code', 'access_token', 'id_token']) if (typeof body[key] === 'string') recordSecret(body[key]);
    return { status: response.status, body, headers: response.headers };
  };
  return {
    authorize: (clientId: string, extra: Record<string, string> = {}) => post('/device/auth', { client_id: clientId, scope: 'openid email', ...extra }),
    poll: (clientId: string, deviceCode: string) => post('/token', { grant_type: DEVICE_GRANT, device_code: deviceCode, client_id: clientId }),
  };
}

/**
 * The device authorization grant (CONTRACT "Newer protocols", RFC 8628; docs/device-flow.md): the
 * device side with openid-client v6 and over plain HTTP, the person's side over HTTP through the
 * /device pages and the usual sign-in and consent. In process (no port).
 */
describe('device flow', () => {
  let t: TestServer;
  let tv: { clientId: string };
  let person: { id: string; email: string; password: string };
  let device: ReturnType<typeof deviceSide>;
  let config: client.Configuration;

  beforeAll(async () => {
    t = await startTestServer({ name: 'device-flow', listen: false, env: { DEVICE_CODE_POLL_INTERVAL_SECONDS: '1' } });
    tv = await t.build.client({ client_name: APP_NAME, grant_types: [DEVICE_GRANT], token_endpoint_auth_method: 'none', scope: 'openid email' });
    person = await t.build.person();
    device = deviceSide(t);
    config = await client.discovery(new URL(t.config.issuer), tv.clientId, undefined, client.None(), {
      execute: [client.allowInsecureRequests],
      [client.customFetch]: (url, init) => t.fetch(url, init as RequestInit),
    });
  }, 60_000);

  afterAll(async () => {
    await t?.close();
  });

  it('is in discovery: device_authorization_endpoint and the device_code grant', async () => {
    const discovery = (await (await t.fetch('/.well-known/openid-configuration')).json()) as Json;
    expect(discovery.device_authorization_endpoint).toBe(`${t.config.issuer}/device/auth`);
    expect(discovery.grant_types_supported).toContain(DEVICE_GRANT);
  });

  it('signs a device in: openid-client starts and polls; the person types the code in lower case without its dash, confirms, signs in and consents', async () => {
    const started = await client.initiateDeviceAuthorization(config, { scope: 'openid email' });
    recordSecret(started.device_code);
    expect(started.user_code).toMatch(USER_CODE);
    expect(started.verification_uri).toBe(`${t.config.issuer}/device`);
    expect(started.verification_uri_complete).toBe(`${t.config.issuer}/device?user_code=${started.user_code}`);
    expect(started.interval).toBe(1);
    expect(started.expires_in).toBe(600);
    const polling = client.pollDeviceAuthorizationGrant(config, started);

    const agent = new Agent(t.config.issuer, t.fetch);
    const form = await openDevicePage(agent);
    expect(form.status).toBe(200);
    expect(form.html).toMatch(/<input id="user_code" name="user_code" type="text"/);
    expect(form.html).toMatch(/<button type="submit">Continue<\/button>/);
    const typed = started.user_code.replace('-', '').toLowerCase();
    const confirm = await submitUserCode(agent, form, typed);
    expect(confirm.status).toBe(200);
    // The app's name, escaped, and the code as the device shows it.
    expect(confirm.html).toContain(`<strong>${ESCAPED_APP_NAME}</strong>`);
    expect(confirm.html).not.toContain('<b>"Photos"</b>');
    expect(confirm.html).toContain(`<code>${started.user_code}</code>`);
    expect(confirm.html).toContain('name="confirm" value="yes"');
    expect(confirm.html).toContain('name="abort" value="yes"');

    const done = await confirmDevice(agent, confirm, person);
    expect(done.sawLogin).toBe(true);
    expect(done.sawConsent).toBe(true);
    expect(done.status).toBe(200);
    expect(new URL(done.url).pathname).toMatch(/^\/device\/[\w-]+$/);
    expect(done.html).toContain('<h1>Device connected</h1>');
    expect(done.html).toContain('You can go back to your device now');
    expect(done.html).toContain(`<strong>${ESCAPED_APP_NAME}</strong>`);

    const tokens = await polling;
    recordSecret(tokens.access_token);
    recordSecret(tokens.id_token);
    const claims = tokens.claims();
    expect(claims?.sub).toBe(person.id);
    expect(claims?.email).toBe(person.email);
    expect(claims?.aud).toBe(tv.clientId);
    expect(typeof tokens.access_token).toBe('string');
    expect(tokens.expiresIn()).toBeGreaterThan(0);
  });

  it('answers authorization_pending before approval and slow_down to a poll within the interval; a device code gives tokens once', async () => {
    const started = await device.authorize(tv.clientId);
    expect(started.status).toBe(200);
    expect(started.body.interval).toBe(1);
    const deviceCode = String(started.body.device_code);
    const first = await device.poll(tv.clientId, deviceCode);
    expect(first).toMatchObject({ status: 400, body: { error: 'authorization_pending' } });
    const tooSoon = await device.poll(tv.clientId, deviceCode);
    expect(tooSoon).toMatchObject({ status: 400, body: { error: 'slow_down' } });
    await sleep(1100);
    expect((await device.poll(tv.clientId, deviceCode)).body.error).toBe('authorization_pending');

    const done = await approveDevice(new Agent(t.config.issuer, t.fetch), String(started.body.user_code), person);
    expect(done.html).toContain('Device connected');
    // Approved: answered at once, however soon after the last poll.
    const tokens = await device.poll(tv.clientId, deviceCode);
    expect(tokens.status).toBe(200);
    expect(tokens.body.token_type).toBe('Bearer');
    await sleep(1100);
    const again = await device.poll(tv.clientId, deviceCode);
    expect(again).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    // Another client presenting it is refused as well, and learns nothing.
    const other = await t.build.client({ client_name: 'other TV', grant_types: [DEVICE_GRANT], token_endpoint_auth_method: 'none', scope: 'openid' });
    expect((await device.poll(other.clientId, deviceCode)).body.error).toBe('invalid_grant');
  });

  it('tells the device access_denied when the person cancels on the confirm page, at the sign-in, or denies consent', async () => {
    for (const how of ['confirm page', 'sign-in', 'consent'] as const) {
      const started = await device.authorize(tv.clientId);
      const deviceCode = String(started.body.device_code);
      const agent = new Agent(t.config.issuer, t.fetch);
      const confirm = await submitUserCode(agent, await openDevicePage(agent), String(started.body.user_code));
      let last;
      if (how === 'confirm page') {
        last = await confirmDevice(agent, confirm, { ...person, answer: 'abort' });
        expect(last.sawLogin).toBe(false);
      } else if (how === 'sign-in') {
        const continued = await agent.follow('/device', {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ xsrf: /name="xsrf" value="([^"]*)"/.exec(confirm.html)?.[1] ?? '', user_code: String(started.body.user_code), confirm: 'yes' }),
        });
        expect(new URL(continued.url).pathname).toMatch(/^\/interaction\//);
        const cancel = /href="(\/interaction\/[^"]+\/abort)"/.exec(await continued.response.text())?.[1];
        expect(cancel).toBeDefined();
        const { response } = await agent.follow(cancel!);
        last = { status: response.status, html: await response.text() };
      } else {
        last = await confirmDevice(agent, confirm, { ...person, consent: 'deny' });
        expect(last.sawConsent).toBe(true);
      }
      expect(last.status, how).toBe(200);
      expect(last.html, how).toContain('<h1>Sign-in cancelled</h1>');
      expect(last.html, how).toContain('href="/device"');
      const answer = await device.poll(tv.clientId, deviceCode);
      expect(answer, how).toMatchObject({ status: 400, body: { error: 'access_denied' } });
    }
  });

  it('asks for the second factor a client requires (require_mfa) on the way, without a redirect URI anywhere; the ID token says acr mfa', async () => {
    const strict = await t.build.client({ client_name: 'Strict TV', grant_types: [DEVICE_GRANT], token_endpoint_auth_method: 'none', scope: 'openid', require_mfa: true, first_party: true });
    const someone = await t.build.person();
    const deps = { ...t.services, dataKeys: await loadDataKeyring(t.config.keysDir, { generateIfMissing: false }) };
    const { secret } = await beginTotpEnrolment(deps, someone.id, { issuer: 'Gatehouse' });
    recordSecret(secret);
    await confirmTotpEnrolment(deps, { actor: `person:${someone.id}` }, someone.id, await totpCode(secret, -30_000));
    const started = await device.authorize(strict.clientId, { scope: 'openid' });
    const agent = new Agent(t.config.issuer, t.fetch);
    const confirm = await submitUserCode(agent, await openDevicePage(agent), String(started.body.user_code));
    const login = await agent.follow('/device', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ xsrf: hiddenInput(confirm.html, 'xsrf') ?? '', user_code: String(started.body.user_code), confirm: 'yes' }),
    });
    const loginHtml = await login.response.text();
    const loginAction = /<form method="post" action="([^"]+\/login)"/.exec(loginHtml)?.[1] ?? '';
    recordSecret(someone.password);
    const mfa = await agent.follow(loginAction, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf: hiddenInput(loginHtml, 'csrf') ?? '', email: someone.email, password: someone.password }),
    });
    const mfaHtml = await mfa.response.text();
    expect(mfaHtml).toContain('name="code"');
    const mfaAction = /<form method="post" action="([^"]+\/mfa)"/.exec(mfaHtml)?.[1] ?? '';
    // Not yet: the password alone finished nothing.
    expect((await device.poll(strict.clientId, String(started.body.device_code))).body.error).toBe('authorization_pending');
    const done = await agent.follow(mfaAction, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf: hiddenInput(mfaHtml, 'csrf') ?? '', code: await totpCode(secret) }),
    });
    expect(await done.response.text()).toContain('Device connected');
    await sleep(1100);
    const tokens = await device.poll(strict.clientId, String(started.body.device_code));
    expect(tokens.status).toBe(200);
    const claims = JSON.parse(Buffer.from(String(tokens.body.id_token).split('.')[1]!, 'base64url').toString()) as Json;
    expect(claims).toMatchObject({ sub: someone.id, acr: 'urn:gatehouse:acr:mfa' });
    expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
  });

  it('refuses a client not registered for the device_code grant with unauthorized_client, and issues nothing', async () => {
    const web = await t.build.client({ client_name: 'web app', redirect_uris: ['https://app.example.test/cb'], token_endpoint_auth_method: 'none' });
    const refused = await device.authorize(web.clientId);
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('unauthorized_client');
    expect(refused.body).not.toHaveProperty('device_code');
    const service = await t.build.serviceClient();
    const basic = Buffer.from(`${service.clientId}:${service.clientSecret}`).toString('base64');
    const alsoRefused = await t.fetch('/device/auth', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${basic}` }, body: 'scope=openid' });
    expect(alsoRefused.status).toBe(400);
    expect(((await alsoRefused.json()) as Json).error).toBe('unauthorized_client');
    // And a device code of the TV presented by it at the token endpoint: unauthorized_client there too.
    const started = await device.authorize(tv.clientId);
    const token = await t.fetch('/token', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${basic}` },
      body: new URLSearchParams({ grant_type: DEVICE_GRANT, device_code: String(started.body.device_code) }),
    });
    expect(token.status).toBe(400);
    expect(((await token.json()) as Json).error).toBe('unauthorized_client');
  });

  it('opens verification_uri_complete as the form with the code filled in, under a CSP with no script', async () => {
    const started = await device.authorize(tv.clientId);
    const complete = new URL(String(started.body.verification_uri_complete));
    const response = await t.fetch(complete.pathname + complete.search);
    expect(response.status).toBe(200);
    const csp = response.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain('script-src');
    expect(response.headers.get('cache-control')).toContain('no-store');
    const html = await response.text();
    expect(html).not.toContain('<script');
    expect(html).toContain(`value="${String(started.body.user_code)}"`);
  });

  it('answers an unknown code, garbage, a very long input, no code and a missing form token with the form and a sentence, never 5xx', async () => {
    const agent = new Agent(t.config.issuer, t.fetch);
    // Each answer is the form again, with a new form token: the next code is typed there.
    let form = await openDevicePage(agent);
    const cases: Array<[string, string]> = [
      ['BCDF-GHJK', 'That code is not known'],
      ['<script>alert(1)</script>"', 'That code is not known'],
      ['X'.repeat(50_000), 'That code is not known'],
      ['', 'Enter the code your device shows'],
    ];
    for (const [typed, sentence] of cases) {
      const answer = await submitUserCode(agent, form, typed);
      expect(answer.status, typed.slice(0, 20)).toBe(400);
      expect(answer.html).toContain(sentence);
      expect(answer.html).toContain('name="user_code"');
      expect(answer.html).toContain('role="alert"');
      expect(answer.html).not.toContain('<script>');
      expect(answer.html.length).toBeLessThan(10_000);
      form = answer;
    }
    const noToken = await agent.postForm('/device', { user_code: 'BCDF-GHJK' });
    expect(noToken.status).toBe(400);
    expect(await noToken.text()).toContain('This form has expired');
    // The code given twice, in the link or in the form: refused as a page, no 5xx.
    const twiceInLink = await agent.request('/device?user_code=BCDF-GHJK&user_code=CDFG-HJKL');
    expect(twiceInLink.status).toBeLessThan(500);
    expect(await twiceInLink.text()).not.toContain('<script');
    const fresh = await openDevicePage(agent);
    const twiceInForm = await agent.request('/device', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `xsrf=${/name="xsrf" value="([^"]*)"/.exec(fresh.html)?.[1] ?? ''}&user_code=BCDF-GHJK&user_code=CDFG-HJKL`,
    });
    expect(twiceInForm.status).toBe(400);
    expect(await twiceInForm.text()).toContain('name="user_code"');
  });

  it('says the code was used when it is typed again after the sign-in', async () => {
    const started = await device.authorize(tv.clientId);
    await approveDevice(new Agent(t.config.issuer, t.fetch), String(started.body.user_code), person);
    const agent = new Agent(t.config.issuer, t.fetch);
    const again = await submitUserCode(agent, await openDevicePage(agent), String(started.body.user_code));
    expect(again.status).toBe(400);
    expect(again.html).toContain('That code has already been used');
  });

  it('speaks German under Accept-Language de', async () => {
    const agent = new Agent(t.config.issuer, t.fetch);
    const form = await openDevicePage(agent, '/device', { 'accept-language': 'de' });
    expect(form.html).toContain('<html lang="de">');
    expect(form.html).toContain('<h1>Gerät verbinden</h1>');
    const started = await device.authorize(tv.clientId);
    const confirm = await submitUserCode(agent, form, String(started.body.user_code), { 'accept-language': 'de' });
    expect(confirm.html).toContain('Gerät bestätigen');
    expect(confirm.html).toContain('Ja, weiter');
  });

  it('reads nothing from PostgreSQL to answer a poll of a pending code (the code in the store, the client in the cache)', async () => {
    const codes = [];
    for (let i = 0; i < 5; i += 1) codes.push(String((await device.authorize(tv.clientId)).body.device_code));
    // Warm: the client is in the cache (the registry's revision poll may drop it after a change).
    await sleep(300);
    expect((await device.poll(tv.clientId, codes[0]!)).body.error).toBe('authorization_pending');
    const spy = vi.spyOn(t.server.registry.db.getExecutor(), 'executeQuery');
    // The server's own background queries (the registry's revision poll, the audit-log follower) are not theirs.
    const queries = () => spy.mock.calls.map(([query]) => (query as { sql: string }).sql).filter((sql) => !isBackgroundQuery(sql));
    try {
      for (const code of codes.slice(1)) expect((await device.poll(tv.clientId, code)).body.error).toBe('authorization_pending');
      expect((await device.poll(tv.clientId, codes[1]!)).body.error).toBe('slow_down');
      expect(queries()).toEqual([]);
      // The spy sees the registry's queries: a request that reads it is counted.
      await t.fetch('/device/auth', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `client_id=unknown-${randomInt(1e9)}` });
      expect(queries().length).toBeGreaterThan(0);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('device codes expire (DEVICE_CODE_TTL_SECONDS)', () => {
  let t: TestServer;

  beforeAll(async () => {
    t = await startTestServer({ name: 'device-flow-expiry', listen: false, env: { DEVICE_CODE_TTL_SECONDS: '2', DEVICE_CODE_POLL_INTERVAL_SECONDS: '1' } });
  }, 60_000);
  afterAll(async () => {
    await t?.close();
  });

  it('answers expired_token to the device and "expired" to the person once the code has expired', async () => {
    const tv = await t.build.client({ client_name: 'TV', grant_types: [DEVICE_GRANT], token_endpoint_auth_method: 'none', scope: 'openid' });
    const device = deviceSide(t);
    const started = await device.authorize(tv.clientId, { scope: 'openid' });
    expect(started.body.expires_in).toBe(2);
    expect((await device.poll(tv.clientId, String(started.body.device_code))).body.error).toBe('authorization_pending');
    await sleep(2500);
    expect(await device.poll(tv.clientId, String(started.body.device_code))).toMatchObject({ status: 400, body: { error: 'expired_token' } });
    const agent = new Agent(t.config.issuer, t.fetch);
    const typed = await submitUserCode(agent, await openDevicePage(agent), String(started.body.user_code));
    expect(typed.status).toBe(400);
    expect(typed.html).toContain('That code has expired');
  });
});

describe('wrong user codes are limited per client address (DEVICE_CODE_MAX_PER_IP)', () => {
  let t: TestServer;

  beforeAll(async () => {
    t = await startTestServer({ name: 'device-flow-limit', listen: false, env: { DEVICE_CODE_MAX_PER_IP: '3', TRUST_PROXY: 'true' } });
  }, 60_000);
  afterAll(async () => {
    await t?.close();
  });

  /** An address of this run only (the limiter's Redis keys outlive the test). */
  const address = () => `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;
  const limited = async () => {
    const text = await (await t.fetch('/metrics')).text();
    return Number(/gatehouse_rate_limited_total\{limiter="device"\} (\d+)/.exec(text)?.[1] ?? 0);
  };

  it('refuses every code from an address after 3 wrong ones, a right one too, with 429 and Retry-After; other addresses go on', async () => {
    const tv = await t.build.client({ client_name: 'TV', grant_types: [DEVICE_GRANT], token_endpoint_auth_method: 'none', scope: 'openid' });
    const started = await deviceSide(t).authorize(tv.clientId, { scope: 'openid' });
    const right = String(started.body.user_code);
    const ip = address();
    const headers = { 'x-forwarded-for': ip };
    const agent = new Agent(t.config.issuer, t.fetch);
    let form = await openDevicePage(agent, '/device', headers);
    const before = await limited();
    // Empty codes (as expired or used ones) are no guesses: not counted.
    for (let i = 0; i < 5; i += 1) {
      form = await submitUserCode(agent, form, '', headers);
      expect(form.status).toBe(400);
      expect(form.html).toContain('Enter the code your device shows');
    }
    for (const wrong of ['BBBB-BBBB', 'CCCC-CCCC', 'DDDD-DDDD']) {
      form = await submitUserCode(agent, form, wrong, headers);
      expect(form.status).toBe(400);
      expect(form.html).toContain('That code is not known');
    }
    const blocked = await agent.postForm('/device', { xsrf: /name="xsrf" value="([^"]*)"/.exec(form.html)?.[1] ?? '', user_code: right }, headers);
    expect(blocked.status).toBe(429);
    const retryAfter = Number(blocked.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(800);
    expect(retryAfter).toBeLessThanOrEqual(900);
    const html = await blocked.text();
    expect(html).toContain('Too many wrong codes were typed from your network. Try again in 15 minutes.');
    expect(html).not.toContain('name="user_code"');
    expect(blocked.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(await limited()).toBe(before + 1);

    // From another address the right code is taken (the confirm page).
    const elsewhere = { 'x-forwarded-for': address() };
    const other = new Agent(t.config.issuer, t.fetch);
    const confirm = await submitUserCode(other, await openDevicePage(other, '/device', elsewhere), right.toLowerCase(), elsewhere);
    expect(confirm.status).toBe(200);
    expect(confirm.html).toContain(`<code>${right}</code>`);
  });
});
