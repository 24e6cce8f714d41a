import type { MessageKey } from './en.js';

/** German. Same keys and placeholders as en.ts (checked by TypeScript and test/unit/ui/messages.test.ts). */
export const de: Readonly<Record<MessageKey, string>> = {
  // Every page (views/layout.eta)
  'layout.language_name': 'Deutsch',
  'layout.support': 'Hilfe und Support',
  'layout.title_suffix': '{title} · {brand}',
  // Every mail (src/mail/compose.ts)
  'mail.signature': '— {brand}',
  'mail.support': 'Hilfe und Support',
  'mail.link_hint': 'Falls die Schaltfläche nicht funktioniert, kopieren Sie diesen Link in Ihren Browser:',
};
