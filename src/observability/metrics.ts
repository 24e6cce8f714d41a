import http from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { isGrantType } from '../config/protocol.js';

/** The grant_type label of the token counters: a grant Gatehouse serves, else `other`. */
const grantLabel = (grantType: string) => (isGrantType(grantType) ? grantType : 'other');

/** Where a dependency's time went: the registry database or the ephemeral store. */
export type DependencyName = 'database' | 'store';

/** A second factor's kind, as gatehouse_second_factors_total labels it. */
export type SecondFactorMethod = 'totp' | 'recovery_code' | 'passkey';
/** What became of a second factor: accepted, refused (a wrong or reused code), or not checked because wrong codes locked the account or IP out. */
export type SecondFactorOutcome = 'success' | 'failure' | 'locked';

/**
 * Gatehouse's Prometheus metrics, one registry per server (so several servers in one process, as
 * in the tests, do not mix their numbers). Label values come from fixed sets, never from raw request
 * input, so the number of series stays bounded: a token's `client_id` label is the client's id only
 * for the clients named in `clientIds` (METRICS_CLIENT_IDS), `other` for every other one (dynamic
 * registration would otherwise add a series per client, kept after the client is gone).
 */
export interface Metrics {
  readonly registry: Registry;
  tokenIssued(grantType: string, clientId: string): void;
  /** Tokens issued by this process since it started (every grant type and client): what gatehouse_tokens_issued_total sums to. */
  tokensIssuedTotal(): number;
  tokenError(grantType: string, error: string): void;
  signIn(outcome: 'success' | 'failure' | 'locked' | 'csrf'): void;
  /** A request refused by a rate limit: the sign-in limiter or the second-factor one (each per account and per IP); password reset per IP (429) and per address (the neutral page, no mail). */
  rateLimited(limiter: 'sign_in' | 'mfa' | 'upstream_start' | 'reset_ip' | 'reset_address' | 'signup_ip' | 'api_key' | 'device'): void;
  /** A second factor given at sign-in or confirmed at enrolment, by method and outcome (input that is no code of any kind is not counted). */
  secondFactor(method: SecondFactorMethod, outcome: SecondFactorOutcome): void;
  /** One outcome of one mail (sent, written to the outbox, retried, failed, refused), by kind (password_reset, …). */
  mail(kind: string, outcome: 'sent' | 'written' | 'retried' | 'failed' | 'refused'): void;
  request(route: string, method: string, status: number, seconds: number): void;
  /** One outcome of one back-channel logout delivery (delivered, retried, failed after the last attempt or refused by the app, refused: not queued). */
  backchannelLogout(outcome: 'delivered' | 'retried' | 'failed' | 'refused'): void;
  dependency(name: DependencyName, operation: string, seconds: number, failed: boolean): void;
}

const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']);

/**
 * @example
 * const metrics = createMetrics({ keyAges: async () => [{ kid, status: 'active', ageSeconds }], clientIds: config.metricsClientIds });
 * metrics.tokenIssued('client_credentials', client.clientId);
 * ctx.body = await metrics.registry.metrics();
 */
