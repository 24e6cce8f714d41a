import type { Locale } from '../ui/i18n.js';

/** One message, ready to go: plain text plus simple HTML (see compose.ts). */
export interface MailMessage {
  /** One address. */
  to: string;
  subject: string;
  text: string;
  html: string;
  /** What it is (`password_reset`, `email_verification`, …): for logs and metrics, never its content. */
  kind: string;
  locale: Locale;
  /** The message's one link (a reset or verification link): logged only by the development outbox, so a developer can follow it. */
  link?: string;
}

/**
 * Sends mail without ever holding up a page: `send` queues and returns at once; delivery is retried
 * with backoff in the background (SMTP_URL), or the message is written as an .eml file under
 * DATA_DIR/outbox (development without SMTP_URL). In production without SMTP_URL, `available` is
 * false and callers refuse the feature instead of pretending to send.
 */
export interface Mailer {
  /** True when a message handed to `send` can reach someone (an SMTP server, or the development outbox). */
  readonly available: boolean;
  /** Queues the message; never throws for a delivery problem (those are logged, by kind and request id, never content). */
  send(message: MailMessage): void;
  /** Waits (bounded) for queued messages to be handed over, then closes the transport. */
  close(): Promise<void>;
}
