import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/load-config.js';

const COOKIE_KEY = 'a-cookie-key-of-at-least-32-characters-0123';
const PRODUCTION = {
  NODE_ENV: 'production',
  DATABASE_URL: 'postgres://gatehouse@db.internal:5432/gatehouse',
  REDIS_URL: 'redis://cache.internal:6379',
  COOKIE_KEYS: COOKIE_KEY,
  ISSUER: 'https://auth.example.com',
  METRICS_PORT: '9464',
};

/** Runs loadConfig expecting a ConfigError and returns its problem lines. */
function problemsOf(env: Record<string, string | undefined>): readonly string[] {
  try {
    loadConfig(env, '/srv/gatehouse');
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect((error as ConfigError).message).toBe(problems.join('\n'));
    return problems;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig defaults', () => {
  it('listens on 3000 with issuer http://localhost:3000 and development defaults when nothing is set', () => {
    const config = loadConfig({}, '/srv/gatehouse');
    expect(config.port).toBe(3000);
    expect(config.issuer).toBe('http://localhost:3000');
    expect(config.nodeEnv).toBe('development');
    expect(config.production).toBe(false);
    expect(config.databaseUrl).toBeUndefined();
    expect(config.redisUrl).toBeUndefined();
    expect(config.logLevel).toBe('info');
    expect(config.keysDir).toBe(path.resolve('/srv/gatehouse', 'keys'));
    expect(config.dataDir).toBe(path.resolve('/srv/gatehouse', '.data'));
    expect(config.cookieKeysGenerated).toBe(true);
    expect(config.cookieKeys).toHaveLength(1);
    expect(config.cookieKeys[0]!.length).toBeGreaterThanOrEqual(32);
  });

  it('keeps dynamic client registration off unless REGISTRATION_ENABLED says otherwise', () => {
    expect(loadConfig({}).registrationEnabled).toBe(false);
    expect(loadConfig({ REGISTRATION_ENABLED: 'true' }).registrationEnabled).toBe(true);
    expect(loadConfig({ REGISTRATION_ENABLED: 'false' }).registrationEnabled).toBe(false);
  });

  it('waits UPSTREAM_TIMEOUT_SECONDS (5 unless said, 1 to 60) for an upstream provider', () => {
    expect(loadConfig({}).upstreamTimeoutSeconds).toBe(5);
    expect(loadConfig({ UPSTREAM_TIMEOUT_SECONDS: '12' }).upstreamTimeoutSeconds).toBe(12);
    expect(() => loadConfig({ UPSTREAM_TIMEOUT_SECONDS: '0' })).toThrow(/UPSTREAM_TIMEOUT_SECONDS/);
  });

  it('lets one client address start UPSTREAM_MAX_STARTS_PER_IP upstream sign-ins per 10 minutes (300 unless said, 1 to 1,000,000)', () => {
    expect(loadConfig({}).upstreamMaxStartsPerIp).toBe(300);
    expect(loadConfig({ UPSTREAM_MAX_STARTS_PER_IP: '20' }).upstreamMaxStartsPerIp).toBe(20);
    expect(() => loadConfig({ UPSTREAM_MAX_STARTS_PER_IP: '0' })).toThrow(/UPSTREAM_MAX_STARTS_PER_IP/);
    expect(() => loadConfig({ UPSTREAM_MAX_STARTS_PER_IP: '1000001' })).toThrow(/UPSTREAM_MAX_STARTS_PER_IP/);
  });

  it('requires a second factor of every sign-in only when MFA_REQUIRED says so', () => {
    expect(loadConfig({}).mfaRequired).toBe(false);
    expect(loadConfig({ MFA_REQUIRED: 'true' }).mfaRequired).toBe(true);
    expect(() => loadConfig({ MFA_REQUIRED: 'always' })).toThrow(/MFA_REQUIRED: must be true or false/);
  });

  it('asks for a sign-in within 600 s before sensitive account changes, and keeps 90 days of sign-ins, unless ACCOUNT_REAUTH_SECONDS and SIGN_IN_HISTORY_DAYS say otherwise', () => {
    expect(loadConfig({}).accountReauthSeconds).toBe(600);
    expect(loadConfig({ ACCOUNT_REAUTH_SECONDS: '300' }).accountReauthSeconds).toBe(300);
    expect(() => loadConfig({ ACCOUNT_REAUTH_SECONDS: '5' })).toThrow(/ACCOUNT_REAUTH_SECONDS: must be a whole number from 30 to 86400/);
    expect(loadConfig({}).signInHistoryDays).toBe(90);
    expect(loadConfig({ SIGN_IN_HISTORY_DAYS: '30' }).signInHistoryDays).toBe(30);
    expect(() => loadConfig({ SIGN_IN_HISTORY_DAYS: '0' })).toThrow(/SIGN_IN_HISTORY_DAYS: must be a whole number from 1 to 3650/);
  });

  it('caps initial access tokens at 30 days unless REGISTRATION_TOKEN_MAX_TTL_SECONDS says otherwise', () => {
    expect(loadConfig({}).registrationTokenMaxTtlSeconds).toBe(30 * 86_400);
    expect(loadConfig({ REGISTRATION_TOKEN_MAX_TTL_SECONDS: '3600' }).registrationTokenMaxTtlSeconds).toBe(3600);
  });

  it('derives the default issuer from PORT', () => {
    const config = loadConfig({ PORT: '8081' });
    expect(config.port).toBe(8081);
    expect(config.issuer).toBe('http://localhost:8081');
  });

  it('treats empty variables as unset', () => {
    const config = loadConfig({ PORT: '', ISSUER: '', DATABASE_URL: '' });
    expect(config.port).toBe(3000);
    expect(config.databaseUrl).toBeUndefined();
  });

  it('makes a different random cookie key on each start when COOKIE_KEYS is unset', () => {
    expect(loadConfig({}).cookieKeys[0]).not.toBe(loadConfig({}).cookieKeys[0]);
  });

  it('splits COOKIE_KEYS on commas and strips a trailing slash from ISSUER', () => {
    const second = 'b'.repeat(40);
    const config = loadConfig({ COOKIE_KEYS: ` ${COOKIE_KEY} , ${second}`, ISSUER: 'https://auth.example.com/' });
    expect(config.cookieKeys).toEqual([COOKIE_KEY, second]);
    expect(config.cookieKeysGenerated).toBe(false);
    expect(config.issuer).toBe('https://auth.example.com');
  });

  it('returns a frozen config, cookie keys included', () => {
    const config = loadConfig({ COOKIE_KEYS: COOKIE_KEY });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.cookieKeys)).toBe(true);
    expect(() => {
      (config as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(config.port).toBe(3000);
  });
});

describe('loadConfig refuses malformed values', () => {
  const cases: Array<{ name: string; value: string; says: RegExp }> = [
    { name: 'PORT', value: 'abc', says: /whole number from 0 to 65535/ },
    { name: 'PORT', value: '70000', says: /whole number from 0 to 65535/ },
    { name: 'DATABASE_URL', value: 'nonsense', says: /postgres:\/\/ or postgresql:\/\/ URL/ },
    { name: 'DATABASE_URL', value: 'mysql://db/x', says: /postgres:\/\/ or postgresql:\/\/ URL/ },
    { name: 'ISSUER', value: 'not-a-url', says: /absolute http\(s\) URL/ },
    { name: 'ISSUER', value: 'https://auth.example.com/?tenant=1', says: /without query or fragment/ },
    { name: 'REDIS_URL', value: 'nonsense', says: /redis:\/\/ or rediss:\/\/ URL/ },
    { name: 'LOG_LEVEL', value: 'loud', says: /must be one of fatal, error, warn, info, debug, trace, silent/ },
    { name: 'NODE_ENV', value: 'staging', says: /./ },
    { name: 'TRUST_PROXY', value: 'maybe', says: /must be true or false/ },
    { name: 'PROXY_HOPS', value: '0', says: /whole number from 1 to 10/ },
    { name: 'PROXY_HOPS', value: 'two', says: /whole number from 1 to 10/ },
    { name: 'REGISTRATION_ENABLED', value: 'maybe', says: /must be true or false/ },
    { name: 'REGISTRATION_TOKEN_MAX_TTL_SECONDS', value: '59', says: /whole number from 60 to 31536000/ },
    { name: 'REGISTRATION_TOKEN_MAX_TTL_SECONDS', value: '31536001', says: /whole number from 60 to 31536000/ },
    { name: 'REGISTRATION_TOKEN_MAX_TTL_SECONDS', value: '30d', says: /whole number from 60 to 31536000/ },
  ];

  it.each(cases)('$name=$value gives exactly one problem line naming $name', ({ name, value, says }) => {
    const problems = problemsOf({ [name]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]!.startsWith(`${name}: `)).toBe(true);
    expect(problems[0]).toMatch(says);
    expect(problems[0]).not.toContain('\n');
  });

  it('lists every bad variable at once', () => {
    const problems = problemsOf({ PORT: 'abc', DATABASE_URL: 'nonsense', ISSUER: 'not-a-url', REDIS_URL: 'nonsense', LOG_LEVEL: 'loud' });
    expect(problems).toHaveLength(5);
    expect(problems.map((line) => line.split(':')[0]).sort()).toEqual(['DATABASE_URL', 'ISSUER', 'LOG_LEVEL', 'PORT', 'REDIS_URL']);
  });

  it('refuses cookie keys shorter than 32 characters', () => {
    const problems = problemsOf({ COOKIE_KEYS: 'short' });
    expect(problems).toEqual(['COOKIE_KEYS: every key must be at least 32 characters']);
    // One short key among good ones is refused too.
    expect(problemsOf({ COOKIE_KEYS: `${COOKIE_KEY},short` })).toEqual(['COOKIE_KEYS: every key must be at least 32 characters']);
  });

  it('refuses COOKIE_KEYS that lists no key', () => {
    const problems = problemsOf({ COOKIE_KEYS: ' , ,' });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^COOKIE_KEYS: must list at least one key/);
  });
});

