import { createHash, randomBytes } from 'node:crypto';

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
 * authorize → (login page → login POST) → (consent page → allow) → code → token, as a browser
 * and its app would. Signs in when the agent has no session yet; `requests` counts the HTTP requests.
 */
export async function codeFlow(
  agent: Agent,
  client: CodeClient,
  person: { email: string; password: string },
): Promise<{ tokens: Tokens; requests: number; signedIn: boolean }> {
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
  const counted = (url: string, init: RequestInit = {}) => agent.follow(url, init);
  let { response, url } = await counted(`/auth?${params}`);
  for (let step = 0; step < 4 && url.startsWith(agent.base); step += 1) {
    const html = await response.text();
    const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1];
    if (!action) throw new Error(`no form at ${url} (${response.status}): ${html.slice(0, 300)}`);
    const csrf = /name="csrf" value="([^"]*)"/.exec(html)?.[1] ?? '';
    const form: Record<string, string> = action.endsWith('/login') ? { csrf, email: person.email, password: person.password } : { csrf, decision: 'allow' };
    if (action.endsWith('/login')) signedIn = true;
    ({ response, url } = await counted(action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form),
    }));
    if (response.status === 401 || response.status === 429 || response.status === 403) throw new Error(`sign-in refused (${response.status})`);
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
