import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