describe('loadConfig in production', () => {
  it('accepts a complete configuration with an https issuer', () => {
    const config = loadConfig(PRODUCTION);
    expect(config.production).toBe(true);
    expect(config.issuer).toBe('https://auth.example.com');
    expect(config.databaseUrl).toBe(PRODUCTION.DATABASE_URL);
    expect(config.redisUrl).toBe(PRODUCTION.REDIS_URL);
    expect(config.cookieKeys).toEqual([COOKIE_KEY]);
    expect(config.cookieKeysGenerated).toBe(false);
  });

  it.each(['http://localhost:3000', 'http://127.0.0.1:8080', 'http://[::1]:3000'])('accepts the loopback http issuer %s', (issuer) => {
    expect(loadConfig({ ...PRODUCTION, ISSUER: issuer }).issuer).toBe(issuer);
  });

  it('accepts the default issuer (http://localhost:PORT)', () => {
    const { ISSUER: _issuer, ...rest } = PRODUCTION;
    expect(loadConfig(rest).issuer).toBe('http://localhost:3000');
  });

  it('requires DATABASE_URL (no embedded PGlite)', () => {
    const problems = problemsOf({ ...PRODUCTION, DATABASE_URL: undefined });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^DATABASE_URL: required in production/);
    expect(problems[0]).toMatch(/PGlite/);
  });

  it('requires REDIS_URL (no in-process store)', () => {
    const problems = problemsOf({ ...PRODUCTION, REDIS_URL: '' });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^REDIS_URL: required in production/);
    expect(problems[0]).toMatch(/in-process store/);
  });

  it('requires COOKIE_KEYS (no random keys)', () => {
    const problems = problemsOf({ ...PRODUCTION, COOKIE_KEYS: undefined });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^COOKIE_KEYS: required in production/);
  });

  it('refuses an http issuer that is not localhost', () => {
    const problems = problemsOf({ ...PRODUCTION, ISSUER: 'http://auth.example.com' });
    expect(problems).toEqual(['ISSUER: must use https in production unless it is localhost (got http://auth.example.com)']);
  });

  it('does not take a host that merely starts with "127." for a loopback address', () => {
    const problems = problemsOf({ ...PRODUCTION, ISSUER: 'http://127.attacker.example' });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^ISSUER: must use https in production/);
  });

  it('gives each missing production setting its own distinct line, all at once', () => {
    const problems = problemsOf({ NODE_ENV: 'production', ISSUER: 'http://auth.example.com' });
    expect(problems).toHaveLength(5);
    expect(new Set(problems).size).toBe(5);
    expect(problems.map((line) => line.split(':')[0])).toEqual(['DATABASE_URL', 'REDIS_URL', 'COOKIE_KEYS', 'ISSUER', 'METRICS_PORT']);
  });

  it('requires METRICS_PORT for the server (GET /metrics never on the public port), not for the CLI', () => {
    const problems = problemsOf({ ...PRODUCTION, METRICS_PORT: undefined });
    expect(problems).toEqual(['METRICS_PORT: required in production (GET /metrics is served only on that port there, never on the public one)']);
    expect(loadConfig({ ...PRODUCTION, METRICS_PORT: undefined }, '/srv/gatehouse', { server: false }).metricsPort).toBeUndefined();
    expect(loadConfig(PRODUCTION).metricsPort).toBe(9464);
  });

  it('does not apply the production rules outside production', () => {
    const config = loadConfig({ NODE_ENV: 'test', ISSUER: 'http://auth.example.com' });
    expect(config.production).toBe(false);
    expect(config.issuer).toBe('http://auth.example.com');
  });
});

