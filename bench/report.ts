import type { ConsoleLoadResult } from './console-load.js';

// What a run writes: the JSON document (bench/results/latest.json) and its Markdown table.

export interface ScenarioResult {
  /** Requests per second (authorization_code: sign-ins per second, each a whole flow). */
  rps: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  /** Server CPU (user + system, all its threads) per 1,000 requests (authorization_code: per 1,000 sign-ins). */
  cpu_ms_per_1k: number;
  rss_peak_mb: number;
  requests: number;
  seconds: number;
  connections: number;
  /** The load generator's CPU as a share of one core: near 100% it, not the server, was the limit. */
  loadgen_cpu_pct: number;
  /** Server CPU used during the window as a share of one core. */
  server_cpu_pct: number;
  /**
   * CPU time used on the server's CPUs by everything else (PostgreSQL, Redis, other programs on the
   * machine; the load generator where it shares them), as a share of one core.
   */
  others_on_server_cpus_pct: number;
  /**
   * Time the hypervisor gave the server's virtual CPUs to other machines during the window (steal,
   * from /proc/stat), as a share of one core: a busy host slows everything down by about this much.
   */
  stolen_on_server_cpus_pct?: number;
  /** PostgreSQL transactions (each autocommit query is one) per request, from pg_stat_database; approximate. */
  db_queries_per_request?: number;
  status_codes: Record<string, number>;
  server: string;
  request: string;
  logins_per_s?: number;
  http_rps?: number;
  pool_exhausted?: number;
  first_error?: string;
  /** TOTP sign-ins: the people in the pool (one code each per 30 s step), and the measured flows that waited for a new step to find one. */
  pool_people?: number;
  flows_waited?: number;
}

export interface Target {
  name: string;
  target: string;
  value: string;
  pass: boolean | null;
}

export interface BenchReport {
  quick: boolean;
  date: string;
  node: string;
  cpu: string;
  cpus: number;
  commit: string;
  settings: Record<string, unknown>;
  ready_ms: number | null;
  rss_idle_mb: number | null;
  scenarios: Record<string, ScenarioResult | { error: string }>;
  references: {
    jose_rs256_sign_per_s: number | null;
    node_crypto_rs256_sign_per_s: number | null;
    openssl_rsa2048_sign_per_s: number | null;
    upstream_client_credentials_rps: number | null;
    upstream?: ScenarioResult | { error: string };
    notes: string[];
  };
  /**
   * Ratios measured in alternating short rounds (A, B, A, B…), so that the machine's drift hits
   * both sides alike; the official ratio is the median round.
   */
  paired: Partial<Record<'cc_vs_upstream' | 'cc_vs_upstream_cpu' | 'cc_vs_sign' | 'workers2_vs_1' | 'refresh_vs_sign' | 'api_key_vs_cc' | 'token_exchange_vs_cc' | 'dpop_vs_cc' | 'device_poll_vs_cc', PairedRatio>>;
  ratios: {
    cc_vs_sign: number | null;
    cc_vs_jose_sign: number | null;
    /** Tokens per CPU-second against the upstream's, both loaded at once on the one CPU (side-by-side rounds). */
    cc_vs_upstream: number | null;
    /** Requests per second against the upstream's, in paired rounds one after the other. */
    cc_vs_upstream_rps: number | null;
    workers2_vs_1: number | null;
    log_info_vs_warn: number | null;
    /** Refresh rotations per openssl RSA-2048 signature of the same CPU (each rotation signs two tokens). */
    refresh_vs_sign: number | null;
    /** Sign-ins with password and TOTP per second over sign-ins with a password alone, both whole flows, in one run. */
    totp_vs_authorization_code: number | null;
    passkey_vs_authorization_code: number | null;
    /** Password resets (request, mail, new password) per password sign-in flow, same run. */
    reset_vs_authorization_code: number | null;
    /** Personal API key exchanges per second over client-credentials tokens per second, in paired rounds on one server. */
    api_key_vs_cc: number | null;
    /** Polls of pending device codes (authorization_pending) per second over client-credentials tokens per second, in paired rounds on one server. */
    device_poll_vs_cc: number | null;
    /** Token exchanges between services (a person's access token for another API's) per second over client-credentials tokens per second, paired rounds. */
    token_exchange_vs_cc: number | null;
    /** Client credentials with a DPoP proof per request over plain client credentials, tokens/s, in paired rounds on one server. */
    dpop_vs_cc: number | null;
    /** The console's signed-in first load (until the Overview's figures show) over the sign-in page's own load, both in fresh Chromium contexts, medians of rounds in turn. */
    console_vs_login_page: number | null;
  };
  /** The console's first load in Chromium (bench/console-load.ts), beside the sign-in page's. */
  console?: ConsoleLoadResult | { error: string };
  targets: Target[];
  notes: string[];
  duration_s: number;
}

