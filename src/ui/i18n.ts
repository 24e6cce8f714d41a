import { de } from './messages/de.js';
import { en, type MessageKey } from './messages/en.js';

export type { MessageKey } from './messages/en.js';

/** The languages Gatehouse ships, complete: the first is the fallback. */
export const LOCALES = ['en', 'de'] as const;
export type Locale = (typeof LOCALES)[number];

/** Values put into a message's `{name}` placeholders. */
export type MessageParams = Readonly<Record<string, string | number>>;

/** Turns a catalogue key (and its placeholders' values) into text of one language. Output is plain text: templates escape it. */
export type Translate = (key: MessageKey, params?: MessageParams) => string;

const CATALOGUES: Readonly<Record<Locale, Readonly<Record<MessageKey, string>>>> = { en, de };

/** Longest header or parameter read: a longer one is garbage, and the fallback language applies. */
const MAX_INPUT = 512;
/** A language range as BCP 47 and RFC 9110 allow it (`de`, `de-CH`, `zh-Hant-TW`, `*`). */
const LANGUAGE_RANGE = /^(?:\*|[a-z]{1,8}(?:-[a-z0-9]{1,8})*)$/i;

function shipped(tag: string): Locale | undefined {
  const primary = tag.toLowerCase().split('-')[0];
  return LOCALES.find((locale) => locale === primary);
}

/**
 * The language of a page: the first shipped one in `ui_locales` (space-separated, the client's or
 * person's order), then the best of Accept-Language by its q-values, then English. Garbage in either
 * (overlong, not a language tag) is ignored, never echoed.
 *
 * @example
 * negotiateLocale({ uiLocales: 'fr de', acceptLanguage: 'en' }); // 'de'
 */
export function negotiateLocale(input: { uiLocales?: string | undefined; acceptLanguage?: string | undefined }): Locale {
  const { uiLocales, acceptLanguage } = input;
  if (typeof uiLocales === 'string' && uiLocales.length <= MAX_INPUT) {
    for (const tag of uiLocales.split(' ')) {
      if (!LANGUAGE_RANGE.test(tag) || tag === '*') continue;
      const locale = shipped(tag);
      if (locale) return locale;
    }
  }
  if (typeof acceptLanguage === 'string' && acceptLanguage.length <= MAX_INPUT) {
    const ranked = acceptLanguage
      .split(',')
      .map((part, index) => {
        const [range = '', ...parameters] = part.trim().split(';').map((piece) => piece.trim());
        const q = parameters.find((parameter) => /^q=/i.test(parameter));
        const weight = q === undefined ? 1 : Number(q.slice(2));
        return { range, weight: Number.isFinite(weight) && weight >= 0 && weight <= 1 ? weight : 0, index };
      })
      .filter(({ range, weight }) => weight > 0 && LANGUAGE_RANGE.test(range))
      .sort((a, b) => b.weight - a.weight || a.index - b.index);
    for (const { range } of ranked) {
      if (range === '*') return LOCALES[0];
      const locale = shipped(range);
      if (locale) return locale;
    }
  }
  return LOCALES[0];
}

/** Reads a string as one of the shipped languages (a stored preference), or undefined. */
export function parseLocale(value: unknown): Locale | undefined {
  return typeof value === 'string' ? LOCALES.find((locale) => locale === value) : undefined;
}

/**
 * The translator of one language. A placeholder without a value stays as written (`{name}`), so a
 * forgotten parameter shows in tests instead of vanishing.
 *
 * @example
 * const t = createTranslator('de');
 * t('error.back_to_app', { app: 'Shop' });
 */
export function createTranslator(locale: Locale): Translate {
  const catalogue = CATALOGUES[locale];
  return (key, params) => {
    const text = catalogue[key];
    if (!params) return text;
    return text.replace(/\{([a-zA-Z0-9_]+)\}/g, (whole, name: string) => (Object.hasOwn(params, name) ? String(params[name]) : whole));
  };
}

/** Every catalogue, for the completeness test and tooling. */
export function catalogues(): Readonly<Record<Locale, Readonly<Record<MessageKey, string>>>> {
  return CATALOGUES;
}
