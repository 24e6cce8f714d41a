import type { MessageKey } from './en.js';

/** German. Same keys and placeholders as en.ts (checked by TypeScript and test/unit/ui/messages.test.ts). */
export const de: Readonly<Record<MessageKey, string>> = {
  // Every page (views/layout.eta)
  'layout.language_name': 'Deutsch',
  'layout.support': 'Hilfe und Support',
  'layout.title_suffix': '{title} · {brand}',
};
