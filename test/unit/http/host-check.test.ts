import type { Context } from 'koa';
import { describe, expect, it } from 'vitest';
import { hostCheck } from '../../../src/http/host-check.js';

/** The parts of a Koa context the check reads, with the host and URL Koa would take from them. */
function request(headers: Record<string, string>, options: { proxy?: boolean; url?: string } = {}) {
  const url = options.url ?? '/token';
  const raw = (options.proxy && headers['x-forwarded-host']) || headers.host || '';
  const host = raw.split(/\s*,\s*/, 1)[0] ?? '';
  const ctx = {
    req: { headers, url },
    app: { proxy: options.proxy ?? false },
    host,
    get href() {
      return /^https?:\/\//i.test(url) ? url : `http://${host}${url}`;
    },
  };
  return ctx as unknown as Context;
}

describe('hostCheck', () => {
  const check = hostCheck('http://localhost:3000');

  it("lets the issuer's own host through, in any case and with its default port written out", () => {
    expect(check(request({ host: 'localhost:3000' }))).toBeUndefined();
    expect(check(request({ host: 'LocalHost:3000' }))).toBeUndefined();
    expect(check(request({ host: 'localhost:3000' }, { url: 'http://localhost:3000/token' }))).toBeUndefined();
    const https = hostCheck('https://auth.example.com');
    expect(https(request({ host: 'auth.example.com' }))).toBeUndefined();
    expect(https(request({ host: 'auth.example.com:443' }))).toBeUndefined();
  });

  it.each([
    ['another name', 'evil.example'],
    ['another port', 'localhost:3001'],
    ['no port (80)', 'localhost'],
    ['the loopback address for localhost', '127.0.0.1:3000'],
    ['IPv6 loopback for localhost', '[::1]:3000'],
    ['a trailing dot', 'localhost.:3000'],
    ['an empty Host', ''],
  ])('refuses %s with 421', (_what, host) => {
    expect(check(request({ host }))).toMatchObject({ status: 421, description: 'this server answers only for localhost:3000' });
  });

  it('refuses a Host that makes no URL with 400', () => {
    expect(check(request({ host: '4294967296' }))).toMatchObject({ status: 400 });
  });

  it('refuses an absolute request target naming another host, whatever the Host header', () => {
    expect(check(request({ host: 'localhost:3000' }, { url: 'http://evil.example/token' }))).toMatchObject({ status: 421 });
  });

  it('behind a trusted proxy judges X-Forwarded-Host (its first value, as Koa does), else the Host', () => {
    expect(check(request({ host: 'evil.example', 'x-forwarded-host': 'localhost:3000' }, { proxy: true }))).toBeUndefined();
    expect(check(request({ host: 'localhost:3000', 'x-forwarded-host': 'evil.example' }, { proxy: true }))).toMatchObject({ status: 421 });
    expect(check(request({ host: 'localhost:3000', 'x-forwarded-host': 'evil.example, localhost:3000' }, { proxy: true }))).toMatchObject({ status: 421 });
    expect(check(request({ host: 'localhost:3000' }, { proxy: true }))).toBeUndefined();
    // Without a trusted proxy the header is not Koa's host: the Host decides.
    expect(check(request({ host: 'localhost:3000', 'x-forwarded-host': 'evil.example' }))).toBeUndefined();
    expect(check(request({ host: 'evil.example', 'x-forwarded-host': 'localhost:3000' }))).toMatchObject({ status: 421 });
  });
});
