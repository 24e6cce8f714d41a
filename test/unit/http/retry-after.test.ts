import { ServerResponse, IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import type { Context } from 'koa';
import { describe, expect, it } from 'vitest';
import { retryAfterOnUnavailable } from '../../../src/http/retry-after.js';
import { RETRY_AFTER_SECONDS } from '../../../src/services/dependency-outage.js';

/** A response with `status` and the given headers, as the edge step sees it on the way out. */
function answered(status: number, headers: Record<string, string> = {}) {
  const res = new ServerResponse(new IncomingMessage(new Socket()));
  res.statusCode = status;
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  retryAfterOnUnavailable.after({ res } as unknown as Context);
  return res;
}

describe('retryAfterOnUnavailable', () => {
  it('gives a 503 without Retry-After the server-wide value', () => {
    expect(answered(503).getHeader('Retry-After')).toBe(RETRY_AFTER_SECONDS);
  });

  it('keeps a Retry-After already set', () => {
    expect(answered(503, { 'Retry-After': '30' }).getHeader('Retry-After')).toBe('30');
  });

  it('leaves every other status alone', () => {
    for (const status of [200, 400, 429, 500, 502, 504]) expect(answered(status).hasHeader('Retry-After')).toBe(false);
  });
});