export function createMetrics(
  deps: { keyAges?: () => Promise<Array<{ kid: string; status: string; ageSeconds: number }>>; clientIds?: readonly string[] } = {},
): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'gatehouse_' });
  const registers = [registry];

  const tokens = new Counter({
    name: 'gatehouse_tokens_issued_total',
    help: 'Token endpoint successes, by grant type and client (client_id is "other" for every client not listed in METRICS_CLIENT_IDS).',
    labelNames: ['grant_type', 'client_id'] as const,
    registers,
  });
  const tokenErrors = new Counter({
    name: 'gatehouse_token_errors_total',
    help: 'Token endpoint errors, by grant type and OAuth error code.',
    labelNames: ['grant_type', 'error'] as const,
    registers,
  });
  const signIns = new Counter({
    name: 'gatehouse_sign_ins_total',
    help: 'Sign-in attempts on the login page, by outcome.',
    labelNames: ['outcome'] as const,
    registers,
  });
  const rateLimited = new Counter({
    name: 'gatehouse_rate_limited_total',
    help: 'Requests refused by a rate limit (429), by limiter.',
    labelNames: ['limiter'] as const,
    registers,
  });
  const secondFactors = new Counter({
    name: 'gatehouse_second_factors_total',
    help: 'Second factors given at sign-in or confirmed at enrolment, by method (totp, recovery_code, passkey) and outcome (success, failure, locked).',
    labelNames: ['method', 'outcome'] as const,
    registers,
  });
  const mails = new Counter({
    name: 'gatehouse_mail_total',
    help: 'Mail by kind (password_reset, email_verification, …) and outcome (sent, written to the development outbox, retried, failed after the last attempt, refused: no SMTP_URL in production, or a full queue).',
    labelNames: ['kind', 'outcome'] as const,
    registers,
  });
  const requests = new Histogram({
    name: 'gatehouse_http_request_duration_seconds',
    help: 'HTTP request duration, by route (oidc-provider route name or Gatehouse route pattern), method and status class.',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  const dependencies = new Histogram({
    name: 'gatehouse_dependency_duration_seconds',
    help: 'Time spent waiting on PostgreSQL (database) and Redis (store), by operation and outcome.',
    labelNames: ['dependency', 'operation', 'outcome'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers,
  });
  const { keyAges } = deps;
  if (keyAges) {
    new Gauge({
      name: 'gatehouse_signing_key_age_seconds',
      help: 'Age of each signing key in the keys directory, by kid and state (pending, active, retired).',
      labelNames: ['kid', 'status'] as const,
      registers,
      async collect() {
        this.reset();
        for (const key of await keyAges()) this.set({ kid: key.kid, status: key.status }, key.ageSeconds);
      },
    });
  }

  // Per-request series are looked up once per label combination and kept: prom-client hashes the
  // label object on every call otherwise (a few microseconds on the token path).
  function seriesBy<S>(make: (...labels: string[]) => S): (...labels: string[]) => S {
    const made = new Map<string, S>();
    return (...labels) => {
      const key = labels.join(' ');
      let series = made.get(key);
      if (!series) made.set(key, (series = make(...labels)));
      return series;
    };
  }
  const tokenSeries = seriesBy((grant_type = '', client_id = '') => tokens.labels({ grant_type, client_id }));
  const requestSeries = seriesBy((route = '', method = '', status = '') => requests.labels({ route, method, status }));
  const backchannelLogouts = new Counter({
    name: 'gatehouse_backchannel_logout_total',
    help: 'Back-channel logout deliveries (OpenID Connect Back-Channel Logout 1.0) by outcome: delivered, retried (one per failed attempt that will be tried again), failed (given up, or refused by the app), refused (not queued: a full queue, shutting down).',
    labelNames: ['outcome'] as const,
    registers,
  });
  const dependencySeries = seriesBy((dependency = '', operation = '', outcome = '') => dependencies.labels({ dependency, operation, outcome }));

  const labelledClients = new Set(deps.clientIds);
  // The sum of the token counter's series, kept beside it as a plain number (read by the overview's last-hour window).
  let tokensIssued = 0;
  return {
    registry,
    tokenIssued(grantType, clientId) {
      tokenSeries(grantLabel(grantType), labelledClients.has(clientId) ? clientId : 'other').inc();
      tokensIssued += 1;
    },
    tokensIssuedTotal: () => tokensIssued,
    tokenError(grantType, error) {
      tokenErrors.inc({ grant_type: grantLabel(grantType), error: /^[a-z_]{1,40}$/.test(error) ? error : 'other' });
    },
    signIn(outcome) {
      signIns.inc({ outcome });
    },
    rateLimited(limiter) {
      rateLimited.inc({ limiter });
    },
    mail(kind, outcome) {
      mails.inc({ kind, outcome });
    },
    secondFactor(method, outcome) {
      secondFactors.inc({ method, outcome });
    },
    backchannelLogout(outcome) {
      backchannelLogouts.inc({ outcome });
    },
    request(route, method, status, seconds) {
      requestSeries(route, METHODS.has(method) ? method : 'other', `${Math.floor(status / 100)}xx`).observe(seconds);
    },
    dependency(name, operation, seconds, failed) {
      dependencySeries(name, operation, failed ? 'error' : 'ok').observe(seconds);
    },
  };
}

/**
 * A listener that answers GET /metrics and 404 for anything else: for METRICS_PORT. `server`: an
 * http.Server to answer on instead of a new one (one already listening, as the tests bind port 0).
 */
export function createMetricsServer(metrics: Metrics, server: http.Server = http.createServer()): http.Server {
  return server.on('request', (request: http.IncomingMessage, response: http.ServerResponse) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    metrics.registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': metrics.registry.contentType, 'cache-control': 'no-store' }).end(text),
      () => response.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n'),
    );
  });
}
