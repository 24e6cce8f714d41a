import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAccountService } from '../../../src/accounts/accounts.js';
import { loadConfig } from '../../../src/config/load-config.js';
import { createLogger } from '../../../src/observability/logger.js';
import { openCliDatabase, type RegistryDatabase } from '../../../src/registry/database.js';
import { expectJsonResult, expectOneLineError, runCliCapture } from '../../fixtures/cli.js';
import { createCliEnv } from '../../fixtures/cli-env.js';
import { recordSecret } from '../../fixtures/log-capture.js';

type Json = Record<string, unknown>;

const USER_KEYS = ['created_at', 'disabled', 'email', 'email_verified', 'id', 'last_login_at', 'name', 'roles', 'updated_at'];

/** A fresh strong password (recorded for the log audit). */
function newPassword(): string {
  const password = `amber-meridian-${randomBytes(8).toString('hex')}`;
  recordSecret(password);
  return password;
}

describe('gatehouse users', () => {
  let env: Record<string, string>;
  let dispose: () => Promise<void>;

  beforeAll(async () => {
    ({ env, dispose } = await createCliEnv('users-cli'));
  });
  afterAll(() => dispose?.());

  const run = (args: string[], stdin?: string) => runCliCapture(args, env, { stdin });

  const json = <T = Json,>(args: string[], stdin?: string): Promise<T> =>
    run([...args, '--json'], stdin).then((result) => expectJsonResult<T>(result, args.join(' ')));


  /** Signs in against the database the CLI wrote to. */
  async function signIn(email: string, password: string) {
    const registry: RegistryDatabase = await openCliDatabase(loadConfig(env), createLogger({ logLevel: 'silent' }));
    try {
      return await createAccountService({ db: registry.db, logger: createLogger({ logLevel: 'silent' }) }).authenticate(email, password);
    } finally {
      await registry.close();
    }
  }

  it('create reads the password from standard input and never prints it or its hash', async () => {
    const password = newPassword();
    const result = await run(['users', 'create', '--email', ' Ada@Example.test ', '--name', 'Ada Lovelace', '--password-stdin', '--json'], `${password}\n`);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain(password);
    expect(result.stdout).not.toContain('argon2');
    const created = JSON.parse(result.stdout) as Json;
    expect(Object.keys(created).sort()).toEqual(USER_KEYS);
    // Stored (and shown) in its normalised form: trimmed, NFKC, lower case.
    expect(created).toMatchObject({ email: 'ada@example.test', name: 'Ada Lovelace', email_verified: false, disabled: false, last_login_at: null });

    // Exactly one trailing newline was dropped: the password as typed signs in, with a newline it does not.
    expect((await signIn('ada@example.test', password)).ok).toBe(true);
    expect((await signIn('ada@example.test', `${password}\n`)).ok).toBe(false);
  });

  it('drops a trailing CRLF, and only one line ending', async () => {
    const password = newPassword();
    await json(['users', 'create', '--email', 'crlf@example.test', '--password-stdin'], `${password}\r\n`);
    expect((await signIn('crlf@example.test', password)).ok).toBe(true);

    const other = newPassword();
    await json(['users', 'create', '--email', 'twolines@example.test', '--password-stdin'], `${other}\n\n`);
    expect((await signIn('twolines@example.test', other)).ok).toBe(false);
    expect((await signIn('twolines@example.test', `${other}\n`)).ok).toBe(true);
  });

  it('list, get, disable, enable and delete each print one JSON document', async () => {
    const password = newPassword();
    const created = await json(['users', 'create', '--email', 'grace@example.test', '--password-stdin'], password);
    const id = String(created.id);
    expect(created.name).toBeNull();

    const listed = await run(['users', 'list', '--json']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).not.toContain('argon2');
    const list = JSON.parse(listed.stdout) as Json[];
    expect(list.find((u) => u.id === id)).toEqual(created);
    expect(list.every((u) => Object.keys(u).sort().join() === USER_KEYS.join())).toBe(true);

    expect(await json(['users', 'get', id])).toEqual(created);

    const disabled = await json(['users', 'disable', id]);
    expect(disabled).toMatchObject({ id, disabled: true });
    expect(await signIn('grace@example.test', password)).toEqual({ ok: false, reason: 'disabled' });

    const enabled = await json(['users', 'enable', id]);
    expect(enabled).toMatchObject({ id, disabled: false });
    expect((await signIn('grace@example.test', password)).ok).toBe(true);
    expect((await json(['users', 'get', id])).last_login_at).toEqual(expect.any(String));

    expect(await json(['users', 'delete', id])).toEqual({ id, deleted: true });
    expectOneLineError(await run(['users', 'get', id]), new RegExp(`user ${id} not found`), 1);
    expect((await json<Json[]>(['users', 'list'])).map((u) => u.id)).not.toContain(id);
  });

  it('prints a human summary without --json, still without the password', async () => {
    const password = newPassword();
    const created = await run(['users', 'create', '--email', 'human@example.test', '--password-stdin'], password);
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/email\s+human@example\.test/);
    expect(created.stdout).not.toContain(password);
    expect(() => JSON.parse(created.stdout)).toThrow();
    const listed = await run(['users', 'list']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/email\s+human@example\.test/);
  });

  describe('refusals: stdout empty, one line on stderr naming what to fix, nothing written', () => {
    const taken = 'taken@example.test';
    beforeAll(async () => {
      await json(['users', 'create', '--email', taken, '--password-stdin'], newPassword());
    });

    const cases: Array<{ what: string; args: () => string[]; stdin?: () => string; mentions: RegExp; code: number }> = [
      {
        what: 'a missing --password-stdin',
        args: () => ['users', 'create', '--email', 'x@example.test'],
        stdin: newPassword,
        mentions: /needs --password-stdin.*never taken as arguments/,
        code: 2,
      },
      { what: 'a missing --email', args: () => ['users', 'create', '--password-stdin'], stdin: newPassword, mentions: /needs --email/, code: 2 },
      { what: 'an empty standard input', args: () => ['users', 'create', '--email', 'x@example.test', '--password-stdin'], mentions: /--password-stdin: .*empty/, code: 2 },
      {
        what: 'a short password',
        args: () => ['users', 'create', '--email', 'x@example.test', '--password-stdin'],
        stdin: () => 'Sh0rt-pass!\n',
        mentions: /^gatehouse: --password-stdin: must be at least 12 characters$/,
        code: 1,
      },
      {
        what: 'a common password (in another case)',
        args: () => ['users', 'create', '--email', 'x@example.test', '--password-stdin'],
        stdin: () => 'FinalFantasy\n',
        mentions: /^gatehouse: --password-stdin: is too common: it appears in lists of breached passwords$/,
        code: 1,
      },
      {
        what: 'a malformed email',
        args: () => ['users', 'create', '--email', 'not-an-email', '--password-stdin'],
        stdin: newPassword,
        mentions: /^gatehouse: --email: must be an email address/,
        code: 1,
      },
      {
        what: 'an email taken in another case',
        args: () => ['users', 'create', '--email', 'TAKEN@Example.Test', '--password-stdin'],
        stdin: newPassword,
        mentions: /^gatehouse: --email: .*already exists/,
        code: 1,
      },
      {
        what: 'an empty --name',
        args: () => ['users', 'create', '--email', 'x@example.test', '--name', '', '--password-stdin'],
        stdin: newPassword,
        mentions: /^gatehouse: --name: must not be empty/,
        code: 1,
      },
      { what: 'get of an unknown id', args: () => ['users', 'get', 'no-such-user'], mentions: /user no-such-user not found/, code: 1 },
      { what: 'disable of an unknown id', args: () => ['users', 'disable', randomUUID()], mentions: /user [0-9a-f-]{36} not found/, code: 1 },
      { what: 'enable of an unknown id', args: () => ['users', 'enable', randomUUID()], mentions: /user [0-9a-f-]{36} not found/, code: 1 },
      { what: 'delete of an unknown id', args: () => ['users', 'delete', randomUUID()], mentions: /user [0-9a-f-]{36} not found/, code: 1 },
      { what: 'get without an id', args: () => ['users', 'get'], mentions: /one ID/, code: 2 },
      { what: 'set-password of an unknown id', args: () => ['users', 'set-password', randomUUID(), '--password-stdin'], stdin: newPassword, mentions: /user [0-9a-f-]{36} not found/, code: 1 },
      { what: 'set-password without --password-stdin', args: () => ['users', 'set-password', randomUUID()], mentions: /needs --password-stdin/, code: 2 },
      { what: 'set-password without an id', args: () => ['users', 'set-password', '--password-stdin'], stdin: newPassword, mentions: /one ID/, code: 2 },
      { what: 'an unknown subcommand', args: () => ['users', 'frobnicate'], mentions: /unknown command "users frobnicate"/, code: 2 },
    ];

    it.each(cases)('$what', async ({ args, stdin, mentions, code }) => {
      const before = (await json<Json[]>(['users', 'list'])).length;
      for (const withJson of [false, true]) {
        expectOneLineError(await run([...args(), ...(withJson ? ['--json'] : [])], stdin?.()), mentions, code);
      }
      expect(await json<Json[]>(['users', 'list'])).toHaveLength(before);
    });

    it('refuses a password given as an argument without echoing it', async () => {
      const password = newPassword();
      for (const args of [
        ['users', 'create', '--email', 'x@example.test', '--password', password],
        ['users', 'create', '--email', 'x@example.test', `--password=${password}`],
        ['users', 'create', '--email', 'x@example.test', '--password-stdin', password],
        ['users', 'set-password', 'some-id', '--password', password],
        ['users', 'set-password', 'some-id', `--password=${password}`],
      ]) {
        const line = expectOneLineError(await run(args, password), /--password-stdin/, 2);
        expect(line).not.toContain(password);
      }
    });
  });
});
