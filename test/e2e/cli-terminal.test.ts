import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAccountService } from '../../src/accounts/accounts.js';
import { loadConfig } from '../../src/config/load-config.js';
import { createLogger } from '../../src/observability/logger.js';
import { openCliDatabase } from '../../src/registry/database.js';
import { cliJson } from '../fixtures/cli.js';
import { createCliEnv } from '../fixtures/cli-env.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { BIN, NODE } from '../fixtures/process.js';

const quote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;

/**
 * Runs the built `gatehouse` on a pseudo-terminal (util-linux `script`), as a person at a terminal
 * would: each answer is typed once the prompt it answers has appeared. Returns the exit code and
 * everything the terminal showed (stdout and stderr, as the terminal echoes them).
 */
async function onTerminal(args: string[], env: Record<string, string>, answers: string[]): Promise<{ code: number | null; shown: string }> {
  const command = [NODE, BIN, ...args].map(quote).join(' ');
  const child = spawn('script', ['--quiet', '--return', '--command', command, '/dev/null'], {
    env: { PATH: `${path.dirname(NODE)}:${process.env.PATH ?? ''}`, HOME: process.env.HOME ?? '/tmp', SHELL: '/bin/sh', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let shown = '';
  let typed = 0;
  const onOutput = (chunk: Buffer) => {
    shown += chunk.toString();
    const prompts = shown.match(/\(not shown\): |Repeat the [a-z' ]+: /g)?.length ?? 0;
    for (; typed < Math.min(prompts, answers.length); typed += 1) child.stdin.write(`${answers[typed]}\r`);
  };
  child.stdout.on('data', onOutput);
  child.stderr.on('data', onOutput);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.stdin.end();
  return { code, shown };
}

describe('--password-stdin on a terminal', () => {
  let env: Record<string, string>;
  let dispose: () => Promise<void>;

  beforeAll(async () => {
    ({ env, dispose } = await createCliEnv('cli-terminal'));
    await cliJson(['migrate'], env);
  });
  afterAll(() => dispose?.());

  const newPassword = () => {
    const password = `typed-at-a-terminal-${randomBytes(6).toString('hex')}`;
    recordSecret(password);
    return password;
  };

  async function signIn(email: string, password: string) {
    const registry = await openCliDatabase(loadConfig(env), createLogger({ logLevel: 'silent' }));
    try {
      return await createAccountService({ db: registry.db, logger: createLogger({ logLevel: 'silent' }) }).authenticate(email, password);
    } finally {
      await registry.close();
    }
  }

  it('asks twice without showing what is typed, then creates the person with that password', async () => {
    const password = newPassword();
    const { code, shown } = await onTerminal(['users', 'create', '--email', 'tty@example.test', '--password-stdin', '--json'], env, [password, password]);
    expect(code, shown).toBe(0);
    expect(shown).toContain('Password (not shown): ');
    expect(shown).toContain('Repeat the password: ');
    expect(shown).not.toContain(password);
    const created = JSON.parse(shown.slice(shown.indexOf('{'))) as { email: string };
    expect(created.email).toBe('tty@example.test');
    expect((await signIn('tty@example.test', password)).ok).toBe(true);
  });

  it('sets a password the same way, and refuses two answers that differ (exit 2, nothing changed)', async () => {
    const first = newPassword();
    const { id } = await cliJson<{ id: string }>(['users', 'create', '--email', 'retyped@example.test', '--password-stdin'], env, { stdin: first });

    const refused = await onTerminal(['users', 'set-password', id, '--password-stdin'], env, [newPassword(), newPassword()]);
    expect(refused.code, refused.shown).toBe(2);
    expect(refused.shown).toMatch(/gatehouse: --password-stdin: the password and its repetition differ/);
    expect((await signIn('retyped@example.test', first)).ok).toBe(true);

    const second = newPassword();
    const set = await onTerminal(['users', 'set-password', id, '--password-stdin', '--json'], env, [second, second]);
    expect(set.code, set.shown).toBe(0);
    expect(set.shown).not.toContain(second);
    expect((await signIn('retyped@example.test', second)).ok).toBe(true);
  });

  it('Ctrl-C at the prompt stops with exit 130 and creates nothing', async () => {
    const { code, shown } = await onTerminal(['users', 'create', '--email', 'interrupted@example.test', '--password-stdin'], env, ['half\u0003']);
    expect(code, shown).toBe(130);
    expect(shown).toMatch(/gatehouse: interrupted/);
    const users = await cliJson<Array<{ email: string }>>(['users', 'list'], env);
    expect(users.map((user) => user.email)).not.toContain('interrupted@example.test');
  });
});
