import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/load-config.js';
import type { Logger } from '../observability/logger.js';
import type { Mailer, MailMessage } from './mailer.js';

/** nodemailer, loaded with the first message: it is ~5 MB of heap (~20 MB of RSS) that a server nobody asks for mail never needs. */
const loadNodemailer = async () => (await import('nodemailer')).default;

/** How delivery over SMTP is retried: `attempts` in all, waiting base·2ⁿ (capped, with jitter) between them. */
export interface RetryPolicy {
  attempts: number;
  baseMs: number;
  maxMs: number;
}

/** Six attempts over about a minute and a half: 1, 2, 4, 8, 16 s (±20%) between them, then given up and logged. */
export const DEFAULT_RETRY: RetryPolicy = Object.freeze({ attempts: 6, baseMs: 1000, maxMs: 60_000 });

/** Messages waiting at most; more are refused (logged), so a dead SMTP server cannot eat the memory. */
const MAX_QUEUED = 10_000;
/** How long close() waits for queued messages before giving up on them. */
const CLOSE_GRACE_MS = 5000;

/** What became of one message, for metrics. */
export type MailOutcome = 'sent' | 'written' | 'retried' | 'failed' | 'refused';

export interface MailerDeps {
  config: Pick<Config, 'mail' | 'production' | 'nodeEnv'>;
  logger: Logger;
  retry?: RetryPolicy;
  /** Called once per outcome (a retry counts as `retried`, each time). */
  onOutcome?: (kind: string, outcome: MailOutcome) => void;
}

interface Job {
  message: MailMessage;
  attempt: number;
}

/** An SMTP reply of the 5xx class is permanent (the address or the message is refused): retrying cannot help. */
function isPermanent(error: unknown): boolean {
  const code = (error as { responseCode?: unknown }).responseCode;
  return typeof code === 'number' && code >= 500 && code < 600;
}

/** What of a delivery error may be logged: the SMTP code and nodemailer's error code, never the message or the server's text (it may quote the address). */
function describe(error: unknown): Record<string, unknown> {
  const { code, responseCode, command } = error as { code?: unknown; responseCode?: unknown; command?: unknown };
  return { code, responseCode, command };
}

/**
 * The mailer of a server: over SMTP_URL with retries, or into DATA_DIR/outbox as .eml files in
 * development and tests without SMTP_URL; in production without SMTP_URL nothing can be sent
 * (`available` false). `send` never waits for delivery.
 *
 * @example
 * const mailer = createMailer({ config, logger });
 * if (mailer.available) mailer.send(compose(content, t));
 * await mailer.close();
 */
export function createMailer(deps: MailerDeps): Mailer {
  const { config, logger } = deps;
  const retry = deps.retry ?? DEFAULT_RETRY;
  const outcome = (kind: string, what: MailOutcome) => deps.onOutcome?.(kind, what);
  const log = logger.child({ component: 'mail' });

  if (config.mail.smtpUrl) return smtpMailer(config.mail.smtpUrl, config.mail.from, retry, log, outcome);
  if (config.production) {
    return {
      available: false,
      send(message) {
        outcome(message.kind, 'refused');
        log.error({ kind: message.kind }, 'mail not sent: SMTP_URL is not set');
      },
      close: async () => undefined,
    };
  }
  // The link is logged only in development, where a developer follows it; tests read the file (or an SMTP sink).
  return outboxMailer(config.mail.outboxDir, config.mail.from, log, outcome, config.nodeEnv === 'development');
}

