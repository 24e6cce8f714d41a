import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createResetRoutes } from '../../../src/interactions/reset.routes.js';
import { createRequestLimiter } from '../../../src/interactions/login-limiter.js';
import { createMailComposer } from '../../../src/mail/compose.js';
import type { MailMessage } from '../../../src/mail/mailer.js';
import { createMailer } from '../../../src/mail/smtp-mailer.js';
import { createLogger } from '../../../src/observability/logger.js';
import { createPages, DEFAULT_BRAND } from '../../../src/oidc/pages.js';
import { captureLogs } from '../../fixtures/log-capture.js';

/*
 * Production without SMTP_URL (issue 17 §1): the mailer is unavailable, and "Forgot password?" says
 * that password reset by email is not available here (with the support link when SUPPORT_URL is
 * set) instead of pretending to send. The routes alone, on a Koa app, with the real mailer of a
 * production configuration and a registry of its own.
 */

describe('password reset where mail cannot be sent (production without SMTP_URL)', () => {
  let server: http.Server;
  let base: string;
  const sent: MailMessage[] = [];
  const logs = captureLogs('reset-unavailable');

  beforeAll(async () => {
    const logger = createLogger({ logLevel: 'debug' }, logs.stream);
    const mailer = createMailer({ config: { production: true, nodeEnv: 'production', mail: { smtpUrl: undefined, from: 'x@example.test', outboxDir: '/nonexistent' } }, logger });
    expect(mailer.available).toBe(false);
    const brand = { ...DEFAULT_BRAND, supportUrl: 'https://help.example.test/' };
    const reset = createResetRoutes({
      // Never reached without mail: any use of the registry would throw (a 500), failing the test.
      registry: { db: undefined as never, audit: undefined as never },
      mailer: { available: mailer.available, send: (message) => sent.push(message), close: () => mailer.close() },
      compose: createMailComposer(brand),
      pages: createPages(brand),
      config: { issuer: 'https://auth.example.test', cookieKeys: ['a-cookie-key-of-this-test-0123456789'], bodyLimitBytes: 65_536, brand },
      addressLimiter: createRequestLimiter({ keyPrefix: 'a', points: 100, windowSeconds: 3600 }),
      ipLimiter: createRequestLimiter({ keyPrefix: 'i', points: 100, windowSeconds: 3600 }),
      logger,
    });
    const app = new Koa({ keys: ['a-cookie-key-of-this-test-0123456789'] });
    app.use(reset.router.routes());
    server = http.createServer(app.callback()).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
  });

  it('the form is replaced by "not available here" with the support link; a POST sends nothing', async () => {
    const page = await fetch(`${base}/reset`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('Password reset is not available');
    expect(html).toContain('Password reset by email is not available here.');
    expect(html).toContain('<a href="https://help.example.test/">Contact support</a>');
    expect(html).not.toContain('name="email"');
    const posted = await fetch(`${base}/reset`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'email=someone%40example.test' });
    expect(posted.status).toBe(200);
    expect(await posted.text()).toContain('Password reset by email is not available here.');
    expect(sent).toHaveLength(0);
    const german = await (await fetch(`${base}/reset`, { headers: { 'accept-language': 'de-DE' } })).text();
    expect(german).toContain('Das Zurücksetzen des Passworts per E-Mail ist hier nicht verfügbar.');
  });
});
