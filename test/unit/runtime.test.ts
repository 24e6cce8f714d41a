import { AsyncLocalStorage } from 'node:async_hooks';
import { describe, expect, it } from 'vitest';
import { missingNodeOptions, SERVER_NODE_OPTIONS } from '../../src/runtime.js';

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
