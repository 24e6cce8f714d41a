import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load-config.js';
import { createLogger } from '../../../src/observability/logger.js';
import { openCliDatabase } from '../../../src/registry/database.js';
import { apiKeyDigest } from '../../../src/services/api-keys.service.js';
import { expectJsonResult, expectOneLineError, runCliCapture } from '../../fixtures/cli.js';
import { createCliEnv } from '../../fixtures/cli-env.js';

type Json = Record<string, unknown>;

const KEY_FIELDS = ['created_at', 'expires_at', 'id', 'label', 'last_used_at', 'prefix', 'resource', 'scope'];

describe('gatehouse users api-keys', () => {
  let env: Record<string, string>;
  let dispose: () => Promise<void>;
  let userId: string;
  const api = 'https://reports.cli-keys.example.test';

  const run = (args: string[], stdin?: string) => runCliCapture(args, env, { stdin });
  const json = <T = Json,>(args: string[], stdin?: string): Promise<T> => run([...args, '--json'], stdin).then((result) => expectJsonResult<T>(result, args.join(' ')));

  /** The rows of api_keys, read straight from the database the CLI wrote to. */
  async function rows() {
    const registry = await openCliDatabase(loadConfig(env), createLogger({ logLevel: 'silent' }));
    try {
      return await registry.db.selectFrom('api_keys').selectAll().execute();
    } finally {
      await registry.close();
    }
  }

  beforeAll(async () => {
    ({ env, dispose } = await createCliEnv('api-keys-cli'));
    await json(['resources', 'create', '--identifier', api, '--scope', 'read write']);
    const password = `amber-meridian-${randomBytes(8).toString('hex')}`;
    userId = String((await json(['users', 'create', '--email', 'keys@example.test', '--password-stdin'], `${password}\n`)).id);
  });
  afterAll(() => dispose?.());

  it('create prints the key once with its id; list shows label and prefix, never the key; revoke ends it', async () => {
    const created = await json(['users', 'api-keys', 'create', userId, '--label', 'Nightly export', '--resource', api, '--scope', 'read', '--expires-in', '86400']);
    expect(Object.keys(created).sort()).toEqual([...KEY_FIELDS, 'api_key', 'user_id'].sort());
    const apiKey = String(created.api_key);
    expect(apiKey).toMatch(/^gk_[A-Za-z0-9_-]{43}$/);
    expect(created).toMatchObject({ label: 'Nightly export', prefix: apiKey.slice(0, 11), resource: api, scope: 'read', user_id: userId });
    expect(Date.parse(String(created.expires_at)) - Date.parse(String(created.created_at))).toBe(86_400_000);

    const stored = (await rows()).find((row) => row.id === created.id);
    expect(stored?.digest).toBe(apiKeyDigest(apiKey));
    expect(JSON.stringify(stored)).not.toContain(apiKey.slice(11));

    const listed = await json<Json[]>(['users', 'api-keys', 'list', userId]);
    expect(listed.map((key) => Object.keys(key).sort())).toEqual([KEY_FIELDS]);
    expect(listed[0]).toMatchObject({ id: created.id, label: 'Nightly export', prefix: apiKey.slice(0, 11), last_used_at: null });
    expect(JSON.stringify(listed)).not.toContain(apiKey.slice(11));

    const revoked = await json(['users', 'api-keys', 'revoke', userId, String(created.id)]);
    expect(revoked).toMatchObject({ id: created.id, revoked: true });
    expect(await json<Json[]>(['users', 'api-keys', 'list', userId])).toEqual([]);
    expectOneLineError(await run(['users', 'api-keys', 'revoke', userId, String(created.id), '--json']), /not found/);
  });

  it('without --json, prints the key with a note on what to do with it', async () => {
    const result = await run(['users', 'api-keys', 'create', userId, '--label', 'plain', '--resource', api]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/api_key\s+gk_/);
    expect(result.stderr + result.stdout).toMatch(/shown this once/);
  });

  it.each([
    [['--label', 'x', '--resource', 'https://nobody.example.test'], /resource: no API is registered/],
    [['--label', 'x'.repeat(10_000), '--resource', api], /label: must be at most 100 characters/],
    [['--label', 'x', '--resource', api, '--scope', 'delete'], /scope: "delete" is not a scope of/],
    [['--label', 'x', '--resource', 'urn:gatehouse:admin-api', '--scope', 'admin'], /admin API/],
    [['--label', 'x', '--resource', api, '--expires-in', 'soon'], /--expires-in must be a whole number/],
    [['--label', 'x', '--resource', api, '--expires-in', '5'], /--expires-in: must be at least 60 seconds/],
    [['--resource', api], /needs --label/],
    [['--label', 'x'], /needs --resource/],
  ])('create refuses %j with one line, and makes nothing', async (flags, message) => {
    const before = (await rows()).length;
    expectOneLineError(await run(['users', 'api-keys', 'create', userId, ...flags, '--json']), message);
    expect((await rows()).length).toBe(before);
  });

  it('refuses an unknown person', async () => {
    expectOneLineError(await run(['users', 'api-keys', 'create', 'no-such-person', '--label', 'x', '--resource', api, '--json']), /user no-such-person not found/);
    expectOneLineError(await run(['users', 'api-keys', 'list', 'no-such-person', '--json']), /user no-such-person not found/);
  });

  it('every command answers --help', async () => {
    for (const sub of [[], ['create'], ['list'], ['revoke']]) {
      const result = await run(['users', 'api-keys', ...sub, '--help']);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^Usage: gatehouse users api-keys/);
    }
  });
});
