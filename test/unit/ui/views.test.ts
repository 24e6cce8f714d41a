import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createPages, VIEWS_DIR, type Pages } from '../../../src/oidc/pages.js';
import { catalogues, LOCALES, type Locale } from '../../../src/ui/i18n.js';
import { EXPIRY_CHOICES } from '../../../src/interactions/account-api-keys.routes.js';

type View = Parameters<Pages['render']>[0];

/** Data that takes every branch of a view that shows text (errors, notices, lists with entries). */
const FIXTURES: Record<View, Array<Record<string, unknown>>> = {
  login: [
    { clientName: 'Photo App', reason: 'r', csrf: 'c', action: '/a', abort: '/x', passkey: { action: '/p', options: '/o' }, providers: [{ id: 'corp', name: 'Corp', action: '/u' }], error: 'e', email: 'ada@example.test' },
    { clientName: 'Photo App', csrf: 'c', action: '/a', abort: '/x', providers: [], signup: '/interaction/u/signup' },
  ],
  consent: [{ clientName: 'Photo App', scopes: [{ name: 'openid', description: 'd' }], resources: ['https://api.example'], accountEmail: 'ada@example.test', csrf: 'c', action: '/a' }],
  mfa: [
    { clientName: 'Photo App', accountEmail: 'ada@example.test', why: 'w', error: 'e', csrf: 'c', action: '/a', abort: '/x', codes: true, passkey: { action: '/p', options: '/o' } },
    { clientName: 'Photo App', accountEmail: '', csrf: 'c', action: '/a', abort: '/x', codes: false, passkey: { action: '/p', options: '/o' } },
  ],
  'mfa-enrol': [
    { clientName: 'Photo App', why: 'w', accountEmail: 'ada@example.test', qrSvg: '<svg></svg>', uri: 'otpauth://totp/x', secretGroups: ['ABCD'], error: 'e', csrf: 'c', action: '/a', cancel: '/x' },
    { clientName: 'Photo App', why: 'w', accountEmail: '', uri: 'otpauth://totp/x', secretGroups: ['ABCD'], csrf: 'c', action: '/a', cancel: '/x' },
  ],
  'mfa-enrolled': [
    { clientName: 'Photo App', accountEmail: 'ada@example.test', recoveryCodes: ['aaaa-bbbb'], csrf: 'c', action: '/a' },
    { clientName: 'Photo App', accountEmail: '', csrf: 'c', action: '/a' },
  ],
  logout: [{ clientName: 'Photo App', form: '<form id="op.logoutForm"></form>' }, { form: '<form id="op.logoutForm"></form>' }],
  'logged-out': [{ clientName: 'Photo App' }, {}],
  error: [{ heading: 'h', message: 'm', code: 'invalid_request', requestId: 'r1', detail: 'd', back: '/b' }],
  home: [{ discovery: 'https://id.example/.well-known/openid-configuration' }, { discovery: 'https://id.example/.well-known/openid-configuration', notFound: true }],
  'reset-request': [
    { heading: 'reset.request_title', csrf: 'c', back: '/account', error: 'reset.error_email', email: 'not an address' },
    { heading: 'reset.request_title', csrf: 'c', back: '/interaction/abc' },
  ],
  'reset-password': [
    { heading: 'reset.password_title', csrf: 'c', action: '/reset/password', token: 't', email: 'ada@example.test', min: 12, max: 1024, error: 'reset.error_too_short', errorField: 'password' },
    { heading: 'reset.password_title', csrf: 'c', action: '/reset/password', token: 't', email: 'ada@example.test', min: 12, max: 1024, error: 'reset.error_mismatch', errorField: 'confirm' },
    { heading: 'reset.password_title', csrf: 'c', action: '/reset/password', token: 't', email: 'ada@example.test', min: 12, max: 1024 },
  ],
  'reset-message': [
    { heading: 'reset.sent_title', lead: 'reset.sent_lead', params: { minutes: 30 }, more: ['reset.sent_hint'], links: [{ href: '/account', text: 'reset.back_to_sign_in' }, { href: '/reset', text: 'reset.request_again', id: 'again' }] },
    { heading: 'reset.link_refused_title', lead: 'reset.link_refused_lead', params: {}, more: [], links: [] },
  ],
  signup: [
    { clientName: 'Photo App', csrf: 'c', action: '/a', back: '/b', email: '', name: '', errors: [], invalid: [] },
    { clientName: 'Photo App', csrf: 'c', action: '/a', back: '/b', email: 'x', name: 'n', errors: ['e'], invalid: ['password_short'] },
  ],
  device: [
    { step: 'enter', action: '/device', xsrf: 'x', value: 'BCDF-GHJK', error: 'e' },
    { step: 'confirm', action: '/device', xsrf: 'x', userCode: 'BCDF-GHJK', clientName: 'TV App' },
    { step: 'success', clientName: 'TV App' },
    { step: 'aborted' },
    { step: 'blocked', error: 'e' },
  ],
  'email-link': [
    { heading: 'h', paragraphs: ['p', 'q'], form: { action: '/verify-email', csrf: 'c', token: 't', button: 'b' } },
    { heading: 'h', paragraphs: ['p'], code: 'used', requestId: 'r1', links: [{ href: '/account', text: 'a', id: 'to-account' }] },
  ],
  account: [
    {
      emailSection: { verified: false, notice: 'sent_verification', error: 'invalid', pending: { email: 'new@example.test', until: 'x', untilText: 'x' } },
      self: { profile: { name: 'Ada', email: 'ada@example.test', emailVerified: false, nameMax: 200 }, password: { hasPassword: true, recent: false, minLength: 12 }, apps: [], sessions: [], events: [] },
      email: 'ada@example.test', name: 'Ada', csrf: 'c', status: 's', error: 'e', totp: 'none', recoveryCodesLeft: 10, totpRemovable: true, passkeyRemovable: true, passkeyName: '',
      enrolment: { qrSvg: '<svg></svg>', uri: 'otpauth://totp/x', secretGroups: ['ABCD'], startedAt: '1', error: 'e' },
      linkedAccounts: { links: [{ providerId: 'corp', name: 'Corp', emailAtLink: 'a@corp', linkedAt: 'x', linkedAtText: 'x', lastUsedAt: null, lastUsedAtText: null, action: '/u' }], status: 's' },
      passkeys: [{ id: '1', name: 'Key', kind: 'k', created: 'x', createdText: 'x', lastUsedText: 'n' }],
      signIns: [{ at: 'x', atText: 'x', method: 'm', ip: '1', userAgent: 'u', browser: 'b', app: 'a' }],
      apiKeys: {
        created: { apiKey: 'gk_x', label: '<b>CI</b>' },
        status: { key: 'apikeys.status.deleted' },
        error: { key: 'apikeys.error.label', params: { max: 100 } },
        form: { label: 'l', resource: 'https://api.example', scope: 'read', expires: '30' },
        keys: [
          { id: '1', label: 'CI', prefix: 'gk_abcdefgh', resource: 'https://api.example', scope: 'read', created: 'x', createdText: 'x', expires: 'x', expiresText: 'x', expired: false, lastUsed: 'x', lastUsedText: 'x' },
          { id: '2', label: 'Old', prefix: 'gk_zyxwvuts', resource: 'https://api.example', scope: '', created: 'x', createdText: 'x', expires: null, expiresText: null, expired: true, lastUsed: null, lastUsedText: null },
        ],
        apis: [{ identifier: 'https://api.example', label: 'Example', scopes: 'read write' }],
        expiryChoices: ['7', '30', '90', '365', 'never'],
      },
    },
    { emailSection: { verified: true, notice: 'sent_change' }, apiKeys: { keys: [], apis: [], expiryChoices: ['7', '30', '90', '365', 'never'], form: { label: '', resource: '', scope: '', expires: '30' } }, email: 'ada@example.test', csrf: 'c', totp: 'active', recoveryCodesLeft: 2, totpRemovable: false, passkeyRemovable: false, passkeyName: '', linkedAccounts: { links: [] }, passkeys: [{ id: '1', name: 'Key', kind: 'k', created: 'x', createdText: 'x', lastUsedText: 'n' }], signIns: [] },
    { apiKeys: { keys: [], apis: [], expiryChoices: ['7', '30', '90', '365', 'never'], form: { label: '', resource: '', scope: '', expires: '30' } }, email: 'ada@example.test', csrf: 'c', totp: 'active', recoveryCodes: ['aaaa'], recoveryCodesLeft: 10, totpRemovable: true, passkeyRemovable: true, passkeyName: '', passkeys: [], signIns: [] },
  ],
};

