import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Eta } from 'eta';
import type { Brand } from '../config/load-config.js';
import { derivePalettes, paletteCss } from '../ui/brand.js';
import { createTranslator, LOCALES, type Locale, type Translate } from '../ui/i18n.js';
import { VIEWS_DIR } from '../ui/package-root.js';

export { VIEWS_DIR };

/** Data every page gets. */
export interface PageBase {
  title: string;
  /** The page's language (ui/i18n.ts negotiateLocale); English when left out. */
  locale?: Locale;
}

/** What every template gets besides its own data: `it.t(key, params)`, `it.lang` and `it.brand`. */
export interface PageGlobals {
  t: Translate;
  lang: Locale;
  brand: Brand;
}

/** Server-rendered pages from views/, auto-escaped (Eta's `<%= %>` escapes; the raw tag prints only the layout's body, the logout form and a QR code SVG checked by interactions/totp-qr.ts, never user data). */
export interface Pages {
  render(name: 'login' | 'consent' | 'mfa' | 'mfa-enrol' | 'mfa-enrolled' | 'logout' | 'logged-out' | 'error' | 'account' | 'signup' | 'email-link', data: PageBase & Record<string, unknown>): string;
  /** The stylesheet every page links to (no inline styles or scripts: the CSP forbids them): the brand's palettes, then views/assets/gatehouse.css. */
  readonly stylesheet: string;
  /** @simplewebauthn/browser's UMD bundle, served at /assets/webauthn.js (from node_modules, no CDN). */
  readonly webauthnScript: string;
  /** Our passkey glue (views/assets/passkey.js), served at /assets/passkey.js. */
  readonly passkeyScript: string;
}

/**
 * Where @simplewebauthn/browser's UMD bundle is: its package exports only ".", so the file is found
 * beside the resolved main entry (`script/index.js` → `dist/bundle/index.umd.min.js`).
 */
export function webauthnBundlePath(): string {
  const main = createRequire(import.meta.url).resolve('@simplewebauthn/browser');
  return path.join(path.dirname(main), '..', 'dist', 'bundle', 'index.umd.min.js');
}

/** A fresh CSP nonce for one response (128 random bits). */
export function scriptNonce(): string {
  return randomBytes(16).toString('base64');
}

/** The brand when none is configured (as config/load-config.ts defaults it). */
export const DEFAULT_BRAND: Brand = Object.freeze({ name: 'Gatehouse', logoUrl: undefined, logoAlt: 'Gatehouse', color: '#2952cc', supportUrl: undefined });

export function createPages(brand: Brand = DEFAULT_BRAND): Pages {
  const eta = new Eta({ views: VIEWS_DIR, autoEscape: true, cache: true, defaultExtension: '.eta' });
  const stylesheet = paletteCss(derivePalettes(brand.color)) + readFileSync(path.join(VIEWS_DIR, 'assets', 'gatehouse.css'), 'utf8');
  const translators = new Map(LOCALES.map((locale) => [locale, createTranslator(locale)]));
  return {
    render: (name, data) => {
      const lang = data.locale ?? LOCALES[0];
      const globals: PageGlobals = { t: translators.get(lang) ?? createTranslator(lang), lang, brand };
      return eta.render(name, { ...data, ...globals });
    },
    stylesheet,
    webauthnScript: readFileSync(webauthnBundlePath(), 'utf8'),
    passkeyScript: readFileSync(path.join(VIEWS_DIR, 'assets', 'passkey.js'), 'utf8'),
  };
}

/**
 * The Content-Security-Policy of our pages: no script at all, styles from our origin, and a
 * form-action that lets a form's redirect chain reach the client (browsers check every hop).
 * With `scriptNonce` (the login and second-factor pages, for passkeys), scripts whose tag carries
 * that nonce run, and may fetch from our origin; every other page keeps no script at all.
 */
export function pageCsp(formTargets: readonly string[] = [], options: { scriptNonce?: string } = {}): string {
  const origins = [...new Set(formTargets.map((target) => URL.parse(target)?.origin).filter((o): o is string => !!o && o !== 'null'))];
  return [
    "default-src 'none'",
    "style-src 'self'",
    "img-src 'self' https: data:",
    `form-action 'self' ${origins.join(' ')}`.trim(),
    "frame-ancestors 'none'",
    "base-uri 'none'",
    ...(options.scriptNonce ? [`script-src 'nonce-${options.scriptNonce}'`, "connect-src 'self'"] : []),
  ].join('; ');
}
