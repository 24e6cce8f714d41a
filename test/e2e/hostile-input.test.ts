import { randomUUID } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import fc from 'fast-check';
import { exportJWK, exportSPKI, generateKeyPair, importJWK, SignJWT, UnsecuredJWT, type JWK, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInitialAccessToken } from '../../src/services/registration.service.js';
import { TEST_ACTOR } from '../fixtures/services.js';
import { Agent, authorizeUrl, codeFlow, hiddenInput, pkce, signIn } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { runNode } from '../fixtures/process.js';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';

// Fixed, so that CI sees the same inputs every run; fast-check prints the seed and the path of any
// failure, and `fc.assert(…, { seed, path })` replays it.
const SEED = 20_261_123;
fc.configureGlobal({ seed: SEED, numRuns: 100 });

const PASSWORD = 'hostile input deserves a long passphrase 4';
const REDIRECT = 'https://app.example.test/callback';
const POST_LOGOUT = 'https://app.example.test/logged-out';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const FORM = 'application/x-www-form-urlencoded';
/** Property runs take an HTTP round trip each; a failure then shrinks, which takes more of them. */
const PROPERTY_TIMEOUT = 120_000;

// ---------------------------------------------------------------------------------------------
// Raw HTTP: fetch would normalise `..`, re-encode the query and refuse some headers; hostile input
// has to reach the server as it was written.

interface Sent {
  method: string;
  /** Path and query exactly as written on the request line. */
  path: string;
  headers: Record<string, string>;
  body?: Buffer | undefined;
  /** What the request carried (decoded), to look for unescaped in an HTML answer. */
  payloads: readonly string[];
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 4 });

function send(port: number, sent: Sent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let answered = false;
    // The issuer's host unless the request names another (the Host is pinned to the issuer's).
    const headers: Record<string, string> = { host: `localhost:${port}`, ...sent.headers };
    if (sent.body !== undefined) headers['content-length'] = String(sent.body.length);
    const request = http.request({ host: '127.0.0.1', port, method: sent.method, path: sent.path, headers, agent: keepAlive }, (response) => {
      answered = true;
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, text: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    request.on('error', (error) => {
      // A server that answered 413 and closed may cut the rest of an upload: the answer is what counts.
      if (!answered) reject(error);
    });
    request.setTimeout(15_000, () => request.destroy(new Error(`no answer to ${sent.method} ${sent.path.slice(0, 200)}`)));
    request.end(sent.body);
  });
}

/**
 * Sends a request with a body of `total` bytes on a raw socket, `chunk` bytes at a time (waiting
 * `pauseMs` between chunks when given), as fast as the server takes them; stops when the server
 * closes. Answers what came back and how much of the body the server took before it closed, if it did.
 */
function upload(port: number, path: string, headers: Record<string, string>, total: number, options: { chunk?: number; pauseMs?: number } = {}) {
  const { chunk = 64 * 1024, pauseMs } = options;
  return new Promise<{ answer: string; written: number; closedByServer: boolean }>((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    let written = 0;
    let closed = false;
    socket.setEncoding('latin1');
    socket.on('data', (data: string) => {
      answer += data;
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
      resolve({ answer, written, closedByServer: written < total });
    });
    const head = Object.entries({ host: `localhost:${port}`, 'content-length': String(total), ...headers }).map(([name, value]) => `${name}: ${value}\r\n`).join('');
    socket.write(`POST ${path} HTTP/1.1\r\n${head}\r\n`);
    const piece = Buffer.alloc(chunk, 'x');
    const next = () => {
      while (!closed && written < total) {
        const part = piece.subarray(0, Math.min(chunk, total - written));
        written += part.length;
        const more = socket.write(part);
        if (pauseMs !== undefined) return void setTimeout(next, pauseMs);
        if (!more) return void socket.once('drain', next);
      }
      // The whole body went out: the server answered and kept the connection; say so and hang up.
      if (!closed) setTimeout(() => socket.end(), 200);
    };
    next();
  });
}

// ---------------------------------------------------------------------------------------------
// Hostile values.

const MARKERS = [
  '<script>alert("gh")</script>',
  '"><img src=x onerror=alert(1)>',
  "'><svg/onload=alert(1)>",
  '</title></textarea><script>gh()</script>',
  '<a href="javascript:alert(1)">x</a>',
  '<%= it.csrf %><%~ it.body %>',
] as const;

const TRICKY = [
  '%00', '\u0000', '%', '%zz', '%E0%A4%A', '%C0%AE%C0%AE/', '%2e%2e%2f', '../../../../etc/passwd', '..\\..\\windows\\win.ini',
  '\r\nX-Injected: 1', '\uFEFF', '\uD800', '\u202E', 'null', 'undefined', '[]', '{}', '[object Object]', '__proto__',
  'constructor', 'toString', '1e309', '-1', '0x10', '9'.repeat(400), 'NaN', 'Infinity', String(2 ** 64), "' OR 1=1 --",
  '${jndi:ldap://x}', ' ', '', '+', '&', '=', '#', '?', ';', ',', 'a'.repeat(300),
] as const;

const HOSTILE_NAMES = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'a[b]', 'a[]', '__proto__[admin]', 'constructor[prototype][x]', '', ' ', '%00', 'grant_type[]', 'client_id[0]'] as const;

/** Up to ~100 KB: past the header limit in a query (431) and past the body limit in a body (413). */
const longValue = fc
  .tuple(fc.constantFrom('x', '%', '<', 'é', '\u0000', ...MARKERS), fc.integer({ min: 2_000, max: 100_000 }))
  .map(([unit, size]) => unit.repeat(Math.ceil(size / unit.length)).slice(0, size));

const hostileValue: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...MARKERS) },
  { weight: 3, arbitrary: fc.constantFrom(...TRICKY) },
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.bigInt().map(String) },
  { weight: 1, arbitrary: fc.double().map(String) },
  { weight: 1, arbitrary: longValue },
  { weight: 2, arbitrary: fc.tuple(fc.string({ maxLength: 8 }), fc.constantFrom('\u0000', '%00', '\u0000\u0000'), fc.string({ maxLength: 8 })).map((parts) => parts.join('')) },
  { weight: 2, arbitrary: fc.array(fc.constantFrom<string>(...MARKERS, ...TRICKY), { minLength: 2, maxLength: 4 }).map((parts) => parts.join('')) },
);

/** A short hostile value (ids, names, header values). */
const shortHostile = hostileValue.map((value) => value.slice(0, 200));

type Pair = readonly [string, string];
type Plausible = Readonly<Record<string, readonly string[]>>;

/** Parameter pairs: mostly the endpoint's own names, with plausible or hostile values; repeats happen. */
function pairs(known: readonly string[], plausible: Plausible, maxLength = 8): fc.Arbitrary<Pair[]> {
  const name = fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...known) },
    { weight: 1, arbitrary: fc.constantFrom<string>(...HOSTILE_NAMES) },
    { weight: 1, arbitrary: shortHostile },
  );
  const pair = name.chain((n) => {
    const values = Object.hasOwn(plausible, n) ? plausible[n] : undefined;
    const value = values && values.length > 0 ? fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...values) }, { weight: 3, arbitrary: hostileValue }) : hostileValue;
    return fc.tuple(fc.constant(n), value);
  });
  return fc.array(pair, { maxLength });
}

