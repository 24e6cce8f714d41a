import { randomBytes, randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tailAudit } from '../../src/audit/audit-log.js';
import { insertPasskey } from '../../src/registry/passkey.repository.js';
import { insertUpstreamLink, insertUpstreamProvider } from '../../src/registry/upstream.repository.js';
import { Agent, hiddenInput } from '../fixtures/flow.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';
import { ACR_MFA } from '../../src/accounts/authentication-context.js';

/*
 * "Linked accounts" on the account page (docs/design/sign-in-methods.md §6.3 Unlink, §7.3), in
 * process (t.fetch): the section lists the person's links (names escaped), and
 * POST /account/links/:provider/delete unlinks with the account CSRF token and a recent sign-in,
 * audited upstream.unlink by the person, never the last way in (no password, no passkey, no
 * other link), and answers 404 for a provider the person has no link at. Every refusal changes nothing.
 */

interface Person {
  id: string;
  email: string;
  password: string;
}

const HOSTILE_NAME = '<script>alert(1)</script><img src=x onerror=alert(2)> & "Co"';

describe('linked accounts on the account page', () => {
  let t: TestServer;

  beforeAll(async () => {
    t = await startTestServer({ name: 'account-links', listen: false });
    const now = new Date();
    // Turned off: the login page shows no button for them, and nothing here reaches a network.
    for (const [id, name] of [
      ['hostile', HOSTILE_NAME],
      ['corp', 'Corp SSO'],
      ['other', 'Other OP'],
    ] as const) {
      await insertUpstreamProvider(t.server.registry.db, {
        id,
        name,
        issuer: `https://${id}.example.test`,
        client_id: `gatehouse-${id}`,
        client_secret_jwe: null,
        key_id: null,
        scopes: ['openid', 'email'],
        enabled: false,
        created_at: now,
        updated_at: now,
      });
    }
  });
  afterAll(() => t.close());

  const db = () => t.server.registry.db;
  const newPerson = (): Promise<Person> => t.build.person({ email: `links-${randomUUID()}@example.test` });

  async function link(person: Person, providerId: string, options: { lastUsedAt?: Date | null; email?: string | null } = {}) {
    const at = new Date('2026-11-02T09:30:00Z');
    await insertUpstreamLink(db(), { providerId, issuer: `https://${providerId}.example.test`, subject: `sub-${randomUUID()}`, userId: person.id, emailAtLink: options.email === undefined ? person.email : options.email, at });
    if (options.lastUsedAt !== undefined) {
      await db().updateTable('upstream_links').set({ last_used_at: options.lastUsedAt }).where('user_id', '=', person.id).where('provider_id', '=', providerId).execute();
    }
  }

  const linksOf = async (userId: string) =>
    (await db().selectFrom('upstream_links').select(['provider_id', 'subject']).where('user_id', '=', userId).orderBy('provider_id').execute()).map((row) => row.provider_id);

  const lastSeq = async () => (await tailAudit(db(), { limit: 1 })).at(-1)?.seq ?? 0;
  const auditSince = async (seq: number) => (await tailAudit(db(), { afterSeq: seq })).map((row) => ({ actor: row.actor, action: row.action, target: row.target, details: row.details }));

  /** Signs in at /account with the password on a new browser; answers the agent and the page. */
  async function signedIn(person: Person) {
    const agent = new Agent(t.server.url, t.fetch);
    let { response } = await agent.follow('/account');
    let html = await response.text();
    const login = /<form method="post" action="([^"]+\/login)"/.exec(html)?.[1];
    expect(login, html.slice(0, 300)).toBeTruthy();
    const posted = await agent.postForm(login!, { csrf: hiddenInput(html, 'csrf') ?? '', email: person.email, password: person.password });
    expect(posted.status).toBe(303);
    const end = await agent.follow(posted.headers.get('location')!);
    expect(end.url).toBe(`${t.server.url}/account`);
    response = end.response;
    html = await response.text();
    expect(response.status).toBe(200);
    return { agent, html, csrf: hiddenInput(html, 'csrf') ?? '' };
  }

  /** Moves the browser session's sign-in time back by `seconds`. */
  async function ageSession(agent: Agent, seconds: number) {
    const id = agent.cookies.get('_session');
    expect(id).toBeTruthy();
    const session = await t.server.host.provider.Session.find(id!);
    expect(session?.accountId).toBeTruthy();
    session!.loginTs = (session!.loginTs ?? 0) - seconds;
    await session!.save(3600);
  }

  /** Marks the browser session as signed in with a second factor (acr mfa), as a passkey sign-in would. */
  async function withSecondFactorSession(agent: Agent) {
    const session = await t.server.host.provider.Session.find(agent.cookies.get('_session')!);
    session!.acr = ACR_MFA;
    await session!.save(3600);
  }

  /** The "Linked accounts" section of a page. */
  const sectionOf = (html: string) => /<section aria-labelledby="linked-accounts">([\s\S]*?)<\/section>/.exec(html)?.[1] ?? '';

  /** A person who signs in with no password any more (as one made by an upstream sign-up). */
  const dropPassword = (person: Person) => sql`update users set password_hash = null where id = ${person.id}`.execute(db());

  it('lists each link with its provider name (escaped), the email at link, when linked and last used, and an Unlink form; a person without links sees the empty state', async () => {
    const person = await newPerson();
    await link(person, 'hostile', { lastUsedAt: null, email: '<b>mail</b>@example.test' });
    await link(person, 'corp', { lastUsedAt: new Date('2026-12-01T08:15:00Z') });
    const { html } = await signedIn(person);
    const section = sectionOf(html);
    expect(section).toContain('<h2 id="linked-accounts">Linked accounts</h2>');
    // Right after two-step verification.
    expect(html.indexOf('id="linked-accounts"')).toBeGreaterThan(html.indexOf('id="two-step"'));
    expect(html.indexOf('id="linked-accounts"')).toBeLessThan(html.indexOf('id="passkeys"'));
    expect(section).toContain('<strong>&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt; &amp; &quot;Co&quot;</strong>');
    expect(section).toContain('aria-label="Unlink &lt;script&gt;');
    expect(section).toContain('(&lt;b&gt;mail&lt;/b&gt;@example.test)');
    // The page's own scripts are the passkey ones (src, nonce); the hostile name is never markup.
    expect(html).not.toContain('<script>');
    expect(html).not.toContain('<img src=x');
    expect(html).not.toContain('<b>mail');
    expect(section).toContain('<strong>Corp SSO</strong>');
    expect(section).toContain(`(${person.email})`);
    expect(section).toContain('Linked <time datetime="2026-11-02T09:30:00.000Z">2026-11-02 09:30 UTC</time>');
    expect(section).toContain('last used <time datetime="2026-12-01T08:15:00.000Z">2026-12-01 08:15 UTC</time>');
    expect(section).toContain('never used');
    expect(section).toContain('<form method="post" action="/account/links/corp/delete">');
    expect(section).toContain('<form method="post" action="/account/links/hostile/delete">');
    expect(section.match(/name="csrf"/g)).toHaveLength(2);

    const bare = await signedIn(await newPerson());
    expect(sectionOf(bare.html)).toContain('id="links-empty"');
    expect(sectionOf(bare.html)).not.toContain('<form');
  });

  it('unlink with a recent sign-in removes the link, audits upstream.unlink as the person, and the page says so', async () => {
    const person = await newPerson();
    await link(person, 'corp');
    await link(person, 'other');
    const { agent, csrf } = await signedIn(person);
    const seq = await lastSeq();
    const answer = await agent.postForm('/account/links/corp/delete', { csrf });
    expect(answer.status).toBe(303);
    expect(answer.headers.get('location')).toBe('/account?links=unlinked&provider=corp#linked-accounts');
    expect(await linksOf(person.id)).toEqual(['other']);
    const rows = await auditSince(seq);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actor: `person:${person.id}`, action: 'upstream.unlink', target: `user:${person.id}`, details: { provider_id: 'corp', issuer: 'https://corp.example.test' } });
    const page = await agent.request(answer.headers.get('location')!);
    expect(page.status).toBe(200);
    const section = sectionOf(await page.text());
    expect(section).toContain('<p class="notice" role="status" id="links-status">Corp SSO is no longer linked to your account.</p>');
    expect(section).not.toContain('/account/links/corp/delete');
    expect(section).toContain('/account/links/other/delete');
  });

  it('without a recent sign-in: 303 to /account/reauth?next=/account#linked-accounts and nothing changes', async () => {
    const person = await newPerson();
    await link(person, 'corp');
    const { agent } = await signedIn(person);
    await ageSession(agent, t.config.accountReauthSeconds + 60);
    // The token is bound to the sign-in time: the page's token of the aged session.
    const csrf = hiddenInput(await (await agent.request('/account')).text(), 'csrf') ?? '';
    const seq = await lastSeq();
    const answer = await agent.postForm('/account/links/corp/delete', { csrf });
    expect(answer.status).toBe(303);
    expect(answer.headers.get('location')).toBe(`/account/reauth?next=${encodeURIComponent('/account#linked-accounts')}`);
    expect(await linksOf(person.id)).toEqual(['corp']);
    expect(await auditSince(seq)).toEqual([]);
  });

  it('a missing, wrong or other session\'s CSRF token: 403 and nothing changes', async () => {
    const person = await newPerson();
    await link(person, 'corp');
    const mine = await signedIn(person);
    const other = await signedIn(await newPerson());
    const seq = await lastSeq();
    for (const form of [{}, { csrf: '' }, { csrf: 'not-a-token' }, { csrf: other.csrf }] as Array<Record<string, string>>) {
      const answer = await mine.agent.postForm('/account/links/corp/delete', form);
      expect(answer.status, JSON.stringify(form)).toBe(403);
      expect(await answer.text()).toContain('csrf_token_invalid');
    }
    // Not signed in at all: to sign-in.
    const anonymous = await new Agent(t.server.url, t.fetch).postForm('/account/links/corp/delete', { csrf: mine.csrf });
    expect(anonymous.status).toBe(303);
    expect(anonymous.headers.get('location')).toBe('/account/sign-in');
    expect(await linksOf(person.id)).toEqual(['corp']);
    expect(await auditSince(seq)).toEqual([]);
  });

  it('the last way to sign in (no password, no passkey, one link) is refused with a message on the page; with a passkey it is allowed', async () => {
    const person = await newPerson();
    await link(person, 'corp');
    const { agent, csrf } = await signedIn(person);
    await dropPassword(person);
    const seq = await lastSeq();
    const refused = await agent.postForm('/account/links/corp/delete', { csrf });
    expect(refused.status).toBe(303);
    expect(refused.headers.get('location')).toBe('/account?links=last_way#linked-accounts');
    expect(await linksOf(person.id)).toEqual(['corp']);
    expect(await auditSince(seq)).toEqual([]);
    const page = await agent.request(refused.headers.get('location')!);
    const section = sectionOf(await page.text());
    expect(section).toContain('<p class="error" role="alert" id="links-error">This is the only way you can sign in, so it cannot be unlinked. Add a passkey or link another account first.</p>');
    expect(section).toContain('/account/links/corp/delete');

    // A passkey is another way in (the passkeys table, read in the unlink's transaction).
    await insertPasskey(db(), {
      id: randomUUID(),
      user_id: person.id,
      credential_id: randomBytes(16).toString('base64url'),
      public_key: randomBytes(77),
      counter: 0,
      transports: ['internal'],
      backup_eligible: false,
      backup_state: false,
      aaguid: null,
      name: 'Laptop',
      created_at: new Date(),
      last_used_at: null,
    });
    // With a second factor now, a recent sign-in means one with it (acr mfa): as after signing in with that passkey.
    await withSecondFactorSession(agent);
    const allowed = await agent.postForm('/account/links/corp/delete', { csrf });
    expect(allowed.status).toBe(303);
    expect(allowed.headers.get('location')).toBe('/account?links=unlinked&provider=corp#linked-accounts');
    expect(await linksOf(person.id)).toEqual([]);
    expect((await auditSince(seq)).map((row) => row.action)).toEqual(['upstream.unlink']);
  });

  it('with no password and two links, one may go, then the other is the last way in', async () => {
    const person = await newPerson();
    await link(person, 'corp');
    await link(person, 'other');
    const { agent, csrf } = await signedIn(person);
    await dropPassword(person);
    expect((await agent.postForm('/account/links/other/delete', { csrf })).headers.get('location')).toBe('/account?links=unlinked&provider=other#linked-accounts');
    expect((await agent.postForm('/account/links/corp/delete', { csrf })).headers.get('location')).toBe('/account?links=last_way#linked-accounts');
    expect(await linksOf(person.id)).toEqual(['corp']);
  });

  it('a provider the person has no link at (another person\'s link, an unknown or malformed id): 404 page, nothing changes', async () => {
    const person = await newPerson();
    const owner = await newPerson();
    await link(person, 'corp');
    await link(owner, 'other');
    const { agent, csrf } = await signedIn(person);
    const seq = await lastSeq();
    for (const provider of ['other', 'nowhere', 'UPPER', 'a%00b', `${'x'.repeat(41)}`, '%3Cscript%3E', '%E0%A4%A', 'corp%2F..%2Fx']) {
      const answer = await agent.postForm(`/account/links/${provider}/delete`, { csrf });
      expect(answer.status, provider).toBe(404);
      const html = await answer.text();
      expect(html).toContain('Your account is not linked to this provider. Nothing was changed.');
      expect(html).not.toContain('<script>');
    }
    expect(await linksOf(person.id)).toEqual(['corp']);
    expect(await linksOf(owner.id)).toEqual(['other']);
    expect(await auditSince(seq)).toEqual([]);
  });

  it('a forged "unlinked" query names only a real provider and never echoes text', async () => {
    const person = await newPerson();
    const { agent } = await signedIn(person);
    const page = await agent.request('/account?links=unlinked&provider=%3Cb%3Ehi%3C%2Fb%3E');
    const section = sectionOf(await page.text());
    expect(section).toContain('The account is no longer linked.');
    expect(section).not.toContain('<b>');
    expect(section).not.toContain('&lt;b&gt;');
  });
});