describe('METRICS_CLIENT_IDS', () => {
  it('labels no client by default', () => {
    expect(loadConfig({}, '/srv/gatehouse').metricsClientIds).toEqual([]);
  });

  it('takes a comma-separated list, trimmed and without repeats', () => {
    expect(loadConfig({ METRICS_CLIENT_IDS: ' billing, web ,,billing' }, '/srv/gatehouse').metricsClientIds).toEqual(['billing', 'web']);
  });

  it('refuses more than 100 ids, naming the variable', () => {
    const ids = Array.from({ length: 101 }, (_, i) => `client-${i}`).join(',');
    const problems = problemsOf({ METRICS_CLIENT_IDS: ids });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^METRICS_CLIENT_IDS: must list at most 100 client ids/);
    expect(loadConfig({ METRICS_CLIENT_IDS: ids.split(',').slice(0, 100).join(',') }, '/srv/gatehouse').metricsClientIds).toHaveLength(100);
  });
});

describe('loadConfig: mail, sign-up and the brand', () => {
  it('writes mail to DATA_DIR/outbox without SMTP_URL, sends it from no-reply@<issuer host> as the brand, and keeps sign-up off', () => {
    const config = loadConfig({ DATA_DIR: 'state', ISSUER: 'https://id.example.com' }, '/srv/gatehouse');
    expect(config.mail).toEqual({ smtpUrl: undefined, from: '"Gatehouse" <no-reply@id.example.com>', outboxDir: path.join('/srv/gatehouse', 'state', 'outbox') });
    expect(config.signupEnabled).toBe(false);
    expect(config.brand).toEqual({ name: 'Gatehouse', logoUrl: undefined, logoAlt: 'Gatehouse', color: '#2952cc', supportUrl: undefined });
  });

  it('takes SMTP_URL, MAIL_FROM, SIGNUP_ENABLED and every BRAND_* variable, expanding #rgb', () => {
    const config = loadConfig({
      SMTP_URL: 'smtps://user:pass@smtp.example.com:465',
      MAIL_FROM: 'Acme <id@acme.example>',
      SIGNUP_ENABLED: 'true',
      BRAND_NAME: 'Acme "ID"',
      BRAND_LOGO_URL: 'https://cdn.acme.example/logo.svg',
      BRAND_COLOR: '#F0A',
      SUPPORT_URL: 'mailto:help@acme.example',
    });
    expect(config.mail.smtpUrl).toBe('smtps://user:pass@smtp.example.com:465');
    expect(config.mail.from).toBe('Acme <id@acme.example>');
    expect(config.signupEnabled).toBe(true);
    expect(config.brand).toEqual({ name: 'Acme "ID"', logoUrl: 'https://cdn.acme.example/logo.svg', logoAlt: 'Acme "ID"', color: '#ff00aa', supportUrl: 'mailto:help@acme.example' });
    // A quote in the brand name cannot break the default From header.
    expect(loadConfig({ BRAND_NAME: 'Acme "ID"' }).mail.from).toBe('"Acme ID" <no-reply@localhost>');
    expect(loadConfig({ BRAND_LOGO_URL: 'https://cdn.acme.example/l.png', BRAND_LOGO_ALT: 'Acme' }).brand.logoAlt).toBe('Acme');
  });

  const cases: Array<{ name: string; value: string; says: RegExp }> = [
    { name: 'SMTP_URL', value: 'http://mail.example.com', says: /smtp:\/\/ or smtps:\/\/ URL/ },
    { name: 'SMTP_URL', value: 'smtp://', says: /smtp:\/\/ or smtps:\/\/ URL with a host/ },
    { name: 'SIGNUP_ENABLED', value: 'maybe', says: /must be true or false/ },
    { name: 'BRAND_NAME', value: 'x'.repeat(65), says: /at most 64 characters/ },
    { name: 'BRAND_NAME', value: 'Acme\nInjected: header', says: /one line of printable text/ },
    { name: 'MAIL_FROM', value: 'a@b.example\r\nBcc: all@example.com', says: /one line of printable text/ },
    { name: 'BRAND_LOGO_URL', value: 'http://cdn.example.com/logo.png', says: /absolute https URL/ },
    { name: 'BRAND_LOGO_URL', value: 'javascript:alert(1)', says: /absolute https URL/ },
    { name: 'BRAND_COLOR', value: 'red', says: /#rgb or #rrggbb/ },
    { name: 'BRAND_COLOR', value: '#12345', says: /#rgb or #rrggbb/ },
    { name: 'BRAND_COLOR', value: '#123456; background: url(x)', says: /#rgb or #rrggbb/ },
    { name: 'SUPPORT_URL', value: 'javascript:alert(1)', says: /https URL or a mailto: address/ },
    { name: 'SUPPORT_URL', value: 'http://help.example.com', says: /https URL or a mailto: address/ },
  ];

  it.each(cases)('$name=$value gives exactly one problem line naming $name', ({ name, value, says }) => {
    const problems = problemsOf({ [name]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]!.startsWith(`${name}: `)).toBe(true);
    expect(problems[0]).toMatch(says);
  });

  it('refuses SIGNUP_ENABLED in production without SMTP_URL (new people could never verify their address)', () => {
    const problems = problemsOf({ ...PRODUCTION, SIGNUP_ENABLED: 'true' });
    expect(problems).toEqual(['SIGNUP_ENABLED: needs SMTP_URL in production (new people must verify their email address by mail)']);
    expect(loadConfig({ ...PRODUCTION, SIGNUP_ENABLED: 'true', SMTP_URL: 'smtp://mail.internal:25' }).signupEnabled).toBe(true);
    // Without sign-up, production starts without SMTP_URL: reset and verification then say mail is unavailable.
    expect(loadConfig(PRODUCTION).mail.smtpUrl).toBeUndefined();
  });
});
