import { execFile } from 'node:child_process';
import { cp, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../fixtures/module-trace.js';

const run = promisify(execFile);

/** Runs the lint's depcruise step, as `npm run lint` does, in `cwd`: its exit code and what it printed. */
async function depcruise(cwd: string): Promise<{ code: number; output: string }> {
  const bin = path.join(REPO_ROOT, 'node_modules/.bin/depcruise');
  try {
    const { stdout, stderr } = await run(bin, ['src', '--config', '.dependency-cruiser.mjs', '--output-type', 'err'], { cwd });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : -1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

/**
 * The import-boundary rules of .dependency-cruiser.mjs catch what they are there for: a copy of
 * src/ passes, and the same copy with one wrong-way import of each kind fails, naming the rule.
 */
describe('the import boundaries (npm run lint)', () => {
  let copy: string;
  beforeAll(async () => {
    copy = await mkdtemp(path.join(os.tmpdir(), 'gh-boundaries-'));
    await cp(path.join(REPO_ROOT, 'src'), path.join(copy, 'src'), { recursive: true });
    for (const file of ['.dependency-cruiser.mjs', 'tsconfig.json', 'package.json']) await cp(path.join(REPO_ROOT, file), path.join(copy, file));
    await symlink(path.join(REPO_ROOT, 'node_modules'), path.join(copy, 'node_modules'), 'dir');
  });
  afterAll(() => rm(copy, { recursive: true, force: true }));

  it('pass on src/ as it is, and fail on each kind of wrong-way import, naming its rule', async () => {
    const clean = await depcruise(copy);
    expect(clean.output).not.toMatch(/error/);
    expect(clean.code).toBe(0);

    // A lower layer importing a higher one: configuration reaching into the services.
    await writeFile(path.join(copy, 'src/config/wrong-way.ts'), "import { recordChange } from '../services/changes.js';\nexport const x = recordChange;\n");
    // Two folders of one layer importing each other (registry and store).
    await writeFile(path.join(copy, 'src/registry/sideways.ts'), "export * from '../store/memory-store.js';\n");
    // The CLI loading oidc/ (and through it oidc-provider); a type-only import would be allowed.
    await writeFile(path.join(copy, 'src/cli/loads-provider.ts'), "import '../oidc/upstream.js';\n");
    // A service loading oidc-provider itself.
    await writeFile(path.join(copy, 'src/services/provider.ts'), "import Provider from 'oidc-provider';\nexport const P = Provider;\n");
    // A folder that is in no layer.
    await writeFile(path.join(copy, 'src/stray.ts'), "import '../src/config/wrong-way.js';\n");

    const broken = await depcruise(copy);
    expect(broken.code).not.toBe(0);
    for (const rule of ['layer-order:config', 'layer-order:registry', 'cli-and-admin-without-provider', 'no-oidc-provider-here', 'unlayered']) {
      expect(broken.output).toContain(rule);
    }
  });
});