const VIEWS = Object.keys(FIXTURES) as View[];
const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

function renders(locale: Locale): Array<{ view: View; html: string }> {
  const pages = createPages();
  return VIEWS.flatMap((view) => FIXTURES[view].map((data) => ({ view, html: pages.render(view, { title: 'T', locale, ...data }) })));
}

describe('every view in every shipped language (issue 17 §6)', () => {
  const { en } = catalogues();

  it('covers every view in views/', () => {
    const files = readdirSync(VIEWS_DIR).filter((file) => file.endsWith('.eta') && file !== 'layout.eta' && !/^account-.+\.eta$/.test(file));
    expect(files.map((file) => file.replace(/\.eta$/, '')).sort()).toEqual([...VIEWS].sort());
  });

  it('every key a template builds from a value is in the catalogue (the API key expiry choices)', () => {
    for (const choice of EXPIRY_CHOICES) expect(Object.hasOwn(en, `apikeys.expiry.${choice}`), choice).toBe(true);
  });

  it('every key a template names is in the catalogue', () => {
    for (const file of readdirSync(VIEWS_DIR).filter((name) => name.endsWith('.eta'))) {
      const text = readFileSync(path.join(VIEWS_DIR, file), 'utf8');
      for (const [, key] of text.matchAll(/it\.t(?:Strong)?\('([^']+)'\s*[,)]/g)) expect(Object.hasOwn(en, key ?? ''), `${file}: ${key}`).toBe(true);
    }
  });

  it('no view writes a sentence of its own: text and accessible names come from the catalogue', () => {
    for (const file of VIEWS.map((view) => `${view}.eta`).concat('layout.eta')) {
      const source = readFileSync(path.join(VIEWS_DIR, file), 'utf8').replace(/<%[\s\S]*?%>/g, '');
      for (const [, name, value] of source.matchAll(/\b(aria-label|title|alt|placeholder)="([^"]*)"/g)) {
        expect(value, `${file}: ${name}`).not.toMatch(/[a-z]{2}/i);
      }
      const text = source.replace(/<!doctype html>/i, '').replace(/<[^>]*>/g, ' ').replace(/&[a-z]+;/g, ' ');
      expect(text.replace(/[\s·(),.:;—–-]/g, ''), file).toBe('');
    }
  });

  it.each(LOCALES)('%s: every render has its <html lang>, no catalogue key, no unfilled placeholder', (locale) => {
    for (const { view, html } of renders(locale)) {
      expect(html, view).toContain(`<html lang="${locale}">`);
      expect(html, view).not.toMatch(/\{[a-zA-Z0-9_]+\}/);
      for (const key of Object.keys(en)) expect(html.includes(`>${key}<`) || html.includes(`"${key}"`), `${view}: ${key}`).toBe(false);
    }
  });

  it.each(LOCALES.filter((locale) => locale !== 'en'))('%s: no English sentence of the catalogue is left in a render', (locale) => {
    const catalogue = catalogues()[locale] as Record<string, string>;
    // The English texts this language writes differently, long enough not to be a shared word ("Passkey", "Browser").
    const english = Object.entries(en)
      .filter(([key, text]) => catalogue[key] !== text && text.replace(/\{[^}]+\}/g, '').length > 12)
      .flatMap(([, text]) => text.split(/\{[a-zA-Z0-9_]+\}/).filter((part) => part.trim().length > 12));
    expect(english.length).toBeGreaterThan(100);
    for (const { view, html } of renders(locale)) {
      for (const part of english) expect(html.includes(escape(part)) || html.includes(part), `${view}: "${part}"`).toBe(false);
    }
  });

  it('the German pages really are German: a sample of what each shows', () => {
    const german = Object.fromEntries(VIEWS.map((view) => [view, renders('de').filter((render) => render.view === view).map((render) => render.html).join('\n')]));
    expect(german.login).toContain('Mit einem Passkey anmelden');
    expect(german.login).toContain('um mit <strong>Photo App</strong> fortzufahren');
    expect(german.consent).toContain('Zugriff erlauben?');
    expect(german.mfa).toContain('Bestätigen Sie, dass Sie es sind');
    expect(german['mfa-enrol']).toContain('Ein zweiter Faktor ist erforderlich');
    expect(german['mfa-enrolled']).toContain('Speichern Sie Ihre Wiederherstellungscodes');
    expect(german.logout).toContain('Möchten Sie sich von Gatehouse abmelden und zu <strong>Photo App</strong> zurückkehren?');
    expect(german['logged-out']).toContain('Sie sind von Gatehouse abgemeldet.');
    expect(german.error).toContain('Fehler:');
    expect(german.home).toContain('Unter dieser Adresse gibt es keine Seite');
    expect(german.account).toContain('Bestätigung in zwei Schritten');
    expect(german.signup).toContain('um mit <strong>Photo App</strong> fortzufahren');
    expect(german.signup).toContain('Konto erstellen');
    expect(german.account).toContain('Bestätigungslink erneut senden');
    expect(german.login).toContain('Konto erstellen');
    expect(german.account).toContain('data-msg-follow-create="Folgen Sie der Abfrage Ihres Browsers, um Ihren Passkey zu erstellen …"');
  });

  it('a client name with markup is escaped inside the <strong> it is set in', () => {
    const html = createPages().render('login', { title: 'T', locale: 'en', ...FIXTURES.login[1], clientName: '<img src=x onerror=alert(1)>' });
    expect(html).toContain('to continue to <strong>&lt;img src=x onerror=alert(1)&gt;</strong>');
    expect(html).not.toContain('<img src=x');
  });
});