function smtpMailer(url: string, from: string, retry: RetryPolicy, log: Logger, outcome: (kind: string, what: MailOutcome) => void): Mailer {
  // One connection at a time, reused; every wait bounded so a silent server is a failed attempt, not a hang.
  let loaded: Promise<{ sendMail(mail: object): Promise<unknown>; close(): void }> | undefined;
  const transport = () =>
    (loaded ??= loadNodemailer().then((nodemailer) =>
      nodemailer.createTransport({ url, pool: true, maxConnections: 1, connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 20_000 }, { from }),
    ));
  const queue: Job[] = [];
  /** Messages waiting out a backoff, by their timer. */
  const timers = new Map<NodeJS.Timeout, Job>();
  let running = false;
  let closing = false;
  let drained: (() => void) | undefined;

  const backoff = (attempt: number) => {
    const base = Math.min(retry.maxMs, retry.baseMs * 2 ** (attempt - 1));
    return Math.round(base * (0.8 + Math.random() * 0.4));
  };

  const idle = () => queue.length === 0 && timers.size === 0 && !running;

  async function pump(): Promise<void> {
    if (running) return;
    running = true;
    try {
      for (let job = queue.shift(); job; job = queue.shift()) {
        const { message } = job;
        try {
          await (await transport()).sendMail({ to: message.to, subject: message.subject, text: message.text, html: message.html });
          outcome(message.kind, 'sent');
          log.info({ kind: message.kind, attempt: job.attempt }, 'mail sent');
        } catch (error) {
          if (isPermanent(error) || job.attempt >= retry.attempts || closing) {
            outcome(message.kind, 'failed');
            log.error({ kind: message.kind, attempt: job.attempt, err: describe(error) }, 'mail could not be delivered; given up');
            continue;
          }
          outcome(message.kind, 'retried');
          log.warn({ kind: message.kind, attempt: job.attempt, err: describe(error) }, 'mail delivery failed; will retry');
          const next = { message, attempt: job.attempt + 1 };
          const timer = setTimeout(() => {
            timers.delete(timer);
            queue.push(next);
            void pump();
          }, backoff(job.attempt));
          timer.unref();
          timers.set(timer, next);
        }
      }
    } finally {
      running = false;
      if (idle()) drained?.();
    }
  }

  return {
    available: true,
    send(message) {
      if (closing || queue.length >= MAX_QUEUED) {
        outcome(message.kind, 'refused');
        log.error({ kind: message.kind, queued: queue.length }, closing ? 'mail not queued: shutting down' : 'mail not queued: too many messages waiting');
        return;
      }
      queue.push({ message, attempt: 1 });
      // After the answer: never in the request's path.
      setImmediate(() => void pump());
    },
    async close() {
      closing = true;
      if (!idle()) {
        // Messages waiting for a retry get one last try now.
        for (const [timer, job] of timers) {
          clearTimeout(timer);
          timers.delete(timer);
          queue.push(job);
        }
        await new Promise<void>((resolve) => {
          const give = setTimeout(resolve, CLOSE_GRACE_MS);
          give.unref();
          drained = () => {
            clearTimeout(give);
            resolve();
          };
          void pump();
        });
      }
      if (loaded) (await loaded).close();
    },
  };
}

function outboxMailer(dir: string, from: string, log: Logger, outcome: (kind: string, what: MailOutcome) => void, logLinks: boolean): Mailer {
  let loaded: Promise<{ sendMail(mail: object): Promise<{ message: unknown }> }> | undefined;
  const transport = () => (loaded ??= loadNodemailer().then((nodemailer) => nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' }, { from })));
  const pending = new Set<Promise<void>>();
  let warned = false;

  async function write(message: MailMessage): Promise<void> {
    const info = await (await transport()).sendMail({ to: message.to, subject: message.subject, text: message.text, html: message.html });
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const file = path.join(dir, `${stamp}-${message.kind}-${randomBytes(4).toString('hex')}.eml`);
    // The message holds a live link: readable by this user only.
    await writeFile(file, info.message as Buffer, { mode: 0o600 });
    outcome(message.kind, 'written');
    if (!warned) {
      warned = true;
      log.warn({ outbox: dir }, 'SMTP_URL is not set: mail is written as .eml files to the outbox instead of being sent (development only)');
    }
    log.warn({ kind: message.kind, file, ...(logLinks && message.link ? { link: message.link } : {}) }, 'mail written to the outbox (no SMTP_URL): open the file or follow the link');
  }

  return {
    available: true,
    send(message) {
      const job = write(message).catch((error: unknown) => {
        outcome(message.kind, 'failed');
        log.error({ kind: message.kind, err: { message: (error as Error).message } }, 'mail could not be written to the outbox');
      });
      pending.add(job);
      void job.finally(() => pending.delete(job));
    },
    async close() {
      await Promise.all(pending);
    },
  };
}
