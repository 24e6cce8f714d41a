import type { Context } from 'koa';
import { describe, expect, it } from 'vitest';
import { hostCheck } from '../../../src/http/security-headers.js';

/** The parts of a Koa context the check reads, with the URL Koa would build from them; counts the parses. */
function request(headers: Record<string, string>, options: { proxy?: boolean } = {}) {
  const state = { hrefReads: 0 };
  const host = (options.proxy && headers['x-forwarded-host']) || headers.host || '';
  const ctx = {
    req: { headers },
    app: { proxy: options.proxy ?? false },
    get href() {
      state.hrefReads += 1;
      return `http://${host}/token`;
    },
    status: 404,
    body: undefined as unknown,
  };
  return { ctx: ctx as unknown as Context & { body: unknown }, state };
}

describe('hostCheck', () => {
  it('parses a Host once, then lets the same one through unparsed', () => {
    const check = hostCheck();
    const first = request({ host: 'login.example.test' });
    expect(check(first.ctx)).toBe(false);
    expect(first.state.hrefReads).toBe(1);
    const second = request({ host: 'login.example.test' });
    expect(check(second.ctx)).toBe(false);
    expect(second.state.hrefReads).toBe(0);
  });

  it('refuses a Host that makes no URL with 400 in the OAuth format, every time', () => {
    const check = hostCheck();
    for (let i = 0; i < 2; i += 1) {
      const { ctx } = request({ host: '4294967296' });
      expect(check(ctx)).toBe(true);
      expect(ctx.status).toBe(400);
      expect(ctx.body).toMatchObject({ error: 'invalid_request' });
    }
    // A valid Host after it still passes.
    expect(check(request({ host: 'localhost' }).ctx)).toBe(false);
  });

  it('behind a trusted proxy judges X-Forwarded-Host, even when the Host beside it passed before', () => {
    const check = hostCheck();
    expect(check(request({ host: 'localhost' }, { proxy: true }).ctx)).toBe(false);
    const forwarded = request({ host: 'localhost', 'x-forwarded-host': '4294967296' }, { proxy: true });
    expect(check(forwarded.ctx)).toBe(true);
    expect(forwarded.ctx.status).toBe(400);
    // Without a trusted proxy the header is not Koa's host, so the check does not read it.
    expect(check(request({ host: 'localhost', 'x-forwarded-host': '4294967296' }).ctx)).toBe(false);
  });
});
