import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { isLoopbackHostname } from './protocol.js';
import { envSchema } from './schema.js';

/** The validated, frozen configuration every other module receives. */
export interface Config {
  readonly port: number;
  readonly issuer: string;
  readonly databaseUrl: string | undefined;
  readonly redisUrl: string | undefined;
  readonly keysDir: string;
  readonly dataDir: string;
  readonly cookieKeys: readonly string[];
  /** True when COOKIE_KEYS was unset and random keys were made for this start. */
  readonly cookieKeysGenerated: boolean;
  readonly nodeEnv: 'development' | 'production' | 'test';
  readonly production: boolean;
  readonly logLevel: string;
  readonly trustProxy: boolean;
  /**
   * Behind TRUST_PROXY, how many proxies of ours append to X-Forwarded-For: the client IP is the
   * entry this many places from the right (what a client wrote to the left of it is not trusted).
   */
  readonly proxyHops: number;
  readonly workers: number;
  readonly bodyLimitBytes: number;
  readonly registryPollMs: number;
  readonly keysPollMs: number;
  /** Failed sign-ins allowed per account and per IP within the window before 429. */
  readonly loginLimits: { readonly perAccount: number; readonly perIp: number; readonly windowSeconds: number };
  /** MFA_REQUIRED: every sign-in, for every client, needs a second factor (acr urn:gatehouse:acr:mfa). */
  readonly mfaRequired: boolean;
  /** ACCOUNT_REAUTH_SECONDS: how recent a sign-in must be for sensitive actions on /account. */
  readonly accountReauthSeconds: number;
  /** SIGN_IN_HISTORY_DAYS: how long the sign_ins rows ("Recent sign-ins" on /account) are kept. */
  readonly signInHistoryDays: number;
  /** UPSTREAM_TIMEOUT_SECONDS: how long an upstream OpenID provider is waited for (discovery, token endpoint, JWKS). */
  readonly upstreamTimeoutSeconds: number;
  /** UPSTREAM_MAX_STARTS_PER_IP: sign-ins with an upstream provider one client IP may start per 10 minutes (each keeps a state that long). */
  readonly upstreamMaxStartsPerIp: number;
  /** Dynamic client registration (RFC 7591/7592) with initial access tokens from the CLI. */
  readonly registrationEnabled: boolean;
  /** REQUIRE_PAR: every client's authorization requests only through the pushed authorization request endpoint (RFC 9126). */
  readonly requirePar: boolean;
  /** The longest an initial access token may live (`registration token create --expires-in`); 30 days unless said. */
  readonly registrationTokenMaxTtlSeconds: number;
  /** Serve GET /metrics on this port (all interfaces) instead of the main one; undefined: on the main port (never in production). */
  readonly metricsPort: number | undefined;
  /**
   * Clients whose token counts carry their own `client_id` label value (METRICS_CLIENT_IDS, at most
   * 100); every other client is counted under `client_id="other"`, so the series stay bounded.
   */
  readonly metricsClientIds: readonly string[];
  /**
   * Mail: SMTP_URL (smtp:// or smtps://) and MAIL_FROM. Without smtpUrl, development writes each
   * message as an .eml file under `outboxDir` (DATA_DIR/outbox); production refuses to send.
   */
  readonly mail: { readonly smtpUrl: string | undefined; readonly from: string; readonly outboxDir: string };
  /** SIGNUP_ENABLED: people may create their own account from the sign-in page. */
  readonly signupEnabled: boolean;
  /** RESET_MAX_PER_ADDRESS, RESET_MAX_PER_IP: password resets that may be asked for per address and per client IP within an hour. */
  readonly resetLimits: { readonly perAddress: number; readonly perIp: number };
  /** SIGNUP_MAX_PER_IP: sign-up attempts one client IP may make per hour (each hashes a password and may send a mail). */
  readonly signupMaxPerIp: number;
  /**
   * The device flow (RFC 8628, docs/device-flow.md): DEVICE_CODE_MAX_PER_IP wrong user codes one
   * client IP may type on /device per 15 minutes; DEVICE_CODE_POLL_INTERVAL_SECONDS, the `interval`
   * a device must wait between polls (faster is slow_down); DEVICE_CODE_TTL_SECONDS, how long a
   * device code and its user code live.
   */
  readonly deviceFlow: { readonly maxFailuresPerIp: number; readonly pollIntervalSeconds: number; readonly codeTtlSeconds: number };
  /**
   * CONSOLE_IDLE_TIMEOUT_SECONDS (1800): the console signs an administrator out after this long
   * without activity, and its refresh tokens die after this long unused (docs/console.md).
   */
  readonly consoleIdleTimeoutSeconds: number;
  /** What pages and mail show of the deployment: BRAND_NAME, BRAND_LOGO_URL (+ BRAND_LOGO_ALT), BRAND_COLOR, SUPPORT_URL. */
  readonly brand: Brand;
  /**
   * Back-channel logout deliveries (docs/backchannel-logout.md): how long one attempt waits for the
   * app (BACKCHANNEL_LOGOUT_TIMEOUT_SECONDS, 5) and how many attempts a logout token gets
   * (BACKCHANNEL_LOGOUT_ATTEMPTS, 5).
   */
  readonly backchannelLogout: { readonly timeoutSeconds: number; readonly attempts: number };
  /**
   * DPOP_REQUIRE_NONCE: every DPoP proof (token endpoint, userinfo, PAR) must carry a nonce this
   * server issued (RFC 9449 §8); a proof without one is answered use_dpop_nonce with a DPoP-Nonce.
   */
  readonly dpopRequireNonce: boolean;
}