/** Lone surrogates become U+FFFD (String.prototype.toWellFormed, which the ES2023 lib does not type). */
const wellFormed = (value: string) => value.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
const pct = (value: string) => encodeURIComponent(wellFormed(value));
/** Escapes only what a request line cannot carry: `%`, `&`, `=`, broken escapes and `..` stay as they are. */
const rawish = (value: string) => wellFormed(value).replace(/[^\x21-\x7e]|#/gu, (c) => encodeURIComponent(c));
/** What a header value may carry. */
const headerSafe = (value: string) => wellFormed(value).replace(/[^\t\x20-\x7e]/gu, (c) => encodeURIComponent(c)).slice(0, 4000);

type Encoding = 'standard' | 'raw';
const encoding = fc.constantFrom<Encoding>('standard', 'standard', 'raw');

function encodePairs(list: readonly Pair[], mode: Encoding, forBody: boolean): string {
  return list
    .map(([name, value]) => {
      if (mode === 'standard') return `${pct(name)}=${pct(value)}`;
      return forBody ? `${wellFormed(name)}=${wellFormed(value)}` : `${rawish(name)}=${rawish(value)}`;
    })
    .join('&');
}

const payloadsOf = (list: readonly Pair[]) => list.flatMap(([name, value]) => [name, value]);

const CONTENT_TYPES = [
  FORM, FORM, FORM, `${FORM}; charset=utf-8`, `${FORM}; charset=utf-16`, `${FORM}; charset=nonsense`, 'application/json', 'text/plain',
  'multipart/form-data; boundary=x', 'application/jwt', 'text/html', 'application/xml', '', '*/*', `${FORM}, application/json`,
  `${FORM};;;`, 'x'.repeat(300),
] as const;

type Body = { contentType: string; body: Buffer; payloads: string[] };

/** A request body: the pairs as a form of the expected type (mostly), or badly encoded, mistyped, JSON, or no form at all. */
function bodyOf(list: readonly Pair[], primary: string): fc.Arbitrary<Body> {
  const payloads = payloadsOf(list);
  const form = (contentType: string, mode: Encoding): Body => ({ contentType, body: Buffer.from(encodePairs(list, mode, true)), payloads });
  const anyType = fc.constantFrom<string>(...CONTENT_TYPES);
  return fc.oneof(
    { weight: 12, arbitrary: fc.constant(form(primary, 'standard')) },
    { weight: 2, arbitrary: fc.constant(form(primary, 'raw')) },
    { weight: 2, arbitrary: fc.tuple(anyType, encoding).map(([type, mode]) => form(type, mode)) },
    {
      weight: 1,
      arbitrary: fc.tuple(anyType, fc.boolean()).map(([type, arrays]) => ({
        contentType: type,
        body: Buffer.from(JSON.stringify(Object.fromEntries(list.map(([name, value]) => [name, arrays ? [value, { value }] : value])))),
        payloads,
      })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(anyType, fc.constantFrom('{"grant_type":', '{"a":1}}', '[[[[', '\u0000\u0001', '%%%', '&&&==&', 'a=%ZZ&b=%', '['.repeat(5000), 'a[b][c][d][e][f][g]=1&'.repeat(50), '__proto__[x]=1&constructor[prototype][y]=2'))
        .map(([type, text]) => ({ contentType: type, body: Buffer.from(text), payloads: [] })),
    },
    { weight: 1, arbitrary: fc.tuple(anyType, fc.uint8Array({ maxLength: 512 })).map(([type, bytes]) => ({ contentType: type, body: Buffer.from(bytes), payloads: [] })) },
  );
}

/**
 * A valid parameter list, mutated: most pairs kept, some given a hostile or another plausible value,
 * dropped or repeated, and a few hostile pairs added.
 */
function mutated(baseline: readonly Pair[], known: readonly string[], plausible: Plausible): fc.Arbitrary<Pair[]> {
  const mutatePair = ([name, value]: Pair): fc.Arbitrary<Pair[]> => {
    const alternatives = Object.hasOwn(plausible, name) ? (plausible[name] ?? []) : [];
    return fc.oneof(
      { weight: 14, arbitrary: fc.constant<Pair[]>([[name, value]]) },
      { weight: 3, arbitrary: hostileValue.map((v): Pair[] => [[name, v]]) },
      ...(alternatives.length > 0 ? [{ weight: 2, arbitrary: fc.constantFrom(...alternatives).map((v): Pair[] => [[name, v]]) }] : []),
      { weight: 1, arbitrary: fc.constant<Pair[]>([]) },
      { weight: 1, arbitrary: fc.oneof(fc.constant(value), hostileValue).map((v): Pair[] => [[name, value], [name, v]]) },
    );
  };
  return fc
    .tuple(fc.tuple(...baseline.map(mutatePair)), fc.oneof({ weight: 2, arbitrary: fc.constant<Pair[]>([]) }, { weight: 1, arbitrary: pairs(known, plausible, 3) }))
    .map(([kept, extra]) => [...kept.flat(), ...extra]);
}

/** A CSRF token that is nearly the real one. */
const hostileCsrf = (csrf: string) => `${csrf.slice(0, -1)}${csrf.endsWith('A') ? 'B' : 'A'}`;

const EXTRA_HEADER_NAMES = ['accept', 'accept-language', 'origin', 'referer', 'cookie', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id', 'if-none-match', 'if-match', 'dpop', 'content-encoding', 'user-agent', 'host'] as const;
const extraHeaders: fc.Arbitrary<Record<string, string>> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({}) },
  {
    weight: 1,
    arbitrary: fc
      .array(fc.tuple(fc.constantFrom(...EXTRA_HEADER_NAMES), shortHostile), { minLength: 1, maxLength: 3 })
      .map((list) => Object.fromEntries(list.map(([name, value]) => [name, headerSafe(value)])) as Record<string, string>),
  },
);

/** A browser's cookies for a request, without any _interaction_resume cookie (see `signedIn`). */
const cookiesOf = (agent: Agent) =>
  [...agent.cookies]
    .filter(([name]) => !name.startsWith('_interaction_resume'))
    .map(([name, value]) => `${name}=${value}`)
    .join('; ');

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

/** Authorization header values that a client might send, and many that it should not. */
function authorizationHeader(valid: readonly string[], bearers: readonly string[]): fc.Arbitrary<string | undefined> {
  const known: Array<{ weight: number; arbitrary: fc.Arbitrary<string | undefined> }> = [{ weight: 3, arbitrary: fc.constant(undefined) }];
  if (valid.length > 0) known.push({ weight: 3, arbitrary: fc.constantFrom(...valid) });
  if (bearers.length > 0) known.push({ weight: 2, arbitrary: fc.constantFrom(...bearers).map((token) => `Bearer ${token}`) });
  return fc.oneof(
    ...known,
    { weight: 1, arbitrary: shortHostile.map((value) => `Basic ${Buffer.from(value).toString('base64')}`) },
    { weight: 1, arbitrary: fc.tuple(shortHostile, shortHostile).map(([id, secret]) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`) },
    { weight: 1, arbitrary: shortHostile.map((value) => `Basic ${headerSafe(value)}`) },
    { weight: 1, arbitrary: shortHostile.map((value) => `Bearer ${headerSafe(value)}`) },
    { weight: 1, arbitrary: fc.constantFrom('Bearer', 'Bearer ', 'bearer  x', 'Basic', 'Basic =', 'DPoP abc', 'Bearer a b', 'Bearer\tx', 'Negotiate YII=') },
    { weight: 1, arbitrary: shortHostile.map(headerSafe) },
  );
}

/** Methods an endpoint may get instead of its own. */
const OTHER_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE'] as const;

// ---------------------------------------------------------------------------------------------
// What every answer must be.

const STACK_TRACE = [
  /\bat (?:async )?\S*[^\n]*\.(?:[cm]?js|ts):\d+/,
  /node_modules/,
  /\b\w*Error:[^\n]*(?:\/[\w.@-]+){2,}\.(?:[cm]?js|ts)\b/,
  /file:\/\//,
];

/** A request's payloads that would be markup if a page printed them as they are. */
function dangerous(payloads: readonly string[]): string[] {
  const found = new Set<string>();
  for (const payload of payloads) {
    for (const marker of MARKERS) if (payload.includes(marker)) found.add(marker);
    const value = wellFormed(payload);
    if (value.length >= 6 && value.length <= 2_000 && /[<>"']/.test(value)) found.add(value);
  }
  return [...found];
}

function describeSent(sent: Sent): string {
  const body = sent.body ? ` body=${JSON.stringify(sent.body.toString('utf8').slice(0, 300))}` : '';
  return `${sent.method} ${sent.path.slice(0, 300)} headers=${JSON.stringify(sent.headers).slice(0, 400)}${body}`;
}

const isAdminPath = (path: string) => {
  const bare = path.split('?')[0] ?? '';
  return bare === '/admin/v1' || bare.startsWith('/admin/v1/');
};

const SECRET_FIELDS = ['access_token', 'refresh_token', 'id_token', 'code', 'client_secret'];

/** Tokens a hostile request may still have earned (valid credentials among the noise) go to the log audit. */
function recordIssued(answer: Answer): void {
  if (/json/.test(String(answer.headers['content-type']))) {
    try {
      const body = JSON.parse(answer.text) as Record<string, unknown>;
      for (const field of SECRET_FIELDS) if (typeof body[field] === 'string') recordSecret(body[field]);
    } catch {
      // Checked by the caller.
    }
  }
  for (const match of answer.text.matchAll(/name="(?:code|access_token|id_token|refresh_token)" value="([^"]+)"/g)) recordSecret(match[1]);
  const location = answer.headers.location;
  if (location) {
    const url = URL.parse(location, 'http://x');
    const params = new URLSearchParams(url?.hash.slice(1));
    for (const field of SECRET_FIELDS) {
      recordSecret(url?.searchParams.get(field));
      recordSecret(params.get(field));
    }
  }
}

/** What the world looks like to the checks: where a redirect may go. */
interface Limits {
  origin: string;
  redirectTargets: ReadonlySet<string>;
}

function expectSafe(sent: Sent, answer: Answer, limits: Limits): void {
  const what = describeSent(sent);
  recordIssued(answer);
  expect(answer.status, `${what} → ${answer.status} ${answer.text.slice(0, 300)}`).toBeLessThan(500);
  expect(answer.status, what).toBeGreaterThanOrEqual(200);
  for (const pattern of STACK_TRACE) expect(answer.text, `${what}: stack trace`).not.toMatch(pattern);

  const type = String(answer.headers['content-type'] ?? '');
  if (type.startsWith('text/html')) {
    for (const payload of dangerous(sent.payloads)) {
      expect(answer.text.includes(payload), `${what}: HTML echoes ${JSON.stringify(payload)} unescaped`).toBe(false);
    }
  }
  // A HEAD answer has the headers of the GET one, and no body.
  if (answer.status >= 400 && /json/.test(type) && sent.method !== 'HEAD') {
    let body: Record<string, unknown> = {};
    expect(() => (body = JSON.parse(answer.text) as Record<string, unknown>), `${what}: JSON error body`).not.toThrow();
    if (isAdminPath(sent.path)) {
      expect(type, `${what}: admin answers are problem documents`).toMatch(/^application\/problem\+json/);
      expect(body.status, what).toBe(answer.status);
      expect(typeof body.type, what).toBe('string');
      expect(typeof body.detail, what).toBe('string');
    } else {
      expect(typeof body.error, `${what}: ${answer.text.slice(0, 200)}`).toBe('string');
    }
  }
  const location = answer.headers.location;
  if (location) {
    const target = URL.parse(location, limits.origin);
    expect(target, `${what}: Location ${location}`).not.toBeNull();
    const here = target!.origin === limits.origin;
    const registered = limits.redirectTargets.has(`${target!.origin}${target!.pathname}`);
    expect(here || registered, `${what}: redirects to ${location}`).toBe(true);
  }
}

// ---------------------------------------------------------------------------------------------

describe('hostile input', () => {
  let t: TestServer;
  let base: string;
  let port: number;
  let issuer: string;
  let limits: Limits;
  const paths = { auth: '', token: '', userinfo: '', introspection: '', revocation: '', endSession: '', endSessionConfirm: '', jwks: '', discovery: '/.well-known/openid-configuration' };
  let resource: string;
  let service: { clientId: string; clientSecret: string };
  let publicWeb: { clientId: string };
  let web: { clientId: string; clientSecret: string };
  let keyClient: { clientId: string; kid: string };
  let admin: { clientId: string; clientSecret: string; token: string };
  let serviceToken: string;
  let user: { id: string; email: string };
  /**
   * A signed-in browser (its cookies), with an ID token and an access token of the confidential web
   * client. No cookie here carries _interaction_resume: resuming (GET /auth/:uid) consumes the
   * interaction and renews the session's identifier, legitimately, and would leave the later runs
   * with dead cookies.
   */
  let signedIn: { cookie: string; idToken: string; accessToken: string };
  /** A sign-in in progress: the login page of a real interaction. */
  let pending: { cookie: string; uid: string; csrf: string };
  /** Another, at its consent page (a signed-in browser asking for a client it has not consented to). */
  let consenting: { cookie: string; uid: string; csrf: string };
  let serverJwk: JWK;
  let forged: Awaited<ReturnType<typeof forgeTokens>>;
  let before: Awaited<ReturnType<typeof registrySnapshot>>;

  async function registrySnapshot() {
    const db = t.server.registry.db;
    const [clients, resources, users, durable] = await Promise.all([
      db.selectFrom('clients').selectAll().orderBy('client_id').execute(),
      db.selectFrom('resource_servers').selectAll().orderBy('id').execute(),
      db.selectFrom('users').selectAll().orderBy('id').execute(),
      db.selectFrom('oidc_durable').select(['model', 'id']).orderBy('id').execute(),
    ]);
    return { clients, resources, users, durable };
  }

  /** Bearer tokens and client assertions that no one may accept: unsigned, unknown alg, the public key as an HMAC secret, unpublished keys. */
  async function forgeTokens() {
    const now = Math.floor(Date.now() / 1000);
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const assemble = (header: Record<string, unknown>, payload: JWTPayload, signature = '') => `${b64(header)}.${b64(payload)}.${signature}`;
    const jwkSecret = new TextEncoder().encode(JSON.stringify(serverJwk));
    const publicKey = await importJWK(serverJwk, String(serverJwk.alg ?? 'RS256'));
    const pemSecret = new TextEncoder().encode(await exportSPKI(publicKey as Parameters<typeof exportSPKI>[0]));
    const stranger = await generateKeyPair('RS256');
    const kid = String(serverJwk.kid);

    /** One of each forgery for a payload and a typ. */
    async function forgeries(payload: JWTPayload, typ: string, ownKid: string): Promise<Record<string, string>> {
      const hs256 = (secret: Uint8Array, headerKid: string) => new SignJWT(payload).setProtectedHeader({ alg: 'HS256', typ, kid: headerKid }).sign(secret);
      const tokens: Record<string, string> = {
        'alg none (jose UnsecuredJWT)': new UnsecuredJWT(payload).encode(),
        'alg none with kid and typ': assemble({ alg: 'none', typ, kid: ownKid }, payload),
        'alg None': assemble({ alg: 'None', typ, kid: ownKid }, payload),
        'alg NONE with a signature': assemble({ alg: 'NONE', typ }, payload, 'c2lnbmF0dXJl'),
        'unknown alg HS999': assemble({ alg: 'HS999', typ, kid: ownKid }, payload, Buffer.from('x'.repeat(32)).toString('base64url')),
        'alg missing': assemble({ typ, kid: ownKid }, payload, 'AAAA'),
        'HS256 keyed with the JWKS public key (JWK JSON)': await hs256(jwkSecret, kid),
        'HS256 keyed with the JWKS public key (PEM)': await hs256(pemSecret, kid),
        'RS256 by a key whose kid is not published': await new SignJWT(payload).setProtectedHeader({ alg: 'RS256', typ, kid: 'not-published' }).sign(stranger.privateKey),
        'RS256 by another key under the published kid': await new SignJWT(payload).setProtectedHeader({ alg: 'RS256', typ, kid: ownKid }).sign(stranger.privateKey),
      };
      for (const token of Object.values(tokens)) recordSecret(token);
      return tokens;
    }

    const assertionPayload = () => ({ iss: keyClient.clientId, sub: keyClient.clientId, aud: issuer, jti: randomUUID(), iat: now, exp: now + 60 });
    return {
      assertions: await forgeries(assertionPayload(), 'JWT', keyClient.kid),
      admin: await forgeries(
        { iss: issuer, aud: `${issuer}/admin/v1`, sub: admin.clientId, client_id: admin.clientId, scope: 'admin', jti: randomUUID(), iat: now, exp: now + 600 },
        'at+jwt',
        kid,
      ),
      userinfo: await forgeries(
        { iss: issuer, aud: issuer, sub: user.id, client_id: web.clientId, scope: 'openid email profile', jti: randomUUID(), iat: now, exp: now + 600 },
        'at+jwt',
        kid,
      ),
      /** A fresh assertion of each kind (each has its own jti, so replay detection is not what refuses it). */
      freshAssertions: () => forgeries(assertionPayload(), 'JWT', keyClient.kid),
    };
  }

  beforeAll(async () => {
    t = await startTestServer({ name: 'hostile-input' });
    base = t.server.url;
    port = t.server.port;
    issuer = t.config.issuer;

    const discovery = (await (await fetch(`${base}${paths.discovery}`)).json()) as Record<string, string>;
    const pathOf = (key: string) => new URL(discovery[key] ?? '').pathname;
    paths.auth = pathOf('authorization_endpoint');
    paths.token = pathOf('token_endpoint');
    paths.userinfo = pathOf('userinfo_endpoint');
    paths.introspection = pathOf('introspection_endpoint');
    paths.revocation = pathOf('revocation_endpoint');
    paths.endSession = pathOf('end_session_endpoint');
    paths.jwks = pathOf('jwks_uri');

    const serviceCreated = await t.build.serviceClient({ scope: 'read write', resourceScope: 'read write' });
    resource = serviceCreated.resource;
    service = { clientId: serviceCreated.clientId, clientSecret: serviceCreated.clientSecret };
    const publicCreated = await t.build.client({
      client_name: 'Public Web', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'],
    });
    publicWeb = { clientId: publicCreated.clientId };
    web = await t.build.client({
      client_name: 'Confidential Web', redirect_uris: [REDIRECT], post_logout_redirect_uris: [POST_LOGOUT], grant_types: ['authorization_code', 'refresh_token'],
    });

    const { publicKey } = await generateKeyPair('ES256', { extractable: true });
    const kid = 'client-key-1';
    const keyCreated = await t.build.client({
      client_name: 'Key Client', token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }] }, default_resource: resource, scope: 'read',
    });
    keyClient = { clientId: keyCreated.clientId, kid };

    const adminCreated = await t.build.client({ client_name: `admin ${randomUUID()}`, admin: true });
    await t.server.cache.refresh();
    const adminGrant = await tokenRequest(base, { grant_type: 'client_credentials', scope: 'admin' }, adminCreated);
    expect(adminGrant.status).toBe(200);
    admin = { ...adminCreated, token: String(adminGrant.body.access_token) };
    const serviceGrant = await tokenRequest(base, { grant_type: 'client_credentials', scope: 'read' }, service);
    serviceToken = String(serviceGrant.body.access_token);

    const { id, email } = await t.build.person({ email: `mallory-${randomUUID()}@example.test`, password: PASSWORD, name: 'Mallory' });
    user = { id, email };

    // A signed-in browser with tokens: hostile requests also arrive with a real session and real tokens.
    const agent = new Agent(base);
    const exchanged = await codeFlow(agent, { client: web, redirectUri: REDIRECT, email, password: PASSWORD, params: { scope: 'openid email' } });
    expect(exchanged.status).toBe(200);
    signedIn = { cookie: cookiesOf(agent), idToken: String(exchanged.body.id_token), accessToken: String(exchanged.body.access_token) };

    // A sign-in waiting at its login page.
    const waiting = new Agent(base);
    const login = await waiting.follow(authorizeUrl({ client_id: publicWeb.clientId, redirect_uri: REDIRECT, code_challenge: pkce().challenge, code_challenge_method: 'S256' }));
    const loginHtml = await login.response.text();
    const uid = /\/interaction\/([^/?]+)/.exec(login.url)?.[1] ?? '';
    expect(uid).not.toBe('');
    pending = { cookie: cookiesOf(waiting), uid, csrf: hiddenInput(loginHtml, 'csrf') ?? '' };

    // A second browser signs in (to the web client, which has consent) and then asks for the public client.
    const deciding = new Agent(base);
    await signIn(deciding, { url: authorizeUrl({ client_id: web.clientId, redirect_uri: REDIRECT, code_challenge: pkce().challenge, code_challenge_method: 'S256' }), email, password: PASSWORD });
    const consentPage = await deciding.follow(
      authorizeUrl({ client_id: publicWeb.clientId, redirect_uri: REDIRECT, scope: 'openid email', code_challenge: pkce().challenge, code_challenge_method: 'S256' }),
    );
    const consentHtml = await consentPage.response.text();
    expect(consentHtml).toContain('Allow access');
    consenting = {
      cookie: cookiesOf(deciding),
      uid: /\/interaction\/([^/?]+)/.exec(consentPage.url)?.[1] ?? '',
      csrf: hiddenInput(consentHtml, 'csrf') ?? '',
    };

    // The logout confirmation path is the action of the form /session/end answers a signed-in browser
    // with (a browser without a session is sent on without one).
    const logoutForm = await (await fetch(`${base}${paths.endSession}`, { headers: { cookie: signedIn.cookie } })).text();
    paths.endSessionConfirm = /<form[^>]* method="post" action="([^"]+)"/.exec(logoutForm)?.[1] ?? '';
    expect(paths.endSessionConfirm).toMatch(/^http/);
    paths.endSessionConfirm = new URL(paths.endSessionConfirm).pathname;

    serverJwk = ((await (await fetch(`${base}${paths.jwks}`)).json()) as { keys: JWK[] }).keys[0]!;
    forged = await forgeTokens();

    limits = { origin: new URL(base).origin, redirectTargets: new Set([REDIRECT, POST_LOGOUT]) };
    before = await registrySnapshot();
  });
  afterAll(async () => {
    keepAlive.destroy();
    await t.close();
  });

  // -------------------------------------------------------------------------------------------
  // Requests that need the running server (client ids, tokens, cookies): each starts from a valid
  // baseline, so that hostile values reach past the first check, and is then mutated.

  /** A valid request to start from: its method, path, parameters and credentials. */
  interface Baseline {
    method: string;
    path: string;
    pairs: readonly Pair[];
    authorization?: string | undefined;
    cookie?: string | undefined;
  }

  const clientIds = () => [service.clientId, publicWeb.clientId, web.clientId, keyClient.clientId, admin.clientId];
  /** Cookies other than a baseline's: none, made up, or another browser's. */
  const otherCookies = () =>
    fc.oneof(
      { weight: 2, arbitrary: fc.constant<string | undefined>(undefined) },
      { weight: 2, arbitrary: shortHostile.map((value) => headerSafe(`_session=${value}; _session.sig=${value}; _interaction=${value}; _interaction.sig=${value}`)) },
      { weight: 1, arbitrary: fc.constant(signedIn.cookie) },
      { weight: 1, arbitrary: fc.constant(pending.cookie) },
    );
  const otherAuthorization = () =>
    authorizationHeader([basic(service.clientId, service.clientSecret), basic(web.clientId, web.clientSecret)], [serviceToken, signedIn.accessToken, ...Object.values(forged.userinfo)]);

  interface Shape {
    method: string;
    path: string;
    query: readonly Pair[];
    queryEncoding: Encoding;
    body?: Body | undefined;
    headers: Record<string, string | undefined>;
  }

  function toSent(shape: Shape): Sent {
    const query = shape.query.length > 0 ? `?${encodePairs(shape.query, shape.queryEncoding, false)}` : '';
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(shape.headers)) if (value !== undefined) headers[name] = value;
    if (shape.body?.contentType) headers['content-type'] = shape.body.contentType;
    return {
      method: shape.method,
      path: `${shape.path}${query}`,
      headers,
      body: shape.body?.body,
      payloads: [...payloadsOf(shape.query), ...(shape.body?.payloads ?? []), ...Object.values(headers)],
    };
  }

  /**
   * Requests to one endpoint: a baseline, most of it kept, some values hostile, some parameters
   * dropped or repeated, hostile extras; now and then another method, path, credentials or cookies.
   * Parameters go in the query of a GET, in the body (a form, mostly) of anything else.
   */
  function endpointRequest(options: {
    baselines: readonly Baseline[];
    known: readonly string[];
    plausible: Plausible;
    paths?: fc.Arbitrary<string>;
    /** Only the paths given, never the baselines': for requests anywhere. */
    onlyPaths?: boolean;
    authorization?: fc.Arbitrary<string | undefined>;
    cookie?: fc.Arbitrary<string | undefined>;
  }): fc.Arbitrary<Sent> {
    return fc
      .constantFrom(...options.baselines)
      .chain((b) =>
        fc.record({
          method: fc.oneof({ weight: 9, arbitrary: fc.constant(b.method) }, { weight: 1, arbitrary: fc.constantFrom(...OTHER_METHODS) }),
          path: !options.paths ? fc.constant(b.path) : options.onlyPaths ? options.paths : fc.oneof({ weight: 6, arbitrary: fc.constant(b.path) }, { weight: 1, arbitrary: options.paths }),
          params: mutated(b.pairs, options.known, options.plausible),
          extraQuery: fc.oneof({ weight: 4, arbitrary: fc.constant<Pair[]>([]) }, { weight: 1, arbitrary: pairs(options.known, options.plausible, 2) }),
          queryEncoding: encoding,
          authorization: fc.oneof({ weight: 4, arbitrary: fc.constant(b.authorization) }, { weight: 1, arbitrary: options.authorization ?? fc.constant(undefined) }),
          cookie: fc.oneof({ weight: 4, arbitrary: fc.constant(b.cookie) }, { weight: 1, arbitrary: options.cookie ?? fc.constant(undefined) }),
          headers: extraHeaders,
        }),
      )
      .chain((r) => {
        const inQuery = r.method === 'GET' || r.method === 'HEAD';
        const body = inQuery ? fc.constant(undefined) : fc.option(bodyOf(r.params, FORM), { freq: 10, nil: undefined });
        return body.map((b) =>
          toSent({
            method: r.method,
            path: r.path,
            query: inQuery ? [...r.params, ...r.extraQuery] : r.extraQuery,
            queryEncoding: r.queryEncoding,
            body: b,
            headers: { ...r.headers, authorization: r.authorization, cookie: r.cookie ?? r.headers.cookie },
          }),
        );
      });
  }

  const coverage = new Map<string, Map<string, number>>();
  /**
   * What the properties reached, by answer: printed after the run with HOSTILE_STATS=1 (or
   * HOSTILE_STATS=descriptions, with each error_description), to keep the generators honest: a
   * generator whose requests all die at the first check tests nothing behind it.
   */
  function count(property: string, sent: Sent, answer: Answer) {
    const code = /"error":"([a-z_]+)"|"type":"urn:gatehouse:problem:([a-z_]+)"|<code>([a-z_]+)<\/code>/.exec(answer.text)?.slice(1).join('') ?? '';
    const description = process.env.HOSTILE_STATS === 'descriptions' ? (/"error_description":"([^"]{0,80})/.exec(answer.text)?.[1] ?? '') : '';
    const key = `${answer.status} ${sent.method} ${sent.path.split('?')[0]?.slice(0, 32) ?? ''} ${code} ${description}`;
    const stats = coverage.get(property) ?? new Map<string, number>();
    stats.set(key, (stats.get(key) ?? 0) + 1);
    coverage.set(property, stats);
  }
  afterAll(() => {
    if (!process.env.HOSTILE_STATS) return;
    for (const [property, stats] of coverage) {
      console.log(`${property}\n${[...stats].sort((a, b) => b[1] - a[1]).map(([key, n]) => `  ${n}× ${key}`).join('\n')}`);
    }
  });

  async function check(name: string, property: fc.Arbitrary<Sent>, numRuns: number, extra?: (sent: Sent, answer: Answer) => void): Promise<void> {
    await fc.assert(
      fc.asyncProperty(property, async (sent) => {
        const answer = await send(port, sent);
        count(name, sent, answer);
        expectSafe(sent, answer, limits);
        extra?.(sent, answer);
      }),
      { numRuns },
    );
  }

  describe('properties: no 5xx, no stack trace, no unescaped echo, no open redirect, errors in their format', () => {
    it('authorization endpoint', async () => {
      const tricks = ['https://app.example.test/callback/../evil', 'https://evil.test/callback', `${REDIRECT}/`, 'javascript:alert(1)', '//evil.test'];
      const start = (clientId: string, cookie: string | undefined): Baseline => ({
        method: 'GET',
        path: paths.auth,
        cookie,
        pairs: [
          ['response_type', 'code'],
          ['client_id', clientId],
          ['redirect_uri', REDIRECT],
          ['scope', 'openid email'],
          ['state', 'st4te'],
          ['code_challenge', pkce().challenge],
          ['code_challenge_method', 'S256'],
        ],
      });
      await check(
        'authorization',
        endpointRequest({
          baselines: [start(publicWeb.clientId, undefined), start(web.clientId, undefined), start(publicWeb.clientId, signedIn.cookie), start(web.clientId, signedIn.cookie)],
          known: ['response_type', 'client_id', 'redirect_uri', 'scope', 'state', 'nonce', 'code_challenge', 'code_challenge_method', 'prompt', 'max_age', 'login_hint', 'id_token_hint', 'ui_locales', 'claims', 'request', 'request_uri', 'response_mode', 'resource', 'acr_values', 'display', 'registration', 'claims_locales'],
          plausible: {
            response_type: ['code', 'token', 'id_token', 'code id_token', 'none'],
            client_id: clientIds(),
            redirect_uri: tricks,
            scope: ['openid', 'openid email profile offline_access', 'read', 'admin', 'openid read'],
            code_challenge_method: ['plain', 'S512'],
            prompt: ['none', 'login', 'consent', 'select_account', 'create', 'login consent', 'none login'],
            response_mode: ['query', 'fragment', 'form_post', 'jwt', 'web_message', 'query.jwt'],
            claims: ['{"userinfo":{"email":null}}', '{', '[]', '{"id_token":{"sub":{"value":"x"}}}', '{"__proto__":{"x":1}}'],
            max_age: ['0', '-1', '1e999', '99999999999999999999'],
            resource: [resource, `${issuer}/admin/v1`, 'urn:x'],
            request: Object.values(forged.userinfo),
            request_uri: ['urn:ietf:params:oauth:request_uri:abc', 'https://evil.test/request.jwt'],
            id_token_hint: [signedIn.idToken, ...Object.values(forged.userinfo)],
          },
          paths: fc.constantFrom(`${paths.auth}/`, `${paths.auth}/x`, `${paths.auth}/../auth`),
          authorization: otherAuthorization(),
          cookie: otherCookies(),
        }),
        200,
      );
    }, PROPERTY_TIMEOUT);

    it('token endpoint, every grant type', async () => {
      const { verifier } = pkce();
      const serviceAuth = basic(service.clientId, service.clientSecret);
      const webAuth = basic(web.clientId, web.clientSecret);
      const token = (pairs: Pair[], authorization?: string): Baseline => ({ method: 'POST', path: paths.token, pairs, authorization });
      const baselines: Baseline[] = [
        token([['grant_type', 'client_credentials'], ['scope', 'read']], serviceAuth),
        token([['grant_type', 'client_credentials'], ['resource', resource], ['scope', 'read write']], serviceAuth),
        token([['grant_type', 'client_credentials'], ['client_id', service.clientId], ['client_secret', service.clientSecret]]),
        token([['grant_type', 'authorization_code'], ['code', 'c'.repeat(43)], ['redirect_uri', REDIRECT], ['code_verifier', verifier]], webAuth),
        token([['grant_type', 'authorization_code'], ['client_id', publicWeb.clientId], ['code', 'c'.repeat(43)], ['redirect_uri', REDIRECT], ['code_verifier', verifier]]),
        token([['grant_type', 'refresh_token'], ['refresh_token', 'r'.repeat(43)]], webAuth),
        token([['grant_type', 'refresh_token'], ['client_id', publicWeb.clientId], ['refresh_token', 'r'.repeat(43)], ['scope', 'openid']]),
        // The forged assertions (alg none, HS256 keyed with the public key…) come in as mutations of this one.
        token([['grant_type', 'client_credentials'], ['client_id', keyClient.clientId], ['client_assertion_type', ASSERTION_TYPE], ['client_assertion', Object.values(forged.assertions)[0] ?? ''], ['resource', resource]]),
        token([['grant_type', 'urn:ietf:params:oauth:grant-type:device_code'], ['device_code', 'd'.repeat(20)]], serviceAuth),
        token([['grant_type', 'urn:openid:params:grant-type:ciba'], ['auth_req_id', 'a'.repeat(20)]], serviceAuth),
        token([['grant_type', 'urn:ietf:params:oauth:grant-type:token-exchange'], ['subject_token', serviceToken], ['subject_token_type', 'urn:ietf:params:oauth:token-type:access_token']], serviceAuth),
        token([['grant_type', 'urn:ietf:params:oauth:grant-type:jwt-bearer'], ['assertion', Object.values(forged.userinfo)[0] ?? '']], serviceAuth),
        token([['grant_type', 'password'], ['username', user.email], ['password', 'not the password']], webAuth),
        token([['grant_type', 'implicit']], webAuth),
      ];
      await check(
        'token',
        endpointRequest({
          baselines,
          known: ['grant_type', 'code', 'redirect_uri', 'code_verifier', 'refresh_token', 'scope', 'resource', 'client_id', 'client_secret', 'client_assertion', 'client_assertion_type', 'device_code', 'username', 'password', 'audience', 'subject_token', 'subject_token_type', 'assertion', 'auth_req_id'],
          plausible: {
            grant_type: ['authorization_code', 'refresh_token', 'client_credentials', 'urn:ietf:params:oauth:grant-type:device_code', 'password'],
            client_id: clientIds(),
            redirect_uri: ['https://evil.test/callback', `${REDIRECT}/`],
            scope: ['read', 'read write', 'openid', 'admin', 'delete', 'openid offline_access'],
            resource: [resource, `${issuer}/admin/v1`, 'https://unregistered.example.test', 'urn:x'],
            client_assertion_type: [ASSERTION_TYPE, 'urn:ietf:params:oauth:client-assertion-type:saml2-bearer'],
            client_assertion: Object.values(forged.assertions),
            subject_token: [serviceToken, signedIn.idToken],
          },
          paths: fc.constantFrom(`${paths.token}/`, `${paths.token}/x`, `${paths.token}/../token`),
          authorization: otherAuthorization(),
          cookie: otherCookies(),
        }),
        200,
      );
    }, PROPERTY_TIMEOUT);

    it('userinfo', async () => {
      const bearers = [signedIn.accessToken, serviceToken, admin.token, ...Object.values(forged.userinfo)];
      const bearer = `Bearer ${signedIn.accessToken}`;
      await check(
        'userinfo',
        endpointRequest({
          baselines: [
            { method: 'GET', path: paths.userinfo, pairs: [], authorization: bearer },
            { method: 'POST', path: paths.userinfo, pairs: [], authorization: bearer },
            { method: 'POST', path: paths.userinfo, pairs: [['access_token', signedIn.accessToken]] },
            { method: 'GET', path: paths.userinfo, pairs: [], authorization: `Bearer ${serviceToken}` },
          ],
          known: ['access_token', 'claims', 'scope', 'client_id'],
          plausible: { access_token: bearers, client_id: clientIds(), claims: ['{"userinfo":{"email":null}}', '{'] },
          paths: fc.constantFrom(`${paths.userinfo}/`, `${paths.userinfo}/x`),
          authorization: authorizationHeader([], bearers),
          cookie: otherCookies(),
        }),
        120,
      );
    }, PROPERTY_TIMEOUT);

    it('introspection', async () => {
      const serviceAuth = basic(service.clientId, service.clientSecret);
      const webAuth = basic(web.clientId, web.clientSecret);
      const assertion = Object.values(forged.assertions)[0] ?? '';
      await check(
        'introspection',
        endpointRequest({
          baselines: [
            { method: 'POST', path: paths.introspection, pairs: [['token', serviceToken], ['token_type_hint', 'access_token']], authorization: serviceAuth },
            { method: 'POST', path: paths.introspection, pairs: [['token', signedIn.accessToken]], authorization: webAuth },
            { method: 'POST', path: paths.introspection, pairs: [['token', 'o'.repeat(43)], ['token_type_hint', 'refresh_token']], authorization: webAuth },
            { method: 'POST', path: paths.introspection, pairs: [['token', serviceToken], ['client_id', keyClient.clientId], ['client_assertion_type', ASSERTION_TYPE], ['client_assertion', assertion]] },
          ],
          known: ['token', 'token_type_hint', 'client_id', 'client_secret', 'client_assertion', 'client_assertion_type'],
          plausible: {
            token: [signedIn.accessToken, serviceToken, signedIn.idToken, admin.token, ...Object.values(forged.userinfo)],
            token_type_hint: ['access_token', 'refresh_token', 'client_credentials', 'id_token'],
            client_id: clientIds(),
            client_assertion: Object.values(forged.assertions),
          },
          authorization: otherAuthorization(),
          cookie: otherCookies(),
        }),
        120,
      );
    }, PROPERTY_TIMEOUT);

    it('revocation', async () => {
      // Never the signed-in browser's access token: revoking it revokes its grant (a legitimate change).
      const serviceAuth = basic(service.clientId, service.clientSecret);
      const webAuth = basic(web.clientId, web.clientSecret);
      await check(
        'revocation',
        endpointRequest({
          baselines: [
            { method: 'POST', path: paths.revocation, pairs: [['token', serviceToken], ['token_type_hint', 'access_token']], authorization: serviceAuth },
            { method: 'POST', path: paths.revocation, pairs: [['token', 'o'.repeat(43)], ['token_type_hint', 'refresh_token']], authorization: webAuth },
            { method: 'POST', path: paths.revocation, pairs: [['token', 'o'.repeat(43)], ['client_id', publicWeb.clientId]] },
          ],
          known: ['token', 'token_type_hint', 'client_id', 'client_secret', 'client_assertion', 'client_assertion_type'],
          plausible: {
            token: [serviceToken, admin.token, ...Object.values(forged.userinfo)],
            token_type_hint: ['access_token', 'refresh_token', 'client_credentials'],
            client_id: clientIds(),
            client_assertion_type: [ASSERTION_TYPE],
            client_assertion: Object.values(forged.assertions),
          },
          authorization: authorizationHeader([serviceAuth], [serviceToken]),
          cookie: otherCookies(),
        }),
        120,
      );
    }, PROPERTY_TIMEOUT);

    it('logout: end_session and its confirmation', async () => {
      const unregistered = ['https://evil.test/bye', `${POST_LOGOUT}/`, 'https://app.example.test:8443/logged-out', 'https://user@app.example.test/logged-out', `${POST_LOGOUT}/../evil`, '//evil.test/bye', 'javascript:alert(1)'];
      const session = signedIn.cookie;
      await check(
        'logout',
        endpointRequest({
          baselines: [
            { method: 'GET', path: paths.endSession, pairs: [['id_token_hint', signedIn.idToken], ['post_logout_redirect_uri', POST_LOGOUT], ['state', 'st4te']], cookie: session },
            { method: 'GET', path: paths.endSession, pairs: [['client_id', web.clientId], ['post_logout_redirect_uri', POST_LOGOUT], ['state', 'st4te']] },
            { method: 'GET', path: paths.endSession, pairs: [['post_logout_redirect_uri', 'https://evil.test/bye']], cookie: session },
            // The confirmation needs the xsrf of the session's logout page: a made-up one never matches.
            { method: 'POST', path: paths.endSessionConfirm, pairs: [['xsrf', 'f'.repeat(48)], ['logout', 'yes']], cookie: session },
            { method: 'POST', path: paths.endSessionConfirm, pairs: [['xsrf', 'f'.repeat(48)]] },
          ],
          known: ['id_token_hint', 'post_logout_redirect_uri', 'state', 'ui_locales', 'client_id', 'logout_hint', 'xsrf', 'logout'],
          plausible: {
            id_token_hint: [...Object.values(forged.userinfo), admin.token],
            post_logout_redirect_uri: unregistered,
            client_id: clientIds(),
            logout: ['yes', 'true', ''],
          },
          paths: fc.constantFrom(paths.endSession, paths.endSessionConfirm, `${paths.endSession}/success`, `${paths.endSession}/../end`),
          cookie: otherCookies(),
        }),
        150,
      );
    }, PROPERTY_TIMEOUT);

    it('interaction pages: login, consent, abort, with real and random uids', async () => {
      const cookie = pending.cookie;
      const at = (step: string) => `/interaction/${pending.uid}${step}`;
      const atConsent = (step: string) => `/interaction/${consenting.uid}${step}`;
      // Aborting a real interaction would end it (legitimately): the other runs still need it.
      const notAbort = (path: string) => !path.startsWith(`/interaction/${pending.uid}/abort`) && !path.startsWith(`/interaction/${consenting.uid}/abort`);
      const randomPaths = fc
        .tuple(
          fc.oneof(
            { weight: 2, arbitrary: shortHostile.map(pct) },
            { weight: 1, arbitrary: shortHostile.map(rawish) },
            { weight: 1, arbitrary: fc.constantFrom('..', '%2e%2e', '.', '%00', '', `${pending.uid}%00`, `${pending.uid}/..`, pending.uid.toUpperCase(), consenting.uid) },
          ),
          fc.oneof(
            { weight: 3, arbitrary: fc.constantFrom('', '/login', '/confirm', '/abort') },
            { weight: 1, arbitrary: shortHostile.map((value) => `/${rawish(value)}`) },
            { weight: 1, arbitrary: fc.constantFrom('/login/..', '/../login', '/%2e%2e/login', '//login') },
          ),
        )
        .map(([uid, step]) => `/interaction/${uid}${step}`)
        .filter(notAbort);
      await check(
        'interaction',
        endpointRequest({
          baselines: [
            { method: 'GET', path: at(''), pairs: [], cookie },
            { method: 'POST', path: at('/login'), pairs: [['csrf', pending.csrf], ['email', 'someone@example.test'], ['password', 'not the password at all']], cookie },
            { method: 'POST', path: at('/login'), pairs: [['csrf', pending.csrf], ['email', 'someone@example.test'], ['password', 'not the password at all']], cookie },
            { method: 'POST', path: at('/confirm'), pairs: [['csrf', pending.csrf], ['decision', 'maybe']], cookie },
            { method: 'GET', path: atConsent(''), pairs: [], cookie: consenting.cookie },
            { method: 'POST', path: atConsent('/login'), pairs: [['csrf', consenting.csrf], ['email', 'someone@example.test'], ['password', 'not the password at all']], cookie: consenting.cookie },
            // The real CSRF token, but never exactly "allow" or "deny": a consent given (a new grant) or
            // refused (the interaction ends) would be legitimate, and is not what this property is about.
            { method: 'POST', path: atConsent('/confirm'), pairs: [['csrf', consenting.csrf], ['decision', 'maybe']], cookie: consenting.cookie },
          ],
          known: ['csrf', 'email', 'password', 'decision'],
          plausible: {
            csrf: [hostileCsrf(pending.csrf), pending.csrf, hostileCsrf(consenting.csrf)],
            decision: ['ALLOW', 'Allow', 'allow ', ' deny', 'deny\u0000', 'yes', 'allow,deny'],
            email: ['SOMEONE@example.test', ' someone@example.test ', 'a@b'],
          },
          paths: randomPaths,
          cookie: otherCookies(),
        }),
        150,
      );
    }, PROPERTY_TIMEOUT);

    it('admin API, with and without a valid admin token', async () => {
      const ids = fc.oneof(
        { weight: 3, arbitrary: shortHostile.map(pct) },
        { weight: 1, arbitrary: shortHostile.map(rawish) },
        { weight: 1, arbitrary: fc.constantFrom('..', '%2e%2e', '.', '%00', '%zz', '', '1e309', '-1', '00000000-0000-0000-0000-000000000000') },
      );
      // Real ids only where a refusal is certain: reading, and PATCH with a body that is never valid.
      const realIds = [...clientIds().map((id) => `/clients/${id}`), `/users/${user.id}`, `/resources/${before.resources[0]?.id ?? ''}`];
      const path = fc.oneof(
        { weight: 2, arbitrary: fc.constantFrom('/clients', '/resources', '/users', '/audit', '/openapi.json', '', '/', '/clients/../users', '/CLIENTS') },
        { weight: 3, arbitrary: fc.tuple(fc.constantFrom('/clients/', '/resources/', '/users/'), ids).map(([prefix, id]) => `${prefix}${id}`) },
        { weight: 1, arbitrary: ids.map((id) => `/clients/${id}/secret`) },
        { weight: 2, arbitrary: fc.constantFrom(...realIds) },
        { weight: 1, arbitrary: shortHostile.map((value) => `/${rawish(value)}`) },
      );
      const knownFields = ['client_name', 'redirect_uris', 'post_logout_redirect_uris', 'grant_types', 'token_endpoint_auth_method', 'scope', 'default_resource', 'grants', 'jwks', 'logo_uri', 'first_party', 'admin', 'identifier', 'name', 'access_token_ttl', 'email', 'password', 'disabled', 'email_verified'];
      const jsonish = fc.oneof(hostileValue, fc.jsonValue({ maxDepth: 3 }), fc.array(hostileValue, { maxLength: 3 }), fc.constantFrom(1e308, -0, 2 ** 63, Number.MAX_SAFE_INTEGER + 2, true, null));
      // Every object body carries a member no schema knows (each is strict), so none can be valid.
      const unknownKey = fc.oneof(fc.constantFrom('__proto__', 'constructor', 'id', 'client_secret', 'secret_digest', 'password_hash', 'version', 'is_admin'), shortHostile).filter((key) => !knownFields.includes(key));
      const objectBody = fc
        .tuple(fc.dictionary(fc.constantFrom(...knownFields), jsonish, { maxKeys: 5 }), unknownKey, jsonish)
        .map(([fields, key, value]) => `{${[...Object.entries(fields), [key, value] as const].map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v) ?? 'null'}`).join(',')}}`);
      const otherBody = fc.oneof(
        fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 4 }).map((value) => JSON.stringify(value)),
        hostileValue.map((value) => JSON.stringify(value)),
        fc.constantFrom('null', 'true', '1e999', '"x"', '{"client_name":', '{"a":1}}', '[', '{'.repeat(2000), `[${'['.repeat(5000)}${']'.repeat(5000)}]`, `{"client_name":"${'x'.repeat(70_000)}"}`),
        hostileValue,
      );
      const request = fc
        .record({
          method: fc.constantFrom('GET', 'GET', 'POST', 'POST', 'PATCH', 'PATCH', 'DELETE', 'PUT', 'OPTIONS'),
          path,
          query: pairs(['limit', 'cursor', 'name', 'filter', 'email', 'since'], { limit: ['1', '0', '201', '1e3', '-1', '1.5', '50'], since: ['2020-01-01T00:00:00Z', 'yesterday'] }, 4),
          queryEncoding: encoding,
          body: fc.oneof({ weight: 3, arbitrary: objectBody }, { weight: 1, arbitrary: otherBody }),
          contentType: fc.oneof({ weight: 4, arbitrary: fc.constant('application/json') }, { weight: 1, arbitrary: fc.constantFrom<string>(...CONTENT_TYPES) }),
          authorization: fc.oneof(
            { weight: 3, arbitrary: fc.constant(`Bearer ${admin.token}`) },
            { weight: 1, arbitrary: authorizationHeader([], [serviceToken, signedIn.accessToken, ...Object.values(forged.admin)]) },
          ),
          ifMatch: fc.option(fc.oneof(fc.constantFrom('W/"1"', '"1"', '*', 'W/"999999999999999999999"'), shortHostile.map(headerSafe)), { nil: undefined }),
          headers: extraHeaders,
        })
        .map((r): Sent => {
          // DELETE, PUT and secret rotation only ever name ids that do not exist.
          const real = realIds.some((id) => r.path === id);
          const method = real && (r.method === 'DELETE' || r.method === 'PUT') ? 'GET' : r.method;
          const hasBody = method === 'POST' || method === 'PATCH' || method === 'PUT';
          return toSent({
            method,
            path: `/admin/v1${r.path}`,
            query: r.query,
            queryEncoding: r.queryEncoding,
            body: hasBody ? { contentType: r.contentType, body: Buffer.from(wellFormed(r.body)), payloads: [r.body] } : undefined,
            headers: { ...r.headers, authorization: r.authorization, 'if-match': r.ifMatch },
          });
        });
      // Nothing generated here is a valid change: a success would mean the registry moved.
      await check('admin', request, 200, (sent, answer) => {
        if (sent.method !== 'GET' && sent.method !== 'OPTIONS') expect(answer.status, describeSent(sent)).toBeGreaterThanOrEqual(400);
      });
    }, PROPERTY_TIMEOUT);

    it('JWKS and discovery', async () => {
      await check(
        'jwks and discovery',
        endpointRequest({
          baselines: [
            { method: 'GET', path: paths.jwks, pairs: [] },
            { method: 'GET', path: paths.discovery, pairs: [] },
            { method: 'GET', path: '/.well-known/oauth-authorization-server', pairs: [] },
          ],
          known: ['kid', 'format', 'callback', 'x'],
          plausible: {},
          paths: fc.constantFrom(`${paths.discovery}/..`, `${paths.jwks}/%2e%2e`, `${paths.jwks}.json`, '/.well-known/', '/.well-known/webfinger'),
          cookie: otherCookies(),
        }),
        100,
      );
    }, PROPERTY_TIMEOUT);

    it('any path: dot segments, broken escapes, unknown routes', async () => {
      const segment = fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom('auth', 'token', 'me', 'session', 'end', 'confirm', 'interaction', 'admin', 'v1', 'clients', 'users', '.well-known', 'openid-configuration', 'jwks', 'assets', 'gatehouse.css', 'healthz', 'reg', 'introspection', 'revocation', pending.uid) },
        { weight: 2, arbitrary: fc.constantFrom('..', '.', '%2e%2e', '%2E%2E%2F', '%2f', '%00', '%zz', '%', '', ';', '..;', '%c0%ae%c0%ae', '~') },
        { weight: 1, arbitrary: shortHostile.map(rawish) },
      );
      const path = fc.array(segment, { minLength: 1, maxLength: 8 }).map((segments) => `/${segments.join('/')}`);
      await check(
        'any path',
        endpointRequest({
          baselines: [{ method: 'GET', path: '/', pairs: [] }, { method: 'POST', path: '/', pairs: [['client_id', web.clientId]] }],
          known: ['client_id', 'token', 'x'],
          plausible: { client_id: clientIds() },
          paths: path,
          onlyPaths: true,
          authorization: authorizationHeader([`Bearer ${admin.token}`], []),
          cookie: otherCookies(),
        }),
        100,
      );
    }, PROPERTY_TIMEOUT);

    it('leaves the registry as it was: clients, resource servers, users, grants and refresh tokens', async () => {
      const after = await registrySnapshot();
      expect(after.clients).toEqual(before.clients);
      expect(after.resources).toEqual(before.resources);
      expect(after.users).toEqual(before.users);
      expect(after.durable).toEqual(before.durable);
      expect(before.durable.some((row) => row.model === 'Grant')).toBe(true);
    });
  });

  // -------------------------------------------------------------------------------------------

  describe('examples', () => {
    const json = async (response: Response) => (await response.json()) as Record<string, unknown>;
    const postForm = (path: string, form: string, headers: Record<string, string> = {}) =>
      fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': FORM, ...headers }, body: form, redirect: 'manual' });

    it('treats a NUL byte anywhere as input that matches nothing or is refused, never as a 500', async () => {
      const adminAuth = { authorization: `Bearer ${admin.token}` };
      const adminJson = { ...adminAuth, 'content-type': 'application/json' };
      const cases: Array<{ method: string; path: string; headers?: Record<string, string>; body?: string; status: number }> = [
        { method: 'POST', path: paths.token, headers: { 'content-type': FORM }, body: 'grant_type=client_credentials&client_id=a%00b&client_secret=x', status: 401 },
        { method: 'POST', path: paths.token, headers: { 'content-type': FORM, authorization: basic(web.clientId, web.clientSecret) }, body: 'grant_type=refresh_token&refresh_token=a%00b', status: 400 },
        { method: 'POST', path: paths.token, headers: { 'content-type': FORM, authorization: basic(service.clientId, service.clientSecret) }, body: 'grant_type=client_credentials&resource=https%3A%2F%2Fa.test%2F%00', status: 400 },
        { method: 'POST', path: paths.introspection, headers: { 'content-type': FORM, authorization: basic(web.clientId, web.clientSecret) }, body: 'token=a%00b', status: 200 },
        { method: 'POST', path: paths.revocation, headers: { 'content-type': FORM, authorization: basic(web.clientId, web.clientSecret) }, body: 'token=a%00b&token_type_hint=refresh_token', status: 200 },
        { method: 'GET', path: `${paths.auth}?client_id=a%00b&response_type=code&redirect_uri=${encodeURIComponent(REDIRECT)}`, status: 400 },
        { method: 'GET', path: `${paths.endSession}?client_id=a%00b`, status: 400 },
        // A query value with a NUL is a 400 naming the parameter (it cannot match anything stored).
        { method: 'GET', path: '/admin/v1/clients?name=a%00', headers: adminAuth, status: 400 },
        { method: 'GET', path: '/admin/v1/clients?cursor=a%00', headers: adminAuth, status: 400 },
        { method: 'GET', path: '/admin/v1/resources?filter=a%00', headers: adminAuth, status: 400 },
        { method: 'GET', path: '/admin/v1/users?email=a%00', headers: adminAuth, status: 400 },
        { method: 'GET', path: '/admin/v1/users?cursor=a%00', headers: adminAuth, status: 400 },
        { method: 'GET', path: '/admin/v1/clients/a%00', headers: adminAuth, status: 404 },
        { method: 'GET', path: '/admin/v1/users/a%00', headers: adminAuth, status: 404 },
        { method: 'GET', path: '/admin/v1/resources/a%00', headers: adminAuth, status: 404 },
        { method: 'PATCH', path: '/admin/v1/users/a%00', headers: adminJson, body: '{"name":"x"}', status: 404 },
        { method: 'DELETE', path: '/admin/v1/clients/a%00', headers: adminAuth, status: 404 },
        { method: 'POST', path: '/admin/v1/clients/a%00/secret', headers: adminAuth, status: 404 },
        // Bodies that are valid but for a NUL: refused by validation, never written.
        { method: 'POST', path: '/admin/v1/clients', headers: adminJson, body: '{"client_name":"nul\\u0000name","grant_types":["client_credentials"]}', status: 400 },
        { method: 'POST', path: '/admin/v1/users', headers: adminJson, body: '{"email":"nul@example.test","name":"a\\u0000b","password":"a long enough password for nul 1"}', status: 400 },
        { method: 'POST', path: '/admin/v1/resources', headers: adminJson, body: '{"identifier":"https://nul.example.test/a\\u0000","scope":"x"}', status: 400 },
        { method: 'PATCH', path: `/admin/v1/users/${user.id}`, headers: adminJson, body: '{"name":"a\\u0000b"}', status: 400 },
        { method: 'PATCH', path: `/admin/v1/clients/${web.clientId}`, headers: adminJson, body: '{"client_name":"a\\u0000b"}', status: 400 },
        { method: 'PATCH', path: `/admin/v1/clients/${web.clientId}`, headers: adminJson, body: '{"post_logout_redirect_uris":["https://app.example.test/\\u0000"]}', status: 400 },
      ];
      for (const { method, path, headers = {}, body, status } of cases) {
        const sent: Sent = { method, path, headers, body: body === undefined ? undefined : Buffer.from(body), payloads: [] };
        const answer = await send(port, sent);
        expect(answer.status, `${describeSent(sent)} → ${answer.text.slice(0, 200)}`).toBe(status);
        expectSafe(sent, answer, limits);
        if (status === 400 && path.startsWith('/admin/')) expect(answer.text).toContain('NUL');
      }
      // The sign-in form: an email with a NUL is a failed sign-in like any other (a new email each run:
      // failures count per account in Redis, which outlives the run).
      const login = await send(port, {
        method: 'POST',
        path: `/interaction/${pending.uid}/login`,
        headers: { 'content-type': FORM, cookie: pending.cookie },
        body: Buffer.from(`csrf=${pending.csrf}&email=nul-${randomUUID()}%00%40example.test&password=not%20the%20password%20at%20all`),
        payloads: [],
      });
      expect(login.status).toBe(401);
      expect(login.text).toContain('Wrong email or password.');
    });

    it('refuses a Host header that makes no URL with 400, on every provider endpoint', async () => {
      for (const host of ['4294967296', '%00', 'a b', '[', 'x:99999', '::1', 'a.b:-1']) {
        for (const path of [paths.discovery, paths.jwks, paths.endSession, paths.auth, paths.token]) {
          const sent: Sent = { method: path === paths.token ? 'POST' : 'GET', path, headers: { host, 'content-type': FORM }, body: path === paths.token ? Buffer.from('grant_type=client_credentials') : undefined, payloads: [host] };
          const answer = await send(port, sent);
          expectSafe(sent, answer, limits);
          expect(answer.status, `${host} ${path}`).toBe(400);
        }
      }
      // The interaction cookies that made the fuzzer's first find do not change that.
      const sent: Sent = { method: 'GET', path: paths.endSession, headers: { host: '4294967296', cookie: pending.cookie }, payloads: [] };
      expect((await send(port, sent)).status).toBe(400);
      // A valid Host still works.
      expect((await send(port, { method: 'GET', path: paths.discovery, headers: { host: `localhost:${port}` }, payloads: [] })).status).toBe(200);
    });

    it('answers 413 to a body over the limit, on every endpoint that reads one', async () => {
      const padding = 'x'.repeat(t.config.bodyLimitBytes + 1);
      for (const path of [paths.token, paths.introspection, paths.revocation, paths.userinfo, paths.endSession, paths.auth, `/interaction/${pending.uid}/login`, '/admin/v1/clients']) {
        const toAdmin = path.startsWith('/admin/');
        const headers: Record<string, string> = { 'content-type': toAdmin ? 'application/json' : FORM };
        if (toAdmin) headers.authorization = `Bearer ${admin.token}`;
        const body = toAdmin ? JSON.stringify({ client_name: padding }) : `padding=${padding}`;
        const sent: Sent = { method: 'POST', path, headers, body: Buffer.from(body), payloads: [] };
        const answer = await send(port, sent);
        expect(answer.status, path).toBe(413);
        expectSafe(sent, answer, limits);
        // Each part answers in its own format: a problem document, a page, the OAuth error JSON.
        const type = String(answer.headers['content-type']);
        if (toAdmin) expect(JSON.parse(answer.text)).toMatchObject({ type: 'urn:gatehouse:problem:body_too_large', status: 413 });
        else if (path.startsWith('/interaction/')) expect(type).toMatch(/^text\/html/);
        else expect(JSON.parse(answer.text)).toMatchObject({ error: 'invalid_request' });
      }
    });

    it('lets fetch read the 413 to a 5 MiB body (no EPIPE or reset) on the token endpoint, the admin API and the login page, and keeps serving', async () => {
      // Node's fetch in a process of its own, as an outside client: it writes its whole body before it reads.
      // The token endpoint twice: with a Content-Length (refused before reading) and chunked (oidc-provider reads 56 KiB of it).
      const requests = [paths.token, `${paths.token}#chunked`, '/admin/v1/clients', `/interaction/${pending.uid}/login`].map((path) => {
        const toAdmin = path.startsWith('/admin/');
        return { url: `${issuer}${path}`, headers: { 'content-type': toAdmin ? 'application/json' : FORM, ...(toAdmin ? { authorization: `Bearer ${admin.token}` } : {}) } };
      });
      const script = `
        const body = Buffer.alloc(5 * 1024 * 1024, 'x');
        const chunked = () => new ReadableStream({ start(controller) { for (let i = 0; i < 80; i += 1) controller.enqueue(body.subarray(0, 64 * 1024)); controller.close(); } });
        const results = [];
        for (let round = 0; round < 3; round += 1) {
          for (const { url, headers } of JSON.parse(process.env.REQUESTS)) {
            try {
              const response = await fetch(url, url.endsWith('#chunked') ? { method: 'POST', headers, body: chunked(), duplex: 'half' } : { method: 'POST', headers, body });
              results.push({ url, status: response.status, type: response.headers.get('content-type'), text: await response.text() });
            } catch (error) {
              results.push({ url, error: String(error.cause?.code ?? error.cause?.message ?? error.message) });
            }
          }
        }
        console.log(JSON.stringify(results));`;
      const run = await runNode(['--input-type=module', '-e', script], { cwd: process.cwd(), env: { REQUESTS: JSON.stringify(requests) } });
      expect(run.code, run.stderr).toBe(0);
      const results = JSON.parse(run.stdout) as Array<{ url: string; status?: number; type?: string; text?: string; error?: string }>;
      expect(results).toHaveLength(12);
      for (const result of results) {
        expect({ url: result.url, status: result.status, error: result.error }).toEqual({ url: result.url, status: 413, error: undefined });
        const path = new URL(result.url).pathname;
        if (path.startsWith('/admin/')) expect(JSON.parse(result.text!)).toMatchObject({ type: 'urn:gatehouse:problem:body_too_large', status: 413 });
        else if (path === paths.token) expect(JSON.parse(result.text!)).toMatchObject({ error: 'invalid_request' });
        else expect(result.type).toMatch(/^text\/html/);
      }
      expect((await tokenRequest(base, { grant_type: 'client_credentials', scope: 'read' }, service)).status).toBe(200);
    });

    it('reads an oversized body only up to a bound: 64 MiB is cut off after the 413, and the server keeps serving', async () => {
      const total = 64 * 1024 * 1024;
      for (const [path, headers] of [
        [paths.token, { 'content-type': FORM }],
        // Refused before anything reads the body: Node alone would read all of it.
        ['/admin/v1/clients', { 'content-type': 'application/json' }],
      ] as const) {
        const result = await upload(port, path, headers, total);
        expect(result.answer, path).toMatch(/^HTTP\/1\.1 (413|401) /);
        expect(result.closedByServer, `${path}: the server read all ${total} bytes`).toBe(true);
        expect(result.written).toBeLessThan(total);
      }
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
    });

    it('does not wait for ever on a body that trickles in after the answer: the connection is closed', async () => {
      // A byte every 100 ms of a declared 1 MiB: the server's time bound, not the size, ends it.
      const result = await upload(port, '/admin/v1/clients', { 'content-type': 'application/json' }, 1024 * 1024, { chunk: 1, pauseMs: 100 });
      expect(result.answer).toMatch(/^HTTP\/1\.1 401 /);
      expect(result.closedByServer).toBe(true);
    });

    it('answers a query on the resume endpoint without an interaction with a page, not a 500', async () => {
      const redirect = encodeURIComponent(REDIRECT);
      for (const query of [`client_id=${web.clientId}`, `client_id=${web.clientId}&redirect_uri=${redirect}&redirect_uri=${redirect}`, `client_id=${publicWeb.clientId}&response_mode=form_post&state=x`]) {
        // (With a real _interaction_resume cookie, resume would rightly carry on with that interaction.)
        for (const cookie of [undefined, '_interaction_resume=made-up; _interaction_resume.sig=made-up']) {
          const sent: Sent = { method: 'GET', path: `${paths.auth}/not-an-interaction?${query}`, headers: cookie ? { cookie } : {}, payloads: [] };
          const answer = await send(port, sent);
          expectSafe(sent, answer, limits);
          expect(answer.status, query).toBe(400);
          expect(answer.headers.location).toBeUndefined();
          expect(answer.text).toContain('invalid_request');
        }
      }
    });

    it('answers a method no route takes (TRACE) with a 4xx on Gatehouse routes too, never 501', async () => {
      for (const path of [`/interaction/${pending.uid}`, `/interaction/${pending.uid}/login`, '/admin/v1/clients', '/healthz', paths.token, paths.auth]) {
        const sent: Sent = { method: 'TRACE', path, headers: { authorization: `Bearer ${admin.token}`, cookie: pending.cookie }, payloads: [] };
        const answer = await send(port, sent);
        expectSafe(sent, answer, limits);
        expect(answer.status, path).toBe(404);
      }
    });

    describe('duplicate parameters', () => {
      it('refuses a repeated grant_type, redirect_uri, client_id or code_verifier at the token endpoint with invalid_request', async () => {
        const auth = { authorization: basic(web.clientId, web.clientSecret) };
        for (const form of [
          'grant_type=client_credentials&grant_type=client_credentials',
          'grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Fapp.example.test%2Fcallback&redirect_uri=https%3A%2F%2Fevil.test%2F&code_verifier=x',
          'grant_type=authorization_code&code=abc&code_verifier=a&code_verifier=b',
          'grant_type=refresh_token&refresh_token=a&refresh_token=b',
        ]) {
          const response = await postForm(paths.token, form, auth);
          expect(response.status, form).toBe(400);
          expect(await json(response), form).toMatchObject({ error: 'invalid_request' });
        }
        const publicForm = `grant_type=authorization_code&code=abc&code_verifier=x&client_id=${publicWeb.clientId}&client_id=${web.clientId}`;
        const response = await postForm(paths.token, publicForm);
        expect(response.status).toBeGreaterThanOrEqual(400);
        expect(response.status).toBeLessThan(500);
        expect((await json(response)).error).toMatch(/^invalid_(request|client)$/);
      });

      it('refuses a repeated redirect_uri or client_id at the authorization endpoint with invalid_request, never at a given URI', async () => {
        const { challenge } = pkce();
        const common = `response_type=code&scope=openid&code_challenge=${challenge}&code_challenge_method=S256&state=s1`;
        const redirect = encodeURIComponent(REDIRECT);
        // A repeated redirect_uri is refused; the client has one registered redirect URI, which is where
        // oidc-provider then reports the error (RFC 6749 §4.1.2.1 forbids only the URIs given).
        for (const query of [
          `${common}&client_id=${publicWeb.clientId}&redirect_uri=${redirect}&redirect_uri=${encodeURIComponent('https://evil.test/cb')}`,
          `${common}&client_id=${publicWeb.clientId}&redirect_uri=${encodeURIComponent('https://evil.test/cb')}&redirect_uri=${encodeURIComponent('https://evil.test/cb')}`,
          `${common}&client_id=${web.clientId}&redirect_uri=${redirect}&redirect_uri=${redirect}`,
        ]) {
          const response = await fetch(`${base}${paths.auth}?${query}`, { redirect: 'manual' });
          expect(response.status, query).toBe(303);
          const location = new URL(response.headers.get('location') ?? '');
          expect(location.origin + location.pathname, query).toBe(REDIRECT);
          expect(location.searchParams.get('error'), query).toBe('invalid_request');
          expect(location.searchParams.get('error_description'), query).toMatch(/redirect_uri/);
          expect(location.searchParams.get('code'), query).toBeNull();
        }
        // With two client_ids there is no client to answer to: a page.
        const twoClients = `${common}&client_id=${publicWeb.clientId}&client_id=${web.clientId}&redirect_uri=${redirect}`;
        const response = await fetch(`${base}${paths.auth}?${twoClients}`, { redirect: 'manual' });
        expect(response.status).toBe(400);
        expect(response.headers.get('location')).toBeNull();
        expect(response.headers.get('content-type')).toMatch(/text\/html/);
        expect(await response.text()).toContain('invalid_request');
      });

      it('refuses repeated parameters at introspection, revocation, userinfo, logout and in admin queries', async () => {
        const auth = { authorization: basic(web.clientId, web.clientSecret) };
        for (const path of [paths.introspection, paths.revocation]) {
          const response = await postForm(path, 'token=a&token=b', auth);
          expect(response.status, path).toBe(400);
          expect(await json(response)).toMatchObject({ error: 'invalid_request' });
        }
        const userinfo = await fetch(`${base}${paths.userinfo}?access_token=a&access_token=b`);
        expect(userinfo.status).toBe(400);
        expect(await json(userinfo)).toMatchObject({ error: 'invalid_request' });
        const logout = await fetch(`${base}${paths.endSession}?client_id=${web.clientId}&client_id=${publicWeb.clientId}`, { redirect: 'manual' });
        expect(logout.status).toBe(400);
        expect(logout.headers.get('location')).toBeNull();
        const listing = await fetch(`${base}/admin/v1/clients?limit=1&limit=2`, { headers: { authorization: `Bearer ${admin.token}` } });
        expect(listing.status).toBe(400);
        expect(listing.headers.get('content-type')).toMatch(/application\/problem\+json/);
      });
    });

    describe('forged JWTs', () => {
      it('refuses client assertions with alg none, an unknown alg, the JWKS public key as an HMAC secret or another key, with invalid_client', async () => {
        const assertions = await forged.freshAssertions();
        for (const [name, assertion] of Object.entries(assertions)) {
          const { status, body } = await tokenRequest(base, {
            grant_type: 'client_credentials',
            client_id: keyClient.clientId,
            client_assertion_type: ASSERTION_TYPE,
            client_assertion: assertion,
          });
          expect(status, name).toBe(401);
          expect(body.error, name).toBe('invalid_client');
        }
        // The same forgeries at introspection and revocation, which authenticate clients the same way.
        for (const path of [paths.introspection, paths.revocation]) {
          const assertion = Object.values(await forged.freshAssertions())[0] ?? '';
          const response = await postForm(path, new URLSearchParams({ token: serviceToken, client_id: keyClient.clientId, client_assertion_type: ASSERTION_TYPE, client_assertion: assertion }).toString());
          expect(response.status, path).toBe(401);
          expect((await json(response)).error).toBe('invalid_client');
        }
      });

      it('refuses forged bearer tokens at userinfo with 401 invalid_token', async () => {
        for (const [name, token] of Object.entries(forged.userinfo)) {
          const response = await fetch(`${base}${paths.userinfo}`, { headers: { authorization: `Bearer ${token}` } });
          expect(response.status, name).toBe(401);
          expect(response.headers.get('www-authenticate'), name).toMatch(/error="invalid_token"/);
          expect((await json(response)).error, name).toBe('invalid_token');
        }
      });

      it('refuses forged bearer tokens at the admin API with 401 invalid_token', async () => {
        for (const [name, token] of Object.entries(forged.admin)) {
          const response = await fetch(`${base}/admin/v1/clients`, { headers: { authorization: `Bearer ${token}` } });
          expect(response.status, name).toBe(401);
          expect(response.headers.get('www-authenticate'), name).toMatch(/error="invalid_token"/);
          expect(response.headers.get('content-type')).toMatch(/application\/problem\+json/);
        }
        // The real token still works: the refusals above are about the forgeries.
        expect((await fetch(`${base}/admin/v1/clients?limit=1`, { headers: { authorization: `Bearer ${admin.token}` } })).status).toBe(200);
      });
    });

    it('never redirects to a redirect_uri that only resembles the registered one', async () => {
      const tricks = [
        'https://app.example.test/callback/../evil',
        'https://app.example.test:8443/callback',
        'https://app.example.test/callback/',
        'https://user@app.example.test/callback',
        'https://app.example.test.evil.test/callback',
        'https://app.example.test/callback?x=1',
        'https://app.example.test/CALLBACK',
        'https://APP.example.test/callback',
        'https://app.example.test/callback#x',
        'https://app.example.test:443/callback',
        'https://app.example.test/callback%2F..%2Fevil',
        'http://app.example.test/callback',
        '//evil.test/callback',
        '/callback',
        'javascript:alert(1)',
        'https://evil.test\\@app.example.test/callback',
      ];
      for (const clientId of [publicWeb.clientId, web.clientId]) {
        for (const redirectUri of tricks) {
          const url = authorizeUrl({ client_id: clientId, redirect_uri: redirectUri, code_challenge: pkce().challenge, code_challenge_method: 'S256' });
          const response = await fetch(`${base}${url}`, { redirect: 'manual' });
          expect(response.status, redirectUri).toBe(400);
          expect(response.headers.get('location'), redirectUri).toBeNull();
          expect(response.headers.get('content-type'), redirectUri).toMatch(/text\/html/);
          const html = await response.text();
          expect(html, redirectUri).toContain('redirect_uri');
          expect(html, redirectUri).not.toContain('action="https://app.example.test');
        }
      }
    });

    describe('logout is not an open redirect', () => {
      const evil = 'https://evil.test/bye';
      const lookalikes = [evil, `${POST_LOGOUT}/`, 'https://app.example.test:8443/logged-out', 'https://user@app.example.test/logged-out', `${POST_LOGOUT}?x=1`, `${POST_LOGOUT}/../evil`, '//evil.test/bye', 'javascript:alert(1)'];
      const hints = (): Array<Record<string, string>> => [{ client_id: web.clientId }, { id_token_hint: signedIn.idToken }, { id_token_hint: signedIn.idToken, client_id: web.clientId }];

      /**
       * GET /session/end, then (when it answers with its form) POST the confirmation with whatever the
       * form holds plus `confirmExtra`; returns the last status and every Location seen.
       */
      async function logout(agent: Agent, params: Record<string, string>, confirmExtra: Record<string, string> = {}) {
        const first = await agent.request(`${paths.endSession}?${new URLSearchParams(params)}`);
        const locations = [first.headers.get('location')].filter((l): l is string => !!l);
        const html = await first.text();
        if (first.status !== 200) return { status: first.status, locations, html };
        const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1] ?? '';
        const xsrf = hiddenInput(html, 'xsrf') ?? '';
        const done = await agent.postForm(new URL(action, base).pathname, { xsrf, logout: 'yes', ...confirmExtra });
        const location = done.headers.get('location');
        if (location) locations.push(location);
        return { status: done.status, locations, html };
      }

      it('refuses a post_logout_redirect_uri the client did not register, named by client_id or id_token_hint', async () => {
        for (const uri of lookalikes) {
          for (const hint of hints()) {
            const result = await logout(new Agent(base), { ...hint, post_logout_redirect_uri: uri, state: 'xyz' });
            expect(result.status, `${uri} ${Object.keys(hint).join()}`).toBe(400);
            expect(result.locations, uri).toEqual([]);
            expect(result.html).toContain('post_logout_redirect_uri');
          }
        }
      });

      it('has no POST /session/end to trick (enableHttpPostMethods is off): 404, no redirect', async () => {
        for (const uri of [evil, POST_LOGOUT]) {
          for (const hint of [...hints(), {}]) {
            const response = await new Agent(base).postForm(paths.endSession, { ...hint, post_logout_redirect_uri: uri });
            expect(response.status, uri).toBe(404);
            expect(response.headers.get('location')).toBeNull();
          }
        }
      });

      it('ignores a post_logout_redirect_uri without id_token_hint or client_id (GET) or in the POSTed confirmation, signed in or not', async () => {
        for (const uri of [evil, POST_LOGOUT]) {
          const anonymous = await logout(new Agent(base), { post_logout_redirect_uri: uri, state: 'xyz' });
          // The confirmation takes only xsrf and logout: a target added to its body is not one.
          const confirmTrick = await logout(new Agent(base), {}, { post_logout_redirect_uri: uri, client_id: web.clientId, state: 'xyz' });
          const browser = new Agent(base);
          await signIn(browser, {
            url: authorizeUrl({ client_id: web.clientId, redirect_uri: REDIRECT, code_challenge: pkce().challenge, code_challenge_method: 'S256' }),
            email: user.email,
            password: PASSWORD,
            consent: 'allow',
          });
          const signedInResult = await logout(browser, { post_logout_redirect_uri: uri, state: 'xyz' }, { post_logout_redirect_uri: uri });
          for (const result of [anonymous, confirmTrick, signedInResult]) {
            expect(result.status, uri).toBe(303);
            expect(result.locations.length).toBeGreaterThan(0);
            for (const location of result.locations) {
              const target = new URL(location, base);
              expect(target.origin, `${uri} → ${location}`).toBe(new URL(base).origin);
              expect(target.pathname).toBe(`${paths.endSession}/success`);
            }
          }
          expect(browser.cookies.has('_session')).toBe(false);
        }
      });

      it('sends a browser whose session is already gone on without a page or a new session cookie', async () => {
        const browser = new Agent(base);
        await signIn(browser, {
          url: authorizeUrl({ client_id: web.clientId, redirect_uri: REDIRECT, code_challenge: pkce().challenge, code_challenge_method: 'S256' }),
          email: user.email,
          password: PASSWORD,
          consent: 'allow',
        });
        const stale = new Map(browser.cookies);
        expect(stale.has('_session')).toBe(true);
        const ended = await logout(browser, {});
        expect(ended.status).toBe(303);
        // The same browser as it was before (its cookie names a session that no longer exists), and one with no cookie at all.
        const gone = new Agent(base);
        for (const [name, value] of stale) gone.cookies.set(name, value);
        for (const agent of [gone, new Agent(base)]) {
          for (const [params, target] of [
            [{}, `${paths.endSession}/success`],
            [{ client_id: web.clientId, post_logout_redirect_uri: POST_LOGOUT, state: 'xyz' }, `${POST_LOGOUT}?state=xyz`],
          ] as const) {
            const response = await agent.request(`${paths.endSession}?${new URLSearchParams(params)}`);
            expect(response.status).toBe(303);
            expect(response.headers.get('location')).toBe(target);
            expect(response.headers.getSetCookie().filter((cookie) => cookie.startsWith('_session'))).toEqual([]);
          }
        }
      });

      it('redirects to a registered post_logout_redirect_uri only (control)', async () => {
        const result = await logout(new Agent(base), { client_id: web.clientId, post_logout_redirect_uri: POST_LOGOUT, state: 'xyz' });
        expect(result.status).toBe(303);
        const location = new URL(result.locations.at(-1) ?? '');
        expect(location.origin + location.pathname).toBe(POST_LOGOUT);
        expect(location.searchParams.get('state')).toBe('xyz');
      });
    });
  });
});

