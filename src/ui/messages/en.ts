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
  // Personal API keys (views/account-api-keys.eta; docs/api-keys.md)
  'apikeys.heading': 'API keys',
  'apikeys.intro': 'Scripts and tools use an API key to call an API as you: they exchange it for an access token that lasts at most an hour. Treat a key like a password.',
  'apikeys.ends_note': 'Changing your password, signing out everywhere or a disabled account also stops your keys; regenerate them afterwards.',
  'apikeys.new_heading': 'Your new API key “{label}”',
  'apikeys.new_once': 'Copy it now: it is shown only this once and cannot be shown again. Keep it in a secret store or an environment variable, never in code.',
  'apikeys.empty': 'No API keys yet.',
  'apikeys.details': 'Starts with {prefix} · for {api}',
  'apikeys.scopes': 'Scopes: {scopes}',
  'apikeys.no_scopes': 'No scopes: the API sees only who you are.',
  'apikeys.created_at': 'Created',
  'apikeys.expires_at': 'expires',
  'apikeys.expired_at': 'expired',
  'apikeys.never_expires': 'never expires',
  'apikeys.last_used_at': 'last used',
  'apikeys.never_used': 'never used',
  'apikeys.regenerate': 'Regenerate',
  'apikeys.regenerate_named': 'Regenerate {label}',
  'apikeys.delete': 'Delete',
  'apikeys.delete_named': 'Delete {label}',
  'apikeys.regenerate_help': 'Regenerating makes a new key in place of the old one, which stops working at once.',
  'apikeys.create_heading': 'Create an API key',
  'apikeys.label': 'Label',
  'apikeys.label_help': 'What the key is for, such as “Nightly backup” (at most {max} characters).',
  'apikeys.api': 'API',
  'apikeys.scope': 'Scopes (optional, separated by spaces)',
  'apikeys.scope_help': 'The scopes each API offers:',
  'apikeys.api_scopes': '{api}: {scopes}',
  'apikeys.api_no_scopes': '{api}: no scopes',
  'apikeys.expiry': 'Expires after',
  'apikeys.expiry.7': '7 days',
  'apikeys.expiry.30': '30 days',
  'apikeys.expiry.90': '90 days',
  'apikeys.expiry.365': '1 year',
  'apikeys.expiry.never': 'Never',
  'apikeys.create': 'Create API key',
  'apikeys.no_apis': 'No APIs are registered yet, so no key can be made.',
  'apikeys.status.created': 'API key created.',
  'apikeys.status.regenerated': 'A new key replaces the old one, which no longer works.',
  'apikeys.status.deleted': 'API key deleted. It no longer works.',
  'apikeys.error.label': 'Give the key a label of 1 to {max} characters. Nothing was changed.',
  'apikeys.error.resource': 'Choose one of the APIs listed. Nothing was changed.',
  'apikeys.error.scope': 'Choose only scopes the chosen API offers, as listed below the field. Nothing was changed.',
  'apikeys.error.expiry': 'Choose when the key expires from the list. Nothing was changed.',
  'apikeys.error.too_many': 'You have the most API keys allowed ({max}). Delete one first. Nothing was changed.',
  'apikeys.error.expired': 'This key has expired and cannot be regenerated: create a new one. Nothing was changed.',
  'apikeys.error.not_found': 'There is no such API key on your account. Nothing was changed.',
} as const satisfies Record<string, string>;

/** A key of the message catalogue. */
export type MessageKey = keyof typeof en;
