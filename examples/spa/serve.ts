/**
 * Serves the single-page app (index.html, app.js, style.css), oidc-client-ts's browser build and the
 * app's settings. No bundler: the browser loads oidc-client-ts as a classic script (the global
 * `oidc`) and app.js as a module.
 *
 *     ISSUER=http://localhost:3000 CLIENT_ID=… API_URL=http://localhost:4000 PORT=5173 \
 *       node examples/spa/serve.ts
 *
 * See README.md beside this file.
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface SpaOptions {
  /** Gatehouse's issuer URL. */
  issuer: string;
  /** The public client registered for this app (`--auth-method none`). */
  clientId: string;
  /** Where the orders API (examples/resource-server) answers. */
  apiUrl: string;
  /** What the app asks for; `openid profile read:orders` unless given. */
  scope?: string;
}

const HERE = path.dirname(fileURLToPath(import.meta.url));
const OIDC_CLIENT = path.join(path.dirname(createRequire(import.meta.url).resolve('oidc-client-ts/package.json')), 'dist/browser/oidc-client-ts.min.js');

/** The app's pages: every one is index.html, and app.js looks at the path. */
const PAGES = new Set(['/', '/callback', '/silent-callback', '/signed-out']);
const FILES: Record<string, { file: string; type: string }> = {
  '/app.js': { file: path.join(HERE, 'app.js'), type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: path.join(HERE, 'style.css'), type: 'text/css; charset=utf-8' },
  '/vendor/oidc-client-ts.min.js': { file: OIDC_CLIENT, type: 'text/javascript; charset=utf-8' },
};

/**
 * The SPA's static server. Its Content-Security-Policy allows scripts from itself only, network
 * calls to itself, Gatehouse and the API, and frames from itself and Gatehouse (the silent renew).
 *
 * @example
 * ```ts
 * const server = createSpaServer({ issuer: 'http://localhost:3000', clientId, apiUrl: 'http://localhost:4000' });
 * server.listen(5173);
 * ```
 */
export function createSpaServer(options: SpaOptions): http.Server {
  const settings = JSON.stringify({
    issuer: options.issuer,
    clientId: options.clientId,
    apiUrl: options.apiUrl.replace(/\/$/, ''),
    scope: options.scope ?? 'openid profile read:orders',
  });
  const issuerOrigin = new URL(options.issuer).origin;
  const apiOrigin = new URL(options.apiUrl).origin;
  const csp = [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    `connect-src 'self' ${issuerOrigin} ${apiOrigin}`,
    `frame-src 'self' ${issuerOrigin}`,
    "frame-ancestors 'self'",
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');

  return http.createServer((request, response) => {
    const { pathname } = new URL(request.url ?? '/', 'http://spa.invalid');
    const send = (status: number, type: string, body: string | Buffer) => {
      response.writeHead(status, {
        'content-type': type,
        'content-security-policy': csp,
        'referrer-policy': 'no-referrer',
        'x-content-type-options': 'nosniff',
        'cache-control': 'no-store',
      });
      response.end(request.method === 'HEAD' ? undefined : body);
    };
    if (request.method !== 'GET' && request.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed');
    if (pathname === '/config.json') return send(200, 'application/json', settings);
    const file = PAGES.has(pathname) ? { file: path.join(HERE, 'index.html'), type: 'text/html; charset=utf-8' } : FILES[pathname];
    if (!file) return send(404, 'text/plain', 'not found');
    readFile(file.file).then(
      (body) => send(200, file.type, body),
      () => send(500, 'text/plain', 'cannot read file'),
    );
  });
}

/** Reads ISSUER, CLIENT_ID, API_URL, SCOPE and PORT (5173), and serves the app on localhost. */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<http.Server> {
  const { ISSUER, CLIENT_ID, API_URL } = env;
  if (!ISSUER || !CLIENT_ID || !API_URL) throw new Error('set ISSUER, CLIENT_ID and API_URL (SCOPE and PORT are optional)');
  const server = createSpaServer({ issuer: ISSUER.replace(/\/$/, ''), clientId: CLIENT_ID, apiUrl: API_URL, scope: env.SCOPE });
  const port = Number(env.PORT ?? 5173);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, 'localhost', resolve);
  });
  process.stdout.write(`single-page app on http://localhost:${port}\n`);
  const stop = () => server.close();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return server;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
