import { epochSeconds, grantKey, indexKey, storeKey, uidKey, userCodeKey, type AdapterPayload, type EphemeralStore } from './ephemeral-store.js';

interface Entry<T> {
  value: T;
  expiresAt: number | undefined;
}

const SWEEP_MS = 30_000;

/**
 * The in-process ephemeral store: the embedded default of `npm start`. State dies with the
 * process and is not shared between processes.
 *
 * @example
 * const store = createMemoryStore();
 */
export function createMemoryStore(now: () => number = Date.now): EphemeralStore {
  const entries = new Map<string, Entry<AdapterPayload>>();
  const pointers = new Map<string, Entry<string>>();
  const grants = new Map<string, Entry<Set<string>>>();
  const indexes = new Map<string, Entry<Map<string, string>>>();

  const expiry = (expiresIn?: number) => (expiresIn === undefined ? undefined : now() + expiresIn * 1000);
  const alive = <T>(map: Map<string, Entry<T>>, key: string): T | undefined => {
    const entry = map.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= now()) {
      map.delete(key);
      return undefined;
    }
    return entry.value;
  };
  const read = (key: string) => {
    const value = alive(entries, key);
    return value === undefined ? undefined : structuredClone(value);
  };

  const sweep = setInterval(() => {
    for (const map of [entries, pointers, grants, indexes] as Array<Map<string, Entry<unknown>>>) {
      for (const key of map.keys()) alive(map, key);
    }
  }, SWEEP_MS);
  sweep.unref();

  return {
    kind: 'memory',
    async upsert(model, id, payload, expiresIn) {
      const key = storeKey(model, id);
      const expiresAt = expiry(expiresIn);
      entries.set(key, { value: structuredClone(payload), expiresAt });
      if (payload.grantId) {
        const gk = grantKey(payload.grantId);
        const existing = grants.get(gk);
        const set = alive(grants, gk) ?? new Set<string>();
        set.add(key);
        const longest =
          existing?.expiresAt === undefined || expiresAt === undefined ? undefined : Math.max(existing.expiresAt, expiresAt);
        grants.set(gk, { value: set, expiresAt: existing ? longest : expiresAt });
      }
      if (payload.uid) pointers.set(uidKey(model, payload.uid), { value: id, expiresAt });
      if (payload.userCode) pointers.set(userCodeKey(model, payload.userCode), { value: id, expiresAt });
    },
    async find(model, id) {
      return read(storeKey(model, id));
    },
    async findByUid(model, uid) {
      const id = alive(pointers, uidKey(model, uid));
      return id === undefined ? undefined : read(storeKey(model, id));
    },
    async findByUserCode(model, userCode) {
      const id = alive(pointers, userCodeKey(model, userCode));
      return id === undefined ? undefined : read(storeKey(model, id));
    },
    async consume(model, id) {
      // Read and set with no await between them: atomic in this one thread.
      const value = alive(entries, storeKey(model, id));
      if (!value) return { result: 'missing' };
      if (value.consumed) return { result: 'spent', payload: structuredClone(value) };
      value.consumed = epochSeconds();
      return { result: 'consumed' };
    },
    async destroy(model, id) {
      entries.delete(storeKey(model, id));
    },
    async insertIfAbsent(model, id, payload, expiresIn) {
      // Read and set with no await between them: atomic in this one thread.
      const key = storeKey(model, id);
      if (alive(entries, key) !== undefined) return false;
      entries.set(key, { value: structuredClone(payload), expiresAt: expiry(expiresIn) });
      return true;
    },
    async revokeByGrantId(grantId) {
      const gk = grantKey(grantId);
      for (const key of alive(grants, gk) ?? []) entries.delete(key);
      grants.delete(gk);
    },
    async indexSet(index, member, value, expiresIn) {
      const key = indexKey(index);
      const current = alive(indexes, key);
      const map = current ?? new Map<string, string>();
      map.set(member, value);
      const expiresAt = expiry(expiresIn);
      // As a grant's index: a live index only ever lives longer; an entry without expiry keeps it for good.
      const previous = current === undefined ? undefined : indexes.get(key);
      const until = !previous ? expiresAt : previous.expiresAt === undefined || expiresAt === undefined ? undefined : Math.max(previous.expiresAt, expiresAt);
      indexes.set(key, { value: map, expiresAt: until });
    },
    async indexList(index) {
      return new Map(alive(indexes, indexKey(index)) ?? []);
    },
    async indexRemove(index, members) {
      const map = alive(indexes, indexKey(index));
      for (const member of members) map?.delete(member);
    },
    async ping() {},
    async close() {
      clearInterval(sweep);
    },
  };
}
