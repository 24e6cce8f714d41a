import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeCommands } from '../../../src/cli/command-tree.js';
import { createRuntime } from '../../../src/cli/define.js';
import { runCli } from '../../../src/cli/main.js';
import { createProgram } from '../../../src/cli/program.js';

/** No configuration at all: what these command lines do must not need any (no database is opened). */
async function run(...args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    env: {},
    cwd: '/nonexistent',
    stdout: (text) => void (stdout += text),
    stderr: (text) => void (stderr += text),
  });
  return { code, stdout, stderr };
}

const commands = describeCommands(createProgram(createRuntime({ env: {}, cwd: '/', stdout: () => undefined, stderr: () => undefined })));
const groups = commands.filter((info) => !info.leaf && info.path !== '');
const leaves = commands.filter((info) => info.leaf);

describe('the command definitions', () => {
  it('hold every command of the contract and the groups around them', () => {
    expect(groups.map((info) => info.path)).toEqual(['keys', 'resources', 'clients', 'users', 'users api-keys', 'providers', 'registration', 'registration token', 'audit', 'db']);
    expect(leaves.map((info) => info.path)).toEqual(
      expect.arrayContaining([
        'migrate',
        'keys generate',
        'keys rotate',
        'keys list',
        'resources create',
        'clients create',
        'clients list',
        'clients get',
        'clients update',
        'clients delete',
        'clients rotate-secret',
        'clients grant',
        'clients revoke-grant',
        'users create',
        'users list',
        'users disable',
        'users delete',
        'users api-keys create',
        'users api-keys list',
        'users api-keys revoke',
        'providers create',
        'providers list',
        'providers delete',
        'registration token create',
        'registration token list',
        'registration token revoke',
        'completion',
      ]),
    );
  });
});