describe('the Host is pinned to the issuer', () => {
  let t: TestServer;
  let port: number;
  let issuerHost: string;
  let service: { clientId: string; clientSecret: string };
  let admin: { token: string };
  let initialAccessToken: string;
  let signer: { clientId: string; privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey']; kid: string };
  let interactionPath: string;
  const OTHER_HOSTS = (p: number) => ['evil.example', `evil.example:${p}`, `127.0.0.1:${p}`, `localhost:${p + 1}`, 'localhost'];

  beforeAll(async () => {
    t = await startTestServer({ name: 'host-pinning', env: { REGISTRATION_ENABLED: 'true' } });
    port = t.server.port;
    issuerHost = new URL(t.config.issuer).host;
    const created = await t.build.serviceClient();
    service = { clientId: created.clientId, clientSecret: created.clientSecret };
    const adminCreated = await t.build.client({ client_name: `admin ${randomUUID()}`, admin: true });
    const iat = await createInitialAccessToken(t.services, TEST_ACTOR);
    recordSecret(iat.token);
    initialAccessToken = iat.token;

    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const kid = 'pinned-host-key';
    const keyCreated = await t.build.client({
      client_name: 'Pinned Signer', token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }] }, default_resource: created.resource, scope: 'read',
    });
    signer = { clientId: keyCreated.clientId, privateKey, kid };
    await t.server.cache.refresh();
    const adminGrant = await tokenRequest(t.server.url, { grant_type: 'client_credentials', scope: 'admin' }, adminCreated);
    expect(adminGrant.status).toBe(200);
    admin = { token: String(adminGrant.body.access_token) };

    const web = await t.build.client({ client_name: 'Pinned Web', redirect_uris: [REDIRECT] });
    const started = await fetch(`${t.server.url}${authorizeUrl({ client_id: web.clientId, redirect_uri: REDIRECT, code_challenge: pkce().challenge, code_challenge_method: 'S256' })}`, { redirect: 'manual' });
    interactionPath = new URL(started.headers.get('location') ?? '', t.server.url).pathname;
    expect(interactionPath).toMatch(/^\/interaction\/[\w-]+$/);
  });
  afterAll(() => t.close());

  const basic = (client: { clientId: string; clientSecret: string }) => `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}`;

  /** One of each kind of route, with what a legitimate caller would send. */
  function requests(host: string): Array<Sent & { format: 'oauth' | 'problem' }> {
    const form = (body: string) => Buffer.from(body);
    return [
      { method: 'GET', path: '/.well-known/openid-configuration', headers: { host }, payloads: [], format: 'oauth' },
      { method: 'GET', path: '/jwks', headers: { host }, payloads: [], format: 'oauth' },
      { method: 'POST', path: '/token', headers: { host, 'content-type': FORM, authorization: basic(service) }, body: form('grant_type=client_credentials&scope=read'), payloads: [], format: 'oauth' },
      {
        method: 'POST',
        path: '/reg',
        headers: { host, 'content-type': 'application/json', authorization: `Bearer ${initialAccessToken}` },
        body: Buffer.from(JSON.stringify({ client_name: 'pinned', grant_types: ['client_credentials'], response_types: [], token_endpoint_auth_method: 'client_secret_basic' })),
        payloads: [],
        format: 'oauth',
      },
      { method: 'GET', path: interactionPath, headers: { host }, payloads: [], format: 'oauth' },
      { method: 'GET', path: '/assets/gatehouse.css', headers: { host }, payloads: [], format: 'oauth' },
      { method: 'GET', path: '/admin/v1/clients?limit=1', headers: { host, authorization: `Bearer ${admin.token}` }, payloads: [], format: 'problem' },
    ];
  }

  it("answers a Host that is not the issuer's with 421 on every route, in the route's format, and does nothing", async () => {
    const clientsBefore = await t.server.registry.db.selectFrom('clients').select('client_id').execute();
    for (const host of OTHER_HOSTS(port)) {
      for (const sent of requests(host)) {
        const answer = await send(port, sent);
        const what = `${sent.method} ${sent.path} with Host ${host}`;
        expect(answer.status, `${what}: ${answer.text.slice(0, 200)}`).toBe(421);
        const body = JSON.parse(answer.text) as Record<string, unknown>;
        if (sent.format === 'problem') {
          expect(String(answer.headers['content-type']), what).toMatch(/^application\/problem\+json/);
          expect(body, what).toMatchObject({ type: 'urn:gatehouse:problem:misdirected_request', status: 421, detail: `this server answers only for ${issuerHost}` });
        } else {
          expect(body, what).toEqual({ error: 'invalid_request', error_description: `this server answers only for ${issuerHost}` });
        }
        // Nothing was issued, and no URL of the other host was built.
        expect(answer.text, what).not.toMatch(/access_token|client_secret|registration_access_token/);
        expect(answer.headers.location, what).toBeUndefined();
      }
    }
    expect(await t.server.registry.db.selectFrom('clients').select('client_id').execute()).toEqual(clientsBefore);
    // An absolute request target naming another host is refused too, whatever the Host header says.
    expect((await send(port, { method: 'GET', path: 'http://evil.example/.well-known/openid-configuration', headers: { host: issuerHost }, payloads: [] })).status).toBe(421);
  });

  it("serves the issuer's host (in any case), whose discovery names only the issuer", async () => {
    for (const host of [issuerHost, issuerHost.toUpperCase()]) {
      const answer = await send(port, { method: 'GET', path: '/.well-known/openid-configuration', headers: { host }, payloads: [] });
      expect(answer.status).toBe(200);
      const discovery = JSON.parse(answer.text) as Record<string, unknown>;
      for (const [key, value] of Object.entries(discovery)) {
        if (typeof value === 'string' && /^https?:/.test(value)) expect(value.startsWith(`${t.config.issuer}/`) || value === t.config.issuer, `${key}: ${value}`).toBe(true);
      }
    }
    for (const sent of requests(issuerHost).filter((request) => request.path !== '/reg')) {
      // The interaction page answers its own 400 here: this request carries no interaction cookie.
      expect((await send(port, sent)).status, `${sent.method} ${sent.path}`).toBe(sent.path === interactionPath ? 400 : 200);
    }
  });

  it('leaves the health endpoints and /metrics reachable by any Host (an orchestrator probes the pod address)', async () => {
    for (const host of OTHER_HOSTS(port)) {
      for (const path of ['/healthz', '/readyz', '/metrics']) {
        expect((await send(port, { method: 'GET', path, headers: { host }, payloads: [] })).status, `${path} with Host ${host}`).toBe(200);
      }
      // What they do not answer goes on to the provider, pinned like the rest.
      expect((await send(port, { method: 'POST', path: '/healthz', headers: { host }, payloads: [] })).status, `POST /healthz with Host ${host}`).toBe(421);
    }
  });

  it("refuses a private_key_jwt assertion whose aud is another server's token endpoint (sent with that server's Host or not)", async () => {
    const assertion = (aud: string) => {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ iss: signer.clientId, sub: signer.clientId, aud, jti: randomUUID(), iat: now, exp: now + 60 })
        .setProtectedHeader({ alg: 'ES256', kid: signer.kid, typ: 'JWT' })
        .sign(signer.privateKey);
    };
    const ask = async (host: string, aud: string) => {
      const jwt = await assertion(aud);
      recordSecret(jwt);
      const body = new URLSearchParams({ grant_type: 'client_credentials', scope: 'read', client_assertion_type: ASSERTION_TYPE, client_assertion: jwt });
      const answer = await send(port, { method: 'POST', path: '/token', headers: { host, 'content-type': FORM }, body: Buffer.from(body.toString()), payloads: [] });
      recordIssued(answer);
      return { status: answer.status, body: JSON.parse(answer.text) as Record<string, unknown> };
    };
    for (const other of ['other.example', `evil.example:${port}`]) {
      const aud = `http://${other}/token`;
      // Sent to this server under the other's name: the Host is refused before any assertion is read.
      expect(await ask(other, aud)).toEqual({ status: 421, body: { error: 'invalid_request', error_description: `this server answers only for ${issuerHost}` } });
      // Sent under this server's name: not one of its audiences.
      const refused = await ask(issuerHost, aud);
      expect(refused.status).toBe(401);
      expect(refused.body.error).toBe('invalid_client');
      expect(refused.body.access_token).toBeUndefined();
    }
    // This server's own token endpoint and issuer are its audiences.
    for (const aud of [`${t.config.issuer}/token`, t.config.issuer]) {
      const accepted = await ask(issuerHost, aud);
      expect(accepted.status, aud).toBe(200);
      expect(typeof accepted.body.access_token).toBe('string');
    }
  });
});

