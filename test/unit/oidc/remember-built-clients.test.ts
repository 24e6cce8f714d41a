import { describe, expect, it, vi } from 'vitest';
import type { Provider } from 'oidc-provider';
import { rememberBuiltClients } from '../../../src/oidc/upstream.js';
import type { ClientRecord } from '../../../src/registry/client.repository.js';
import type { RegistryCache } from '../../../src/registry/registry-cache.js';

/** A record as the registry cache hands it out: a new object whenever the client changed. */
const record = (clientId: string, version: number) => ({ clientId, version }) as unknown as ClientRecord;

/** A provider whose Client.find builds a new object per call (as oidc-provider does for new metadata), and a cache over `records`. */
function setup(records: Map<string, ClientRecord | Error>) {
  const build = vi.fn(async (id: string) => {
    const found = records.get(id);
    if (found instanceof Error) throw new Error('the adapter answered 503');
    return found ? { clientId: id, builtFrom: found } : undefined;
  });
  const provider = { Client: { find: build } } as unknown as Provider;
  const cache = {
    getClient: vi.fn(async (id: string) => {
      const found = records.get(id);
      if (found instanceof Error) throw found;
      return found;
    }),
  } as unknown as RegistryCache;
  rememberBuiltClients(provider, cache);
  return { find: (id: string) => provider.Client.find(id) as Promise<{ clientId: string; builtFrom: ClientRecord } | undefined>, build };
}

describe('rememberBuiltClients', () => {
  it('hands out the Client built for the current record without building it again', async () => {
    const first = record('app', 1);
    const { find, build } = setup(new Map([['app', first]]));
    const a = await find('app');
    const b = await find('app');
    expect(a?.builtFrom).toBe(first);
    expect(b).toBe(a);
    expect(build).toHaveBeenCalledTimes(1);
  });

  it('builds afresh once the cache hands out a new record (the client changed)', async () => {
    const records = new Map<string, ClientRecord | Error>([['app', record('app', 1)]]);
    const { find, build } = setup(records);
    const before = await find('app');
    const changed = record('app', 2);
    records.set('app', changed);
    const after = await find('app');
    expect(after).not.toBe(before);
    expect(after?.builtFrom).toBe(changed);
    expect(await find('app')).toBe(after);
    expect(build).toHaveBeenCalledTimes(2);
  });

  it('keeps each client apart, and asks the provider every time for one the registry does not have', async () => {
    const { find, build } = setup(new Map([['a', record('a', 1)], ['b', record('b', 1)]]));
    expect((await find('a'))?.clientId).toBe('a');
    expect((await find('b'))?.clientId).toBe('b');
    expect(await find('missing')).toBeUndefined();
    expect(await find('missing')).toBeUndefined();
    expect(await find('')).toBeUndefined();
    expect(build).toHaveBeenCalledTimes(5);
  });

  it('leaves a failed registry read to the provider, so its adapter answers the outage', async () => {
    const { find, build } = setup(new Map([['app', new Error('connection refused')]]));
    await expect(find('app')).rejects.toThrow('the adapter answered 503');
    expect(build).toHaveBeenCalledTimes(1);
  });
});
