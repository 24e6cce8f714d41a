import type { Context } from 'koa';
import { createTranslator, LOCALES, negotiateLocale, type Locale, type MessageKey, type Translate } from '../ui/i18n.js';

const TRANSLATORS = new Map<Locale, Translate>(LOCALES.map((locale) => [locale, createTranslator(locale)]));

/**
 * The language of this request's pages: the one its interaction's `ui_locales` chose (see
 * followUiLocales), else Accept-Language, else English. Garbage in either is ignored, never echoed.
 */
export function requestLocale(ctx: Context): Locale {
  const chosen = (ctx.state as { locale?: Locale }).locale;
  return chosen ?? negotiateLocale({ acceptLanguage: ctx.get('accept-language') });
}

/** Makes the authorization request's `ui_locales` (then Accept-Language) the language of this request's pages. */
export function followUiLocales(ctx: Context, uiLocales: unknown): Locale {
  const locale = negotiateLocale({ uiLocales: typeof uiLocales === 'string' ? uiLocales : undefined, acceptLanguage: ctx.get('accept-language') });
  (ctx.state as { locale?: Locale }).locale = locale;
  return locale;
}

/** The translator of this request's language. */
export function translatorOf(ctx: Context): Translate {
  const locale = requestLocale(ctx);
  return TRANSLATORS.get(locale) ?? createTranslator(locale);
}

/** "Try again in N minutes", with its own wording for one minute. */
export function inMinutes(t: Translate, minutes: number, many: MessageKey, one: MessageKey): string {
  return minutes === 1 ? t(one) : t(many, { minutes });
}
