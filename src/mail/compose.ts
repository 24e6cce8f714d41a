import { Eta } from 'eta';
import type { Brand } from '../config/load-config.js';
import { derivePalettes } from '../ui/brand.js';
import type { Locale, Translate } from '../ui/i18n.js';
import { VIEWS_DIR } from '../ui/package-root.js';
import type { MailMessage } from './mailer.js';

/** What one mail says, already in the person's language (texts from the catalogue, through `t`). */
export interface MailContent {
  /** What it is (`password_reset`, …): logs and metrics name it, never its content. */
  kind: string;
  to: string;
  locale: Locale;
  subject: string;
  greeting: string;
  paragraphs: readonly string[];
  /** The one thing to do: a button in HTML, the label and the bare link in text. */
  action?: { label: string; url: string };
  /** Smaller print after the action ("If you did not ask for this …"). */
  closing?: readonly string[];
}

/** Builds mail from content: plain text and simple HTML (views/mail/message.eta, auto-escaped), signed with the brand. */
export type MailComposer = (content: MailContent, t: Translate) => MailMessage;

/**
 * @example
 * const compose = createMailComposer(config.brand);
 * mailer.send(compose({ kind: 'password_reset', to, locale, subject: t('mail.reset.subject'), greeting: …, paragraphs: […], action: { label, url } }, t));
 */
export function createMailComposer(brand: Brand): MailComposer {
  const eta = new Eta({ views: VIEWS_DIR, autoEscape: true, cache: true, defaultExtension: '.eta' });
  const { light } = derivePalettes(brand.color);
  return (content, t) => {
    const closing = content.closing ?? [];
    const signature = t('mail.signature', { brand: brand.name });
    const support = t('mail.support');
    const linkHint = t('mail.link_hint');
    const text = [
      content.greeting,
      ...content.paragraphs,
      ...(content.action ? [`${content.action.label}:\n${content.action.url}`] : []),
      ...closing,
      signature,
      ...(brand.supportUrl ? [`${support}: ${brand.supportUrl}`] : []),
    ].join('\n\n');
    const html = eta.render('mail/message', {
      lang: content.locale,
      brand,
      subject: content.subject,
      greeting: content.greeting,
      paragraphs: content.paragraphs,
      action: content.action,
      closing,
      signature,
      support,
      linkHint,
      accent: light.accent,
      onAccent: light.onAccent,
    });
    return { to: content.to, subject: content.subject, text: `${text}\n`, html, kind: content.kind, locale: content.locale, ...(content.action ? { link: content.action.url } : {}) };
  };
}
