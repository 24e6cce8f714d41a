import { describe, expect, it } from 'vitest';
import { createTranslator, negotiateLocale, parseLocale } from '../../../src/ui/i18n.js';

describe('negotiateLocale', () => {
  it('takes the first shipped language of ui_locales before Accept-Language', () => {
    expect(negotiateLocale({ uiLocales: 'fr-CA de-AT en', acceptLanguage: 'en' })).toBe('de');
    expect(negotiateLocale({ uiLocales: 'fr', acceptLanguage: 'de-DE,de;q=0.9' })).toBe('de');
  });

  it('ranks Accept-Language by q, ties by order, and skips q=0 and unknown languages', () => {
    expect(negotiateLocale({ acceptLanguage: 'fr;q=1, en;q=0.5, de;q=0.8' })).toBe('de');
    expect(negotiateLocale({ acceptLanguage: 'de;q=0, en;q=0.1' })).toBe('en');
    expect(negotiateLocale({ acceptLanguage: 'DE-ch' })).toBe('de');
    expect(negotiateLocale({ acceptLanguage: 'ja, *;q=0.1' })).toBe('en');
  });

  it('falls back to English on garbage, overlong input or nothing', () => {
    expect(negotiateLocale({})).toBe('en');
    expect(negotiateLocale({ uiLocales: '<script>de</script>', acceptLanguage: 'de"><img' })).toBe('en');
    expect(negotiateLocale({ acceptLanguage: `${'x'.repeat(600)},de` })).toBe('en');
    expect(negotiateLocale({ acceptLanguage: 'de;q=abc' })).toBe('en');
    expect(negotiateLocale({ acceptLanguage: 'de;q=7' })).toBe('en');
  });

  it('reads a stored preference only when it is a shipped language', () => {
    expect(parseLocale('de')).toBe('de');
    expect(parseLocale('DE')).toBeUndefined();
    expect(parseLocale(42)).toBeUndefined();
  });
});

describe('createTranslator', () => {
  it('fills placeholders and leaves a missing one visible', () => {
    const t = createTranslator('de');
    expect(t('layout.title_suffix', { title: 'Anmelden', brand: 'Acme' })).toBe('Anmelden · Acme');
    expect(t('layout.title_suffix', { title: 'Anmelden' })).toBe('Anmelden · {brand}');
    expect(createTranslator('en')('layout.support')).toBe('Help and support');
  });
});
