// The `reset` scenario's pieces: an SMTP server on loopback that takes the server's mail and hands
// each reset link to the flow waiting for it, and the flow itself ("Forgot password?" → the mail's
// link → a new password), as a browser and a person would go through it.
import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import type { Agent } from './flow.js';

/** An SMTP server on 127.0.0.1:port (plain SMTP, no AUTH or TLS) whose mail is read for reset links, by recipient. */
export interface ResetSink {
  /** The link of the next reset mail to `email` (one already received, or the next to come). */
  linkFor(email: string, timeoutMs?: number): Promise<string>;
  /** Mail received in all. */
  readonly received: number;
  close(): Promise<void>;
}

export async function startResetSink(port: number): Promise<ResetSink> {
  const arrived = new Map<string, string[]>();
  const waiting = new Map<string, (link: string) => void>();
  let received = 0;
  const deliver = (email: string, link: string) => {
    const waiter = waiting.get(email);
    if (waiter) {
      waiting.delete(email);
      waiter(link);
    } else arrived.set(email, [...(arrived.get(email) ?? []), link]);
  };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    size: 1024 * 1024,
    onData(stream, session, callback) {
      simpleParser(stream).then(
        (mail) => {
          received += 1;
          const link = /https?:\/\/\S+\/reset\/password\?token=[A-Za-z0-9_-]+/.exec(mail.text ?? '')?.[0];
          for (const rcpt of session.envelope.rcptTo) if (link) deliver(rcpt.address, link);
          callback();
        },
        (error: unknown) => callback(error as Error),
      );
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    linkFor(email, timeoutMs = 30_000) {
      const ready = arrived.get(email)?.shift();
      if (ready) return Promise.resolve(ready);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(email);
          reject(new Error(`no reset mail for ${email} within ${timeoutMs} ms`));
        }, timeoutMs);
        waiting.set(email, (link) => {
          clearTimeout(timer);
          resolve(link);
        });
      });
    },
    get received() {
      return received;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const hidden = (html: string, name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(html)?.[1] ?? '';

/**
 * One reset, start to end, on a new browser: GET /reset → POST /reset (the address; the same
 * neutral page whoever it is) → the link from the mail → GET it (the new-password form) → POST
 * /reset/password with `password` (argon2id; every session, grant and refresh token of the person ends).
 */
export async function resetFlow(agent: Agent, sink: ResetSink, email: string, password: string): Promise<void> {
  const form = await agent.request('/reset');
  const formHtml = await form.text();
  if (form.status !== 200) throw new Error(`GET /reset answered ${form.status}`);
  // Waiting starts before the request: the mail may come before the answer is read.
  const link = sink.linkFor(email);
  link.catch(() => undefined);
  const asked = await agent.request('/reset', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ csrf: hidden(formHtml, 'csrf'), email }) });
  await asked.arrayBuffer();
  if (asked.status !== 200) throw new Error(`POST /reset answered ${asked.status}`);
  const page = await agent.request(await link);
  const pageHtml = await page.text();
  if (page.status !== 200) throw new Error(`the reset link answered ${page.status}`);
  const done = await agent.request('/reset/password', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrf: hidden(pageHtml, 'csrf'), token: hidden(pageHtml, 'token'), password, confirm: password }),
  });
  await done.arrayBuffer();
  if (done.status !== 200) throw new Error(`POST /reset/password answered ${done.status}`);
}
