import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, authorizeUrl, hiddenInput, pkce, signIn } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';

const PASSWORD = 'nobody plants a session here 4';
const REDIRECT = 'http://127.0.0.1:8768/cb';
const SESSION = '_session';

describe('session fixation', () => {
  let t: TestServer;
  let base: string;
  let email: string;
  let client: { clientId: string; clientSecret: string };

  const authorize = (extra: Record<string, string> = {}) => {
    const { challenge } = pkce();
    return authorizeUrl({ client_id: client.clientId, redirect_uri: REDIRECT, scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256', ...extra });
  };

  /** What a browser holding `cookies` gets for a silent authorization request: a code means it is signed in. */
  async function silentSignIn(cookies: Map<string, string>): Promise<{ code: string | null; error: string | null }> {
    return (await silentSignInAs(cookies)).answer;
  }

  /** silentSignIn, and whose session it was: the `sub` of the ID token the code is exchanged for. */
  async function silentSignInAs(cookies: Map<string, string>): Promise<{ answer: { code: string | null; error: string | null }; sub?: string }> {
    const agent = new Agent(base);
    for (const [name, value] of cookies) agent.cookies.set(name, value);
    const { verifier, challenge } = pkce();
    const { url } = await agent.follow(
      authorizeUrl({ client_id: client.clientId, redirect_uri: REDIRECT, scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256', prompt: 'none' }),
    );
    const back = new URL(url);
    expect(back.origin + back.pathname).toBe(REDIRECT);
    const code = back.searchParams.get('code');
    const answer = { code, error: back.searchParams.get('error') };
    if (!code) return { answer };
    recordSecret(code);
    const tokens = await tokenRequest(base, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier }, client);
    recordSecret(String(tokens.body.id_token));
    const payload = JSON.parse(Buffer.from(String(tokens.body.id_token).split('.')[1] ?? '', 'base64url').toString()) as { sub: string };
    return { answer, sub: payload.sub };
  }

  beforeAll(async () => {
    t = await startTestServer({ name: 'session-fixation' });
    base = t.server.url;
    ({ email } = await t.build.person({ email: `victim-${randomUUID()}@example.test`, password: PASSWORD, name: 'Victim' }));
    client = await t.build.client({
      client_name: 'Fixation App',
      redirect_uris: [REDIRECT],
      post_logout_redirect_uris: ['http://127.0.0.1:8768/bye'],
      grant_types: ['authorization_code'],
      first_party: true,
    });
  });
  afterAll(() => t.close());

  it('keeps no session before sign-in, so there is none to plant', async () => {
    const attacker = new Agent(base);
    await attacker.follow(authorize());
    expect(attacker.cookies.has(SESSION)).toBe(false);
    expect((await silentSignIn(attacker.cookies)).error).toBe('login_required');
  });

  it('gives the person a new session identifier at sign-in: a session an attacker planted gains nothing', async () => {
    // The attacker signs in with an account of their own and plants that genuine, signed session
    // (with every other cookie they hold) in the victim's browser...
    const { email: attackerEmail, id: attackerId } = await t.build.person({ email: `attacker-${randomUUID()}@example.test`, password: PASSWORD, name: 'Mallory' });
    const attacker = new Agent(base);
    const own = await signIn(attacker, { url: authorize(), email: attackerEmail, password: PASSWORD });
    recordSecret(own.redirect.searchParams.get('code'));
    const planted = new Map(attacker.cookies);
    expect(planted.get(SESSION)).toBeTruthy();

    // ...where the victim signs in as themselves (the app asks for a fresh login).
    const victim = new Agent(base);
    for (const [name, value] of planted) victim.cookies.set(name, value);
    const { redirect } = await signIn(victim, { url: authorize({ prompt: 'login' }), email, password: PASSWORD });
    recordSecret(redirect.searchParams.get('code'));
    expect(redirect.searchParams.get('code')).toBeTruthy();
    expect(victim.cookies.get(SESSION)).toBeTruthy();
    expect(victim.cookies.get(SESSION)).not.toBe(planted.get(SESSION));

    // The victim's browser carries the victim's session; the planted identifier never became it.
    const victimNow = await silentSignInAs(victim.cookies);
    const plantedNow = await silentSignInAs(planted);
    expect(victimNow.sub).toBeDefined();
    expect(victimNow.sub).not.toBe(attackerId);
    expect(plantedNow.sub === undefined || plantedNow.sub === attackerId).toBe(true);
  });

  it('ignores a session cookie the attacker made up (unsigned), and issues its own', async () => {
    const victim = new Agent(base);
    victim.cookies.set(SESSION, 'attacker-chosen-session-id');
    const { redirect } = await signIn(victim, { url: authorize(), email, password: PASSWORD });
    recordSecret(redirect.searchParams.get('code'));
    expect(victim.cookies.get(SESSION)).not.toBe('attacker-chosen-session-id');
    expect((await silentSignIn(new Map([[SESSION, 'attacker-chosen-session-id']]))).error).toBe('login_required');
  });

  it('changes the session identifier again at logout: the signed-in one is dead afterwards', async () => {
    const victim = new Agent(base);
    const { verifier, challenge } = pkce();
    const { redirect } = await signIn(victim, {
      url: authorizeUrl({ client_id: client.clientId, redirect_uri: REDIRECT, scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' }),
      email,
      password: PASSWORD,
    });
    const code = redirect.searchParams.get('code') ?? '';
    recordSecret(code);
    const tokens = await tokenRequest(base, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier }, client);
    const idToken = String(tokens.body.id_token);
    recordSecret(idToken);
    const signedIn = new Map(victim.cookies);

    const page = await victim.request(`/session/end?${new URLSearchParams({ id_token_hint: idToken, client_id: client.clientId })}`);
    const html = await page.text();
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1] ?? '';
    const done = await victim.postForm(action, { xsrf: hiddenInput(html, 'xsrf') ?? '', logout: 'yes' });
    expect([200, 303]).toContain(done.status);
    expect(victim.cookies.get(SESSION)).not.toBe(signedIn.get(SESSION));

    // Someone who copied the cookies while the person was signed in gets nothing after logout.
    expect(await silentSignIn(signedIn)).toEqual({ code: null, error: 'login_required' });
    expect((await silentSignIn(victim.cookies)).error).toBe('login_required');
  });
});