describe('the forwarded host behind TRUST_PROXY is pinned to the issuer', () => {
  let t: TestServer;
  let port: number;
  beforeAll(async () => {
    t = await startTestServer({ name: 'host-pinning-proxy', env: { ISSUER: 'https://auth.example.test', TRUST_PROXY: 'true' } });
    port = t.server.port;
  });
  afterAll(() => t.close());

  it("answers an X-Forwarded-Host that is not the issuer's with 421, and serves the issuer's", async () => {
    const discovery = (headers: Record<string, string>) => send(port, { method: 'GET', path: '/.well-known/openid-configuration', headers: { 'x-forwarded-proto': 'https', ...headers }, payloads: [] });
    for (const forwarded of ['evil.example', 'evil.example, auth.example.test', 'auth.example.test:8443', `localhost:${port}`]) {
      // The Host beside it is the issuer's: the forwarded one is what Koa (and oidc-provider) would use.
      const answer = await discovery({ host: 'auth.example.test', 'x-forwarded-host': forwarded });
      expect(answer.status, forwarded).toBe(421);
      expect(JSON.parse(answer.text)).toEqual({ error: 'invalid_request', error_description: 'this server answers only for auth.example.test' });
    }
    // No forwarded host: the Host decides.
    expect((await discovery({ host: 'evil.example' })).status).toBe(421);
    const served = await discovery({ host: `localhost:${port}`, 'x-forwarded-host': 'auth.example.test' });
    expect(served.status).toBe(200);
    expect(JSON.parse(served.text)).toMatchObject({ issuer: 'https://auth.example.test', token_endpoint: 'https://auth.example.test/token' });
  });
});
