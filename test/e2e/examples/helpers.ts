import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { recordSecret, type LogCapture } from '../../fixtures/log-capture.js';

/** A Koa app or an http.Server listening on a free port of 127.0.0.1. */
export async function listen(app: http.Server | { callback(): http.RequestListener }, port = 0, host = '127.0.0.1'): Promise<{ url: string; port: number; close: () => Promise<void> }> {
  const server = app instanceof http.Server ? app : http.createServer(app.callback());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${bound}`,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Tokens Gatehouse issued to one client, by its own count: the token requests it answered with 200
 * for that client and grant, from its request log (its metrics count clients only as "other" unless
 * METRICS_CLIENT_IDS names them, and these clients are made after the server started).
 */
export function tokensIssued(logs: LogCapture, clientId: string, grantType = 'client_credentials'): number {
  return logs.entries().filter((line) => line.msg === 'request' && line.route === 'token' && line.status === 200 && line.clientId === clientId && line.grant === grantType).length;
}

/**
 * A fetch that counts the requests to paths ending in /token and records every access token it
 * sees for the log audit; `down` makes token requests fail as a network error would.
 */
export function countingFetch() {
  const state = { tokenRequests: 0, down: false };
  const wrapped: typeof fetch = async (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    const isToken = new URL(url).pathname.endsWith('/token');
    if (isToken) {
      state.tokenRequests += 1;
      if (state.down) throw new TypeError('fetch failed');
    }
    const response = await fetch(input, init);
    if (isToken) {
      const body = (await response.clone().json().catch(() => ({}))) as { access_token?: unknown };
      if (typeof body.access_token === 'string') recordSecret(body.access_token);
    }
    return response;
  };
  return { fetch: wrapped, state };
}
