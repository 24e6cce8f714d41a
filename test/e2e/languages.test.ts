import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, authorizeUrl, pkce, signIn } from '../fixtures/flow.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';

const PASSWORD = 'a person built for a test 4711';

/**
 * Every page in the person's language (issue 17 §6): the authorization request's ui_locales first,
 * then Accept-Language, English for garbage (never echoed); the provider's error page speaks to
 * people with the code beneath; `/` and unknown paths answer a page (JSON for JSON clients).
 */
describe('languages, error pages for people, / and unknown paths', () => {
  let t: TestServer;
  let base: string;
  let client: { clientId: string; clientSecret: string };
  const redirectUri = 'http://127.0.0.1:8765/callback';

  beforeAll(async () => {
    t = await startTestServer({ name: 'languages', listen: false });
    base = t.server.url;
    client = await t.build.client({ client_name: 'Photo <App>', redirect_uris: [redirectUri], grant_types: ['authorization_code'], token_endpoint_auth_method: 'client_secret_basic' });
  });
  afterAll(() => t.close());

  function authorize(extra: Record<string, string> = {}) {
    const { challenge } = pkce();
    return authorizeUrl({ client_id: client.clientId, redirect_uri: redirectUri, code_challenge: challenge, code_challenge_method: 'S256', ...extra });
  }

  /** Follows redirects as a browser does: the same headers (Accept-Language) on every request. */
  async function follow(agent: Agent, start: string, headers: Record<string, string>) {
    let url = new URL(start, base).toString();
    let response = await agent.request(url, { headers });
    while (response.status >= 300 && response.status < 400) {
      url = new URL(response.headers.get('location') ?? '', url).toString();
      response = await agent.request(url, { headers });
    }
    return { response, url };
  }

  async function loginPage(extra: Record<string, string>, headers: Record<string, string> = {}) {
    const agent = new Agent(base, t.fetch);
    const { response } = await follow(agent, authorize(extra), headers);
    expect(response.status).toBe(200);
    return { html: await response.text(), agent };
  }

  it('ui_locales=de gives the German login page, before an English Accept-Language', async () => {
    const { html } = await loginPage({ ui_locales: 'fr de' }, { 'accept-language': 'en' });
    expect(html).toContain('<html lang="de">');
    expect(html).toContain('<h1>Anmelden</h1>');
    expect(html).toContain('Mit einem Passkey anmelden');
    expect(html).toContain('um mit <strong>Photo &lt;App&gt;</strong> fortzufahren');
    expect(html).not.toContain('Sign in with a passkey');
  });

  it('Accept-Language de gives German; the pages after it (a wrong password) stay German', async () => {
    const agent = new Agent(base, t.fetch);
    const headers = { 'accept-language': 'de-CH, en;q=0.5' };
    const { response, url } = await follow(agent, authorize(), headers);
    const html = await response.text();
    expect(html).toContain('<html lang="de">');
    const csrf = /name="csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
    const refused = await agent.postForm(`${url}/login`, { csrf, email: 'nobody@example.test', password: 'wrong' }, headers);
    expect(refused.status).toBe(401);
    const again = await refused.text();
    expect(again).toContain('E-Mail-Adresse oder Passwort ist falsch.');
    // Focus lands on the first invalid field: the email field carries autofocus and aria-invalid, tied to the error.
    expect(again).toMatch(/<input id="email"[^>]*autofocus[^>]*aria-describedby="login-error" aria-invalid="true"/);
    expect(again).toContain('id="login-error"');
  });

  it('garbage ui_locales and Accept-Language fall back to English and are never echoed', async () => {
    const garbage = '<script>x</script>';
    const { html } = await loginPage({ ui_locales: `${garbage} ${'q'.repeat(600)}` }, { 'accept-language': `${garbage};q=1, zz-${'y'.repeat(40)}` });
    expect(html).toContain('<html lang="en">');
    expect(html).toContain('<h1>Sign in</h1>');
    expect(html).not.toContain('<script>x');
    expect(html).not.toContain('&lt;script&gt;x');
    expect(html).not.toContain('qqqq');
  });

  it('the language of the sign-in page is stored as the person\'s (users.locale)', async () => {
    const person = await t.build.person({ email: `lang-${randomUUID()}@example.test`, password: PASSWORD });
    const localeOf = async () => (await t.services.db.selectFrom('users').select('locale').where('id', '=', person.id).executeTakeFirstOrThrow()).locale;
    expect(await localeOf()).toBeNull();
    const agent = new Agent(base, t.fetch);
    const { redirect } = await signIn(agent, { url: authorize({ ui_locales: 'de' }), email: person.email, password: PASSWORD });
    expect(redirect.searchParams.get('code')).toBeTruthy();
    expect(await localeOf()).toBe('de');
  });

  it('an unregistered redirect_uri: the human sentence with the app name, the code beneath, escaped; in German too', async () => {
    const agent = new Agent(base, t.fetch);
    const response = await agent.request(authorize({ redirect_uri: 'https://evil.example/cb' }), { headers: { accept: 'text/html' } });
    expect(response.status).toBe(400);
    expect(response.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await response.text();
    expect(html).toContain('This app sent you here with an address it has not registered. Go back and try again, or contact Photo &lt;App&gt;.');
    expect(html).toMatch(/id="technical"[^]*<code>invalid_redirect_uri<\/code>/);
    expect(html).toContain('redirect_uri did not match any of the client&#39;s registered redirect_uris');
    expect(html).not.toContain('Photo <App>');
    expect(html).not.toMatch(/at .*\.js:\d+/);
    const german = await agent.request(authorize({ redirect_uri: 'https://evil.example/cb', ui_locales: 'de' }), { headers: { accept: 'text/html' } });
    const deHtml = await german.text();
    expect(deHtml).toContain('<html lang="de">');
    expect(deHtml).toContain('Diese App hat Sie mit einer Adresse hierher geschickt, die sie nicht registriert hat.');
    expect(deHtml).toContain('<code>invalid_redirect_uri</code>');
  });

  it('an unknown client: a page for people, without an app name', async () => {
    const response = await t.fetch(authorize({ client_id: 'no-such-client' }), { headers: { accept: 'text/html' } });
    expect(response.status).toBe(400);
    const html = await response.text();
    expect(html).toContain('This app is not known here');
    expect(html).toContain('<code>invalid_client</code>');
  });

  it('the account page\'s own client is "your <brand> account" in the page\'s language', async () => {
    const { response } = await follow(new Agent(base, t.fetch), '/account', { 'accept-language': 'de' });
    const html = await response.text();
    expect(html).toContain('um mit <strong>Ihrem Gatehouse-Konto</strong> fortzufahren');
    const english = await (await follow(new Agent(base, t.fetch), '/account', {})).response.text();
    expect(english).toContain('to continue to <strong>your Gatehouse account</strong>');
  });

  it('sign-out follows the logout request\'s ui_locales; an expired interaction\'s page follows Accept-Language', async () => {
    const person = await t.build.person({ email: `logout-${randomUUID()}@example.test`, password: PASSWORD });
    const agent = new Agent(base, t.fetch);
    await signIn(agent, { url: authorize(), email: person.email, password: PASSWORD, consent: 'allow' });
    const logout = await agent.request(`/session/end?client_id=${client.clientId}&ui_locales=de`, { headers: { accept: 'text/html', 'accept-language': 'en' } });
    expect(logout.status).toBe(200);
    const html = await logout.text();
    expect(html).toContain('<html lang="de">');
    expect(html).toContain('Möchten Sie sich von Gatehouse abmelden und zu <strong>Photo &lt;App&gt;</strong> zurückkehren?');
    expect(html).toContain('Nur von Photo &lt;App&gt; abmelden');
    const expired = await t.fetch('/interaction/no-such-interaction', { headers: { accept: 'text/html', 'accept-language': 'de-AT;q=0.9, en;q=0.8' } });
    expect(expired.status).toBe(400);
    const page = await expired.text();
    expect(page).toContain('<h1>Dieser Anmeldelink ist abgelaufen</h1>');
    expect(page).toContain('<code>session_not_found</code>');
  });

  it('/ answers a page that points to discovery (JSON for JSON clients); HEAD works', async () => {
    const page = await t.fetch('/', { headers: { accept: 'text/html', 'accept-language': 'de' } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await page.text();
    expect(html).toContain('<html lang="de">');
    expect(html).toContain(`href="${base}/.well-known/openid-configuration"`);
    const json = await t.fetch('/', { headers: { accept: 'application/json' } });
    expect(json.status).toBe(200);
    expect(await json.json()).toEqual({ issuer: base, openid_configuration: `${base}/.well-known/openid-configuration` });
    const head = await t.fetch('/', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });

  it('an unknown path: a 404 page (English by default) with the link to discovery, JSON 404 for JSON, the path never echoed', async () => {
    const path = '/no-such-page-<b>x</b>';
    const page = await t.fetch(path, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(404);
    expect(page.headers.get('content-type')).toContain('text/html');
    const html = await page.text();
    expect(html).toContain('<html lang="en">');
    expect(html).toContain('There is no page at this address');
    expect(html).toContain(`href="${base}/.well-known/openid-configuration"`);
    expect(html).not.toContain('no-such-page');
    const json = await t.fetch(path, { headers: { accept: 'application/json' } });
    expect(json.status).toBe(404);
    const body = (await json.json()) as { error: string; error_description: string };
    expect(body.error).toBe('not_found');
    expect(body.error_description).toContain('/.well-known/openid-configuration');
    expect(JSON.stringify(body)).not.toContain('no-such-page');
    expect((await t.fetch(path, { method: 'HEAD' })).status).toBe(404);
  });

  it('leaves the protocol endpoints\' own answers alone (GET /token, POST to an unknown path, discovery)', async () => {
    for (const [method, path] of [['GET', '/token'], ['GET', '/session/end/nope'], ['POST', '/no-such-page'], ['DELETE', '/']] as const) {
      const answer = await t.fetch(path, { method, headers: { accept: 'text/html' } });
      expect(answer.status, `${method} ${path}`).toBe(404);
      expect(answer.headers.get('content-type') ?? '', `${method} ${path}`).not.toContain('text/html');
      expect(await answer.text(), `${method} ${path}`).not.toContain('There is no page');
    }
    const discovery = await t.fetch('/.well-known/openid-configuration');
    expect(discovery.status).toBe(200);
    expect(((await discovery.json()) as { issuer: string }).issuer).toBe(base);
  });
});