export interface PairedRatio {
  median: number;
  min: number;
  max: number;
  rounds: number[];
  round_seconds: number;
}

/** Median and spread of per-round ratios. */
export function pairedRatio(rounds: number[], roundSeconds: number): PairedRatio | undefined {
  if (rounds.length === 0) return undefined;
  const sorted = [...rounds].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, rounds, round_seconds: roundSeconds };
}

export function isResult(value: ScenarioResult | { error: string } | undefined): value is ScenarioResult {
  return value !== undefined && !('error' in value);
}

const fmt = (value: number | null | undefined, digits = 0) =>
  value === null || value === undefined || !Number.isFinite(value) ? '–' : value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

const ratio = (value: number | null | undefined) => (value === null || value === undefined ? '–' : `${value.toFixed(2)}×`);
// Against a target, shown rounded down: a value shown as 1.70× or 45% has reached a target of that figure.
const down = (value: number, digits: number) => Math.floor(value * 10 ** digits) / 10 ** digits;
const ratioDown = (value: number) => `${down(value, 2).toFixed(2)}×`;

/** Checks the numbers against the targets of the issue. */
export function evaluateTargets(report: BenchReport): Target[] {
  const s = report.scenarios;
  const cc = s.client_credentials;
  const refresh = s.refresh_token;
  const code = s.authorization_code;
  const check = (name: string, target: string, value: number | null | undefined, pass: (v: number) => boolean, show: (v: number) => string): Target => ({
    name,
    target,
    value: value === null || value === undefined ? 'not measured' : show(value),
    pass: value === null || value === undefined ? null : pass(value),
  });
  const singlePeaks = Object.entries(s)
    .filter(([name, value]) => isResult(value) && !name.includes('workers'))
    .map(([, value]) => (value as ScenarioResult).rss_peak_mb);
  return [
    check('client credentials vs upstream oidc-provider', '≥ 1.0×', report.ratios.cc_vs_upstream, (v) => v >= 1.0, ratioDown),
    check('client credentials vs openssl RSA-2048 sign/s', '≥ 45%', report.ratios.cc_vs_sign, (v) => v >= 0.45, (v) => `${(down(v, 2) * 100).toFixed(0)}%`),
    check('GATEHOUSE_WORKERS=2 vs 1 (client credentials)', '≥ 1.7×', report.ratios.workers2_vs_1, (v) => v >= 1.7, ratioDown),
    check('refresh_token rotation rate', '≥ 800/s', isResult(refresh) ? refresh.rps : null, (v) => v >= 800, (v) => `${fmt(v)}/s`),
    check('refresh_token p99', '≤ 50 ms', isResult(refresh) ? refresh.p99_ms : null, (v) => v <= 50, (v) => `${fmt(v, 1)} ms`),
    check('sign-ins (authorization code, whole flow)', '≥ 25/s', isResult(code) ? code.rps : null, (v) => v >= 25, (v) => `${fmt(v, 1)}/s`),
    check('idle RSS', '≤ 150 MB', report.rss_idle_mb, (v) => v <= 150, (v) => `${fmt(v)} MB`),
    check('peak RSS (one process, any scenario)', '≤ 300 MB', singlePeaks.length > 0 ? Math.max(...singlePeaks) : null, (v) => v <= 300, (v) => `${fmt(v)} MB`),
    check('ready (spawn → /readyz 200)', '≤ 1.5 s', report.ready_ms, (v) => v <= 1500, (v) => `${fmt(v)} ms`),
    check('client credentials errors', '0', isResult(cc) ? cc.errors : null, (v) => v === 0, (v) => fmt(v)),
    check(
      'console first load: JavaScript + CSS, compressed, on the wire',
      '≤ 150 kB',
      report.console && !('error' in report.console) ? report.console.js_css_transfer_bytes : null,
      (v) => v <= 150_000,
      (v) => `${(v / 1000).toFixed(1)} kB`,
    ),
  ];
}

