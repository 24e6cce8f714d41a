import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load-config.js';
import { createMailComposer } from '../../../src/mail/compose.js';
import type { Mailer } from '../../../src/mail/mailer.js';
import { createMailer, type MailOutcome } from '../../../src/mail/smtp-mailer.js';
import { createLogger } from '../../../src/observability/logger.js';
import { createTranslator } from '../../../src/ui/i18n.js';
import { captureLogs } from '../../fixtures/log-capture.js';
import { startSmtpSink, type SmtpSink } from '../../fixtures/smtp-sink.js';

const LINK = 'http://localhost:3000/reset/abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';

function message(to: string, locale: 'en' | 'de' = 'en') {
  const t = createTranslator(locale);
  const config = loadConfig({ NODE_ENV: 'test', BRAND_NAME: 'Acme <Login>', SUPPORT_URL: 'https://help.example.com/' });
  return createMailComposer(config.brand)(
    {
      kind: 'test_mail',
      to,
      locale,
      subject: 'Reset <your> password',
      greeting: 'Hello Ada & co,',
      paragraphs: ['Someone asked to reset the password of <b>your</b> account.'],
      action: { label: 'Choose a new password', url: LINK },
      closing: ['If it was not you, ignore this mail.'],
    },
    t,
  );
}

describe('the mailer over SMTP (a real SMTP server on loopback)', () => {
  let sink: SmtpSink;
  let mailer: Mailer | undefined;
  const outcomes: Array<[string, MailOutcome]> = [];
  const logs = captureLogs('mailer-smtp');

  beforeAll(async () => {
    sink = await startSmtpSink();
  });
  afterEach(async () => {
    await mailer?.close();
    mailer = undefined;
    outcomes.length = 0;
  });
  afterAll(async () => {
    await sink.close();
  });

  function start(retry = { attempts: 3, baseMs: 20, maxMs: 100 }) {
    const config = loadConfig({ NODE_ENV: 'test', SMTP_URL: sink.url, MAIL_FROM: 'Acme <no-reply@acme.example>' });
    mailer = createMailer({ config, logger: createLogger({ logLevel: 'info' }, logs.stream), retry, onOutcome: (kind, outcome) => outcomes.push([kind, outcome]) });
    return mailer;
  }

  it('queues without waiting, then delivers plain text and HTML from MAIL_FROM, escaped, signed with the brand', async () => {
    const m = start();
    expect(m.available).toBe(true);
    const before = sink.messages.length;
    expect(m.send(message('ada@example.com'))).toBeUndefined();
    // send() returned before anything reached the server: delivery happens after the caller's answer.
    expect(sink.messages.length).toBe(before);
    const mail = await sink.waitFor((x) => x.to.includes('ada@example.com'));
    expect(mail.from).toBe('no-reply@acme.example');
    expect(mail.parsed.from?.text).toContain('Acme');
    expect(mail.subject).toBe('Reset <your> password');
    expect(mail.text).toContain('Hello Ada & co,');
    expect(mail.links).toEqual([LINK, 'https://help.example.com/']);
    expect(mail.text).toContain('— Acme <Login>');
    expect(mail.text).toContain('https://help.example.com/');
    expect(mail.html).toContain(`href="${LINK}"`);
    expect(mail.html).toContain('&lt;b&gt;your&lt;/b&gt;');
    expect(mail.html).not.toContain('<b>your</b>');
    expect(mail.html).toContain('Acme &lt;Login&gt;');
    await expect.poll(() => outcomes).toEqual([['test_mail', 'sent']]);
  });

  it('writes German mail in German', async () => {
    start().send(message('de@example.com', 'de'));
    const mail = await sink.waitFor((x) => x.to.includes('de@example.com'));
    expect(mail.html).toContain('<html lang="de">');
    expect(mail.html).toContain('Falls die Schaltfläche nicht funktioniert');
    expect(mail.text).toContain('Hilfe und Support: https://help.example.com/');
  });

  it('retries a temporary failure (451) with backoff until it is delivered', async () => {
    const m = start();
    const refusedBefore = sink.refused;
    sink.failNext(2);
    m.send(message('retry@example.com'));
    await sink.waitFor((x) => x.to.includes('retry@example.com'));
    expect(sink.refused - refusedBefore).toBe(2);
    await expect.poll(() => outcomes).toEqual([
      ['test_mail', 'retried'],
      ['test_mail', 'retried'],
      ['test_mail', 'sent'],
    ]);
  });

  it('gives up after the last attempt, and at once on a permanent failure (550), logging neither the address nor the content', async () => {
    const m = start();
    sink.failNext(3);
    m.send(message('gone@example.com'));
    await expect.poll(() => outcomes.length, { timeout: 5000 }).toBe(3);
    expect(outcomes.map(([, o]) => o)).toEqual(['retried', 'retried', 'failed']);
    outcomes.length = 0;
    const refusedBefore = sink.refused;
    sink.failNext(1, 550);
    m.send(message('refused@example.com'));
    await expect.poll(() => outcomes.length, { timeout: 5000 }).toBe(1);
    expect(outcomes).toEqual([['test_mail', 'failed']]);
    expect(sink.refused - refusedBefore).toBe(1);
    sink.failNext(0);
    const text = logs.text();
    expect(text).toContain('given up');
    expect(text).not.toContain('gone@example.com');
    expect(text).not.toContain('refused@example.com');
    expect(text).not.toContain(LINK);
    expect(text).not.toContain('Reset <your> password');
  });

  it('on close, tries once more what waits for a retry, and refuses what comes after', async () => {
    const m = start({ attempts: 5, baseMs: 60_000, maxMs: 60_000 });
    sink.failNext(1);
    m.send(message('late@example.com'));
    await expect.poll(() => outcomes.length, { timeout: 5000 }).toBe(1);
    await m.close();
    expect(sink.messages.some((x) => x.to.includes('late@example.com'))).toBe(true);
    m.send(message('after@example.com'));
    expect(outcomes.at(-1)).toEqual(['test_mail', 'refused']);
    mailer = undefined;
  });
});

