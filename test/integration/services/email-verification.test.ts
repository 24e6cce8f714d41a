import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tailAudit } from '../../../src/audit/audit-log.js';
import { loadConfig } from '../../../src/config/load-config.js';
import { createMailComposer } from '../../../src/mail/compose.js';
import type { Mailer, MailMessage } from '../../../src/mail/mailer.js';
import { createLogger } from '../../../src/observability/logger.js';
import { openCliDatabase, type RegistryDatabase } from '../../../src/registry/database.js';
import { migrateToLatest } from '../../../src/registry/migrate.js';
import {
  completeEmailChange,
  MailUnavailableError,
  sendVerificationLink,
  signUp,
  startEmailChange,
  verifyEmail,
  type EmailServiceDeps,
} from '../../../src/services/email-verification.service.js';
import { ConflictError } from '../../../src/services/errors.js';
import { createUser, disableUser } from '../../../src/services/users.service.js';
import { createTestDatabase, type TestDatabase } from '../../fixtures/database.js';
import { TEST_ACTOR, testServices } from '../../fixtures/services.js';

/*
 * The email-address service on PostgreSQL, with a mailer that keeps what it is given: races (one
 * link used twice at once, two people taking one address at once), refusals that change nothing,
 * and what each step mails to whom.
 */

const PASSWORD = 'a long enough password 4711';

