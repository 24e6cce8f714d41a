import { errors, type ErrorOut, type KoaContextWithOIDC } from 'oidc-provider';
import { ACCOUNT_CLIENT_ID } from '../services/built-in-clients.js';
import { createTranslator, negotiateLocale, type Locale, type MessageKey, type Translate } from '../ui/i18n.js';
import type { PageBase } from './pages.js';

/** What the error page shows for one of oidc-provider's errors: a heading and a sentence for people, by code. */
const PEOPLE_WORDS: Readonly<Record<string, { heading: MessageKey; message: MessageKey }>> = {
  invalid_redirect_uri: { heading: 'oidc.redirect_uri_heading', message: 'oidc.redirect_uri' },
  invalid_client: { heading: 'oidc.invalid_client_heading', message: 'oidc.invalid_client' },
  invalid_request: { heading: 'oidc.invalid_request_heading', message: 'oidc.invalid_request' },
  invalid_request_object: { heading: 'oidc.invalid_request_heading', message: 'oidc.invalid_request' },
  invalid_request_uri: { heading: 'oidc.invalid_request_heading', message: 'oidc.invalid_request' },
  invalid_scope: { heading: 'oidc.invalid_request_heading', message: 'oidc.invalid_request' },
  invalid_target: { heading: 'oidc.invalid_request_heading', message: 'oidc.invalid_request' },
  unsupported_response_type: { heading: 'oidc.invalid_request_heading', message: 'oidc.invalid_request' },
  unsupported_response_mode: { heading: 'oidc.invalid_request_heading', message: 'oidc.invalid_request' },
  unauthorized_client: { heading: 'oidc.unauthorized_client_heading', message: 'oidc.unauthorized_client' },
  access_denied: { heading: 'oidc.access_denied_heading', message: 'oidc.access_denied' },
  login_required: { heading: 'oidc.login_required_heading', message: 'oidc.login_required' },
  interaction_required: { heading: 'oidc.login_required_heading', message: 'oidc.login_required' },
  consent_required: { heading: 'oidc.login_required_heading', message: 'oidc.login_required' },
  server_error: { heading: 'oidc.server_error_heading', message: 'oidc.server_error' },
  temporarily_unavailable: { heading: 'oidc.unavailable_heading', message: 'oidc.unavailable' },
};

/** The longest error_description shown beneath (a request's own text can be long). */
const MAX_DETAIL = 300;

/**
 * The error page's data for an error oidc-provider renders (its `renderError`): a heading and a
 * sentence for people in the request's language (the authorization request's `ui_locales`, then
 * Accept-Language), naming the app when it is known; the technical code and error_description
 * beneath, the request id with them. Everything is escaped by the template; no stack ever.
 *
 * @example
 * renderError: (ctx, out, error) => { ctx.body = pages.render('error', errorPageData(ctx, out, error, brand.name)); }
 */
export function errorPageData(ctx: KoaContextWithOIDC, out: ErrorOut, error: unknown, brandName: string): PageBase & Record<string, unknown> {
  const locale = pageLocaleOf(ctx);
  const t = createTranslator(locale);
  // An expired or foreign interaction or session is invalid_request on the wire, and for people "this sign-in has expired".
  const words = error instanceof errors.SessionNotFound ? { heading: 'oidc.session_heading' as const, message: 'oidc.session' as const } : PEOPLE_WORDS[out.error];
  const clientName = clientNameOf(ctx, t, brandName);
  const app = clientName ?? t('oidc.the_app');
  const heading = t(words?.heading ?? 'oidc.heading');
  const message = words ? t(words.message, { app, brand: brandName }) : t('oidc.fallback');
  const detail = typeof out.error_description === 'string' ? out.error_description.slice(0, MAX_DETAIL) : undefined;
  const requestId = (ctx.state as { requestId?: unknown }).requestId;
  return {
    title: heading,
    heading,
    message,
    code: out.error,
    ...(detail ? { detail } : {}),
    requestId: typeof requestId === 'string' ? requestId : undefined,
    locale,
  };
}

/** The language of a page oidc-provider renders: the request's `ui_locales` when it has one, then Accept-Language. */
export function pageLocaleOf(ctx: KoaContextWithOIDC): Locale {
  let uiLocales: unknown;
  try {
    uiLocales = ctx.oidc?.params?.ui_locales;
  } catch {
    // ctx.oidc throws before oidc-provider set it up for this request: no parameters then.
    uiLocales = undefined;
  }
  return negotiateLocale({ uiLocales: typeof uiLocales === 'string' ? uiLocales : undefined, acceptLanguage: ctx.get('accept-language') });
}

/**
 * A client's name as pages show it: the built-in account page's client is "your <brand> account" in
 * the page's language (its registered name is English), every other client its registered name.
 */
export function peopleClientName(t: Translate, brandName: string, clientId: string, registeredName: string | undefined): string | undefined {
  if (clientId === ACCOUNT_CLIENT_ID) return t('common.account_client', { brand: brandName });
  return typeof registeredName === 'string' && registeredName !== '' ? registeredName : undefined;
}

/** The name of the request's client as pages show it, when there is a client. */
export function clientNameOf(ctx: KoaContextWithOIDC, t: Translate, brandName: string): string | undefined {
  try {
    const client = ctx.oidc?.client;
    return client ? peopleClientName(t, brandName, client.clientId, client.clientName) : undefined;
  } catch {
    return undefined;
  }
}
