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
