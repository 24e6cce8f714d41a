import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createPages, pageCsp, scriptNonce, webauthnBundlePath } from '../../../src/oidc/pages.js';

describe('the passkey scripts and the nonce CSP (design §4.3)', () => {
  it('finds @simplewebauthn/browser 14 UMD bundle in node_modules (no CDN): an upgrade that moves it fails here', () => {
    const file = webauthnBundlePath();
    expect(file).toMatch(/node_modules\/@simplewebauthn\/browser\/dist\/bundle\/index\.umd\.min\.js$/);
    expect(existsSync(file)).toBe(true);
    const text = readFileSync(file, 'utf8');
    expect(text.startsWith('/* [@simplewebauthn/browser@14.')).toBe(true);
    expect(text).toContain('SimpleWebAuthnBrowser');
    expect(text).toContain('startAuthentication');
  });

  it('the pages carry both scripts, read once: the library and our glue, which has no eval', () => {
    const pages = createPages();
    expect(pages.webauthnScript).toBe(readFileSync(webauthnBundlePath(), 'utf8'));
    expect(pages.passkeyScript).toContain('form[data-passkey]');
    expect(pages.passkeyScript).not.toMatch(/\beval\s*\(|new Function|innerHTML/);
  });

  it('a CSP without a nonce has no script source at all; with one, only that nonce (and fetches to our origin)', () => {
    expect(pageCsp(['https://app.example/cb'])).not.toContain('script-src');
    expect(pageCsp()).not.toContain('connect-src');
    const nonce = scriptNonce();
    expect(Buffer.from(nonce, 'base64')).toHaveLength(16);
    expect(scriptNonce()).not.toBe(nonce);
    const csp = pageCsp(['https://app.example/cb'], { scriptNonce: nonce });
    expect(csp).toContain(`script-src 'nonce-${nonce}'`);
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("form-action 'self' https://app.example");
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|script-src[^;]*'self'/);
  });
});

describe('every page carries the brand and its language (views/layout.eta)', () => {
  const brand = { name: 'Acme <ID>', logoUrl: 'https://cdn.acme.example/logo.svg?a=1&b=2', logoAlt: 'Acme "logo"', color: '#ffcc00', supportUrl: 'https://help.acme.example/' };

  it('names the brand in the title, shows the logo with its alt text and the support link, all escaped', () => {
    const html = createPages(brand).render('logged-out', { title: 'Signed out', locale: 'en' });
    expect(html).toContain('<html lang="en">');
    expect(html).toContain('<title>Signed out · Acme &lt;ID&gt;</title>');
    expect(html).toContain('<img src="https://cdn.acme.example/logo.svg?a=1&amp;b=2" alt="Acme &quot;logo&quot;">');
    expect(html).toContain('<a href="https://help.acme.example/" id="support-link">Help and support</a>');
    expect(html).not.toContain('<ID>');
  });

  it('speaks the page language it is given, and shows no logo or support link when none is configured', () => {
    const html = createPages().render('logged-out', { title: 'Abgemeldet', locale: 'de' });
    expect(html).toContain('<html lang="de">');
    expect(html).toContain('<title>Abgemeldet · Gatehouse</title>');
    expect(html).not.toContain('<img');
    expect(html).not.toContain('support-link');
    expect(createPages(brand).render('logged-out', { title: 'Abgemeldet', locale: 'de' })).toContain('>Hilfe und Support</a>');
  });

  it('puts the brand palettes before the stylesheet: a yellow brand is darkened for light pages and kept for dark ones', () => {
    const css = createPages(brand).stylesheet;
    expect(css.startsWith(':root { color-scheme: light dark;')).toBe(true);
    expect(css.split('\n')[0]).not.toContain('--accent: #ffcc00;');
    expect(css.split('\n')[1]).toContain('--accent: #ffcc00;');
    expect(css).toContain('color: var(--on-accent); background: var(--accent);');
  });
});