describe('gatehouse --help and --version', () => {
  it('--help lists every group with its summary on stdout, exit 0', async () => {
    const result = await run('--help');
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(/^Usage: gatehouse <command> \[options\] \[--json\]/);
    for (const info of commands.filter((c) => c.path !== '' && !c.path.includes(' '))) {
      expect(result.stdout).toMatch(new RegExp(`^  ${info.path}\\b`, 'm'));
    }
    expect(result.stdout).toMatch(/Exit codes: 0 done; 1 refused or failed/);
    expect((await run('help')).stdout).toBe(result.stdout);
    expect((await run('-h')).stdout).toBe(result.stdout);
  });

  it.each(groups.map((info) => info))('$path --help lists its commands', async (info) => {
    const result = await run(...info.path.split(' '), '--help');
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(new RegExp(`^Usage: gatehouse ${info.path} \\[options\\] \\[command\\]`));
    for (const sub of info.subcommands) expect(result.stdout).toMatch(new RegExp(`^  ${sub}\\b`, 'm'));
  });

  it.each(leaves.map((info) => info))('$path --help shows its usage and every option, and --json', async (info) => {
    const result = await run(...info.path.split(' '), '--help');
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(new RegExp(`^Usage: gatehouse ${info.path}\\b`));
    for (const option of info.options) expect(result.stdout).toContain(option);
    for (const argument of info.arguments) expect(result.stdout).toContain(argument);
    expect(result.stdout).toMatch(/Global Options:\n(.*\n)*\s+--json\s+print one JSON document/);
  });

  it('clients create --help names the values its options take and the choices they list', async () => {
    const { stdout } = await run('clients', 'create', '--help');
    expect(stdout).toMatch(/^Usage: gatehouse clients create --name NAME \[options\]/);
    const text = stdout.replace(/\s+/g, ' ');
    expect(text).toMatch(/--redirect-uri <URI>/);
    expect(text).toMatch(/--auth-method <METHOD> .*\(choices: "client_secret_basic", "client_secret_post", "private_key_jwt", "none"\)/);
    expect(text).toMatch(/--admin an admin client: grants the admin API/);
    expect((await run('clients', 'update', '--help')).stdout).not.toMatch(/--admin/);
  });

  it('--version prints the version in package.json', async () => {
    const { version } = JSON.parse(readFileSync(path.resolve(import.meta.dirname, '../../../package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) expect(await run(flag)).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
  });
});

describe('a group named without a command', () => {
  it.each(groups.map((info) => info))('$path lists its commands on stdout (stderr with --json) and exits 2', async (info) => {
    const plain = await run(...info.path.split(' '));
    expect(plain.stderr).toBe('');
    expect(plain.code).toBe(2);
    expect(plain.stdout).toMatch(new RegExp(`^Usage: gatehouse ${info.path} \\[options\\] \\[command\\]`));
    for (const sub of info.subcommands) expect(plain.stdout).toMatch(new RegExp(`^  ${sub}\\b`, 'm'));
    // With --json, stdout is a JSON document or nothing.
    expect(await run(...info.path.split(' '), '--json')).toEqual({ code: 2, stdout: '', stderr: plain.stdout });
  });

  it('gatehouse alone prints its usage on stdout and exits 2, as it always did', async () => {
    const result = await run();
    expect(result.code).toBe(2);
    expect(result.stdout).toBe((await run('--help')).stdout);
  });
});

describe('usage errors: exit 2, one line on stderr, nothing on stdout', () => {
  const cases: Array<[string[], string]> = [
    [['frobnicate'], 'gatehouse: unknown command "frobnicate" (run gatehouse --help)'],
    [['clients', 'frobnicate'], 'gatehouse: unknown command "clients frobnicate": use clients create, list, get, update, delete, rotate-secret, grant or revoke-grant'],
    [['audit', 'nope'], 'gatehouse: unknown command "audit nope": use audit tail, verify, checkpoint or rotate-key'],
    [['db', 'grants'], 'gatehouse: unknown command "db grants": use db roles'],
    [['registration', 'tokens'], 'gatehouse: unknown command "registration tokens": use registration token create, registration token list or registration token revoke'],
    [['registration', 'token', 'mint'], 'gatehouse: unknown command "registration token mint": use registration token create, list or revoke'],
    [['clients', 'get'], 'gatehouse: expected one ID, got 0'],
    [['clients', 'get', 'a', 'b'], 'gatehouse: expected one ID, got 2'],
    [['clients', 'list', 'extra'], 'gatehouse: unexpected argument "extra"'],
    [['clients', 'create', '--nme', 'x'], "gatehouse: unknown option '--nme' (did you mean --name?)"],
    [['clients', 'create', '--colour=blue'], "gatehouse: unknown option '--colour'"],
    [['clients', 'create', '--name'], "gatehouse: option '--name <NAME>' argument missing"],
    [['completion'], 'gatehouse: expected one SHELL (bash or zsh), got 0'],
    [['completion', 'fish'], "gatehouse: command-argument value 'fish' is invalid for argument 'SHELL'. Allowed choices are bash, zsh."],
    [['users', 'create', '--password=hunter2-hunter2'], 'gatehouse: passwords are never taken as arguments: pipe the password to --password-stdin'],
    [['users', 'create', '--password-stdin', 'hunter2-hunter2'], 'gatehouse: users create takes no arguments but its options (the password goes to --password-stdin)'],
    [['users', 'set-password', 'some-id', '--password', 'hunter2-hunter2'], 'gatehouse: passwords are never taken as arguments: pipe the password to --password-stdin'],
    [
      ['db', 'roles', '--runtime-password=hunter2-hunter2'],
      "gatehouse: passwords are never taken as arguments: pipe the runtime role's password to --runtime-password-stdin",
    ],
    [
      ['db', 'roles', '--runtime-password-stdin=hunter2-hunter2'],
      "gatehouse: passwords are never taken as arguments: pipe the runtime role's password to --runtime-password-stdin",
    ],
  ];

  it.each(cases)('%j', async (args, line) => {
    for (const extra of [[], ['--json']]) {
      expect(await run(...args, ...extra)).toEqual({ code: 2, stdout: '', stderr: `${line}\n` });
    }
  });
});