describe('the mailer without SMTP_URL', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-outbox-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('in development writes each message as an .eml file under DATA_DIR/outbox, readable only by its owner, and logs where with a warning and the link', async () => {
    const logs = captureLogs('mailer-outbox');
    const config = loadConfig({ NODE_ENV: 'development', DATA_DIR: dir }, dir);
    expect(config.mail.outboxDir).toBe(path.join(dir, 'outbox'));
    const mailer = createMailer({ config, logger: createLogger({ logLevel: 'info' }, logs.stream) });
    expect(mailer.available).toBe(true);
    mailer.send(message('ada@example.com'));
    await mailer.close();
    const files = await readdir(config.mail.outboxDir);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^\d{4}-\d\d-\d\dT.*-test_mail-[0-9a-f]{8}\.eml$/);
    const file = path.join(config.mail.outboxDir, files[0]!);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const eml = await readFile(file, 'utf8');
    expect(eml).toMatch(/^To: ada@example.com$/m);
    expect(eml).toContain('Content-Type: multipart/alternative');
    const warnings = logs.entries().filter((entry) => entry.level === 'warn');
    expect(warnings.map((entry) => entry.msg)).toEqual([
      'SMTP_URL is not set: mail is written as .eml files to the outbox instead of being sent (development only)',
      'mail written to the outbox (no SMTP_URL): open the file or follow the link',
    ]);
    expect(warnings[1]).toMatchObject({ file, link: LINK, kind: 'test_mail' });
  });

  it('under NODE_ENV=test writes the file but logs no link', async () => {
    const logs = captureLogs('mailer-outbox-test');
    const config = loadConfig({ NODE_ENV: 'test', DATA_DIR: path.join(dir, 'test-env') }, dir);
    const mailer = createMailer({ config, logger: createLogger({ logLevel: 'info' }, logs.stream) });
    mailer.send(message('ada@example.com'));
    await mailer.close();
    await expect(readdir(config.mail.outboxDir)).resolves.toHaveLength(1);
    expect(logs.text()).toContain('mail written to the outbox');
    expect(logs.text()).not.toContain(LINK);
  });

  it('in production is not available and sends nothing', async () => {
    const logs = captureLogs('mailer-production');
    const config = loadConfig(
      { NODE_ENV: 'production', DATA_DIR: dir, DATABASE_URL: 'postgres://x/y', REDIS_URL: 'redis://x', COOKIE_KEYS: 'k'.repeat(32), ISSUER: 'https://id.example.com' },
      dir,
      { server: false },
    );
    const outcomes: MailOutcome[] = [];
    const mailer = createMailer({ config, logger: createLogger({ logLevel: 'info' }, logs.stream), onOutcome: (_kind, outcome) => outcomes.push(outcome) });
    expect(mailer.available).toBe(false);
    mailer.send(message('ada@example.com'));
    await mailer.close();
    expect(outcomes).toEqual(['refused']);
    await expect(readdir(path.join(dir, 'outbox'))).resolves.toHaveLength(1); // only the development test's file
  });
});
