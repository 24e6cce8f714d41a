import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { inProcessFetch } from '../fixtures/in-process.js';

/** What the handler saw of each request. */
interface Seen {
  method: string | undefined;
  url: string | undefined;
  headers: http.IncomingHttpHeaders;
  body: string;
  remoteAddress: string | undefined;
}

function echoServer(answer: (seen: Seen, response: http.ServerResponse) => void) {
  const seen: Seen[] = [];
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const entry = { method: request.method, url: request.url, headers: request.headers, body: Buffer.concat(chunks).toString(), remoteAddress: request.socket.remoteAddress };
      seen.push(entry);
      answer(entry, response);
    });
  });
  return { server, seen };
}

describe('the in-process fetch (test/fixtures/in-process.ts)', () => {
  let servers: http.Server[] = [];
  const start = (answer: (seen: Seen, response: http.ServerResponse) => void) => {
    const made = echoServer(answer);
    servers.push(made.server);
    return made;
  };
  afterEach(() => {
    // Never listening, they hold no port: nothing to close but to be sure none ever listened.
    for (const server of servers) expect(server.listening).toBe(false);
    servers = [];
  });

  it('hands a GET to the handler with the origin as Host and returns its status, headers and body', async () => {
    const { server, seen } = start((_, response) => {
      response.statusCode = 418;
      response.setHeader('content-type', 'application/json');
      response.setHeader('set-cookie', ['a=1; path=/', 'b=2; path=/']);
      response.end(JSON.stringify({ ok: true }));
    });
    const fetch = inProcessFetch(server, 'http://gatehouse.test');
    const response = await fetch('/path?x=1', { headers: { accept: 'application/json' } });
    expect(response.status).toBe(418);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(response.headers.getSetCookie()).toEqual(['a=1; path=/', 'b=2; path=/']);
    expect(await response.json()).toEqual({ ok: true });
    expect(response.url).toBe('http://gatehouse.test/path?x=1');
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ method: 'GET', url: '/path?x=1', body: '', remoteAddress: '127.0.0.1' });
    expect(seen[0]!.headers.host).toBe('gatehouse.test');
    expect(seen[0]!.headers.accept).toBe('application/json');
  });

  it('sends a POST form body with its content type and length, to an absolute URL of the origin with a port', async () => {
    const { server, seen } = start((_, response) => response.end('done'));
    const fetch = inProcessFetch(server, 'http://localhost:4711');
    const response = await fetch('http://localhost:4711/token', {
      method: 'POST',
      headers: { authorization: 'Basic eDp5' },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'read write' }),
    });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('done');
    const request = seen[0]!;
    expect(request.method).toBe('POST');
    expect(request.url).toBe('/token');
    expect(request.headers.host).toBe('localhost:4711');
    expect(request.headers['content-type']).toBe('application/x-www-form-urlencoded;charset=UTF-8');
    expect(request.headers['content-length']).toBe(String(Buffer.byteLength(request.body)));
    expect(request.headers.authorization).toBe('Basic eDp5');
    expect(Object.fromEntries(new URLSearchParams(request.body))).toEqual({ grant_type: 'client_credentials', scope: 'read write' });
  });

  it('keeps a Host the caller names, and refuses a URL of another origin', async () => {
    const { server, seen } = start((_, response) => response.end());
    const fetch = inProcessFetch(server, 'http://gatehouse.test');
    await fetch('/', { headers: { host: 'other.example' } });
    expect(seen[0]!.headers.host).toBe('other.example');
    await expect(fetch('http://other.example/')).rejects.toThrow(TypeError);
    expect(seen).toHaveLength(1);
  });

  it('follows a redirect within the origin (a 303 after a POST as a GET), or not with redirect: manual', async () => {
    const { server, seen } = start((request, response) => {
      if (request.url === '/from') {
        response.writeHead(303, { location: '/to' });
        response.end();
      } else {
        response.end(`at ${request.url}`);
      }
    });
    const fetch = inProcessFetch(server, 'http://gatehouse.test');
    const followed = await fetch('/from', { method: 'POST', body: 'x=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(followed.status).toBe(200);
    expect(await followed.text()).toBe('at /to');
    expect(followed.url).toBe('http://gatehouse.test/to');
    expect(seen.map(({ method, url }) => `${method} ${url}`)).toEqual(['POST /from', 'GET /to']);
    expect(seen[1]!.headers['content-type']).toBeUndefined();
    const manual = await fetch('/from', { redirect: 'manual' });
    expect(manual.status).toBe(303);
    expect(manual.headers.get('location')).toBe('/to');
  });

  it('answers a 204 and a HEAD with no body, and rejects with the reason of an aborted signal', async () => {
    const { server } = start((request, response) => {
      if (request.url === '/never') return;
      response.statusCode = request.method === 'HEAD' ? 200 : 204;
      response.setHeader('content-length', request.method === 'HEAD' ? '5' : '0');
      response.end();
    });
    const fetch = inProcessFetch(server, 'http://gatehouse.test');
    const empty = await fetch('/');
    expect(empty.status).toBe(204);
    expect(empty.body).toBeNull();
    const head = await fetch('/', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('5');
    expect(await head.text()).toBe('');
    const controller = new AbortController();
    const pending = fetch('/never', { signal: controller.signal });
    controller.abort(new Error('gave up'));
    await expect(pending).rejects.toThrow('gave up');
  });
});
