import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Eta } from 'eta';

/** The folder holding package.json: views/ sits beside it, from src/ and from dist/ alike. */
function packageRoot(): string {
  let dir = import.meta.dirname;
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('package.json not found above ' + import.meta.dirname);
    dir = parent;
  }
  return dir;
}

export const VIEWS_DIR = path.join(packageRoot(), 'views');

/** Data every page gets. */
export interface PageBase {
  title: string;
}

/** Server-rendered pages from views/, auto-escaped (Eta's `<%= %>` escapes; the raw tag prints only the layout's body, the logout form and a QR code SVG checked by interactions/totp-qr.ts, never user data). */
export interface Pages {
  render(name: 'login' | 'consent' | 'mfa' | 'mfa-enrol' | 'mfa-enrolled' | 'logout' | 'logged-out' | 'error' | 'account', data: PageBase & Record<string, unknown>): string;
  /** The stylesheet every page links to (no inline styles or scripts: the CSP forbids them). */
  readonly stylesheet: string;
}

export function createPages(): Pages {
  const eta = new Eta({ views: VIEWS_DIR, autoEscape: true, cache: true, defaultExtension: '.eta' });
  const stylesheet = readFileSync(path.join(VIEWS_DIR, 'assets', 'gatehouse.css'), 'utf8');
  return {
    render: (name, data) => eta.render(name, data),
    stylesheet,
  };
}

/**
 * The Content-Security-Policy of our pages: no script at all, styles from our origin, and a
 * form-action that lets a form's redirect chain reach the client (browsers check every hop).
 */
export function pageCsp(formTargets: readonly string[] = []): string {
  const origins = [...new Set(formTargets.map((target) => URL.parse(target)?.origin).filter((o): o is string => !!o && o !== 'null'))];
  return [
    "default-src 'none'",
    "style-src 'self'",
    "img-src 'self' https: data:",
    `form-action 'self' ${origins.join(' ')}`.trim(),
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ');
}
