import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { modulesLoadedBy, REPO_ROOT } from '../../fixtures/module-trace.js';

/** Every module of src/cli, and every module of src/ one of them imports lazily (`await import('…')`). */
async function cliModules(): Promise<string[]> {
  const entries = await readdir(path.join(REPO_ROOT, 'src/cli'), { recursive: true, withFileTypes: true });
  const files = entries
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => path.relative(REPO_ROOT, path.join(entry.parentPath, entry.name)).split(path.sep).join('/'));
  const lazy: string[] = [];
  for (const file of files) {
    const source = await readFile(path.join(REPO_ROOT, file), 'utf8');
    for (const [, specifier] of source.matchAll(/import\(\s*'(\.{1,2}\/[^']+)'\s*\)/g)) {
      lazy.push(path.posix.join(path.posix.dirname(file), specifier!.replace(/\.js$/, '.ts')));
    }
  }
  return [...new Set([...files, ...lazy])].sort();
}

const PROVIDER = 'node_modules/oidc-provider/';
/** What loads oidc-provider, or serves HTTP: never part of the CLI (STYLE.md). */
const SERVER_SIDE = /^src\/(oidc|interactions|http)\/|^src\/server\.ts$/;

describe('the CLI', () => {
  it('loads neither oidc-provider nor the server side, every command module and lazy import included', async () => {
    const modules = await cliModules();
    expect(modules).toContain('src/cli/main.ts');
    expect(modules).toContain('src/cli/commands/registration.command.ts');

    const loaded = await modulesLoadedBy(modules);
    // The trace saw what was imported, down to the packages: it is not empty by mistake.
    expect(loaded).toEqual(expect.arrayContaining(['src/cli/main.ts', 'src/services/registration.service.ts', 'src/registry/database.ts']));
    expect(loaded.some((file) => file.includes('node_modules/zod/'))).toBe(true);

    expect(loaded.filter((file) => file.includes(PROVIDER))).toEqual([]);
    expect(loaded.filter((file) => SERVER_SIDE.test(file))).toEqual([]);
  });

  it('would be caught loading it, as oidc/upstream.ts does', async () => {
    const loaded = await modulesLoadedBy(['src/oidc/upstream.ts']);
    expect(loaded.some((file) => file.includes(PROVIDER))).toBe(true);
  });
});