/** The deployment's own look (see ui/brand.ts for the palettes derived from `color`). */
export interface Brand {
  readonly name: string;
  readonly logoUrl: string | undefined;
  /** The logo's alt text; the brand name unless BRAND_LOGO_ALT says otherwise. */
  readonly logoAlt: string;
  /** #rrggbb */
  readonly color: string;
  readonly supportUrl: string | undefined;
}

/** What is loading the configuration: the server, or a CLI command (which serves nothing). */
export interface LoadOptions {
  /** True (the default) adds the rules that only concern a running server: METRICS_PORT in production. */
  server?: boolean;
}

/** Thrown by loadConfig; `problems` holds one line per offending variable. */
export class ConfigError extends Error {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/**
 * Parses and validates the environment once. Lists every problem it finds.
 *
 * @example
 * const config = loadConfig(process.env);
 */
export function loadConfig(env: Record<string, string | undefined>, cwd: string = process.cwd(), options: LoadOptions = {}): Config {
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? 'environment');
      return `${name}: ${issue.message}`;
    });
    throw new ConfigError([...new Set(problems)]);
  }
  const e = parsed.data;
  const issuer = (e.ISSUER ?? `http://localhost:${e.PORT}`).replace(/\/$/, '');
  const production = e.NODE_ENV === 'production';

  const problems: string[] = [];
  if (production) {
    if (!e.DATABASE_URL) {
      problems.push('DATABASE_URL: required in production (the embedded PGlite database is for development only)');
    }
    if (!e.REDIS_URL) {
      problems.push('REDIS_URL: required in production (the in-process store is for development only)');
    }
    if (!e.COOKIE_KEYS) {
      problems.push('COOKIE_KEYS: required in production (comma-separated secrets of 32+ characters; the first signs)');
    }
    const url = new URL(issuer);
    if (url.protocol === 'http:' && !isLoopbackHostname(url.hostname)) {
      problems.push(`ISSUER: must use https in production unless it is localhost (got ${url.origin})`);
    }
    if (e.SIGNUP_ENABLED && !e.SMTP_URL) {
      problems.push('SIGNUP_ENABLED: needs SMTP_URL in production (new people must verify their email address by mail)');
    }
    if (options.server !== false && e.METRICS_PORT === undefined) {
      problems.push('METRICS_PORT: required in production (GET /metrics is served only on that port there, never on the public one)');
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);

  return Object.freeze({
    port: e.PORT,
    issuer,
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    keysDir: path.resolve(cwd, e.KEYS_DIR),
    dataDir: path.resolve(cwd, e.DATA_DIR),
    cookieKeys: Object.freeze(e.COOKIE_KEYS ?? [randomBytes(32).toString('base64url')]),
    cookieKeysGenerated: !e.COOKIE_KEYS,
    nodeEnv: e.NODE_ENV,
    production,
    logLevel: e.LOG_LEVEL,
    trustProxy: e.TRUST_PROXY,
    proxyHops: e.PROXY_HOPS,
    workers: e.GATEHOUSE_WORKERS,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    registryPollMs: e.REGISTRY_POLL_MS,
    keysPollMs: e.KEYS_POLL_MS,
    metricsPort: e.METRICS_PORT,
    metricsClientIds: Object.freeze(e.METRICS_CLIENT_IDS ?? []),
    loginLimits: Object.freeze({
      perAccount: e.LOGIN_MAX_FAILURES_PER_ACCOUNT,
      perIp: e.LOGIN_MAX_FAILURES_PER_IP,
      windowSeconds: e.LOGIN_FAILURE_WINDOW_SECONDS,
    }),
    mfaRequired: e.MFA_REQUIRED,
    accountReauthSeconds: e.ACCOUNT_REAUTH_SECONDS,
    signInHistoryDays: e.SIGN_IN_HISTORY_DAYS,
    upstreamTimeoutSeconds: e.UPSTREAM_TIMEOUT_SECONDS,
    upstreamMaxStartsPerIp: e.UPSTREAM_MAX_STARTS_PER_IP,
    registrationEnabled: e.REGISTRATION_ENABLED,
    requirePar: e.REQUIRE_PAR,
    registrationTokenMaxTtlSeconds: e.REGISTRATION_TOKEN_MAX_TTL_SECONDS,
    mail: Object.freeze({
      smtpUrl: e.SMTP_URL,
      from: e.MAIL_FROM ?? `"${e.BRAND_NAME.replace(/["\\]/g, '')}" <no-reply@${new URL(issuer).hostname}>`,
      outboxDir: path.join(path.resolve(cwd, e.DATA_DIR), 'outbox'),
    }),
    signupEnabled: e.SIGNUP_ENABLED,
    resetLimits: Object.freeze({ perAddress: e.RESET_MAX_PER_ADDRESS, perIp: e.RESET_MAX_PER_IP }),
    signupMaxPerIp: e.SIGNUP_MAX_PER_IP,
    deviceFlow: Object.freeze({ maxFailuresPerIp: e.DEVICE_CODE_MAX_PER_IP, pollIntervalSeconds: e.DEVICE_CODE_POLL_INTERVAL_SECONDS, codeTtlSeconds: e.DEVICE_CODE_TTL_SECONDS }),
    consoleIdleTimeoutSeconds: e.CONSOLE_IDLE_TIMEOUT_SECONDS,
    brand: Object.freeze({
      name: e.BRAND_NAME,
      logoUrl: e.BRAND_LOGO_URL,
      logoAlt: e.BRAND_LOGO_ALT ?? e.BRAND_NAME,
      color: expandHexColour(e.BRAND_COLOR),
      supportUrl: e.SUPPORT_URL,
    }),
    backchannelLogout: Object.freeze({ timeoutSeconds: e.BACKCHANNEL_LOGOUT_TIMEOUT_SECONDS, attempts: e.BACKCHANNEL_LOGOUT_ATTEMPTS }),
    dpopRequireNonce: e.DPOP_REQUIRE_NONCE,
  });
}

/** #abc → #aabbcc, lower case. */
function expandHexColour(value: string): string {
  const hex = value.slice(1).toLowerCase();
  return hex.length === 3 ? `#${[...hex].map((c) => c + c).join('')}` : `#${hex}`;
}
