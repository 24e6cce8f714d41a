/**
 * English, the reference catalogue: every key any page or mail uses is here, and every other
 * language must have the same keys with the same `{placeholders}` (test/unit/ui/messages.test.ts;
 * TypeScript already refuses a missing key). Keys are `area.what`; add new areas as contiguous blocks.
 */
export const en = {
  // Every page (views/layout.eta)
  'layout.language_name': 'English',
  'layout.support': 'Help and support',
  'layout.title_suffix': '{title} · {brand}',
  // Every mail (src/mail/compose.ts)
  'mail.signature': '— {brand}',
  'mail.support': 'Help and support',
  'mail.link_hint': 'If the button does not work, copy this link into your browser:',
} as const satisfies Record<string, string>;

/** A key of the message catalogue. */
export type MessageKey = keyof typeof en;
