import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import Router from '@koa/router';
import type { Context } from 'koa';
import type { Config } from '../config/load-config.js';
import { adminAudience } from '../registry/resource-server.repository.js';
import { CONSOLE_CALLBACK_PATH, CONSOLE_CLIENT_ID, CONSOLE_SIGNED_OUT_PATH } from '../services/built-in-clients.js';
import { PACKAGE_ROOT } from '../ui/package-root.js';

/** Where `npm run build` puts the console (console/scripts/build.ts): index.html and assets/. */
export const CONSOLE_DIST = path.join(PACKAGE_ROOT, 'dist', 'console');

/**
 * The console's Content-Security-Policy: its own script and stylesheet only (no inline script or
 * style, no eval), calls to this origin only (the admin API, the token endpoint), no frames.
 */
export const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** What the console is told about this server, as the content of <meta name="gatehouse-console">. */
export interface ConsoleSettings {
  issuer: string;
  client_id: string;
  redirect_uri: string;
  post_logout_redirect_uri: string;
  resource: string;
  idle_timeout_seconds: number;
}

const TYPES: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml' };

interface Asset {
  type: string;
  identity: Buffer;
  gzip: Buffer | undefined;
  br: Buffer | undefined;
}

const escapeAttribute = (value: string) => value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** The built console, read once: index.html with this server's settings, and the hashed assets with their compressed forms. */
function loadConsole(settings: ConsoleSettings): { index: string; assets: Map<string, Asset> } | undefined {
  const indexFile = path.join(CONSOLE_DIST, 'index.html');
  if (!existsSync(indexFile)) return undefined;
  const meta = `<meta name="gatehouse-console" content="${escapeAttribute(JSON.stringify(settings))}">`;
  const index = readFileSync(indexFile, 'utf8').replace('<!--settings-->', meta);
  const assets = new Map<string, Asset>();
  const dir = path.join(CONSOLE_DIST, 'assets');
  for (const name of existsSync(dir) ? readdirSync(dir) : []) {
    const type = TYPES[path.extname(name)];
    if (!type) continue;
    const read = (suffix: string) => (existsSync(path.join(dir, name + suffix)) ? readFileSync(path.join(dir, name + suffix)) : undefined);
    assets.set(name, { type, identity: readFileSync(path.join(dir, name)), gzip: read('.gz'), br: read('.br') });
  }
  return { index, assets };
}

/** The encoding of an asset this request accepts: brotli, then gzip, else none. */
function sendAsset(ctx: Context, asset: Asset): void {
  ctx.type = asset.type;
  ctx.set('Cache-Control', 'public, max-age=31536000, immutable');
  ctx.vary('Accept-Encoding');
  const accepted = ctx.acceptsEncodings('br', 'gzip', 'identity');
  if (accepted === 'br' && asset.br) {
    ctx.set('Content-Encoding', 'br');
    ctx.body = asset.br;
  } else if (accepted === 'gzip' && asset.gzip) {
    ctx.set('Content-Encoding', 'gzip');
    ctx.body = asset.gzip;
  } else {
    ctx.body = asset.identity;
  }
}

/**
 * GET /console and every page under it: the console's single page (index.html, never cached, under
 * CONSOLE_CSP) with this server's settings in a meta element; /console/assets/<name>: its script and
 * stylesheet, content-hashed, cached for good, brotli or gzip when the browser takes it. The console
 * signs administrators in with its own client (gatehouse-console) and calls the admin API
 * (docs/console.md). Without a build (no dist/console), a 503 that says to run `npm run build`.
 */
export function createConsoleRoutes(deps: { config: Pick<Config, 'issuer' | 'consoleIdleTimeoutSeconds'> }): Router {
  const base = deps.config.issuer.replace(/\/$/, '');
  const settings: ConsoleSettings = {
    issuer: deps.config.issuer,
    client_id: CONSOLE_CLIENT_ID,
    redirect_uri: `${base}${CONSOLE_CALLBACK_PATH}`,
    post_logout_redirect_uri: `${base}${CONSOLE_SIGNED_OUT_PATH}`,
    resource: adminAudience(deps.config.issuer),
    idle_timeout_seconds: deps.config.consoleIdleTimeoutSeconds,
  };
  const built = loadConsole(settings);
  const router = new Router({ prefix: '/console' });
  router.get('/assets/:name', (ctx) => {
    const asset = built?.assets.get(ctx.params.name ?? '');
    if (!asset) {
      ctx.status = 404;
      ctx.type = 'text/plain';
      ctx.body = 'no such console asset';
      return;
    }
    sendAsset(ctx, asset);
  });
  router.get(['/', '/{*page}'], (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Content-Security-Policy', CONSOLE_CSP);
    ctx.type = 'html';
    if (!built) {
      ctx.status = 503;
      ctx.set('Retry-After', '60');
      ctx.body = '<!doctype html><html lang="en"><meta charset="utf-8"><title>Console not built</title><main><h1>The console is not built</h1><p>Run <code>npm run build</code>, then start Gatehouse again.</p></main></html>';
      return;
    }
    ctx.body = built.index;
  });
  return router;
}
