// `npm run bench [-- --quick] [--seconds N] [--out DIR] [--profile SCENARIO] [--only NAME,NAME]`
//
// Starts Gatehouse (the compiled dist/src/main.js) on real PostgreSQL and Redis pinned to CPU 0,
// drives it from a load generator pinned to CPU 1 (dist/bench/load.js, autocannon), measures the
// references in the same run (openssl and jose RS256 sign rates, bare oidc-provider) and writes
// <out>/latest.json and <out>/latest.md. Everything it starts is stopped at the end, also on failure.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { exportJWK, generateKeyPair } from 'jose';
import { Agent, basicAuth, codeFlow, type CodeClient } from './lib/flow.js';
import { passwordSignIn, registerPasskeyOnAccount, totpEnrolmentSignIn, TOTP_STEP_SECONDS, type BenchPerson, type PasskeyPerson, type TotpPerson } from './lib/sign-in.js';
import { CAN_PIN, collectOutput, cpuMs, cpusBusyMs, cpusTimeMs, hasCommand, killAll, placeOnCpus, processTree, rssMb, run, sampleRss, setCpus, spawnPinned, stopChild, waitForOk } from './lib/proc.js';
import { claimRedis, createDatabase, freePort, localRedisPid } from './lib/services.js';
import { connectProfiler } from './lib/inspector.js';
import { compareProfiles, summarizeProfile, type CpuProfile } from './profile.js';
import { evaluateTargets, isResult, pairedRatio, renderMarkdown, type BenchReport, type ScenarioResult } from './report.js';
import { firstConsoleSignIn, freshContext, launchChromium, measureConsoleFirstLoad, type ConsoleLoadResult } from './console-load.js';
import { generate as generateTotp } from 'otplib';
import type { LoadResult, LoadSpec } from './load.js';
import { SERVER_NODE_OPTIONS } from '../src/runtime.js';

const REPO = path.resolve(import.meta.dirname, '../..');
const NODE = process.execPath;
const MAIN = path.join(REPO, 'dist/src/main.js');
const BIN = path.join(REPO, 'bin/gatehouse.js');
const LOAD = path.join(REPO, 'dist/bench/load.js');
const UPSTREAM = path.join(REPO, 'dist/bench/upstream.js');
const SIGN_REF = path.join(REPO, 'dist/bench/sign-ref.js');

// totp and passkey after authorization_code: totp's person pool is sized from that rate, and both ratios are against it.
// reset (password reset through the mail) too: its ratio is against authorization_code.
// api_key_exchange: a personal API key for an access token (RFC 8693), measured beside client credentials.
// token_exchange: a person's access token exchanged by a service acting for them (RFC 8693), beside client credentials too.
// device_code: polls of pending device codes (RFC 8628, authorization_pending), measured beside client credentials.
// client_credentials_dpop: client credentials with a fresh DPoP proof per request (RFC 9449), beside plain client credentials.
const SCENARIOS = ['client_credentials', 'private_key_jwt', 'refresh_token', 'introspection', 'jwks', 'discovery', 'authorization_code', 'totp', 'passkey', 'reset', 'api_key_exchange', 'token_exchange', 'client_credentials_dpop', 'device_code'] as const;
type ScenarioName = (typeof SCENARIOS)[number];

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    seconds: { type: 'string' },
    out: { type: 'string' },
    profile: { type: 'string' },
    only: { type: 'string' },
  },
});
const quick = args.quick ?? false;
const seconds = args.seconds ? Number(args.seconds) : quick ? 3 : 15;
if (!Number.isFinite(seconds) || seconds < 1) throw new Error(`--seconds must be a number ≥ 1 (got ${args.seconds})`);
const warmupSeconds = quick || seconds < 4 ? 1 : 2;
const outDir = path.resolve(args.out ?? path.join(REPO, 'bench/results'));
const profileScenario = args.profile as ScenarioName | undefined;
if (profileScenario && !SCENARIOS.includes(profileScenario)) throw new Error(`--profile must be one of ${SCENARIOS.join(', ')}`);
// --only: for A/B runs of a few scenarios. client_credentials and the upstream always run (the
// ratios need them), and authorization_code with totp (its pool size and ratio need it); the two
// extra client_credentials runs go by their result names.
const EXTRA_RUNS = ['client_credentials_log_info', 'client_credentials_workers2'] as const;
// The console's first load in Chromium (bench/console-load.ts): not a load test, a page load measured beside the sign-in page's.
const BROWSER_RUNS = ['console_first_load'] as const;
const only = args.only ? new Set(args.only.split(',').map((name) => name.trim())) : undefined;
for (const name of only ?? []) {
  if (![...SCENARIOS, ...EXTRA_RUNS, ...BROWSER_RUNS].includes(name as ScenarioName)) throw new Error(`--only takes names from ${[...SCENARIOS, ...EXTRA_RUNS, ...BROWSER_RUNS].join(', ')}`);
}
const selected = (name: string) => !only || name === 'client_credentials' || only.has(name) || (name === 'authorization_code' && (only.has('totp') || only.has('passkey') || only.has('reset')));

const CONNECTIONS = 32;
/** The device_code scenario's poll interval (DEVICE_CODE_POLL_INTERVAL_SECONDS of the bench's server). */
const DEVICE_POLL_INTERVAL_SECONDS = 1;
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const PAIRED_ROUNDS = 7;
const ROUND_SECONDS = 3;
const roundSeconds = Math.min(ROUND_SECONDS, seconds);
const SIGN_IN_CONCURRENCY = 8;
const PEOPLE = 8;
/**
 * The sign-in rate the TOTP pool is sized for when authorization_code gave none (it failed): about
 * the clean runs' rate on this machine. A pool too small for the rate makes flows wait, counted.
 */
const FALLBACK_SIGN_IN_RATE = 50;
const PASSWORD = 'bench passphrase: a quiet lighthouse 7';
const API = 'https://api.bench.test';
/** The API a token_exchange client gets tokens for, acting on a person's tokens for API. */
const EXCHANGE_API = 'https://orders.bench.test';
const REDIRECT_URI = 'https://app.bench.test/callback';
const cpuCount = os.cpus().length;
const pinned = CAN_PIN && cpuCount >= 2;
const ALL_CPUS = `0-${cpuCount - 1}`;
const SERVER_CPU = pinned ? '0' : undefined;
const LOAD_CPU = pinned ? '1' : undefined;

let stopping = false;
const log = (message: string) => {
  if (!stopping) process.stderr.write(`bench: ${message}\n`);
};
const notes: string[] = [];

