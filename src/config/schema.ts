import { z } from 'zod';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const postgresUrl = z
  .string()
  .refine((value) => {
    const url = URL.parse(value);
    return url !== null && (url.protocol === 'postgres:' || url.protocol === 'postgresql:');
  }, 'must be a postgres:// or postgresql:// URL');

const redisUrl = z
  .string()
  .refine((value) => {
    const url = URL.parse(value);
    return url !== null && (url.protocol === 'redis:' || url.protocol === 'rediss:');
  }, 'must be a redis:// or rediss:// URL');

const booleanFlag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'must be true or false' })
  .transform((value) => value === 'true' || value === '1' || value === 'yes');

const integerIn = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `must be a whole number from ${min} to ${max}`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `must be a whole number from ${min} to ${max}`);

const smtpUrl = z
  .string()
  .refine((value) => {
    const url = URL.parse(value);
    return url !== null && (url.protocol === 'smtp:' || url.protocol === 'smtps:') && url.hostname !== '';
  }, 'must be an smtp:// or smtps:// URL with a host');

/** An absolute https URL (the pages' CSP loads images from https: and our own origin only). */
const httpsUrl = z
  .string()
  .max(2048, 'must be at most 2048 characters')
  .refine((value) => URL.parse(value)?.protocol === 'https:', 'must be an absolute https URL');

/** Text shown on pages: one line, printable, at most `max` characters. */
const displayText = (max: number) =>
  z
    .string()
    .max(max, `must be at most ${max} characters`)
    // eslint-disable-next-line no-control-regex
    .refine((value) => !/[\u0000-\u001f\u007f]/.test(value), 'must be one line of printable text');

/** At most this many clients get a `client_id` label value of their own in the metrics. */
export const MAX_METRICS_CLIENT_IDS = 100;

/** The environment variables Gatehouse reads, as the contract names them. */
export const envSchema = z.object({
  PORT: integerIn(0, 65535).default(3000),
  ISSUER: z
    .string()
    .refine((value) => {
      const url = URL.parse(value);
      return url !== null && (url.protocol === 'http:' || url.protocol === 'https:') && !url.search && !url.hash;
    }, 'must be an absolute http(s) URL without query or fragment')
    .optional(),
  DATABASE_URL: postgresUrl.optional(),
  REDIS_URL: redisUrl.optional(),
  KEYS_DIR: z.string().min(1).default('keys'),
  DATA_DIR: z.string().min(1).default('.data'),
  COOKIE_KEYS: z
    .string()
    .transform((value) => value.split(',').map((key) => key.trim()).filter(Boolean))
    .refine((keys) => keys.length > 0, 'must list at least one key')
    .refine((keys) => keys.every((key) => key.length >= 32), 'every key must be at least 32 characters')
    .optional(),
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  LOG_LEVEL: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
  TRUST_PROXY: booleanFlag.default(false),
  PROXY_HOPS: integerIn(1, 10).default(1),
  GATEHOUSE_WORKERS: integerIn(1, 64).default(1),
  BODY_LIMIT_BYTES: integerIn(1024, 10 * 1024 * 1024).default(64 * 1024),
  REGISTRY_POLL_MS: integerIn(50, 60_000).default(250),
  KEYS_POLL_MS: integerIn(50, 60_000).default(1000),
  LOGIN_MAX_FAILURES_PER_ACCOUNT: integerIn(1, 10_000).default(10),
  LOGIN_MAX_FAILURES_PER_IP: integerIn(1, 100_000).default(100),
  LOGIN_FAILURE_WINDOW_SECONDS: integerIn(1, 86_400).default(900),
  MFA_REQUIRED: booleanFlag.default(false),
  ACCOUNT_REAUTH_SECONDS: integerIn(30, 86_400).default(600),
  SIGN_IN_HISTORY_DAYS: integerIn(1, 3650).default(90),
  UPSTREAM_TIMEOUT_SECONDS: integerIn(1, 60).default(5),
  UPSTREAM_MAX_STARTS_PER_IP: integerIn(1, 1_000_000).default(300),
  REGISTRATION_ENABLED: booleanFlag.default(false),
  REQUIRE_PAR: booleanFlag.default(false),
  REGISTRATION_TOKEN_MAX_TTL_SECONDS: integerIn(60, 365 * 86_400).default(30 * 86_400),
  SMTP_URL: smtpUrl.optional(),
  MAIL_FROM: displayText(320).optional(),
  SIGNUP_ENABLED: booleanFlag.default(false),
  RESET_MAX_PER_ADDRESS: integerIn(1, 1000).default(5),
  RESET_MAX_PER_IP: integerIn(1, 1_000_000).default(50),
  SIGNUP_MAX_PER_IP: integerIn(1, 1_000_000).default(20),
  DEVICE_CODE_MAX_PER_IP: integerIn(1, 100_000).default(10),
  DEVICE_CODE_POLL_INTERVAL_SECONDS: integerIn(1, 60).default(5),
  DEVICE_CODE_TTL_SECONDS: integerIn(1, 3600).default(600),
  CONSOLE_IDLE_TIMEOUT_SECONDS: integerIn(2, 86_400).default(1800),
  BRAND_NAME: displayText(64).default('Gatehouse'),
  BRAND_LOGO_URL: httpsUrl.optional(),
  BRAND_LOGO_ALT: displayText(128).optional(),
  BRAND_COLOR: z
    .string()
    .regex(/^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$/, 'must be a colour as #rgb or #rrggbb')
    .default('#2952cc'),
  SUPPORT_URL: z
    .string()
    .max(2048, 'must be at most 2048 characters')
    .refine((value) => {
      if (/^mailto:[^\s@]+@[^\s@]+$/.test(value)) return true;
      const url = URL.parse(value);
      return url !== null && (url.protocol === 'https:' || (url.protocol === 'http:' && url.hostname === 'localhost'));
    }, 'must be an https URL or a mailto: address')
    .optional(),
  METRICS_PORT: integerIn(1, 65_535).optional(),
  METRICS_CLIENT_IDS: z
    .string()
    .transform((value) => [...new Set(value.split(',').map((id) => id.trim()).filter(Boolean))])
    .refine((ids) => ids.length <= MAX_METRICS_CLIENT_IDS, `must list at most ${MAX_METRICS_CLIENT_IDS} client ids (each is a label value of its own)`)
    .optional(),
  BACKCHANNEL_LOGOUT_TIMEOUT_SECONDS: integerIn(1, 60).default(5),
  BACKCHANNEL_LOGOUT_ATTEMPTS: integerIn(1, 10).default(5),
  // DPoP (RFC 9449): every proof must carry a server nonce (DPoP-Nonce), see docs/dpop.md.
  DPOP_REQUIRE_NONCE: booleanFlag.default(false),
});

export type Env = z.infer<typeof envSchema>;
