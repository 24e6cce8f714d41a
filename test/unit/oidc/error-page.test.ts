import { errors, type ErrorOut, type KoaContextWithOIDC } from 'oidc-provider';
import { describe, expect, it } from 'vitest';
import { errorPageData, peopleClientName } from '../../../src/oidc/error-page.js';
import { createTranslator } from '../../../src/ui/i18n.js';

/** A Koa context as renderError gets it: headers, state, and the provider's request context. */
function context(options: { acceptLanguage?: string; uiLocales?: unknown; client?: { clientId: string; clientName?: string } } = {}): KoaContextWithOIDC {
  const headers: Record<string, string> = options.acceptLanguage ? { 'accept-language': options.acceptLanguage } : {};
  return {
    get: (name: string) => headers[name.toLowerCase()] ?? '',
    state: { requestId: 'req-1' },
    oidc: { params: options.uiLocales === undefined ? {} : { ui_locales: options.uiLocales }, client: options.client },
  } as unknown as KoaContextWithOIDC;
}

const out = (error: string, description?: string): ErrorOut => ({ error, ...(description ? { error_description: description } : {}) }) as ErrorOut;

describe('the error page oidc-provider renders speaks to people (issue 17 §6)', () => {
  it('an unregistered redirect_uri names the app, with the code and description beneath', () => {
    const data = errorPageData(context({ client: { clientId: 'c1', clientName: 'Photo Book' } }), out('invalid_redirect_uri', "redirect_uri did not match any of the client's registered redirect_uris"), new errors.InvalidRedirectUri(), 'Gatehouse');
    expect(data).toMatchObject({
      locale: 'en',
      heading: 'This address is not registered',
      message: 'This app sent you here with an address it has not registered. Go back and try again, or contact Photo Book.',
      code: 'invalid_redirect_uri',
      detail: "redirect_uri did not match any of the client's registered redirect_uris",
      requestId: 'req-1',
    });
  });

  it('without a known client it says "the app"; in German from ui_locales before Accept-Language', () => {
    expect(errorPageData(context(), out('invalid_request', 'x'), new errors.InvalidRequest('x'), 'Acme').message).toBe('You were sent here with a request that Acme cannot accept. Go back and try again, or contact the app.');
    const german = errorPageData(context({ uiLocales: 'de', acceptLanguage: 'en' }), out('invalid_client', 'client is invalid'), new errors.InvalidClient('client is invalid'), 'Acme');
    expect(german.locale).toBe('de');
    expect(german.heading).toBe('Diese App ist hier nicht bekannt');
    expect(german.message).toContain('nicht registriert');
  });

  it('an expired interaction or session (SessionNotFound, invalid_request on the wire) is "this sign-in has expired"', () => {
    const data = errorPageData(context({ client: { clientId: 'c1', clientName: 'Photo Book' } }), out('invalid_request', 'interaction session not found'), new errors.SessionNotFound('interaction session not found'), 'Gatehouse');
    expect(data.heading).toBe('This sign-in has expired');
    expect(data.message).toBe('This sign-in took too long or was already finished. Go back to Photo Book and start again.');
    expect(data.code).toBe('invalid_request');
  });

  it.each([
    ['unauthorized_client', 'This app may not sign in this way'],
    ['access_denied', 'Access was not allowed'],
    ['login_required', 'You need to sign in'],
    ['server_error', 'Something went wrong on our side'],
    ['temporarily_unavailable', 'Temporarily unavailable'],
    ['something_new', 'Something went wrong'],
  ])('%s has a heading for people', (code, heading) => {
    const data = errorPageData(context(), out(code), new Error(code), 'Gatehouse');
    expect(data.heading).toBe(heading);
    expect(data.code).toBe(code);
    expect(data.requestId).toBe('req-1');
    expect(String(data.message)).not.toMatch(/\{[a-z]+\}/);
  });

  it('garbage ui_locales or Accept-Language give English; an overlong description is cut', () => {
    const data = errorPageData(context({ uiLocales: '<script>', acceptLanguage: 'x'.repeat(600) }), out('invalid_request', 'd'.repeat(1000)), new Error('x'), 'Gatehouse');
    expect(data.locale).toBe('en');
    expect(String(data.detail)).toHaveLength(300);
    expect(errorPageData(context({ uiLocales: ['de'] }), out('invalid_request'), new Error('x'), 'Gatehouse').locale).toBe('en');
  });

  it('the built-in account client is "your <brand> account" in the language of the page', () => {
    expect(peopleClientName(createTranslator('de'), 'Acme', 'gatehouse-account', 'your Gatehouse account')).toBe('Ihrem Acme-Konto');
    expect(peopleClientName(createTranslator('en'), 'Acme', 'other', 'Photo Book')).toBe('Photo Book');
    expect(peopleClientName(createTranslator('en'), 'Acme', 'other', '')).toBeUndefined();
  });
});