describe('email addresses (service), on PostgreSQL', () => {
  let database: TestDatabase;
  let registry: RegistryDatabase;
  const sent: MailMessage[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    const config = loadConfig({ DATABASE_URL: database.url, NODE_ENV: 'test', LOG_LEVEL: 'silent' });
    registry = await openCliDatabase(config, createLogger({ logLevel: 'silent' }));
    await migrateToLatest(registry.db);
  });
  afterAll(async () => {
    await registry?.close();
    await database?.drop();
  });

  function deps(available = true): EmailServiceDeps {
    const mailer: Mailer = { available, send: (message) => void sent.push(message), close: async () => undefined };
    return { ...testServices(registry.db), mail: { mailer, compose: createMailComposer(loadConfig({ NODE_ENV: 'test' }).brand), issuer: 'https://id.example.test', brandName: 'Gatehouse' } };
  }
  const tokenOf = (message: MailMessage | undefined) => new URL(message!.link!).searchParams.get('token')!;
  const mailsTo = (address: string) => sent.filter((message) => message.to === address);
  const person = async (email = `${randomUUID()}@example.test`) => createUser(testServices(registry.db), TEST_ACTOR, { email, password: PASSWORD });
  const row = (id: string) => registry.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const auditRows = async (target: string) => (await tailAudit(registry.db, { limit: 500 })).filter((entry) => entry.target === target).map((entry) => entry.action);

  it('uses one verification link once when two requests race for it', async () => {
    const ada = await person();
    await sendVerificationLink(deps(), TEST_ACTOR, ada.id);
    const value = tokenOf(mailsTo(ada.email).at(-1));
    const outcomes = await Promise.all([verifyEmail(deps(), {}, value), verifyEmail(deps(), {}, value)]);
    expect(outcomes.filter((outcome) => outcome.ok)).toHaveLength(1);
    expect(outcomes.filter((outcome) => !outcome.ok)).toEqual([{ ok: false, reason: 'used' }]);
    expect((await row(ada.id)).email_verified).toBe(true);
    expect((await auditRows(`user:${ada.id}`)).filter((action) => action === 'user.email_verify')).toHaveLength(1);
  });

  it('refuses a link to an address that is no longer the person’s, leaving it unused and the person unconfirmed', async () => {
    const ada = await person();
    await sendVerificationLink(deps(), TEST_ACTOR, ada.id);
    const value = tokenOf(mailsTo(ada.email).at(-1));
    await registry.db.updateTable('users').set({ email: `moved-${randomUUID()}@example.test` }).where('id', '=', ada.id).execute();
    await expect(verifyEmail(deps(), {}, value)).resolves.toEqual({ ok: false, reason: 'address_changed' });
    expect((await row(ada.id)).email_verified).toBe(false);
    const links = await registry.db.selectFrom('email_links').select('used_at').where('user_id', '=', ada.id).execute();
    expect(links).toEqual([{ used_at: null }]);
  });

  it('sends no link to a disabled person, none to a confirmed one, and none at all without a mailer', async () => {
    const ada = await person();
    await disableUser(testServices(registry.db), TEST_ACTOR, ada.id);
    await expect(sendVerificationLink(deps(), TEST_ACTOR, ada.id)).rejects.toBeInstanceOf(ConflictError);
    const bob = await person();
    await registry.db.updateTable('users').set({ email_verified: true }).where('id', '=', bob.id).execute();
    await expect(sendVerificationLink(deps(), TEST_ACTOR, bob.id)).resolves.toBe('already_verified');
    const cy = await person();
    await expect(sendVerificationLink(deps(false), TEST_ACTOR, cy.id)).rejects.toBeInstanceOf(MailUnavailableError);
    for (const who of [ada, bob, cy]) expect(mailsTo(who.email)).toEqual([]);
    const links = await registry.db.selectFrom('email_links').select('id').where('user_id', 'in', [ada.id, bob.id, cy.id]).execute();
    expect(links).toEqual([]);
  });

  it('creates nothing at sign-up when no mail can be sent', async () => {
    const email = `nomail-${randomUUID()}@example.test`;
    await expect(signUp(deps(false), {}, { email, password: PASSWORD, locale: 'en' })).rejects.toBeInstanceOf(MailUnavailableError);
    expect(await registry.db.selectFrom('users').select('id').where('email', '=', email).executeTakeFirst()).toBeUndefined();
  });

  it('gives one address to one of two people who confirm it at once; the other keeps theirs', async () => {
    const target = `contested-${randomUUID()}@example.test`;
    const ada = await person();
    const bob = await person();
    await startEmailChange(deps(), TEST_ACTOR, ada.id, target);
    const adaLink = tokenOf(mailsTo(target).at(-1));
    await startEmailChange(deps(), TEST_ACTOR, bob.id, target);
    const bobLink = tokenOf(mailsTo(target).at(-1));
    expect(adaLink).not.toBe(bobLink);
    const outcomes = await Promise.all([completeEmailChange(deps(), {}, adaLink), completeEmailChange(deps(), {}, bobLink)]);
    expect(outcomes.filter((outcome) => outcome.ok)).toHaveLength(1);
    expect(outcomes.filter((outcome) => !outcome.ok)).toEqual([{ ok: false, reason: 'taken' }]);
    const emails = [(await row(ada.id)).email, (await row(bob.id)).email];
    expect(emails.filter((email) => email === target)).toHaveLength(1);
    expect(emails).toContain(outcomes[0]!.ok ? target : ada.email);
  });

  it('mails the new address the link and the old one two notices, each to that address only', async () => {
    const ada = await person(`before-${randomUUID()}@example.test`);
    const target = `after-${randomUUID()}@example.test`;
    await expect(startEmailChange(deps(), TEST_ACTOR, ada.id, target)).resolves.toBe('sent');
    expect(mailsTo(target).map((message) => message.kind)).toEqual(['email_change']);
    expect(mailsTo(ada.email).map((message) => message.kind)).toEqual(['email_change_notice']);
    expect(mailsTo(ada.email)[0]!.link).toBeUndefined();
    const outcome = await completeEmailChange(deps(), { requestId: 'req-1', ip: '192.0.2.1' }, tokenOf(mailsTo(target)[0]));
    expect(outcome).toEqual({ ok: true, userId: ada.id, email: target });
    expect(mailsTo(ada.email).map((message) => message.kind)).toEqual(['email_change_notice', 'email_changed']);
    expect(await row(ada.id)).toMatchObject({ email: target, email_verified: true });
    // A second change started and a third address: the earlier link is spent, the new one replaces nothing else.
    await expect(completeEmailChange(deps(), {}, tokenOf(mailsTo(target)[0]))).resolves.toEqual({ ok: false, reason: 'used' });
    await expect(startEmailChange(deps(), TEST_ACTOR, ada.id, target.toUpperCase())).resolves.toBe('same');
  });
});