const LABELS: Record<string, string> = {
  client_credentials: 'client_credentials (client_secret_basic) → JWT',
  private_key_jwt: 'client_credentials (private_key_jwt) → JWT',
  refresh_token: 'refresh_token rotation',
  authorization_code: 'authorization code + sign-in (per flow)',
  totp: 'authorization code + sign-in with password and TOTP (per flow)',
  passkey: 'authorization code + sign-in with a passkey, no password (per flow)',
  jwks: 'GET /jwks',
  discovery: 'GET /.well-known/openid-configuration',
  introspection: 'introspection of a refresh token',
  client_credentials_log_info: 'client_credentials, LOG_LEVEL=info',
  client_credentials_workers2: 'client_credentials, GATEHOUSE_WORKERS=2 (2 cores)',
};

export function renderMarkdown(report: BenchReport): string {
  const lines: string[] = [];
  lines.push(`# Gatehouse benchmark${report.quick ? ' (quick)' : ''}`);
  lines.push('');
  const busy = [
    typeof report.settings.busy_before_start_pct === 'number' ? ` · CPUs busy with other programs before the start: ${report.settings.busy_before_start_pct}%` : '',
    typeof report.settings.stolen_during_run_pct === 'number' ? ` · CPU time taken by the host (steal) during the run: ${report.settings.stolen_during_run_pct}%` : '',
  ].join('');
  lines.push(`${report.date} · Node ${report.node} · ${report.cpu} × ${report.cpus} · commit ${report.commit} · run took ${fmt(report.duration_s)} s${busy}`);
  lines.push('');
  lines.push(
    `Server on CPU 0, load generator on CPU 1 (unless noted), real PostgreSQL and Redis (the server's backends and Redis on the load generator's CPU while measured), ${report.settings.seconds} s per scenario after ${report.settings.warmup_seconds} s of warm-up on the same connections, LOG_LEVEL=${report.settings.log_level}${typeof report.settings.node_options === 'string' && report.settings.node_options ? `, Gatehouse and the upstream both on \`node ${report.settings.node_options}\`` : ''}. This machine drifts ±30%: compare the ratios, which are measured side by side in the same run.`,
  );
  lines.push('');
  lines.push('| scenario | req/s | p50 ms | p99 ms | errors | server CPU ms / 1k req | server CPU % | peak RSS MB | load gen CPU % | others on server CPU % | stolen % | SQL per req |');
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const row = (label: string, value: ScenarioResult | { error: string } | undefined) => {
    if (!value) return;
    if (!isResult(value)) {
      lines.push(`| ${label} | failed: ${value.error.split('\n')[0]?.slice(0, 120)} | | | | | | | | | | |`);
      return;
    }
    lines.push(
      `| ${label} | ${fmt(value.rps, value.rps < 100 ? 1 : 0)} | ${fmt(value.p50_ms, 1)} | ${fmt(value.p99_ms, 1)} | ${fmt(value.errors)} | ${fmt(value.cpu_ms_per_1k)} | ${fmt(value.server_cpu_pct)} | ${fmt(value.rss_peak_mb)} | ${fmt(value.loadgen_cpu_pct)} | ${fmt(value.others_on_server_cpus_pct)} | ${fmt(value.stolen_on_server_cpus_pct)} | ${fmt(value.db_queries_per_request, 1)} |`,
    );
  };
  for (const [name, value] of Object.entries(report.scenarios)) row(LABELS[name] ?? name, value);
  row('upstream: bare oidc-provider, client_credentials → JWT', report.references.upstream);
  lines.push('');
  lines.push(
    'Server CPU: user + system time of the server process, all its threads (the libuv pool signs RSA and hashes argon2id), from /proc; % is of one core. Others on server CPU: time the rest of the machine (PostgreSQL, Redis, other programs) used on the server\'s CPU during the window. Stolen: time the hypervisor gave the server\'s virtual CPU to other machines (steal in /proc/stat); where it is more than a few percent, the host was busy and every number of that row is lower and noisier. Load gen CPU near 100% would mean the load generator, not the server, was the limit. SQL per req: PostgreSQL transactions per request (each autocommit query is one), from pg_stat_database, approximate.',
  );
  lines.push('');
  const code = report.scenarios.authorization_code;
  if (isResult(code)) {
    lines.push(
      `authorization_code: req/s is sign-ins per second (${fmt(code.http_rps)} HTTP requests/s: authorize, login page, login POST, resume, token), latency is the whole flow, CPU is per 1,000 sign-ins.`,
    );
    lines.push('');
  }
  const totp = report.scenarios.totp;
  if (isResult(totp)) {
    lines.push(
      `totp: as authorization_code, plus the second-factor page and a code POST (${fmt(totp.http_rps)} HTTP requests/s); a pool of ${fmt(totp.pool_people)} people, each person's code used at most once per 30 s step; ${fmt(totp.flows_waited)} measured flows waited for a new step to find a person${totp.flows_waited ? ' (so the rate is below what the server could do: the pool was too small for this run)' : ''}.`,
    );
    lines.push('');
  }
  const passkey = report.scenarios.passkey;
  if (isResult(passkey)) {
    lines.push(
      `passkey: as authorization_code with no password: the passkey options request (JSON) and the assertion POST instead of the login POST (${fmt(passkey.http_rps)} HTTP requests/s, ${fmt(typeof passkey.http_rps === 'number' && passkey.rps > 0 ? passkey.http_rps / passkey.rps : null, 1)} per flow); no argon2id, an ES256 verify and the counter's UPDATE instead; the emulator signs in the load generator.`,
    );
    lines.push('');
  }
  const consoleLoad = report.console;
  if (consoleLoad && 'error' in consoleLoad) {
    lines.push(`console first load: failed: ${consoleLoad.error.split('\n')[0]?.slice(0, 200)}`);
    lines.push('');
  } else if (consoleLoad) {
    const kb = (bytes: number) => `${(bytes / 1000).toFixed(1)} kB`;
    lines.push('| console first load (Chromium, fresh context each time, medians of ' + consoleLoad.rounds + ' rounds in turn) | value |');
    lines.push('|---|---:|');
    lines.push(`| signed in (Gatehouse session cookie only): /console → Overview's figures, ms | ${fmt(consoleLoad.signed_in_ms)} |`);
    lines.push(`| … → Overview's heading, ms | ${fmt(consoleLoad.heading_ms)} |`);
    lines.push(`| anonymous: /console → the sign-in page's password field, ms | ${fmt(consoleLoad.anonymous_ms)} |`);
    lines.push(`| reference: the sign-in page alone (the console's /authorize URL) → password field, ms | ${fmt(consoleLoad.login_page_ms)} |`);
    lines.push(`| JavaScript + CSS on the wire (${consoleLoad.js_css_encodings.join(', ')}), ${consoleLoad.files.length} files | ${kb(consoleLoad.js_css_transfer_bytes)} |`);
    lines.push(`| the same files gzipped here (default level) | ${kb(consoleLoad.js_css_gzip_bytes)} |`);
    lines.push(`| everything the signed-in load transferred (${consoleLoad.requests} requests) | ${kb(consoleLoad.total_transfer_bytes)} |`);
    lines.push(`| the sign-in page's own JavaScript + CSS on the wire | ${kb(consoleLoad.login_page_js_css_transfer_bytes)} |`);
    lines.push('');
  }
  lines.push('| reference | value |');
  lines.push('|---|---:|');
  lines.push(`| openssl speed rsa2048, sign/s (one core) | ${fmt(report.references.openssl_rsa2048_sign_per_s)} |`);
  lines.push(`| jose SignJWT RS256, same claims, one thread, signs/s | ${fmt(report.references.jose_rs256_sign_per_s)} |`);
  lines.push(`| node:crypto.sign RS256, same claims, signs/s | ${fmt(report.references.node_crypto_rs256_sign_per_s)} |`);
  lines.push(`| upstream oidc-provider (in-memory, static client), client_credentials req/s | ${fmt(report.references.upstream_client_credentials_rps)} |`);
  lines.push(`| idle RSS after start and a few requests, MB | ${fmt(report.rss_idle_mb)} |`);
  lines.push(`| ready: spawn → /readyz 200, ms | ${fmt(report.ready_ms)} |`);
  lines.push('');
  lines.push('| ratio | value |');
  lines.push('|---|---:|');
  const pct = (v: number) => `${(v * 100).toFixed(0)}%`;
  const spread = (paired: PairedRatio | undefined, show: (v: number) => string) =>
    paired ? ` (median of ${paired.rounds.length} paired rounds of ${paired.round_seconds} s; ${show(paired.min)}–${show(paired.max)})` : '';
  lines.push(`| client credentials ÷ openssl sign/s | ${report.ratios.cc_vs_sign === null ? '–' : pct(report.ratios.cc_vs_sign)}${spread(report.paired.cc_vs_sign, pct)} |`);
  lines.push(`| client credentials ÷ jose sign/s | ${report.ratios.cc_vs_jose_sign === null ? '–' : `${(report.ratios.cc_vs_jose_sign * 100).toFixed(0)}%`} |`);
  const sideBySide = report.paired.cc_vs_upstream_cpu;
  lines.push(
    `| client credentials ÷ upstream, tokens per CPU-second | ${ratio(report.ratios.cc_vs_upstream)}${sideBySide ? ` (median of ${sideBySide.rounds.length} side-by-side rounds of ${sideBySide.round_seconds} s; ${ratio(sideBySide.min)}–${ratio(sideBySide.max)})` : ''} |`,
  );
  lines.push(`| client credentials ÷ upstream, req/s | ${ratio(report.ratios.cc_vs_upstream_rps)}${spread(report.paired.cc_vs_upstream, ratio)} |`);
  lines.push(`| GATEHOUSE_WORKERS=2 ÷ 1 worker | ${ratio(report.ratios.workers2_vs_1)}${spread(report.paired.workers2_vs_1, ratio)} |`);
  lines.push(`| LOG_LEVEL=info ÷ warn (client credentials) | ${ratio(report.ratios.log_info_vs_warn)} |`);
  const per1k = (v: number) => `${(v * 1000).toFixed(0)}`;
  lines.push(`| sign-ins with password + TOTP ÷ with password alone (whole flows, same run) | ${ratio(report.ratios.totp_vs_authorization_code)} |`);
  lines.push(`| sign-ins with a passkey ÷ with a password (whole flows, same run) | ${ratio(report.ratios.passkey_vs_authorization_code)} |`);
  lines.push(`| password resets through the mail ÷ password sign-ins (whole flows, same run) | ${ratio(report.ratios.reset_vs_authorization_code)} |`);
  lines.push(`| API key exchanges ÷ client credentials, tokens/s | ${ratio(report.ratios.api_key_vs_cc)}${spread(report.paired.api_key_vs_cc, ratio)} |`);
  lines.push(`| device-code polls (pending) ÷ client credentials, answers/s | ${ratio(report.ratios.device_poll_vs_cc)}${spread(report.paired.device_poll_vs_cc, ratio)} |`);
  lines.push(`| token exchanges between services ÷ client credentials, tokens/s | ${ratio(report.ratios.token_exchange_vs_cc)}${spread(report.paired.token_exchange_vs_cc, ratio)} |`);
  lines.push(`| client credentials with a DPoP proof ÷ without, tokens/s | ${ratio(report.ratios.dpop_vs_cc)}${spread(report.paired.dpop_vs_cc, ratio)} |`);
  lines.push(`| console signed-in first load ÷ the sign-in page's load (time) | ${ratio(report.ratios.console_vs_login_page)} |`);
  lines.push(`| refresh rotations per 1,000 openssl signatures (two RS256 tokens each) | ${report.ratios.refresh_vs_sign === null ? '–' : per1k(report.ratios.refresh_vs_sign)}${spread(report.paired.refresh_vs_sign, per1k)} |`);
  lines.push('');
  lines.push('| target | wanted | measured | |');
  lines.push('|---|---|---:|---|');
  for (const target of report.targets) {
    lines.push(`| ${target.name} | ${target.target} | ${target.value} | ${target.pass === null ? '?' : target.pass ? '✓' : '✗'} |`);
  }
  lines.push('');
  const notes = [...report.references.notes, ...report.notes];
  if (notes.length > 0) {
    lines.push('Notes:');
    lines.push('');
    for (const note of notes) lines.push(`- ${note}`);
    lines.push('');
  }
  return `${lines.join('\n')}`;
}
