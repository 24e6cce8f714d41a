import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Eta } from 'eta';
import type { Brand } from '../config/load-config.js';
import { derivePalettes, paletteCss } from '../ui/brand.js';
import { createTranslator, LOCALES, type Locale, type MessageKey, type MessageParams, type Translate } from '../ui/i18n.js';
import { VIEWS_DIR } from '../ui/package-root.js';

export { VIEWS_DIR };

/** Data every page gets. */
export interface PageBase {
  title: string;
  /** The page's language (ui/i18n.ts negotiateLocale); English when left out. */
  locale?: Locale;
}

/** What every template gets besides its own data: `it.t(key, params)`, `it.tStrong(key, params)`, `it.lang` and `it.brand`. */
export interface PageGlobals {
  t: Translate;
  /**
   * A message as HTML for the raw tag: the catalogue's text escaped, each value of `params` escaped
   * and set in `<strong>` (a client's name, an email address), each of `plain` escaped as text, so a
   * language may put them where its word order needs them.
   */
  tStrong: (key: MessageKey, params: MessageParams, plain?: MessageParams) => string;
  lang: Locale;
  brand: Brand;
}

const HTML_ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text made safe for HTML content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => HTML_ESCAPES[character] ?? character);
}

/** Brackets a placeholder's index while the rest is escaped (a NUL: in no catalogue text, and dropped from plain values). */
const MARK = String.fromCharCode(0);
const MARKED = new RegExp(`${MARK}(\\d+)${MARK}`, 'g');

/** `t(key)` with its placeholders filled by `<strong>`-wrapped values, everything escaped (PageGlobals.tStrong). */
export function strongMessage(t: Translate, key: MessageKey, params: MessageParams, plain: MessageParams = {}): string {
  const marks = Object.fromEntries(Object.keys(params).map((name, index) => [name, `${MARK}${index}${MARK}`]));
  const values = Object.values(params);
  // Plain values carry no NUL: one that did could only come from outside, and is dropped.
  const plainText = Object.fromEntries(Object.entries(plain).map(([name, value]) => [name, String(value).replaceAll(MARK, '')]));
  return escapeHtml(t(key, { ...plainText, ...marks })).replace(MARKED, (_whole, index: string) => `<strong>${escapeHtml(String(values[Number(index)]))}</strong>`);
}

/** Server-rendered pages from views/, auto-escaped (Eta's `<%= %>` escapes; the raw tag prints only the layout's body, the logout form, a QR code SVG checked by interactions/totp-qr.ts, and `it.tStrong`'s output, which escapes everything itself). */
export interface Pages {
  render(name: 'login' | 'consent' | 'mfa' | 'mfa-enrol' | 'mfa-enrolled' | 'logout' | 'logged-out' | 'error' | 'account' | 'home' | 'reset-request' | 'reset-password' | 'reset-message' | 'signup' | 'email-link' | 'device', data: PageBase & Record<string, unknown>): string;
  /** The stylesheet every page links to (no inline styles or scripts: the CSP forbids them): the brand's palettes, then views/assets/gatehouse.css. */
  readonly stylesheet: string;
  /** @simplewebauthn/browser's UMD bundle, served at /assets/webauthn.js (from node_modules, no CDN). */
  readonly webauthnScript: string;
  /** Our passkey glue (views/assets/passkey.js), served at /assets/passkey.js. */
  readonly passkeyScript: string;
  /** The brand the pages show (config.brand). */
  readonly brand: Brand;
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
      const t = translators.get(lang) ?? createTranslator(lang);
      const globals: PageGlobals = { t, tStrong: (key, params, plain) => strongMessage(t, key, params, plain), lang, brand };
      return eta.render(name, { ...data, ...globals });
    },
    stylesheet,
    webauthnScript: readFileSync(webauthnBundlePath(), 'utf8'),
    passkeyScript: readFileSync(path.join(VIEWS_DIR, 'assets', 'passkey.js'), 'utf8'),
    brand,
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
