import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract, type RateLimiterRes } from 'rate-limiter-flexible';
import { normaliseEmail } from '../registry/email.js';

/** Failed sign-ins allowed per account and per client IP within the window. */
export interface LoginLimits {
  perAccount: number;
  perIp: number;
  windowSeconds: number;
}

/** Whether a sign-in may be tried now, and if not, for how long to wait. */
export type LimitCheck = { allowed: true } | { allowed: false; retryAfterSeconds: number };

/**
 * `account` is the email typed (passwords) or the account id (second factors, which come after the
 * password has said who it is).
 */
export interface LoginLimiter {
  /** `account` undefined (a passkey nobody here has): the IP alone. */
  check(account: string | undefined, ip: string): Promise<LimitCheck>;
  recordFailure(account: string | undefined, ip: string): Promise<void>;
  /** A success clears the account's count (the IP's stays: it may be trying many accounts). */
  recordSuccess(account: string): Promise<void>;
}

/**
 * What a limiter counts: `login` (passwords, the default) keeps an account's count under its
 * normalised email, the same key whatever spelling finds the account; `mfa` (second-factor codes)
 * under the account id; `passkey` (passkey sign-ins) under the account id of a known credential,
 * and under the IP alone when the credential is not known; `api_key` (personal API key exchanges at
 * the token endpoint) and `device` (user codes typed on /device, RFC 8628) under the IP alone. Each has its own Redis keys (`<kind>_fail_account`, `<kind>_fail_ip`), so
 * wrong codes and wrong passwords are counted apart, each against the same limits.
 */
export type LimiterKind = 'login' | 'mfa' | 'passkey' | 'api_key' | 'device';

function isLimiterRes(value: unknown): value is RateLimiterRes {
  return typeof value === 'object' && value !== null && 'msBeforeNext' in value;
}

/**
 * Counts failed sign-ins per account and per IP in Redis (or in-process when embedded; Redis
 * falls back to an in-process count while it is unreachable, so a Redis outage opens no door).
 *
 * @example
 * const limiter = createLoginLimiter({ redis, limits: { perAccount: 10, perIp: 100, windowSeconds: 900 } });
 * const mfaLimiter = createLoginLimiter({ redis, limits, kind: 'mfa' }); // keyed by account id
 */
export function createLoginLimiter(deps: { redis?: Redis; limits: LoginLimits; kind?: LimiterKind }): LoginLimiter {
  const { limits } = deps;
  const kind = deps.kind ?? 'login';
  const accountKey = kind === 'login' ? normaliseEmail : (accountId: string) => accountId;
  const make = (keyPrefix: string, points: number): RateLimiterAbstract => {
    const options = { keyPrefix, points, duration: limits.windowSeconds, blockDuration: limits.windowSeconds };
    const memory = new RateLimiterMemory(options);
    return deps.redis ? new RateLimiterRedis({ ...options, storeClient: deps.redis, insuranceLimiter: memory }) : memory;
  };
  const byAccount = make(`${kind}_fail_account`, limits.perAccount);
  const byIp = make(`${kind}_fail_ip`, limits.perIp);

  async function blockedFor(limiter: RateLimiterAbstract, key: string, points: number): Promise<number | undefined> {
    const res = await limiter.get(key);
    if (res && res.consumedPoints >= points) return Math.max(1, Math.ceil(res.msBeforeNext / 1000));
    return undefined;
  }

  return {
    async check(account, ip) {
      const waits = await Promise.all([account === undefined ? undefined : blockedFor(byAccount, accountKey(account), limits.perAccount), blockedFor(byIp, ip, limits.perIp)]);
      const wait = Math.max(...waits.map((w) => w ?? 0));
      return wait > 0 ? { allowed: false, retryAfterSeconds: wait } : { allowed: true };
    },
    async recordFailure(account, ip) {
      // Consuming past the limit rejects with the limiter's result: that is the expected case.
      await Promise.all([
        account === undefined
          ? undefined
          : byAccount.consume(accountKey(account)).catch((error: unknown) => {
              if (!isLimiterRes(error)) throw error;
            }),
        byIp.consume(ip).catch((error: unknown) => {
          if (!isLimiterRes(error)) throw error;
        }),
      ]);
    },
    async recordSuccess(account) {
      await byAccount.delete(accountKey(account));
    },
  };
}

/** Counts every request of a kind per key (not only failures): a request past the limit is refused. */
export interface RequestLimiter {
  /** Counts this request against `key`; refused (with how long to wait) when the key is at its limit. */
  take(key: string): Promise<LimitCheck>;
}

/**
 * Limits how often one key (a client IP) may do something that keeps state for a while, such as
 * starting a sign-in with an upstream provider (each start keeps a state for 10 minutes): `points`
 * requests per `windowSeconds`, in Redis with the in-process insurance limiter, as the login limiter.
 *
 * @example
 * const starts = createRequestLimiter({ redis, keyPrefix: 'upstream_start_ip', points: 300, windowSeconds: 600 });
 * const check = await starts.take(ctx.ip); // { allowed: false, retryAfterSeconds } past 300 in 10 minutes
 */
export function createRequestLimiter(deps: { redis?: Redis; keyPrefix: string; points: number; windowSeconds: number }): RequestLimiter {
  const options = { keyPrefix: deps.keyPrefix, points: deps.points, duration: deps.windowSeconds };
  const memory = new RateLimiterMemory(options);
  const limiter: RateLimiterAbstract = deps.redis ? new RateLimiterRedis({ ...options, storeClient: deps.redis, insuranceLimiter: memory }) : memory;
  return {
    async take(key) {
      try {
        await limiter.consume(key);
        return { allowed: true };
      } catch (error) {
        // Past the limit, consume rejects with the limiter's result: the expected refusal.
        if (!isLimiterRes(error)) throw error;
        return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(error.msBeforeNext / 1000)) };
      }
    },
  };
}
