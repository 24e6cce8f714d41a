// The load generator: one scenario per process, pinned by the harness to the CPU the server does not
// use. Reads its spec (JSON) from the file named by argv[2]; prepares, warms up, prints
// {"event":"warm"} and waits for "go" on stdin (the harness reads the server's CPU time then; the
// load goes on meanwhile), measures, and prints {"event":"result", …} as the window closes.
import { createPrivateKey, randomBytes, sign as rsaSign, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon, { type RequestSpec } from 'autocannon';
import { Agent, basicAuth, codeFlow, type CodeClient } from './lib/flow.js';
import { resetFlow, startResetSink } from './lib/reset.js';
import { passkeyEmulator, passkeySignIn, passwordSignIn, SecondFactorRefusedError, totpSignIn, TotpPool, type SignIn, type SignInSpec } from './lib/sign-in.js';

export interface StaticRequest {
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

export type LoadSpec = {
  base: string;
  connections: number;
  seconds: number;
  warmupSeconds: number;
} & (
  | { kind: 'static'; request: StaticRequest }
  /** client_credentials with private_key_jwt: a fresh assertion for every request (replays are refused). */
  | { kind: 'assertion'; clientId: string; privateJwk: Record<string, unknown>; audience: string; scope: string; expectedRps: number }
  /** client_credentials (client_secret_basic) with a fresh DPoP proof (ES256, RFC 9449) for every request: replays are refused. */
  | { kind: 'dpop'; authorization: string; privateJwk: Record<string, unknown>; publicJwk: Record<string, unknown>; htu: string; scope: string; expectedRps: number }
  /** refresh_token: a pool of unused refresh tokens; each response's rotated token goes back into it. */
  | { kind: 'refresh'; client: { clientId: string; clientSecret: string }; tokens: string[] }
  /** authorization code with sign-in (by the method `signIn` names), per iteration, by `connections` concurrent browsers. */
  | { kind: 'authcode'; client: CodeClient; signIn: SignInSpec }
  /** password reset through the mail (lib/reset.ts): each connection resets its own person's password, reading the link from an SMTP server this process runs on `smtpPort`. */
  | { kind: 'reset'; people: string[]; password: string; smtpPort: number }
  /**
   * device_code polls (RFC 8628) of pending device codes, round-robin: a code is polled again only
   * `intervalSeconds` after its last answer, so the answer is authorization_pending (400, counted as
   * the expected answer), never slow_down (counted as an error, as is any other answer).
   */
  | { kind: 'device_poll'; client: { clientId: string; clientSecret: string }; deviceCodes: string[]; intervalSeconds: number }
);

export interface LoadResult {
  event: 'result';
  /** Completed requests (or iterations, for authcode) in the measured window. */
  completed: number;
  ok: number;
  errors: number;
  seconds: number;
  rps: number;
  p50_ms: number;
  p99_ms: number;
  status_codes: Record<string, number>;
  /** CPU the load generator itself used, as a share of one core: near 100 means it was the limit. */
  loadgen_cpu_pct: number;
  /** HTTP requests per second (authcode: several per iteration). */
  http_rps?: number;
  pool_exhausted?: number;
  first_error?: string;
  /** TOTP sign-ins: how many people the pool held, and how many measured flows waited for a new 30 s step to find one. */
  pool_people?: number;
  flows_waited?: number;
  /** device_poll: answers that said slow_down (the pool was too small for the rate), included in errors. */
  slow_down?: number;
}

const write = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

async function waitForGo(): Promise<void> {
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (line.trim() === 'go') break;
  }
  lines.close();
}

/** Assertions for private_key_jwt, made ahead so signing does not compete with sending. */
function assertionMaker(spec: Extract<LoadSpec, { kind: 'assertion' }>) {
  const key = createPrivateKey({ key: spec.privateJwk as never, format: 'jwk' });
  const header = Buffer.from(JSON.stringify({ alg: 'RS256', kid: spec.privateJwk.kid })).toString('base64url');
  return () => {
    const now = Math.floor(Date.now() / 1000);
    const payload = Buffer.from(
      JSON.stringify({ iss: spec.clientId, sub: spec.clientId, aud: spec.audience, jti: randomBytes(16).toString('base64url'), iat: now, exp: now + 600 }),
    ).toString('base64url');
    const input = `${header}.${payload}`;
    return `${input}.${rsaSign('sha256', Buffer.from(input), key).toString('base64url')}`;
  };
}

/**
 * DPoP proofs, made ahead like the assertions above (the same compact JWS, ES256 in the JOSE
 * signature format): header typ dpop+jwt with the public key, htm POST, htu the token endpoint.
 */
function dpopProofMaker(spec: Extract<LoadSpec, { kind: 'dpop' }>) {
  const key = createPrivateKey({ key: spec.privateJwk as never, format: 'jwk' });
  const header = Buffer.from(JSON.stringify({ alg: 'ES256', typ: 'dpop+jwt', jwk: spec.publicJwk })).toString('base64url');
  return () => {
    const payload = Buffer.from(JSON.stringify({ htm: 'POST', htu: spec.htu, jti: randomBytes(16).toString('base64url'), iat: Math.floor(Date.now() / 1000) })).toString('base64url');
    const input = `${header}.${payload}`;
    return `${input}.${sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
  };
}

function requestsFor(spec: LoadSpec, state: { exhausted: number; slowDown: number }): { requests: RequestSpec[]; prepare(count: number): void } {
  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  switch (spec.kind) {
    case 'static':
      return { requests: [{ method: spec.request.method, path: spec.request.path, headers: spec.request.headers ?? {}, body: spec.request.body }], prepare() {} };
    case 'assertion': {
      const make = assertionMaker(spec);
      const pool: string[] = [];
      const body = (assertion: string) =>
        new URLSearchParams({
          grant_type: 'client_credentials',
          scope: spec.scope,
          client_id: spec.clientId,
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: assertion,
        }).toString();
      return {
        requests: [
          {
            method: 'POST',
            path: '/token',
            headers: form,
            setupRequest(request) {
              let assertion = pool.pop();
              if (!assertion) {
                state.exhausted += 1;
                assertion = make();
              }
              return { ...request, body: body(assertion) };
            },
          },
        ],
        prepare(count) {
          for (let i = 0; i < count; i += 1) pool.push(make());
        },
      };
    }
    case 'dpop': {
      const make = dpopProofMaker(spec);
      const pool: string[] = [];
      return {
        requests: [
          {
            method: 'POST',
            path: '/token',
            body: new URLSearchParams({ grant_type: 'client_credentials', scope: spec.scope }).toString(),
            setupRequest(request) {
              let proof = pool.pop();
              if (!proof) {
                state.exhausted += 1;
                proof = make();
              }
              return { ...request, headers: { ...form, authorization: spec.authorization, dpop: proof } };
            },
          },
        ],
        prepare(count) {
          for (let i = 0; i < count; i += 1) pool.push(make());
        },
      };
    }
    case 'refresh': {
      const pool = [...spec.tokens];
      const authorization = basicAuth(spec.client.clientId, spec.client.clientSecret);
      return {
        requests: [
          {
            method: 'POST',
            path: '/token',
            headers: { ...form, authorization },
            setupRequest(request) {
              // An unknown token is refused without touching any grant (a spent one would revoke its grant).
              const token = pool.shift() ?? (state.exhausted++, 'exhausted-pool-placeholder');
              return { ...request, body: `grant_type=refresh_token&refresh_token=${encodeURIComponent(token)}` };
            },
            onResponse(status, body) {
              if (status !== 200) return;
              const rotated = (JSON.parse(body) as { refresh_token?: string }).refresh_token;
              if (rotated) pool.push(rotated);
            },
          },
        ],
        prepare() {},
      };
    }
    case 'device_poll': {
      // Each code with the time from which it may be polled again; the pool is oldest first.
      const pool = spec.deviceCodes.map((code) => ({ code, readyAt: 0 }));
      const authorization = basicAuth(spec.client.clientId, spec.client.clientSecret);
      const waitMs = spec.intervalSeconds * 1000 + 50;
      const inFlight = new Map<object, string>();
      return {
        requests: [
          {
            method: 'POST',
            path: '/token',
            headers: { ...form, authorization },
            setupRequest(request, context) {
              const next = pool.shift();
              if (!next) throw new Error('the device code pool is empty');
              // Not due yet: sent anyway (it will be answered slow_down, an error), and counted.
              if (next.readyAt > performance.now()) state.exhausted += 1;
              inFlight.set(context, next.code);
              return { ...request, body: `grant_type=${encodeURIComponent('urn:ietf:params:oauth:grant-type:device_code')}&device_code=${encodeURIComponent(next.code)}` };
            },
            onResponse(status, body, context) {
              const code = inFlight.get(context);
              if (code) pool.push({ code, readyAt: performance.now() + waitMs });
              if (status === 400 && body.includes('"slow_down"')) state.slowDown += 1;
            },
          },
        ],
        prepare() {},
      };
    }
    default:
      throw new Error(`no autocannon requests for ${spec.kind}`);
  }
}

/**
 * What the measured window saw: every response to a request sent after the window opened and
 * answered before it closed (latency of the 2xx ones, as autocannon's own histogram keeps), and
 * every connection error or timeout within it.
 */
class Window {
  #openedAt = Number.POSITIVE_INFINITY;
  #closedAt = Number.POSITIVE_INFINITY;
  readonly latencies: number[] = [];
  readonly statusCodes: Record<string, number> = {};
  responses = 0;
  ok = 0;
  failed = 0;

  /** `expected`: the answers that count as ok (2xx unless given; 400 authorization_pending for device_poll). */
  readonly #expected: (status: number) => boolean;

  constructor(expected: (status: number) => boolean = (status) => status >= 200 && status < 300) {
    this.#expected = expected;
  }

  open(): void {
    this.#openedAt = performance.now();
  }

  /** Closes the window; answers its length in seconds. */
  close(): number {
    this.#closedAt = performance.now();
    return (this.#closedAt - this.#openedAt) / 1000;
  }

  response(status: number, ms: number): void {
    const now = performance.now();
    if (now - ms < this.#openedAt || now > this.#closedAt) return;
    this.responses += 1;
    this.statusCodes[status] = (this.statusCodes[status] ?? 0) + 1;
    if (this.#expected(status)) {
      this.ok += 1;
      this.latencies.push(ms);
    }
  }

  error(): void {
    const now = performance.now();
    if (now >= this.#openedAt && now <= this.#closedAt) this.failed += 1;
  }
}

function summarize(window: Window, seconds: number, cpuPct: number, exhausted: number, slowDown?: number): LoadResult {
  const sorted = [...window.latencies].sort((a, b) => a - b);
  const round = (ms: number) => Math.round(ms * 10) / 10;
  return {
    event: 'result',
    completed: window.responses,
    ok: window.ok - (slowDown ?? 0),
    errors: window.failed + (window.responses - window.ok) + (slowDown ?? 0),
    seconds,
    rps: window.responses / seconds,
    p50_ms: round(percentile(sorted, 50)),
    p99_ms: round(percentile(sorted, 99)),
    status_codes: window.statusCodes,
    loadgen_cpu_pct: cpuPct,
    ...(exhausted > 0 ? { pool_exhausted: exhausted } : {}),
    ...(slowDown === undefined ? {} : { slow_down: slowDown }),
  };
}

/**
 * One autocannon run for warm-up and measurement alike: the measured window opens on connections
 * that are already warm (kept alive, as real clients keep theirs) instead of starting with a burst
 * of new connections while the warm-up's connections close, which is no part of the steady state measured.
 */
async function runAutocannon(spec: LoadSpec): Promise<void> {
  const state = { exhausted: 0, slowDown: 0 };
  const { requests, prepare } = requestsFor(spec, state);
  if (spec.kind === 'assertion' || spec.kind === 'dpop') prepare(Math.ceil(spec.expectedRps * (spec.warmupSeconds + spec.seconds) * 1.3) + spec.connections * 4);
  const window = new Window(spec.kind === 'device_poll' ? (status) => status === 400 : undefined);
  // Stopped by hand once the window closes; the duration only bounds a run whose harness went away.
  const instance = autocannon({ url: spec.base, connections: spec.connections, timeout: 10, requests, duration: spec.warmupSeconds + spec.seconds + 600 });
  instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => window.response(status, ms));
  instance.on('reqError', () => window.error());
  const finished = Promise.resolve(instance);
  await Promise.race([sleep(spec.warmupSeconds * 1000), finished]);
  state.exhausted = 0;
  write({ event: 'warm' });
  await waitForGo();
  const cpu = process.cpuUsage();
  window.open();
  state.slowDown = 0;
  await Promise.race([sleep(spec.seconds * 1000), finished]);
  const seconds = window.close();
  const used = process.cpuUsage(cpu);
  write(summarize(window, seconds, ((used.user + used.system) / 1000 / (seconds * 1000)) * 100, state.exhausted, spec.kind === 'device_poll' ? state.slowDown : undefined));
  instance.stop();
  await finished;
}

/**
 * Each flow's sign-in: for passwords, the connection's own person; for TOTP, a person lent by the
 * pool for the flow (one whose code of the current step is unused) and given back after it.
 */
function signInsFor(spec: Extract<LoadSpec, { kind: 'authcode' }>): {
  pool?: TotpPool;
  /** The sign-in of a flow about to start, or undefined when none can start before `deadline` (ms since the epoch). */
  begin(index: number, deadline: number): Promise<{ signIn: SignIn; end(): void } | undefined>;
} {
  const method = spec.signIn;
  switch (method.method) {
    case 'password':
      return { begin: async (index) => ({ signIn: passwordSignIn(method.people[index % method.people.length]!), end() {} }) };
    case 'passkey': {
      // One emulated authenticator per person, each used by one connection (the harness makes at
      // least as many people as connections): its sign counter goes up flow after flow.
      if (method.people.length < spec.connections) throw new Error(`passkey: ${method.people.length} people for ${spec.connections} connections (two flows of one authenticator at once would race its counter)`);
      const emulators = method.people.map((person) => passkeyEmulator(person.credentials).emulator);
      const origin = new URL(spec.base).origin;
      return { begin: async (index) => ({ signIn: passkeySignIn(emulators[index % emulators.length]!, origin), end() {} }) };
    }
    case 'totp': {
      const pool = new TotpPool(method.people);
      return {
        pool,
        async begin(_index, deadline) {
          const person = await pool.take(deadline);
          return person && { signIn: totpSignIn(person), end: () => pool.give(person) };
        },
      };
    }
  }
}

async function runAuthcode(spec: Extract<LoadSpec, { kind: 'authcode' }>): Promise<void> {
  let stopAt = 0;
  let measuring = false;
  const latencies: number[] = [];
  const statusCodes: Record<string, number> = {};
  let completed = 0;
  let errors = 0;
  let httpRequests = 0;
  let firstError: string | undefined;
  const signIns = signInsFor(spec);
  const loop = async (index: number) => {
    while (performance.now() < stopAt) {
      // A TOTP flow that would wait for a new step past the end of the phase is not made.
      const begun = await signIns.begin(index, Date.now() + (stopAt - performance.now()));
      if (!begun) break;
      const { signIn, end } = begun;
      const started = performance.now();
      // A new browser every iteration: no session, so every iteration signs in (argon2id verify).
      const agent = new Agent(spec.base);
      try {
        const { requests } = await codeFlow(agent, spec.client, signIn);
        if (measuring) {
          latencies.push(performance.now() - started);
          completed += 1;
          httpRequests += requests;
          statusCodes['200'] = (statusCodes['200'] ?? 0) + 1;
        }
      } catch (error) {
        // Not a measurement of sign-ins any more, but of the replay guard (or of wrong codes): stop, loudly.
        if (error instanceof SecondFactorRefusedError) throw error;
        if (measuring) {
          errors += 1;
          completed += 1;
          httpRequests += agent.requests;
          firstError ??= (error as Error).message;
        }
      } finally {
        end();
      }
    }
  };
  const phase = async (seconds: number) => {
    stopAt = performance.now() + seconds * 1000;
    await Promise.all(Array.from({ length: spec.connections }, (_, i) => loop(i)));
  };
  if (spec.warmupSeconds > 0) await phase(spec.warmupSeconds);
  write({ event: 'warm' });
  await waitForGo();
  const cpu = process.cpuUsage();
  const started = performance.now();
  measuring = true;
  if (signIns.pool) signIns.pool.waited = 0;
  await phase(spec.seconds);
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  latencies.sort((a, b) => a - b);
  const result: LoadResult = {
    event: 'result',
    completed,
    ok: completed - errors,
    errors,
    seconds,
    rps: completed / seconds,
    http_rps: httpRequests / seconds,
    p50_ms: Math.round(percentile(latencies, 50) * 10) / 10,
    p99_ms: Math.round(percentile(latencies, 99) * 10) / 10,
    status_codes: statusCodes,
    loadgen_cpu_pct: ((used.user + used.system) / 1000 / (seconds * 1000)) * 100,
    ...(firstError ? { first_error: firstError } : {}),
    ...(signIns.pool ? { pool_people: signIns.pool.size, flows_waited: signIns.pool.waited } : {}),
  };
  write(result);
}

/**
 * Password resets, whole: "Forgot password?", the mail's link (from the SMTP server started here, on
 * the port the server's SMTP_URL names), the new password. One person per connection (a newer link
 * replaces an older one, so two resets of one person at once would race), a new browser each time.
 */
async function runReset(spec: Extract<LoadSpec, { kind: 'reset' }>): Promise<void> {
  if (spec.people.length < spec.connections) throw new Error(`reset: ${spec.people.length} people for ${spec.connections} connections`);
  const sink = await startResetSink(spec.smtpPort);
  let stopAt = 0;
  let measuring = false;
  const latencies: number[] = [];
  let completed = 0;
  let errors = 0;
  let httpRequests = 0;
  let firstError: string | undefined;
  const loop = async (index: number) => {
    while (performance.now() < stopAt) {
      const started = performance.now();
      const agent = new Agent(spec.base);
      try {
        await resetFlow(agent, sink, spec.people[index]!, spec.password);
        if (measuring) latencies.push(performance.now() - started);
      } catch (error) {
        if (measuring) {
          errors += 1;
          firstError ??= (error as Error).message;
        }
      }
      if (measuring) {
        completed += 1;
        httpRequests += agent.requests;
      }
    }
  };
  const phase = async (seconds: number) => {
    stopAt = performance.now() + seconds * 1000;
    await Promise.all(Array.from({ length: spec.connections }, (_, i) => loop(i)));
  };
  if (spec.warmupSeconds > 0) await phase(spec.warmupSeconds);
  write({ event: 'warm' });
  await waitForGo();
  const cpu = process.cpuUsage();
  const started = performance.now();
  measuring = true;
  await phase(spec.seconds);
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  await sink.close();
  latencies.sort((a, b) => a - b);
  write({
    event: 'result',
    completed,
    ok: completed - errors,
    errors,
    seconds,
    rps: completed / seconds,
    http_rps: httpRequests / seconds,
    p50_ms: Math.round(percentile(latencies, 50) * 10) / 10,
    p99_ms: Math.round(percentile(latencies, 99) * 10) / 10,
    status_codes: { '200': completed - errors },
    loadgen_cpu_pct: ((used.user + used.system) / 1000 / (seconds * 1000)) * 100,
    ...(firstError ? { first_error: firstError } : {}),
  } satisfies LoadResult);
}

const spec = JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as LoadSpec;
if (spec.kind === 'authcode') await runAuthcode(spec);
else if (spec.kind === 'reset') await runReset(spec);
else await runAutocannon(spec);
process.exit(0);