// Processes moved to other CPUs while a scenario runs (placeOnCpus), put back however the harness stops.
const putBacks = new Set<() => void>();
const putAllBack = () => {
  for (const putBack of putBacks) putBack();
  putBacks.clear();
};
// Everything started is killed if the harness stops for any reason.
process.on('exit', () => {
  killAll();
  putAllBack();
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping`);
    stopping = true;
    killAll();
    void cleanup().finally(() => process.exit(130));
  });
}
const cleanups: Array<() => Promise<void>> = [];
async function cleanup() {
  killAll();
  putAllBack();
  while (cleanups.length > 0) {
    try {
      await cleanups.pop()!();
    } catch (error) {
      log(`cleanup: ${(error as Error).message}`);
    }
  }
}

interface Target {
  /** pid whose process tree is the server (CPU and RSS are summed over it). */
  pid: number;
  label: string;
}

/** Runs one load process against a server and measures the server around its measured window. */
async function measure(
  target: Target,
  spec: LoadSpec,
  options: {
    loadCpus?: string | undefined;
    serverCpus?: string | undefined;
    request: string;
    dir: string;
    onWarm?: () => Promise<void>;
    onDone?: () => Promise<void>;
    /** PostgreSQL transactions so far in the server's database (each autocommit query is one). */
    dbTransactions?: () => Promise<number>;
    /** Local processes serving the server (its PostgreSQL backends, Redis): on the load generator's CPUs while measured. */
    backing?: () => Promise<number[]>;
  },
): Promise<ScenarioResult> {
  const specFile = path.join(options.dir, `load-${randomBytes(4).toString('hex')}.json`);
  await writeFile(specFile, JSON.stringify(spec), { mode: 0o600 });
  const child = spawnPinned(options.loadCpus, NODE, [LOAD, specFile], { stdio: ['pipe', 'pipe', 'pipe'] });
  const output = collectOutput(child);
  const limit = setTimeout(() => child.kill('SIGKILL'), (spec.warmupSeconds + spec.seconds) * 1000 + 120_000);
  let before = 0;
  let after = 0;
  let busyBefore = 0;
  let busyAfter = 0;
  let stolenBefore = 0;
  let stolenAfter = 0;
  let xactsBefore = 0;
  let xactsAfter = 0;
  let pids: number[] = [];
  let sampler: { stop(): number } | undefined;
  let peak = 0;
  let result: LoadResult | undefined;
  let putBack: (() => void) | undefined;
  try {
    const lines = createInterface({ input: child.stdout! });
    for await (const line of lines) {
      if (!line.startsWith('{')) continue;
      const message = JSON.parse(line) as { event: string };
      if (message.event === 'warm') {
        // After the warm-up, which opened the server's database connections.
        if (options.backing && options.loadCpus) {
          putBack = placeOnCpus(await options.backing(), options.loadCpus);
          putBacks.add(putBack);
        }
        await options.onWarm?.();
        xactsBefore = (await options.dbTransactions?.()) ?? 0;
        pids = processTree(target.pid);
        before = cpuMs(pids);
        ({ busy: busyBefore, stolen: stolenBefore } = cpusTimeMs(options.serverCpus));
        sampler = sampleRss(target.pid);
        child.stdin!.write('go\n');
      } else if (message.event === 'result') {
        after = cpuMs(pids);
        ({ busy: busyAfter, stolen: stolenAfter } = cpusTimeMs(options.serverCpus));
        peak = sampler?.stop() ?? 0;
        // PostgreSQL sends its counters to the statistics collector up to a second late.
        if (options.dbTransactions) {
          await sleep(1200);
          xactsAfter = await options.dbTransactions();
        }
        sampler = undefined;
        result = message as LoadResult;
        await options.onDone?.();
      }
    }
    await new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(undefined) : child.once('exit', resolve)));
  } finally {
    clearTimeout(limit);
    sampler?.stop();
    if (putBack) {
      putBacks.delete(putBack);
      putBack();
    }
    await rm(specFile, { force: true });
  }
  if (!result) throw new Error(`the load generator gave no result (exit ${child.exitCode ?? child.signalCode}): ${output().slice(-3000)}`);
  const serverCpu = after - before;
  const windowMs = result.seconds * 1000;
  // The load generator counts as "other" only where it shares the server's CPUs.
  const sharesCpus = options.loadCpus === undefined || options.loadCpus === options.serverCpus;
  const others = busyAfter - busyBefore - serverCpu - (sharesCpus ? (result.loadgen_cpu_pct / 100) * windowMs : 0);
  return {
    rps: result.rps,
    p50_ms: result.p50_ms,
    p99_ms: result.p99_ms,
    errors: result.errors,
    cpu_ms_per_1k: result.completed > 0 ? serverCpu / (result.completed / 1000) : 0,
    rss_peak_mb: peak,
    requests: result.completed,
    seconds: result.seconds,
    connections: spec.connections,
    loadgen_cpu_pct: result.loadgen_cpu_pct,
    server_cpu_pct: (serverCpu / windowMs) * 100,
    others_on_server_cpus_pct: Math.max(0, (others / windowMs) * 100),
    stolen_on_server_cpus_pct: Math.max(0, ((stolenAfter - stolenBefore) / windowMs) * 100),
    ...(options.dbTransactions && result.completed > 0 ? { db_queries_per_request: (xactsAfter - xactsBefore) / result.completed } : {}),
    status_codes: result.status_codes,
    server: target.label,
    request: options.request,
    ...(result.http_rps !== undefined ? { http_rps: result.http_rps, logins_per_s: result.rps } : {}),
    ...(result.pool_exhausted ? { pool_exhausted: result.pool_exhausted } : {}),
    ...(result.first_error ? { first_error: result.first_error } : {}),
    ...(result.pool_people !== undefined ? { pool_people: result.pool_people, flows_waited: result.flows_waited ?? 0 } : {}),
  };
}

/** A running server: Gatehouse or the upstream reference. */
interface Server {
  child: ChildProcess;
  base: string;
  output: () => string;
  readyMs: number;
}

async function startGatehouse(env: NodeJS.ProcessEnv, port: number, options: { cpus?: string | undefined; quietStdout?: boolean; nodeArgs?: string[] }): Promise<Server> {
  const nodeArgs = options.nodeArgs ?? [];
  const started = performance.now();
  // As npm start and the Docker image start it.
  const child = spawnPinned(options.cpus, NODE, [...SERVER_NODE_OPTIONS, ...nodeArgs, MAIN], {
    env,
    cwd: REPO,
    stdio: ['ignore', options.quietStdout ? 'ignore' : 'pipe', 'pipe'],
  });
  const output = collectOutput(child);
  // The issuer's own origin (a host name: a passkey's RP ID cannot be an IP address).
  const base = `http://localhost:${port}`;
  await waitForOk(`${base}/readyz`, child, output, 30_000, 5);
  return { child, base, output, readyMs: performance.now() - started };
}

async function startUpstream(dir: string, port: number, client: { clientId: string; clientSecret: string }, nodeArgs: string[] = []): Promise<Server> {
  const file = path.join(dir, 'upstream.json');
  await writeFile(file, JSON.stringify({ port, ...client, resource: API, scope: 'read write' }), { mode: 0o600 });
  const started = performance.now();
  // The same runtime, with the same Node.js options, as Gatehouse: the comparison is of the code.
  const child = spawnPinned(SERVER_CPU ?? ALL_CPUS, NODE, [...SERVER_NODE_OPTIONS, ...nodeArgs, UPSTREAM, file], { env: { ...process.env, NODE_ENV: 'production' }, cwd: REPO });
  const output = collectOutput(child);
  const base = `http://127.0.0.1:${port}`;
  await waitForOk(`${base}/.well-known/openid-configuration`, child, output, 30_000, 5);
  return { child, base, output, readyMs: performance.now() - started };
}

/** A few requests of each kind, then a second of quiet: what "idle after a warm start" means here. */
async function warmUp(base: string, ccAuth: string, gatehouse = true, settleMs = quick ? 500 : 1000) {
  for (let i = 0; i < 20; i += 1) {
    const response = await fetch(`${base}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: ccAuth },
      body: 'grant_type=client_credentials&scope=read',
    });
    const body = (await response.json()) as { error?: string };
    if (response.status !== 200) throw new Error(`warm-up token request: ${response.status} ${body.error ?? ''}`);
    if (!gatehouse) continue;
    await (await fetch(`${base}/jwks`)).arrayBuffer();
    await (await fetch(`${base}/.well-known/openid-configuration`)).arrayBuffer();
  }
  await sleep(settleMs);
}

/** Runs both sides one after the other, the first one first in even rounds, and answers [first's, second's]. */
async function inTurn<T>(round: number, first: () => Promise<T>, second: () => Promise<T>): Promise<[T, T]> {
  if (round % 2 === 0) {
    const a = await first();
    return [a, await second()];
  }
  const b = await second();
  return [await first(), b];
}

/** `openssl speed rsa2048` for `seconds` on the server's CPU: its output. */
const opensslSpeed = (seconds: number) => run('openssl', ['speed', '-seconds', String(seconds), 'rsa2048'], { cpus: SERVER_CPU ?? ALL_CPUS, timeoutMs: 60_000 });

function parseOpenssl(text: string): number | null {
  // "rsa 2048 bits 0.000585s 0.000017s   1709.4  58823.5" (sign s, verify s, sign/s, verify/s)
  const match = /^rsa\s+2048 bits\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)\s+([\d.]+)/m.exec(text);
  return match ? Number(match[1]) : null;
}

function gitCommit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: REPO, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${head} + local changes` : head;
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<number> {
  const startedAt = performance.now();
  if (process.platform !== 'linux') throw new Error('the bench reads /proc: it runs on Linux');
  if (!pinned) notes.push(CAN_PIN ? 'Only one CPU: nothing was pinned, server and load generator shared it.' : 'taskset (util-linux) is missing: nothing was pinned.');
  else if (!setCpus(process.pid, LOAD_CPU!)) throw new Error(`could not pin the harness to CPU ${LOAD_CPU}`);

  // How busy the machine is before anything starts (one second of /proc/stat, all CPUs, less this process).
  const stolen0 = cpusTimeMs(undefined).stolen;
  const busy0 = cpusBusyMs(undefined);
  const self0 = process.cpuUsage();
  await sleep(1000);
  const selfUsed = process.cpuUsage(self0);
  const busyBeforeStart = Math.max(0, Math.round(((cpusBusyMs(undefined) - busy0 - (selfUsed.user + selfUsed.system) / 1000) / 1000 / cpuCount) * 100));

  const dir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-bench-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await mkdir(outDir, { recursive: true });

  const adminUrl = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const database = await createDatabase(adminUrl);
  cleanups.push(() => database.drop());
  const redis = await claimRedis(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379', process.env.BENCH_REDIS_URL);
  cleanups.push(() => redis.release());
  // PostgreSQL and Redis run on this machine too: while a scenario is measured, the server's
  // database backends and Redis are moved to the load generator's CPU, so the server's CPU is its own.
  const redisPid = await localRedisPid(redis.url);
  const backing = async () => [...(await database.backendPids()), ...(redisPid ? [redisPid] : [])];

  const port = await freePort();
  // The reset scenario's load generator runs an SMTP server here while it is measured (lib/reset.ts).
  const smtpPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    PATH: `${path.dirname(NODE)}:${process.env.PATH ?? ''}`,
    HOME: process.env.HOME ?? os.tmpdir(),
    NODE_ENV: 'production',
    PORT: String(port),
    // localhost, not 127.0.0.1: the passkey scenario needs a host name for the RP ID (design §4.1).
    ISSUER: `http://localhost:${port}`,
    DATABASE_URL: database.url,
    REDIS_URL: redis.url,
    KEYS_DIR: path.join(dir, 'keys'),
    COOKIE_KEYS: randomBytes(32).toString('base64url'),
    LOG_LEVEL: 'warn',
    // Required in production (the main port never serves /metrics there); nothing reads it here.
    METRICS_PORT: String(await freePort()),
    // Mail (the reset scenario): to the load generator's SMTP server; every reset comes from one IP and a few addresses.
    SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
    RESET_MAX_PER_ADDRESS: '1000',
    RESET_MAX_PER_IP: '1000000',
    // The device_code scenario: a device may poll each pending code once a second.
    DEVICE_CODE_POLL_INTERVAL_SECONDS: String(DEVICE_POLL_INTERVAL_SECONDS),
  };
  const cli = async <T = Record<string, unknown>>(cliArgs: string[], input?: string): Promise<T> =>
    JSON.parse(await run(NODE, [BIN, ...cliArgs, '--json'], { env, cwd: dir, ...(input === undefined ? {} : { input }) })) as T;

  log(`setting up (database ${database.url.replace(/\/\/[^@]*@/, '//')}, redis ${redis.url})`);
  await cli(['migrate']);
  await cli(['keys', 'generate']);
  await cli(['resources', 'create', '--identifier', API, '--scope', 'read write']);
  const cc = await cli<{ client_id: string; client_secret: string }>(['clients', 'create', '--name', 'bench-cc', '--resource', API, '--scope', 'read write']);
  const ccAuth = basicAuth(cc.client_id, cc.client_secret);
  // A device client authenticating as the client_credentials one does (client_secret_basic), so that the ratio compares the grants.
  const deviceClient = await cli<{ client_id: string; client_secret: string }>(['clients', 'create', '--name', 'bench-device', '--grant-type', DEVICE_GRANT, '--scope', 'openid']);
  const { privateKey, publicKey } = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
  const signerKid = 'bench-signer';
  await writeFile(path.join(dir, 'signer-jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: signerKid, alg: 'RS256', use: 'sig' }] }));
  const signer = await cli<{ client_id: string }>([
    'clients', 'create', '--name', 'bench-signer', '--auth-method', 'private_key_jwt', '--jwks-file', path.join(dir, 'signer-jwks.json'), '--resource', API, '--scope', 'read write',
  ]);
  const web = await cli<{ client_id: string; client_secret: string }>([
    'clients', 'create', '--name', 'bench-web', '--first-party', '--redirect-uri', REDIRECT_URI,
    '--grant-type', 'authorization_code', '--grant-type', 'refresh_token', '--resource', API,
  ]);
  const people = Array.from({ length: PEOPLE }, (_, i) => ({ email: `bench-${i}@example.test`, password: PASSWORD }));
  await Promise.all(people.map((person) => cli(['users', 'create', '--email', person.email, '--password-stdin'], person.password)));
  const codeClient: CodeClient = { clientId: web.client_id, clientSecret: web.client_secret, redirectUri: REDIRECT_URI, scope: 'openid read' };
  // token_exchange's client, made when that scenario is first prepared (benchTokenExchange).
  let exchanger: { client_id: string; client_secret: string } | undefined;

  const report: BenchReport = {
    quick,
    date: new Date().toISOString(),
    node: process.version,
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
    cpus: cpuCount,
    commit: gitCommit(),
    settings: {
      backing_services_cpus: pinned ? LOAD_CPU : 'all',
      seconds,
      warmup_seconds: warmupSeconds,
      connections: CONNECTIONS,
      sign_in_concurrency: SIGN_IN_CONCURRENCY,
      log_level: 'warn',
      server_cpus: SERVER_CPU ?? 'all',
      load_cpus: LOAD_CPU ?? 'all',
      node_env: 'production',
      node_options: SERVER_NODE_OPTIONS.join(' '),
      busy_before_start_pct: busyBeforeStart,
    },
    ready_ms: null,
    rss_idle_mb: null,
    scenarios: {},
    references: { jose_rs256_sign_per_s: null, node_crypto_rs256_sign_per_s: null, openssl_rsa2048_sign_per_s: null, upstream_client_credentials_rps: null, notes: [] },
    paired: {},
    ratios: { cc_vs_sign: null, cc_vs_jose_sign: null, cc_vs_upstream: null, cc_vs_upstream_rps: null, workers2_vs_1: null, log_info_vs_warn: null, refresh_vs_sign: null, totp_vs_authorization_code: null, passkey_vs_authorization_code: null, reset_vs_authorization_code: null, api_key_vs_cc: null, token_exchange_vs_cc: null, dpop_vs_cc: null, device_poll_vs_cc: null, console_vs_login_page: null },
    targets: [],
    notes,
    duration_s: 0,
  };
  const failed: string[] = [];
  let lastError = '';
  const attempt = async <T>(name: string, body: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await body();
    } catch (error) {
      failed.push(name);
      lastError = (error as Error).message;
      log(`${name} failed: ${(error as Error).stack ?? lastError}`);
      return undefined;
    }
  };
  // The private_key_jwt pool is sized from the client_credentials rate.
  let ccRpsEstimate = 3000;
  // The device_code scenario's pending codes by server (pendingDeviceCodes).
  const deviceCodesMade = new Map<string, string[]>();
  // Counting SQL costs a second and a bit per scenario: --quick counts only where there is some.
  const countQueries = (name: string) => !quick || ['refresh_token', 'introspection', 'authorization_code', 'totp', 'passkey', 'reset', 'api_key_exchange', 'token_exchange', 'device_code'].includes(name);
  const scenario = async (name: string, target: Target, spec: LoadSpec, request: string, loadCpus = LOAD_CPU, serverCpus = SERVER_CPU) => {
    log(`${name}: ${spec.seconds} s, ${spec.connections} connections`);
    const result = await attempt(name, () => measure(target, spec, { loadCpus, serverCpus, request, dir, backing, ...(countQueries(name) ? { dbTransactions: () => database.transactions() } : {}) }));
    report.scenarios[name] = result ?? { error: lastError.slice(0, 2000) };
    if (result) log(`${name}: ${result.rps.toFixed(1)}/s p50 ${result.p50_ms} ms p99 ${result.p99_ms} ms errors ${result.errors} cpu ${result.cpu_ms_per_1k.toFixed(0)} ms/1k`);
    return result;
  };
  const ccRequest = (base: string): LoadSpec => ({
    kind: 'static',
    base,
    connections: CONNECTIONS,
    seconds,
    warmupSeconds,
    request: { method: 'POST', path: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: ccAuth }, body: 'grant_type=client_credentials&scope=read' },
  });
  const ccDescription = 'POST /token grant_type=client_credentials scope=read, client_secret_basic; RS256 JWT for the default resource';

  // --profile: one scenario against a server with the inspector open; the profile covers the measured
  // window only. For client_credentials the upstream is profiled the same way, for a side-by-side table.
  if (profileScenario) {
    const profiled = async (server: Server, label: string, prepare: () => Promise<void>) => {
      const profiler = await connectProfiler(server.output);
      let profile: CpuProfile | undefined;
      try {
        await prepare();
        const { spec, request } = await specFor(profileScenario, server.base);
        log(`${profileScenario} on ${label} with the CPU profiler: ${spec.seconds} s`);
        const result = await measure({ pid: server.child.pid!, label }, spec, {
          loadCpus: LOAD_CPU,
          serverCpus: SERVER_CPU,
          request,
          dir,
          backing,
          onWarm: () => profiler.start(),
          onDone: async () => {
            profile = await profiler.stop();
          },
        });
        log(`${label}: ${result.rps.toFixed(1)}/s p50 ${result.p50_ms} ms p99 ${result.p99_ms} ms errors ${result.errors} cpu ${result.cpu_ms_per_1k.toFixed(0)} ms/1k`);
        return { label, result, profile: profile! };
      } finally {
        profiler.close();
        await stopChild(server.child, 15_000);
      }
    };
    const inspect = ['--inspect=127.0.0.1:0'];
    const mine = await profiled(await startGatehouse(env, port, { cpus: SERVER_CPU, nodeArgs: inspect }), 'gatehouse', () => warmUp(`http://localhost:${port}`, ccAuth));
    let text = `${profileScenario}: ${mine.result.rps.toFixed(1)}/s, ${mine.result.cpu_ms_per_1k.toFixed(0)} ms of server CPU per 1,000 (profiler attached: slower than a plain run).\n\n${summarizeProfile(mine.profile, 40)}`;
    await writeFile(path.join(outDir, `profile-${profileScenario}.cpuprofile`), JSON.stringify(mine.profile));
    if (profileScenario === 'client_credentials') {
      const upstreamServer = await startUpstream(dir, await freePort(), { clientId: cc.client_id, clientSecret: cc.client_secret }, inspect);
      const theirs = await profiled(upstreamServer, 'upstream', () => warmUp(upstreamServer.base, ccAuth, false));
      text += `\n\n## Against the upstream (bare oidc-provider), same request\n\nupstream: ${theirs.result.rps.toFixed(1)}/s, ${theirs.result.cpu_ms_per_1k.toFixed(0)} ms of server CPU per 1,000.\n\n${compareProfiles(
        { label: 'gatehouse', profile: mine.profile, requests: mine.result.requests },
        { label: 'upstream', profile: theirs.profile, requests: theirs.result.requests },
      )}`;
      await writeFile(path.join(outDir, 'profile-upstream.cpuprofile'), JSON.stringify(theirs.profile));
    }
    const file = path.join(outDir, `profile-${profileScenario}.md`);
    await writeFile(file, `# CPU profile: ${profileScenario}\n\n${text}\n`);
    process.stdout.write(`${text}\n`);
    log(`wrote ${file} and the .cpuprofile files beside it (open them in Chrome DevTools)`);
    return 0;
  }

  // References first, on the server's CPU while nothing else runs.
  const refSeconds = quick ? 1 : 2;
  if (hasCommand('openssl')) {
    await attempt('openssl speed', async () => {
      log('reference: openssl speed rsa2048');
      const text = await opensslSpeed(refSeconds);
      report.references.openssl_rsa2048_sign_per_s = parseOpenssl(text);
      if (report.references.openssl_rsa2048_sign_per_s === null) throw new Error(`could not read sign/s from: ${text.slice(-500)}`);
    });
  } else {
    report.references.notes.push('openssl is not installed: no openssl reference, cc_vs_sign is not computed.');
  }
  await attempt('jose sign reference', async () => {
    log('reference: jose RS256 sign rate');
    const line = await run(NODE, [SIGN_REF, String(refSeconds)], { cpus: SERVER_CPU ?? ALL_CPUS, timeoutMs: 60_000 });
    Object.assign(report.references, JSON.parse(line.trim().split('\n').pop()!) as object);
  });

  // The upstream waits, idle, while Gatehouse starts; its client_credentials run comes right after Gatehouse's.
  const upstream = await startUpstream(dir, await freePort(), { clientId: cc.client_id, clientSecret: cc.client_secret });

  log('starting gatehouse (1 process, LOG_LEVEL=warn)');
  const gatehouse = await startGatehouse(env, port, { cpus: SERVER_CPU });
  report.ready_ms = gatehouse.readyMs;
  await warmUp(gatehouse.base, ccAuth);
  report.rss_idle_mb = rssMb(gatehouse.child.pid!);
  const target = { pid: gatehouse.child.pid!, label: 'gatehouse, 1 process, CPU 0' };

  const cc1 = await scenario('client_credentials', target, ccRequest(gatehouse.base), ccDescription);
  if (cc1) ccRpsEstimate = cc1.rps;
  const up = await attempt('upstream', () =>
    measure({ pid: upstream.child.pid!, label: 'bare oidc-provider, CPU 0' }, ccRequest(upstream.base), { loadCpus: LOAD_CPU, serverCpus: SERVER_CPU, request: ccDescription, dir, backing }),
  );
  report.references.upstream = up ?? { error: lastError.slice(0, 2000) };
  report.references.upstream_client_credentials_rps = up?.rps ?? null;
  if (up) log(`upstream client_credentials: ${up.rps.toFixed(0)}/s`);

  // Paired rounds: short runs of Gatehouse, the upstream and openssl, one after the other, several
  // times; each round's ratios come from numbers taken seconds apart, so drift cancels.
  const rounds = quick ? 2 : PAIRED_ROUNDS;
  const roundSpec = (base: string): LoadSpec => ({ ...ccRequest(base), seconds: roundSeconds, warmupSeconds: 1 });
  const roundMeasure = (pid: number, label: string, base: string, loadCpus = LOAD_CPU, serverCpus = SERVER_CPU) =>
    measure({ pid, label }, roundSpec(base), { loadCpus, serverCpus, request: ccDescription, dir, backing });
  await attempt('paired rounds (client_credentials, upstream, openssl)', async () => {
    const vsUpstream: number[] = [];
    const vsSign: number[] = [];
    for (let round = 0; round < rounds; round += 1) {
      const [mine, theirs] = await inTurn(
        round,
        () => roundMeasure(gatehouse.child.pid!, 'gatehouse', gatehouse.base),
        () => roundMeasure(upstream.child.pid!, 'upstream', upstream.base),
      );
      vsUpstream.push(mine.rps / theirs.rps);
      if (hasCommand('openssl')) {
        const text = await opensslSpeed(1);
        const signs = parseOpenssl(text);
        if (signs) vsSign.push(mine.rps / signs);
      }
      log(`paired round ${round + 1}/${rounds}: gatehouse ${mine.rps.toFixed(0)}/s, upstream ${theirs.rps.toFixed(0)}/s`);
    }
    report.paired.cc_vs_upstream = pairedRatio(vsUpstream, roundSeconds);
    report.paired.cc_vs_sign = pairedRatio(vsSign, roundSeconds);
  });
  // Both at once: Gatehouse and the upstream loaded together on the one server CPU, each by a load
  // generator of its own, so that whatever the machine does in a round it does to both. The ratio
  // is tokens per CPU-second, Gatehouse's over the upstream's: the rate each would reach with the
  // core to itself, unlike the rates, which depend on how the scheduler shares it out.
  await attempt('side-by-side rounds (client_credentials, upstream)', async () => {
    const together: number[] = [];
    for (let round = 0; round < rounds; round += 1) {
      // No PostgreSQL or Redis work to move aside here (client credentials makes none), and two
      // measurements moving the same processes at once would put them back wrongly.
      const alongside = (pid: number, label: string, base: string) =>
        measure({ pid, label }, roundSpec(base), { loadCpus: LOAD_CPU, serverCpus: SERVER_CPU, request: ccDescription, dir });
      const [mine, theirs] = await Promise.all([alongside(gatehouse.child.pid!, 'gatehouse', gatehouse.base), alongside(upstream.child.pid!, 'upstream', upstream.base)]);
      together.push(theirs.cpu_ms_per_1k / mine.cpu_ms_per_1k);
      log(`side-by-side round ${round + 1}/${rounds}: gatehouse ${mine.cpu_ms_per_1k.toFixed(0)} ms/1k, upstream ${theirs.cpu_ms_per_1k.toFixed(0)} ms/1k of server CPU`);
    }
    report.paired.cc_vs_upstream_cpu = pairedRatio(together, roundSeconds);
  });
  await stopChild(upstream.child);

  async function specFor(name: ScenarioName, base: string): Promise<{ spec: LoadSpec; request: string }> {
    const common = { base, connections: CONNECTIONS, seconds, warmupSeconds };
    switch (name) {
      case 'client_credentials':
        return { spec: ccRequest(base), request: ccDescription };
      case 'private_key_jwt': {
        const expectedRps = ccRpsEstimate;
        return {
          spec: { ...common, kind: 'assertion', clientId: signer.client_id, privateJwk: { ...(await exportJWK(privateKey)), kid: signerKid }, audience: env.ISSUER!, scope: 'read', expectedRps },
          request: 'POST /token grant_type=client_credentials scope=read, private_key_jwt (a fresh RS256 assertion per request, made ahead); RS256 JWT',
        };
      }
      case 'refresh_token': {
        const tokens = await issueRefreshTokens(base, CONNECTIONS * 4);
        return {
          spec: { ...common, kind: 'refresh', client: { clientId: web.client_id, clientSecret: web.client_secret }, tokens },
          request: `POST /token grant_type=refresh_token, client_secret_basic; a pool of ${tokens.length} refresh tokens (scope "openid read"), each used once, each response's rotated token back in the pool; answers an RS256 JWT access token and an RS256 ID token`,
        };
      }
      case 'introspection': {
        const [token] = await issueRefreshTokens(base, 1);
        return {
          spec: {
            ...common,
            kind: 'static',
            request: {
              method: 'POST',
              path: '/token/introspection',
              headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(web.client_id, web.client_secret) },
              body: `token=${encodeURIComponent(token!)}&token_type_hint=refresh_token`,
            },
          },
          request: 'POST /token/introspection of an active refresh token by its client (client_secret_basic)',
        };
      }
      case 'jwks':
        return { spec: { ...common, kind: 'static', request: { method: 'GET', path: '/jwks' } }, request: 'GET /jwks' };
      case 'discovery':
        return { spec: { ...common, kind: 'static', request: { method: 'GET', path: '/.well-known/openid-configuration' } }, request: 'GET /.well-known/openid-configuration' };
      case 'authorization_code':
        return {
          spec: { ...common, connections: SIGN_IN_CONCURRENCY, kind: 'authcode', client: codeClient, signIn: { method: 'password', people } },
          request: `a new cookie jar per flow: GET /auth (PKCE, scope "openid read") → login page → login POST (argon2id) → resume → code → POST /token; ${SIGN_IN_CONCURRENCY} at a time, ${PEOPLE} people, first-party client (no consent page)`,
        };
      case 'passkey': {
        // One person (and authenticator) per connection: no argon2id in the measured flows.
        const size = Math.max(PEOPLE, SIGN_IN_CONCURRENCY);
        const passkeyPeople = await registerPasskeyPeople(base, size);
        return {
          spec: { ...common, connections: SIGN_IN_CONCURRENCY, kind: 'authcode', client: codeClient, signIn: { method: 'passkey', people: passkeyPeople } },
          request: `as authorization_code, signing in with a passkey and no password: login page → POST /interaction/:uid/passkey/options (JSON) → the emulator's assertion (nid-webauthn-emulator, ES256, in the load generator) → POST /interaction/:uid/passkey → resume → code → POST /token; ${SIGN_IN_CONCURRENCY} at a time, ${size} people, each with one passkey registered beforehand through /account/passkeys`,
        };
      }
      case 'reset': {
        // One person per connection (a newer link replaces an older one); every reset sets the same new password.
        const adminToken = await benchAdminToken(base);
        const run = randomBytes(4).toString('hex');
        const resetPeople = Array.from({ length: SIGN_IN_CONCURRENCY }, (_, i) => `bench-reset-${run}-${i}@example.test`);
        for (const email of resetPeople) await createPerson(base, adminToken, { email, password: PASSWORD });
        return {
          spec: { ...common, connections: SIGN_IN_CONCURRENCY, kind: 'reset', people: resetPeople, password: PASSWORD, smtpPort },
          request: `a new cookie jar per reset: GET /reset → POST /reset (the address; the neutral page) → the mail over SMTP to the load generator's SMTP server on loopback (nodemailer → smtp-server, parsed with mailparser) → GET the link → POST /reset/password (argon2id; sessions, grants and refresh tokens ended, audited); ${SIGN_IN_CONCURRENCY} at a time, one person each`,
        };
      }
      case 'api_key_exchange': {
        const apiKey = await benchApiKey(base);
        const body = new URLSearchParams({
          grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
          subject_token: apiKey,
          subject_token_type: 'urn:gatehouse:params:oauth:token-type:api-key',
          resource: API,
          scope: 'read',
        }).toString();
        return {
          spec: { ...common, kind: 'static', request: { method: 'POST', path: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body } },
          request:
            'POST /token grant_type=token-exchange (RFC 8693), subject_token a personal API key (gk_…, found by its SHA-256 digest: one indexed read joining the person and the API), resource and scope=read, no client authentication; RS256 JWT whose sub is the person',
        };
      }
      case 'device_code': {
        // Enough pending codes that each is polled at most once per interval: polls ran at up to 2×
        // client credentials' rate, whose estimate is itself noisy, so 3× it with room, and never
        // fewer than 5,000 (one core answers fewer polls than that per second). Too few shows up as
        // slow_down errors and pool_exhausted, not as a wrong number.
        const count = Math.max(5000, Math.ceil(ccRpsEstimate * 3 * DEVICE_POLL_INTERVAL_SECONDS * 1.3)) + CONNECTIONS * 4;
        const deviceCodes = await pendingDeviceCodes(base, count);
        return {
          spec: { ...common, kind: 'device_poll', client: { clientId: deviceClient.client_id, clientSecret: deviceClient.client_secret }, deviceCodes, intervalSeconds: DEVICE_POLL_INTERVAL_SECONDS },
          request: `POST /token grant_type=device_code (RFC 8628), client_secret_basic, for ${deviceCodes.length} pending device codes round-robin, each polled at most once per ${DEVICE_POLL_INTERVAL_SECONDS} s interval (DEVICE_CODE_POLL_INTERVAL_SECONDS); the expected answer is 400 authorization_pending (slow_down counts as an error); the device code is in Redis, the client in the registry cache, so no PostgreSQL query`,
        };
      }
      case 'token_exchange': {
        const { auth, subjectToken } = await benchTokenExchange(base);
        const body = new URLSearchParams({
          grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
          subject_token: subjectToken,
          subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
          resource: EXCHANGE_API,
          scope: 'read',
        }).toString();
        return {
          spec: { ...common, kind: 'static', request: { method: 'POST', path: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: auth }, body } },
          request: `POST /token grant_type=token-exchange (RFC 8693), client_secret_basic, subject_token a person's RS256 access token for ${API} (from a sign-in; verified against the JWKS, its person read from the registry), resource ${EXCHANGE_API} and scope=read; RS256 JWT whose sub is the person and act the client`,
        };
      }
      case 'client_credentials_dpop': {
        const { privateKey: dpopKey, publicKey: dpopPublic } = await generateKeyPair('ES256', { extractable: true });
        return {
          spec: {
            ...common,
            kind: 'dpop',
            authorization: ccAuth,
            privateJwk: { ...(await exportJWK(dpopKey)) },
            publicJwk: { ...(await exportJWK(dpopPublic)) },
            htu: `${env.ISSUER!}/token`,
            scope: 'read',
            expectedRps: ccRpsEstimate,
          },
          request:
            'POST /token grant_type=client_credentials scope=read, client_secret_basic, with a fresh DPoP proof per request (ES256, made ahead; verified, its jti checked and remembered in Redis); RS256 JWT with cnf.jkt, token_type DPoP',
        };
      }
      case 'totp': {
        const measured = report.scenarios.authorization_code;
        const rate = isResult(measured) && measured.rps > 0 ? measured.rps : FALLBACK_SIGN_IN_RATE;
        if (rate === FALLBACK_SIGN_IN_RATE) notes.push(`totp: no authorization_code rate in this run; its person pool was sized for ${FALLBACK_SIGN_IN_RATE} sign-ins/s.`);
        // One code per person per 30 s step is accepted (design D9): enough people that none is
        // needed twice within a step at 1.5× the password sign-in rate, over the whole run or a step,
        // whichever is shorter.
        // At least 4 people per connection: in the one- or three-second runs of --quick, the rate of
        // one short window is too noisy a guide, and a flow that finds nobody waits up to 30 s.
        const size = Math.max(PEOPLE, 4 * SIGN_IN_CONCURRENCY, Math.ceil(rate * Math.min(TOTP_STEP_SECONDS, common.warmupSeconds + common.seconds) * 1.5));
        const totpPeople = await enrolTotpPeople(base, size);
        return {
          spec: { ...common, connections: SIGN_IN_CONCURRENCY, kind: 'authcode', client: codeClient, signIn: { method: 'totp', people: totpPeople } },
          request: `as authorization_code, with a second factor: login POST (argon2id) → 303 → second-factor page → code POST (a current TOTP code, otplib) → resume → code → POST /token; ${SIGN_IN_CONCURRENCY} at a time, a pool of ${size} people with an authenticator app (each person's code used at most once per 30 s step; sized for ${rate.toFixed(1)} sign-ins/s × ${Math.min(TOTP_STEP_SECONDS, common.warmupSeconds + common.seconds)} s × 1.5), enrolled beforehand through the enrolment page at sign-in of a require_mfa client`,
        };
      }
    }
  }

  /**
   * `count` people with one passkey each: made through the admin API, then each signs in once on
   * /account with the password and adds a passkey there (`/account/passkeys/options`, the
   * emulator's credential, `POST /account/passkeys`). 8 at a time.
   */
  async function registerPasskeyPeople(base: string, count: number): Promise<PasskeyPerson[]> {
    log(`passkey: making ${count} people and registering a passkey for each on /account`);
    const started = performance.now();
    const adminToken = await benchAdminToken(base);
    const run = randomBytes(4).toString('hex');
    const origin = new URL(base).origin;
    const registered: PasskeyPerson[] = [];
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < count; i = next++) {
        const person: BenchPerson = { email: `bench-passkey-${run}-${i}@example.test`, password: PASSWORD };
        await createPerson(base, adminToken, person);
        registered.push(await registerPasskeyOnAccount(new Agent(base), person, origin));
      }
    };
    await Promise.all(Array.from({ length: SIGN_IN_CONCURRENCY }, worker));
    log(`passkey: ${registered.length} people with a passkey in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return registered;
  }

  /**
   * `count` pending device codes of the bench's device client (POST /device/auth), CONNECTIONS
   * requests at a time; made once and used again by the paired rounds (they stay pending for DEVICE_CODE_TTL_SECONDS).
   */
  async function pendingDeviceCodes(base: string, count: number): Promise<string[]> {
    const made = deviceCodesMade.get(base);
    if (made && made.length >= count) return made;
    const started = performance.now();
    const codes: string[] = [];
    const authorization = basicAuth(deviceClient.client_id, deviceClient.client_secret);
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < count; i = next++) {
        const response = await fetch(`${base}/device/auth`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization }, body: 'scope=openid' });
        const { device_code: code } = (await response.json()) as { device_code?: string };
        if (response.status !== 200 || !code) throw new Error(`the device authorization endpoint answered ${response.status}`);
        codes.push(code);
      }
    };
    await Promise.all(Array.from({ length: CONNECTIONS }, worker));
    log(`device_code: ${codes.length} pending device codes in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    deviceCodesMade.set(base, codes);
    return codes;
  }

  /** A person made through the admin API and a personal API key of theirs for API (scope read), made there too. */
  async function benchApiKey(base: string): Promise<string> {
    const adminToken = await benchAdminToken(base);
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` };
    const person = { email: `bench-keys-${randomBytes(4).toString('hex')}@example.test`, password: PASSWORD };
    const created = await fetch(`${base}/admin/v1/users`, { method: 'POST', headers, body: JSON.stringify(person) });
    const { id } = (await created.json()) as { id?: string };
    if (created.status !== 201 || !id) throw new Error(`admin API: creating ${person.email} answered ${created.status}`);
    const made = await fetch(`${base}/admin/v1/users/${id}/api-keys`, { method: 'POST', headers, body: JSON.stringify({ label: 'bench', resource: API, scope: 'read' }) });
    const { api_key: apiKey } = (await made.json()) as { api_key?: string };
    if (made.status !== 201 || !apiKey) throw new Error(`admin API: creating an API key answered ${made.status}`);
    return apiKey;
  }

  /**
   * For token_exchange: a second API, a client that may act on tokens for API and holds a grant at
   * the second one, and a person's access token for API from a sign-in at the first-party client.
   */
  async function benchTokenExchange(base: string): Promise<{ auth: string; subjectToken: string }> {
    exchanger ??= await (async () => {
      await cli(['resources', 'create', '--identifier', EXCHANGE_API, '--scope', 'read write']);
      return cli<{ client_id: string; client_secret: string }>([
        'clients', 'create', '--name', 'bench-exchange', '--grant-type', 'urn:ietf:params:oauth:grant-type:token-exchange', '--may-act', API, '--resource', EXCHANGE_API, '--scope', 'read',
      ]);
    })();
    const { tokens } = await codeFlow(new Agent(base), codeClient, passwordSignIn(people[0]!));
    if (!tokens.access_token) throw new Error('the sign-in gave no access token');
    return { auth: basicAuth(exchanger.client_id, exchanger.client_secret), subjectToken: tokens.access_token };
  }

  /** An access token of a new `--admin` client (scope admin), for the admin API. */
  async function benchAdminToken(base: string): Promise<string> {
    const admin = await cli<{ client_id: string; client_secret: string }>(['clients', 'create', '--name', 'bench-admin', '--admin']);
    const tokenAnswer = await fetch(`${base}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(admin.client_id, admin.client_secret) },
      body: 'grant_type=client_credentials&scope=admin',
    });
    const { access_token: adminToken } = (await tokenAnswer.json()) as { access_token?: string };
    if (!adminToken) throw new Error(`no admin token (${tokenAnswer.status})`);
    return adminToken;
  }

  async function createPerson(base: string, adminToken: string, person: BenchPerson): Promise<void> {
    const created = await fetch(`${base}/admin/v1/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
      body: JSON.stringify(person),
    });
    if (created.status !== 201) throw new Error(`admin API: creating ${person.email} answered ${created.status}: ${(await created.text()).slice(0, 300)}`);
  }

  /**
   * `count` people with an authenticator app: made through the admin API, then each signs in once
   * at a client with require_mfa and sets up the app on the enrolment page at sign-in (design
   * §3.6): the secret from #totp-uri, a confirming code from otplib, Continue. 8 at a time.
   */
  async function enrolTotpPeople(base: string, count: number): Promise<TotpPerson[]> {
    log(`totp: making and enrolling ${count} people through the enrolment page at sign-in`);
    const started = performance.now();
    const adminToken = await benchAdminToken(base);
    const enrol = await cli<{ client_id: string; client_secret: string }>([
      'clients', 'create', '--name', 'bench-enrol', '--first-party', '--require-mfa', '--redirect-uri', REDIRECT_URI, '--grant-type', 'authorization_code', '--resource', API,
    ]);
    const enrolClient: CodeClient = { clientId: enrol.client_id, clientSecret: enrol.client_secret, redirectUri: REDIRECT_URI, scope: 'openid read' };
    const run = randomBytes(4).toString('hex');
    const enrolled: TotpPerson[] = [];
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < count; i = next++) {
        const person: BenchPerson = { email: `bench-totp-${run}-${i}@example.test`, password: PASSWORD };
        await createPerson(base, adminToken, person);
        let made: TotpPerson | undefined;
        await codeFlow(new Agent(base), enrolClient, totpEnrolmentSignIn(person, (withSecret) => (made = withSecret)));
        if (!made) throw new Error(`${person.email}: the sign-in finished without the enrolment page`);
        enrolled.push(made);
      }
    };
    await Promise.all(Array.from({ length: SIGN_IN_CONCURRENCY }, worker));
    log(`totp: ${enrolled.length} people enrolled in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    return enrolled;
  }

  /** Refresh tokens by the authorization code flow: one sign-in per person, then a code per token. */
  async function issueRefreshTokens(base: string, count: number): Promise<string[]> {
    const tokens: string[] = [];
    await Promise.all(
      people.map(async (person, i) => {
        const agent = new Agent(base);
        for (let n = i; n < count; n += people.length) {
          const { tokens: issued } = await codeFlow(agent, codeClient, passwordSignIn(person));
          if (!issued.refresh_token) throw new Error('the token endpoint gave no refresh token');
          tokens.push(issued.refresh_token);
        }
      }),
    );
    return tokens;
  }

  for (const name of SCENARIOS) {
    if (name === 'client_credentials' || !selected(name)) continue;
    const prepared = await attempt(`${name} (preparing)`, () => specFor(name, gatehouse.base));
    if (!prepared) {
      report.scenarios[name] = { error: `preparing the scenario failed: ${lastError.slice(0, 2000)}` };
      continue;
    }
    await scenario(name, target, prepared.spec, prepared.request);
  }
  // Refresh against the signature rate in paired rounds too (refresh, then openssl, on the same CPU):
  // the absolute rate drifts with the machine, this ratio much less. Each round has tokens of its own.
  if (selected('refresh_token') && isResult(report.scenarios.refresh_token) && hasCommand('openssl')) {
    await attempt('paired rounds (refresh_token, openssl)', async () => {
      const vsSign: number[] = [];
      for (let round = 0; round < rounds; round += 1) {
        const { spec, request } = await specFor('refresh_token', gatehouse.base);
        const result = await measure(target, { ...spec, seconds: roundSeconds, warmupSeconds: 1 }, { loadCpus: LOAD_CPU, serverCpus: SERVER_CPU, request, dir, backing });
        const signs = parseOpenssl(await opensslSpeed(1));
        if (signs && result.errors === 0) vsSign.push(result.rps / signs);
        log(`paired round ${round + 1}/${rounds}: refresh ${result.rps.toFixed(0)}/s, openssl ${signs?.toFixed(0) ?? '?'} sign/s`);
      }
      report.paired.refresh_vs_sign = pairedRatio(vsSign, roundSeconds);
    });
  }
  // API key exchanges against client credentials in paired rounds on the same server (in turn,
  // alternating which goes first): both are "find a credential by a digest, sign an RS256 JWT".
  if (selected('api_key_exchange') && isResult(report.scenarios.api_key_exchange)) {
    await attempt('paired rounds (api_key_exchange, client_credentials)', async () => {
      const { spec, request } = await specFor('api_key_exchange', gatehouse.base);
      const vsCc: number[] = [];
      for (let round = 0; round < rounds; round += 1) {
        const [keys, cc] = await inTurn(
          round,
          () => measure(target, { ...spec, seconds: roundSeconds, warmupSeconds: 1 }, { loadCpus: LOAD_CPU, serverCpus: SERVER_CPU, request, dir, backing }),
          () => measure(target, { ...ccRequest(gatehouse.base), seconds: roundSeconds, warmupSeconds: 1 }, { loadCpus: LOAD_CPU, serverCpus: SERVER_CPU, request: ccDescription, dir, backing }),
        );
        if (keys.errors === 0 && cc.rps > 0) vsCc.push(keys.rps / cc.rps);
        log(`paired round ${round + 1}/${rounds}: api key exchange ${keys.rps.toFixed(0)}/s, client credentials ${cc.rps.toFixed(0)}/s`);
      }
      report.paired.api_key_vs_cc = pairedRatio(vsCc, roundSeconds);
    });
  }
  // Device-code polls against client credentials in paired rounds on the same server, in turn as
  // above (the same pending codes each round: a round's first polls come an interval after the last ones).
  if (selected('device_code') && isResult(report.scenarios.device_code)) {
    await attempt('paired rounds (device_code, client_credentials)', async () => {
      const { spec, request } = await specFor('device_code', gatehouse.base);
      const vsCc: number[] = [];
      for (let round = 0; round < rounds; round += 1) {
        const [polls, cc] = await inTurn(
          round,
          () => measure(target, { ...spec, seconds: roundSeconds, warmupSeconds: 1 }, { loadCpus: LOAD_CPU, serverCpus: SERVER_CPU, request, dir, backing }),
          () => measure(target, { ...ccRequest(gatehouse.base), seconds: roundSeconds, warmupSeconds: 1 }, { loadCpus: LOAD_CPU, serverCpus: SERVER_CPU, request: ccDescription, dir, backing }),
        );
        if (polls.errors === 0 && cc.rps > 0) vsCc.push(polls.rps / cc.rps);
        log(`paired round ${round + 1}/${rounds}: device-code polls ${polls.rps.toFixed(0)}/s, client credentials ${cc.rps.toFixed(0)}/s`);
      }
      report.paired.device_poll_vs_cc = pairedRatio(vsCc, roundSeconds);
    });
  }
  // Token exchanges between services against client credentials, the same way: an exchange adds a
  // JWT verification and a registry read of the person to "authenticate the client, sign".
  if (selected('token_exchange') && isResult(report.scenarios.token_exchange)) {
    await attempt('paired rounds (token_exchange, client_credentials)', async () => {
      const { spec, request } = await specFor('token_exchange', gatehouse.base);
      const vsCc: number[] = [];
      for (let round = 0; round < rounds; round += 1) {
        const [exchanges, cc] = await inTurn(
          round,
          () => measure(target, { ...spec, seconds: roundSeconds, warmupSeconds: 1 }, { loadCpus: LOAD_CPU, serverCpus: SERVER_CPU, request, dir, backing }),
          () => measure(target, { ...ccRequest(gatehouse.base), seconds: roundSeconds, warmupSeconds: 1 }, { loadCpus: LOAD_CPU, serverCpus: SERVER_CPU, request: ccDescription, dir, backing }),
        );
        if (exchanges.errors === 0 && cc.rps > 0) vsCc.push(exchanges.rps / cc.rps);
        log(`paired round ${round + 1}/${rounds}: token exchange ${exchanges.rps.toFixed(0)}/s, client credentials ${cc.rps.toFixed(0)}/s`);
      }
      report.paired.token_exchange_vs_cc = pairedRatio(vsCc, roundSeconds);
    });
  }
  // DPoP against plain client credentials in paired rounds on the same server (in turn, alternating
  // which goes first): the same client and token, plus a proof to verify and its jti to remember.
  if (selected('client_credentials_dpop') && isResult(report.scenarios.client_credentials_dpop)) {
    await attempt('paired rounds (client_credentials_dpop, client_credentials)', async () => {
      const vsCc: number[] = [];
      for (let round = 0; round < rounds; round += 1) {
        // Proofs of their own each round: each is accepted once.
        const { spec, request } = await specFor('client_credentials_dpop', gatehouse.base);
        const [dpop, cc] = await inTurn(
          round,
          () => measure(target, { ...spec, seconds: roundSeconds, warmupSeconds: 1 }, { loadCpus: LOAD_CPU, serverCpus: SERVER_CPU, request, dir, backing }),
          () => measure(target, { ...ccRequest(gatehouse.base), seconds: roundSeconds, warmupSeconds: 1 }, { loadCpus: LOAD_CPU, serverCpus: SERVER_CPU, request: ccDescription, dir, backing }),
        );
        if (dpop.errors === 0 && cc.rps > 0) vsCc.push(dpop.rps / cc.rps);
        log(`paired round ${round + 1}/${rounds}: client credentials with DPoP ${dpop.rps.toFixed(0)}/s, without ${cc.rps.toFixed(0)}/s`);
      }
      report.paired.dpop_vs_cc = pairedRatio(vsCc, roundSeconds);
    });
  }
  // The console's first load in Chromium (on the load generator's CPU), beside the sign-in page's own load.
  if (selected('console_first_load')) {
    const measured = await attempt('console_first_load', () => consoleFirstLoad(gatehouse.base));
    report.console = measured ?? { error: lastError.slice(0, 2000) };
    if (measured) log(`console_first_load: signed in ${measured.signed_in_ms} ms (login page ${measured.login_page_ms} ms), JS+CSS ${measured.js_css_transfer_bytes} bytes on the wire`);
  }

  /**
   * An administrator who signs in to the console once in the browser (password, an authenticator
   * app enrolled on the way, as the console requires a second factor), then the first loads measured
   * with that Gatehouse session in fresh contexts (bench/console-load.ts).
   */
  async function consoleFirstLoad(base: string): Promise<ConsoleLoadResult> {
    const person = { email: `bench-console-${randomBytes(4).toString('hex')}@example.test`, password: PASSWORD };
    await cli(['users', 'create', '--email', person.email, '--password-stdin', '--role', 'admin'], person.password);
    const browser = await launchChromium();
    try {
      const context = await freshContext(browser);
      await firstConsoleSignIn(await context.newPage(), base, person, async (secret) => {
        // The enrolment takes the previous step's code (as totpEnrolmentSignIn does), never one about to expire.
        const left = TOTP_STEP_SECONDS * 1000 - (Date.now() % (TOTP_STEP_SECONDS * 1000));
        if (left < 5000) await sleep(left + 50);
        return generateTotp({ secret, epoch: Math.floor(Date.now() / 1000) - TOTP_STEP_SECONDS });
      });
      const session = await context.storageState();
      await context.close();
      const discovery = (await (await fetch(`${base}/.well-known/openid-configuration`)).json()) as { authorization_endpoint: string };
      const loginUrl = new URL(discovery.authorization_endpoint);
      loginUrl.search = new URLSearchParams({
        client_id: 'gatehouse-console',
        redirect_uri: `${base}/console/callback`,
        response_type: 'code',
        scope: 'openid admin',
        resource: `${base}/admin/v1`,
        code_challenge: randomBytes(32).toString('base64url'),
        code_challenge_method: 'S256',
        state: randomBytes(16).toString('base64url'),
      }).toString();
      return await measureConsoleFirstLoad({ browser, base, session, loginUrl: loginUrl.href, rounds: quick ? 2 : 7 });
    } finally {
      await browser.close();
    }
  }
  await stopChild(gatehouse.child, 15_000);

  // The same client_credentials load with a log line per request (to /dev/null: a log pipe costs more).
  if (selected('client_credentials_log_info')) await attempt('LOG_LEVEL=info', async () => {
    log('starting gatehouse (1 process, LOG_LEVEL=info, stdout to /dev/null)');
    const server = await startGatehouse({ ...env, LOG_LEVEL: 'info' }, port, { cpus: SERVER_CPU, quietStdout: true });
    try {
      await warmUp(server.base, ccAuth);
      await scenario('client_credentials_log_info', { pid: server.child.pid!, label: 'gatehouse, 1 process, CPU 0, LOG_LEVEL=info' }, ccRequest(server.base), `${ccDescription}; LOG_LEVEL=info`);
    } finally {
      await stopChild(server.child, 15_000);
    }
  });

  // Two workers on both CPUs; the load generator shares them.
  if (selected('client_credentials_workers2')) await attempt('GATEHOUSE_WORKERS=2', async () => {
    log('starting gatehouse (GATEHOUSE_WORKERS=2 on both CPUs)');
    const server = await startGatehouse({ ...env, GATEHOUSE_WORKERS: '2' }, port, { cpus: pinned ? ALL_CPUS : undefined });
    // A one-process server beside it, idle while the other runs, for paired rounds.
    const singlePort = await freePort();
    // Its own issuer (the Host is pinned to it) and its own metrics port (METRICS_PORT is bound by each server).
    const singleEnv = { ...env, PORT: String(singlePort), ISSUER: `http://localhost:${singlePort}`, METRICS_PORT: String(await freePort()) };
    const single = await startGatehouse(singleEnv, singlePort, { cpus: SERVER_CPU });
    try {
      await warmUp(server.base, ccAuth);
      await warmUp(single.base, ccAuth);
      await scenario(
        'client_credentials_workers2',
        { pid: server.child.pid!, label: 'gatehouse, primary + 2 workers, CPUs 0-1 shared with the load generator' },
        ccRequest(server.base),
        `${ccDescription}; GATEHOUSE_WORKERS=2`,
        pinned ? ALL_CPUS : undefined,
        pinned ? ALL_CPUS : undefined,
      );
      const vsOne: number[] = [];
      for (let round = 0; round < rounds; round += 1) {
        const both = () => roundMeasure(server.child.pid!, 'workers=2', server.base, pinned ? ALL_CPUS : undefined, pinned ? ALL_CPUS : undefined);
        const one = () => roundMeasure(single.child.pid!, '1 process', single.base);
        const [w2, w1] = await inTurn(round, both, one);
        vsOne.push(w2.rps / w1.rps);
        log(`paired round ${round + 1}/${rounds}: 2 workers ${w2.rps.toFixed(0)}/s, 1 process ${w1.rps.toFixed(0)}/s`);
      }
      report.paired.workers2_vs_1 = pairedRatio(vsOne, roundSeconds);
    } finally {
      await stopChild(single.child, 15_000);
      await stopChild(server.child, 15_000);
    }
  });

  const s = report.scenarios;
  const rpsOf = (name: string) => (isResult(s[name]) ? (s[name] as ScenarioResult).rps : null);
  const ccRps = rpsOf('client_credentials');
  const refs = report.references;
  const consoleLoad = report.console && !('error' in report.console) ? report.console : undefined;
  report.ratios = {
    cc_vs_sign: report.paired.cc_vs_sign?.median ?? (ccRps !== null && refs.openssl_rsa2048_sign_per_s ? ccRps / refs.openssl_rsa2048_sign_per_s : null),
    cc_vs_jose_sign: ccRps !== null && refs.jose_rs256_sign_per_s ? ccRps / refs.jose_rs256_sign_per_s : null,
    cc_vs_upstream:
      report.paired.cc_vs_upstream_cpu?.median ??
      report.paired.cc_vs_upstream?.median ??
      (ccRps !== null && refs.upstream_client_credentials_rps ? ccRps / refs.upstream_client_credentials_rps : null),
    cc_vs_upstream_rps: report.paired.cc_vs_upstream?.median ?? null,
    workers2_vs_1:
      report.paired.workers2_vs_1?.median ?? (ccRps !== null && rpsOf('client_credentials_workers2') !== null ? rpsOf('client_credentials_workers2')! / ccRps : null),
    log_info_vs_warn: ccRps !== null && rpsOf('client_credentials_log_info') !== null ? rpsOf('client_credentials_log_info')! / ccRps : null,
    refresh_vs_sign: report.paired.refresh_vs_sign?.median ?? null,
    totp_vs_authorization_code: rpsOf('totp') !== null && rpsOf('authorization_code') ? rpsOf('totp')! / rpsOf('authorization_code')! : null,
    passkey_vs_authorization_code: rpsOf('passkey') !== null && rpsOf('authorization_code') ? rpsOf('passkey')! / rpsOf('authorization_code')! : null,
    reset_vs_authorization_code: rpsOf('reset') !== null && rpsOf('authorization_code') ? rpsOf('reset')! / rpsOf('authorization_code')! : null,
    api_key_vs_cc: report.paired.api_key_vs_cc?.median ?? (rpsOf('api_key_exchange') !== null && ccRps ? rpsOf('api_key_exchange')! / ccRps : null),
    device_poll_vs_cc: report.paired.device_poll_vs_cc?.median ?? (rpsOf('device_code') !== null && ccRps ? rpsOf('device_code')! / ccRps : null),
    token_exchange_vs_cc: report.paired.token_exchange_vs_cc?.median ?? (rpsOf('token_exchange') !== null && ccRps ? rpsOf('token_exchange')! / ccRps : null),
    dpop_vs_cc: report.paired.dpop_vs_cc?.median ?? (rpsOf('client_credentials_dpop') !== null && ccRps ? rpsOf('client_credentials_dpop')! / ccRps : null),
    console_vs_login_page: consoleLoad ? consoleLoad.signed_in_ms / consoleLoad.login_page_ms : null,
  };
  notes.push(
    "PostgreSQL and Redis run on this machine: while a scenario is measured, the server's PostgreSQL backends and Redis are moved to the load generator's CPU (CPU 1), so that their work for a request is not charged to the server's CPU, as it would not be with them on machines of their own; PostgreSQL's background processes stay unpinned.",
    'GATEHOUSE_WORKERS=2 runs on both CPUs and the load generator shares them (its CPU % is in the table); workers2_vs_1 divides it by a pinned one-process server.',
    `The ratios cc ÷ openssl, workers2 ÷ 1, refresh per openssl signature and the rate rounds of cc ÷ upstream are medians of paired rounds: ${roundSeconds} s of one side, then ${roundSeconds} s of the other (alternating which goes first), repeated, with both servers up and the idle one waiting; the long runs in the first table are single ${seconds} s windows and drift with the machine.`,
    `cc ÷ upstream is the median of side-by-side rounds: both servers on the server CPU at once for ${roundSeconds} s, each loaded by its own load generator, compared by tokens per CPU-second (server CPU per token, the upstream's over Gatehouse's): the rate each would reach with the core to itself, measured at the same moments, so that the machine's drift, which moves the paired rate rounds by more than the difference being measured, cancels. The rate rounds are reported beside it.`,
    'Server CPU counts every thread of the server process (libuv pool: RSA signing, argon2id), from /proc/<pid>/stat; latency percentiles come from autocannon in whole milliseconds.',
  );
  if (busyBeforeStart >= 10) {
    notes.push(`The machine was busy before the run started (${busyBeforeStart}% of its CPUs in use by other programs): expect lower and noisier numbers, and see "others on server CPU" for each scenario.`);
  }
  report.duration_s = (performance.now() - startedAt) / 1000;
  // The hypervisor's steal over the whole run, as a share of all CPUs: the host's own load.
  const stolenPct = Math.round(((cpusTimeMs(undefined).stolen - stolen0) / (report.duration_s * 1000 * cpuCount)) * 100);
  report.settings.stolen_during_run_pct = stolenPct;
  if (stolenPct >= 3) {
    notes.push(`The host took ${stolenPct}% of this virtual machine's CPU time during the run (steal): its CPUs were slower than usual and by varying amounts; see "stolen %" per scenario.`);
  }
  report.targets = evaluateTargets(report);
  if (failed.length > 0) notes.push(`Failed: ${failed.join(', ')} (see the run's output).`);

  await writeFile(path.join(outDir, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(path.join(outDir, 'latest.md'), `${renderMarkdown(report)}\n`);
  log(`wrote ${path.join(outDir, 'latest.json')} and latest.md in ${report.duration_s.toFixed(0)} s`);
  process.stdout.write(`${renderMarkdown(report)}\n`);
  return failed.length > 0 ? 1 : 0;
}

let code = 1;
try {
  code = await main();
} catch (error) {
  log(`failed: ${(error as Error).stack ?? (error as Error).message}`);
} finally {
  await cleanup();
}
process.exit(code);
