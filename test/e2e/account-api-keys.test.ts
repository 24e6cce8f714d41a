import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tailAudit } from '../../src/audit/audit-log.js';
import { apiKeyDigest, createApiKey } from '../../src/services/api-keys.service.js';
import { Agent, hiddenInput } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';
import { TEST_ACTOR } from '../fixtures/services.js';

/*
 * The "API keys" section of /account (CONTRACT "Account and email"; docs/api-keys.md), in process:
 * create shows the key once in #new-api-key, the list shows label and prefix (never the key),
 * labels are escaped, bad input is refused with a clear error and nothing changed, delete and
 * regenerate work, creating needs a recent sign-in, and German pages are German.
 */

interface Person {
  id: string;
  email: string;
  password: string;
}

const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const API_KEY_TYPE = 'urn:gatehouse:params:oauth:token-type:api-key';
const HOSTILE_LABEL = '<script>alert(1)</script><img src=x onerror=alert(2)> & "Co"';

describe('API keys on the account page', () => {
  let t: TestServer;
  let api: string;

  beforeAll(async () => {
    t = await startTestServer({ name: 'account-api-keys', listen: false });
    api = (await t.build.resource({ scope: 'read write', name: 'Reports' })).identifier;
  });
  afterAll(() => t.close());

  const db = () => t.server.registry.db;
  const newPerson = (): Promise<Person> => t.build.person({ email: `keys-${randomUUID()}@example.test` });
  const rowsOf = (userId: string) => db().selectFrom('api_keys').selectAll().where('user_id', '=', userId).orderBy('created_at').execute();
  const lastSeq = async () => (await tailAudit(db(), { limit: 1 })).at(-1)?.seq ?? 0;
  const auditSince = async (seq: number) => (await tailAudit(db(), { afterSeq: seq })).map((row) => ({ actor: row.actor, action: row.action }));
  /** The "API keys" section of a page. */
  const sectionOf = (html: string) => /<section aria-labelledby="api-keys">([\s\S]*?)<\/section>/.exec(html)?.[1] ?? '';
  const newKeyOf = (html: string) => /<code id="new-api-key"[^>]*>([^<]*)<\/code>/.exec(html)?.[1];

  async function exchange(apiKey: string) {
    const response = await t.fetch('/token', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: GRANT, subject_token: apiKey, subject_token_type: API_KEY_TYPE, resource: api }),
    });
    const body = (await response.json()) as Record<string, unknown>;
    if (typeof body.access_token === 'string') recordSecret(body.access_token);
    return response.status;
  }

  /** Signs in at /account with the password on a new browser; answers the agent, the page and its CSRF token. */
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

  async function post(agent: Agent, path: string, form: Record<string, string>, headers: Record<string, string> = {}) {
    const response = await agent.postForm(path, form, headers);
    const html = await response.text();
    const key = newKeyOf(html);
    if (key) recordSecret(key);
    return { status: response.status, html, location: response.headers.get('location') };
  }

  it('has the section with heading "API keys", input name="label" and the button "Create API key"; no key is shown yet', async () => {
    const { html } = await signedIn(await newPerson());
    const section = sectionOf(html);
    expect(section).toContain('<h2 id="api-keys">API keys</h2>');
    expect(section).toMatch(/<input id="api-key-label" name="label"/);
    expect(section).toMatch(/<button type="submit" id="create-api-key">Create API key<\/button>/);
    expect(section).toContain(`<option value="${api}">Reports (${api})</option>`);
    expect(section).not.toContain('urn:gatehouse:admin-api');
    expect(html).not.toContain('id="new-api-key"');
    expect(section).toContain('No API keys yet.');
  });

  it('create shows the key once in #new-api-key; the list shows label and prefix, never the key; the key works; audited as the person', async () => {
    const person = await newPerson();
    const { agent, csrf } = await signedIn(person);
    const seq = await lastSeq();
    const created = await post(agent, '/account/api-keys', { csrf, label: 'Nightly export', resource: api, scope: 'read', expires: '30' });
    expect(created.status).toBe(200);
    const apiKey = newKeyOf(created.html);
    expect(apiKey).toMatch(/^gk_[A-Za-z0-9_-]{43}$/);
    expect(created.html).toContain('API key created.');
    expect(created.html).toContain('it is shown only this once');
    const [row] = await rowsOf(person.id);
    expect(row).toMatchObject({ label: 'Nightly export', prefix: apiKey!.slice(0, 11), digest: apiKeyDigest(apiKey!), scopes: ['read'] });
    expect(row!.expires_at!.getTime() - row!.created_at.getTime()).toBe(30 * 86_400_000);
    expect(await auditSince(seq)).toEqual([{ actor: `person:${person.id}`, action: 'api_key.create' }]);
    expect(await exchange(apiKey!)).toBe(200);

    const again = await agent.follow('/account');
    const html = await again.response.text();
    expect(html).not.toContain('id="new-api-key"');
    expect(html).not.toContain(apiKey!.slice(11));
    const section = sectionOf(html);
    expect(section).toContain('<strong id="api-key-label-0">Nightly export</strong>');
    expect(section).toContain(`Starts with ${apiKey!.slice(0, 11)}…`);
    expect(section).toContain('Scopes: read');
    expect(section).toMatch(/last used <time datetime="/);
  });

  it('escapes HTML in a label everywhere it is shown', async () => {
    const person = await newPerson();
    const { agent, csrf } = await signedIn(person);
    const created = await post(agent, '/account/api-keys', { csrf, label: HOSTILE_LABEL, resource: api, expires: '7' });
    expect(created.status).toBe(200);
    for (const html of [created.html, await (await agent.follow('/account')).response.text()]) {
      expect(html).not.toContain('<script>alert(1)');
      expect(html).not.toContain('<img src=x');
      expect(sectionOf(html)).toContain('&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt; &amp; &quot;Co&quot;');
    }
  });

  it('refuses a 10,000-character label, an unknown API, a foreign scope and a made-up expiry with a clear error, changing nothing and echoing nothing unescaped', async () => {
    const person = await newPerson();
    const { agent, csrf } = await signedIn(person);
    const seq = await lastSeq();
    const cases: Array<[Record<string, string>, string]> = [
      [{ label: 'x'.repeat(10_000), resource: api }, 'Give the key a label of 1 to 100 characters. Nothing was changed.'],
      [{ label: '', resource: api }, 'Give the key a label of 1 to 100 characters.'],
      [{ label: 'ok', resource: 'https://nobody.example.test/<b>' }, 'Choose one of the APIs listed. Nothing was changed.'],
      [{ label: 'ok', resource: 'urn:gatehouse:admin-api', scope: 'admin' }, 'Choose one of the APIs listed.'],
      [{ label: 'ok', resource: api, scope: 'delete <i>x</i>' }, 'Choose only scopes the chosen API offers'],
      [{ label: 'ok', resource: api, expires: '99999' }, 'Choose when the key expires from the list.'],
    ];
    for (const [form, message] of cases) {
      const answer = await post(agent, '/account/api-keys', { csrf, ...form });
      expect(answer.status, message).toBe(400);
      expect(answer.html).toContain(message);
      expect(answer.html).not.toContain('id="new-api-key"');
      expect(answer.html).not.toContain('<b>');
      expect(answer.html).not.toContain('<i>x</i>');
      expect(answer.html).not.toContain('x'.repeat(101));
    }
    expect(await rowsOf(person.id)).toEqual([]);
    expect(await auditSince(seq)).toEqual([]);
  });

  it('delete ends the key at once; regenerate shows a new key once and ends the old one', async () => {
    const person = await newPerson();
    const { agent, csrf } = await signedIn(person);
    const first = newKeyOf((await post(agent, '/account/api-keys', { csrf, label: 'one', resource: api, expires: '90' })).html)!;
    const second = newKeyOf((await post(agent, '/account/api-keys', { csrf, label: 'two', resource: api, expires: 'never' })).html)!;
    const [one, two] = await rowsOf(person.id);
    expect(two!.expires_at).toBeNull();

    const regenerated = await post(agent, `/account/api-keys/${one!.id}/regenerate`, { csrf });
    expect(regenerated.status).toBe(200);
    const fresh = newKeyOf(regenerated.html)!;
    expect(fresh).toMatch(/^gk_/);
    expect(fresh).not.toBe(first);
    expect(regenerated.html).toContain('A new key replaces the old one');
    expect(await exchange(first)).toBe(400);
    expect(await exchange(fresh)).toBe(200);

    const deleted = await post(agent, `/account/api-keys/${two!.id}/delete`, { csrf });
    expect(deleted.status).toBe(200);
    expect(deleted.html).toContain('API key deleted. It no longer works.');
    expect(sectionOf(deleted.html)).not.toContain('>two<');
    expect(await exchange(second)).toBe(400);
    expect((await rowsOf(person.id)).map((row) => row.label)).toEqual(['one']);
  });

  it("refuses another person's key, a made-up id and a missing CSRF token, changing nothing", async () => {
    const owner = await newPerson();
    const { key, apiKey } = await createApiKey(t.services, TEST_ACTOR, owner.id, { label: 'theirs', resource: api });
    recordSecret(apiKey);
    const { agent, csrf } = await signedIn(await newPerson());
    for (const path of [`/account/api-keys/${key.id}/delete`, `/account/api-keys/${key.id}/regenerate`, '/account/api-keys/not-an-id/delete']) {
      const answer = await post(agent, path, { csrf });
      expect(answer.status, path).toBe(404);
      expect(answer.html).toContain('There is no such API key on your account. Nothing was changed.');
    }
    const noCsrf = await post(agent, '/account/api-keys', { label: 'x', resource: api });
    expect(noCsrf.status).toBe(403);
    expect(await rowsOf(owner.id)).toHaveLength(1);
    expect(await exchange(apiKey)).toBe(200);
  });

  it('creating needs a recent sign-in: an old session is sent to sign in again and nothing is made; deleting does not', async () => {
    const person = await newPerson();
    const { agent } = await signedIn(person);
    const { key, apiKey } = await createApiKey(t.services, TEST_ACTOR, person.id, { label: 'old', resource: api });
    recordSecret(apiKey);
    const session = await t.server.host.provider.Session.find(agent.cookies.get('_session')!);
    session!.loginTs = (session!.loginTs ?? 0) - 3 * 3600;
    await session!.save(3600);
    // The CSRF token is bound to the sign-in time: the page gives the one of the aged session.
    const csrf = hiddenInput(await (await agent.follow('/account')).response.text(), 'csrf') ?? '';
    const create = await post(agent, '/account/api-keys', { csrf, label: 'late', resource: api });
    expect(create.status).toBe(303);
    expect(create.location).toBe(`/account/reauth?next=${encodeURIComponent('/account#api-keys')}`);
    expect((await rowsOf(person.id)).map((row) => row.label)).toEqual(['old']);
    const regenerate = await post(agent, `/account/api-keys/${key.id}/regenerate`, { csrf });
    expect(regenerate.status).toBe(303);
    expect(await exchange(apiKey)).toBe(200);
    const remove = await post(agent, `/account/api-keys/${key.id}/delete`, { csrf });
    expect(remove.status).toBe(200);
    expect(await rowsOf(person.id)).toEqual([]);
  });

  it('speaks German to a German browser', async () => {
    const person = await newPerson();
    const { agent, csrf } = await signedIn(person);
    const html = await (await agent.follow('/account', { headers: { 'accept-language': 'de' } })).response.text();
    expect(sectionOf(html)).toContain('<h2 id="api-keys">API-Schlüssel</h2>');
    const created = await post(agent, '/account/api-keys', { csrf, label: 'Sicherung', resource: api }, { 'accept-language': 'de' });
    expect(created.html).toContain('Ihr neuer API-Schlüssel „Sicherung“');
    expect(created.html).toContain('<option value="never">Unbegrenzt</option>');
  });
});
