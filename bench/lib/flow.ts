import { createHash, randomBytes } from 'node:crypto';
import { SecondFactorRefusedError, type SignIn } from './sign-in.js';

/** A browser without a browser: a cookie jar and manual redirects, for one person's sign-in. */
export class Agent {
  private readonly cookies = new Map<string, string>();
  /** HTTP requests made so far. */
  requests = 0;

  constructor(readonly base: string) {}

  private remember(response: Response) {
    for (const header of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = header.split(';');
      const index = pair.indexOf('=');
      const name = pair.slice(0, index).trim();
      const value = pair.slice(index + 1).trim();
      const expired = value === '' || attributes.some((a) => /^\s*max-age=0\b/i.test(a) || (/^\s*expires=/i.test(a) && Date.parse(a.split('=')[1] ?? '') < Date.now()));
      if (expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  async request(url: string, init: RequestInit = {}): Promise<Response> {
    const absolute = new URL(url, this.base).toString();
    const headers = new Headers(init.headers);
    if (this.cookies.size > 0) headers.set('cookie', [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; '));
    const response = await fetch(absolute, { ...init, headers, redirect: 'manual' });
    this.requests += 1;
    this.remember(response);
    return response;
  }

  /** Follows redirects on this server; returns the first response that is not one, or the first foreign Location. */
  async follow(url: string, init: RequestInit = {}): Promise<{ response: Response; url: string }> {
    let response = await this.request(url, init);
    let current = new URL(url, this.base).toString();
    for (let hops = 0; hops < 10 && response.status >= 300 && response.status < 400; hops += 1) {
      const location = response.headers.get('location');
      if (!location) break;
      await response.arrayBuffer();
      current = new URL(location, current).toString();
      if (!current.startsWith(this.base)) return { response, url: current };
      response = await this.request(current);
    }
    return { response, url: current };
  }
}

export interface CodeClient {
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  scope: string;
}

export interface Tokens {
  access_token: string;
  refresh_token?: string;
  id_token?: string;
}

function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

export function basicAuth(clientId: string, clientSecret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}`;
}

/**
 * authorize → (login page → sign-in, with any further page of it such as the second factor) →
 * (consent page → allow) → code → token, as a browser and its app would. `signIn` says what to
 * post at each sign-in page (./sign-in.ts); the loop that follows redirects and forms is this one
 * for every method. Signs in when the agent has no session yet; `requests` counts the HTTP requests.
 * A refused POST throws: SecondFactorRefusedError at the second-factor page, Error elsewhere.
 */
export async function codeFlow(agent: Agent, client: CodeClient, signIn: SignIn): Promise<{ tokens: Tokens; requests: number; signedIn: boolean }> {
  const { verifier, challenge } = pkce();
  const params = new URLSearchParams({
    response_type: 'code',
    client_id: client.clientId,
    redirect_uri: client.redirectUri,
    scope: client.scope,
    state: randomBytes(8).toString('hex'),
    code_challenge: challenge,
    code_challenge_method: 'S256',
  });
  const before = agent.requests;
  let signedIn = false;
  let { response, url } = await agent.follow(`/auth?${params}`);
  // login, second factor (or its enrolment and Continue), consent: at most four pages, plus one spare.
  for (let page = 0; page < 6 && url.startsWith(agent.base); page += 1) {
    const html = await response.text();
    const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1];
    if (!action) throw new Error(`no form at ${url} (${response.status}): ${html.slice(0, 300)}`);
    const csrf = /name="csrf" value="([^"]*)"/.exec(html)?.[1] ?? '';
    const step = await signIn({ url, status: response.status, html, action, csrf }, agent);
    if (step) signedIn = true;
    const { action: target, form } = step ?? { action, form: { csrf, decision: 'allow' } };
    ({ response, url } = await agent.follow(target, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form),
    }));
    if (response.status >= 400) {
      if (target.endsWith('/mfa')) throw new SecondFactorRefusedError(response.status, target.replace(/\/interaction\/[^/]+/, '/interaction/:uid'));
      throw new Error(`sign-in refused (${response.status} at ${target.replace(/\/interaction\/[^/]+/, '/interaction/:uid')})`);
    }
  }
  const code = new URL(url).searchParams.get('code');
  if (!code) throw new Error(`no code in the redirect (${url.slice(0, 200)})`);
  const token = await fetch(new URL('/token', agent.base), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(client.clientId, client.clientSecret) },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: client.redirectUri, code_verifier: verifier }),
  });
  const requests = agent.requests - before + 1;
  const body = (await token.json()) as Tokens & { error?: string; error_description?: string };
  if (token.status !== 200) throw new Error(`token endpoint: ${token.status} ${body.error ?? ''} ${body.error_description ?? ''}`);
  return { tokens: body, requests, signedIn };
}
