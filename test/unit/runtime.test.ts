import { AsyncLocalStorage } from 'node:async_hooks';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MINIMUM_NODE_VERSION, missingNodeOptions, SERVER_NODE_OPTIONS, unsupportedNodeVersion } from '../../src/runtime.js';

describe('the Node.js options the server runs with', () => {
  it('names the options a process was started without', () => {
    expect(missingNodeOptions([])).toEqual([...SERVER_NODE_OPTIONS]);
    expect(missingNodeOptions(['--inspect', ...SERVER_NODE_OPTIONS])).toEqual([]);
  });

  it('are what the test processes (and the servers they start in process) run with', () => {
    expect(missingNodeOptions()).toEqual([]);
  });

  it('keep a store through awaits, timers and promise chains, as oidc-provider relies on', async () => {
    const storage = new AsyncLocalStorage<{ id: number }>();
    const seen = await Promise.all(
      [1, 2, 3].map((id) =>
        storage.run({ id }, async () => {
          await new Promise((resolve) => setTimeout(resolve, 3 - id));
          await Promise.resolve();
          return new Promise<number | undefined>((resolve) => setImmediate(() => resolve(storage.getStore()?.id)));
        }),
      ),
    );
    expect(seen).toEqual([1, 2, 3]);
    expect(storage.getStore()).toBeUndefined();
  });
});

describe('the Node.js version Gatehouse needs', () => {
  it('is met by the node devDependency npm scripts run on, and not left to npm (no engines: npm would check the machine\'s node)', () => {
    const read = (file: string) => JSON.parse(readFileSync(path.resolve(import.meta.dirname, '../..', file), 'utf8')) as Record<string, unknown>;
    const pkg = read('package.json') as { engines?: unknown; devDependencies: Record<string, string> };
    const lock = read('package-lock.json') as { packages: Record<string, { version?: string; engines?: unknown }> };
    expect(pkg.engines).toBeUndefined();
    expect(lock.packages['']?.engines).toBeUndefined();
    expect(pkg.devDependencies.node).toMatch(/^\^\d+\.\d+\.\d+$/);
    expect(unsupportedNodeVersion(pkg.devDependencies.node!.slice(1))).toBeUndefined();
    expect(unsupportedNodeVersion(lock.packages['node_modules/node']?.version ?? '')).toBeUndefined();
  });

  it.each(['22.12.0', '22.23.3', '23.0.0', '24.1.0', '100.0.0'])('runs on %s', (version) => {
    expect(unsupportedNodeVersion(version)).toBeUndefined();
  });

  it.each(['22.11.9', '22.0.0', '21.7.3', '20.20.2', '18.19.0'])('refuses %s, naming the Node to use instead', (version) => {
    const refusal = unsupportedNodeVersion(version);
    expect(refusal).toContain(`this is ${version}`);
    expect(refusal).toContain(`Node.js ${MINIMUM_NODE_VERSION} or later`);
    expect(refusal).toContain('npx node');
  });

  it('is met by the Node the tests run on (the node devDependency)', () => {
    expect(unsupportedNodeVersion()).toBeUndefined();
  });
});
