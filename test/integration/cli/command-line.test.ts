import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeCommands } from '../../../src/cli/command-tree.js';
import { createRuntime } from '../../../src/cli/define.js';
import { createProgram } from '../../../src/cli/program.js';
import { expectJsonResult, runCliCapture } from '../../fixtures/cli.js';
import { createCliEnv } from '../../fixtures/cli-env.js';

describe('--json anywhere on the line', () => {
  let env: Record<string, string>;
  let dispose: () => Promise<void>;

  beforeAll(async () => {
    ({ env, dispose } = await createCliEnv('command-line'));
  });
  afterAll(() => dispose?.());

  it('before the command, between its words and after its options: one JSON document each time', async () => {
    const identifier = 'https://json-anywhere.example.test';
    const lines = [
      ['--json', 'resources', 'create', '--identifier', identifier, '--scope', 'read'],
      ['resources', '--json', 'get', identifier],
      ['resources', 'get', '--json', identifier],
      ['resources', 'get', identifier, '--json'],
    ];
    const documents: string[] = [];
    for (const args of lines) {
      const document = expectJsonResult<Record<string, unknown>>(await runCliCapture(args, env), args.join(' '));
      expect(document).toMatchObject({ identifier, scope: 'read' });
      documents.push(JSON.stringify(document));
    }
    expect(new Set(documents).size).toBe(1);
    const human = await runCliCapture(['resources', 'get', identifier], env);
    expect(human.code).toBe(0);
    expect(() => JSON.parse(human.stdout)).toThrow();
  });
});

describe('gatehouse completion', () => {
  const commands = describeCommands(createProgram(createRuntime({ env: {}, cwd: '/', stdout: () => undefined, stderr: () => undefined })));

  async function script(shell: 'bash' | 'zsh'): Promise<string> {
    const result = await runCliCapture(['completion', shell], {});
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    return result.stdout;
  }

  /** What bash offers for the words typed so far (the last one being completed), with the script loaded. */
  async function complete(...words: string[]): Promise<string[]> {
    const program = [
      await script('bash'),
      `COMP_WORDS=(gatehouse ${words.map((word) => `'${word}'`).join(' ')})`,
      'COMP_CWORD=$((${#COMP_WORDS[@]} - 1))',
      '_gatehouse',
      'printf "%s\\n" "${COMPREPLY[@]}"',
    ].join('\n');
    const result = spawnSync('bash', ['--norc', '--noprofile', '-c', program], { encoding: 'utf8', cwd: '/' });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    return result.stdout.split('\n').filter(Boolean);
  }

  it('bash: completes the groups, then each group\'s commands, then each command\'s options', async () => {
    const top = commands.filter((info) => info.path !== '' && !info.path.includes(' ')).map((info) => info.path);
    expect(await complete('')).toEqual([...top, 'help', '--version', '--json', '--help']);
    expect(await complete('cl')).toEqual(['clients']);
    for (const group of commands.filter((info) => !info.leaf && info.path !== '')) {
      expect(await complete(...group.path.split(' '), ''), group.path).toEqual([...group.subcommands, '--json', '--help']);
    }
    for (const leaf of commands.filter((info) => info.leaf)) {
      expect(await complete(...leaf.path.split(' '), '--'), leaf.path).toEqual(expect.arrayContaining([...leaf.options, '--json', '--help']));
    }
  });

  it('bash: skips options, their values and IDs, and offers the choices an option or argument lists', async () => {
    expect(await complete('clients', '--json', 'create', '--name', 'billing', '--first-')).toEqual(['--first-party']);
    expect(await complete('clients', 'get', 'some-client-id', '--j')).toEqual(['--json']);
    expect(await complete('keys', 'rotate', '--alg', '')).toEqual(['RS256', 'PS256', 'ES256', 'EdDSA']);
    expect(await complete('clients', 'create', '--auth-method', 'private')).toEqual(['private_key_jwt']);
    expect(await complete('clients', 'create', '--name', '')).toEqual([]);
    expect(await complete('completion', '')).toEqual(['bash', 'zsh', '--json', '--help']);
    expect(await complete('registration', 'token', 'r')).toEqual(['revoke']);
  });

  it('with --json: one JSON document holding the script', async () => {
    const result = await runCliCapture(['completion', '--json', 'bash'], {});
    expect(expectJsonResult(result, 'completion bash --json')).toEqual({ shell: 'bash', script: await script('bash') });
  });

  it('zsh: a script for compinit naming every command and option of the definitions', async () => {
    const zsh = await script('zsh');
    expect(zsh.startsWith('#compdef gatehouse\n')).toBe(true);
    expect(zsh).toContain('compdef _gatehouse gatehouse');
    for (const info of commands) {
      expect(zsh).toContain(`('${info.path}') compadd -- `);
      for (const word of [...info.subcommands, ...info.options]) expect(zsh).toMatch(new RegExp(`\\('${info.path}'\\) compadd -- .*'${word}'`));
    }
    expect(zsh).toContain(`('keys generate --alg') compadd -- 'RS256' 'PS256' 'ES256' 'EdDSA'; return 0 ;;`);
  });
});
