import { describe, expect, it } from 'vitest';
import { catalogues, LOCALES } from '../../../src/ui/i18n.js';

const placeholders = (text: string) => [...text.matchAll(/\{([a-zA-Z0-9_]+)\}/g)].map((m) => m[1]).sort();

describe('the message catalogues', () => {
  const all = catalogues();
  const reference = all.en;

  it.each(LOCALES.filter((locale) => locale !== 'en'))('%s has every key of English, no other, and never an empty text', (locale) => {
    const catalogue = all[locale];
    expect(Object.keys(catalogue).sort()).toEqual(Object.keys(reference).sort());
    for (const [key, text] of Object.entries(catalogue)) {
      expect(text.trim(), `${locale}: ${key}`).not.toBe('');
    }
  });

  it.each(LOCALES.filter((locale) => locale !== 'en'))('%s uses the same placeholders as English in every message', (locale) => {
    const catalogue = all[locale] as Record<string, string>;
    for (const [key, text] of Object.entries(reference)) {
      expect(placeholders(catalogue[key] ?? ''), `${locale}: ${key}`).toEqual(placeholders(text));
    }
  });

  it('English has no empty message', () => {
    for (const [key, text] of Object.entries(reference)) expect(text.trim(), key).not.toBe('');
  });
});
