import type { AdapterPayload } from 'oidc-provider';

export type { AdapterPayload };

/**
 * Short-lived protocol state (sessions, interactions, codes, replay detection, opaque tokens)
 * keyed by oidc-provider model name. Redis in production, an in-process map in development:
 * both pass the same contract tests.
 */
export interface EphemeralStore {
  readonly kind: 'redis' | 'memory';
  upsert(model: string, id: string, payload: AdapterPayload, expiresIn?: number): Promise<void>;
  find(model: string, id: string): Promise<AdapterPayload | undefined>;
  findByUid(model: string, uid: string): Promise<AdapterPayload | undefined>;
  findByUserCode(model: string, userCode: string): Promise<AdapterPayload | undefined>;
  /**
   * Marks the entry consumed (epoch seconds), keeping its expiry, if no one has: a compare-and-set,
   * so of concurrent calls for one entry exactly one answers `consumed`. The others answer `spent`
   * with the entry as it is (its grantId says what to revoke); `missing` when there is no live entry.
   */
  consume(model: string, id: string): Promise<ConsumeOutcome>;
  destroy(model: string, id: string): Promise<void>;
  /**
   * Stores the entry for `expiresIn` seconds only if there is no live one under that id: of
   * concurrent calls for one id exactly one answers true (replay detection, see store-adapter.ts).
   */
  insertIfAbsent(model: string, id: string, payload: AdapterPayload, expiresIn: number): Promise<boolean>;
  /** Deletes every entry, of any model, that carries this grantId. */
  revokeByGrantId(grantId: string): Promise<void>;
  /**
   * Sets `member` to `value` in the named index (a small map kept beside the entries, e.g. the
   * sessions of one account), which lives at least `expiresIn` seconds more (without it, for good).
   * Members are never expired one by one: a reader drops the ones whose entry is gone.
   */
  indexSet(index: string, member: string, value: string, expiresIn?: number): Promise<void>;
  /** The members of the index and their values (empty when there is none). */
  indexList(index: string): Promise<Map<string, string>>;
  /** Removes members from the index. */
  indexRemove(index: string, members: string[]): Promise<void>;
  /** Resolves when the store answers within the timeout, else rejects. */
  ping(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** What a consume did: see EphemeralStore.consume. */
export type ConsumeOutcome = { result: 'consumed' } | { result: 'spent'; payload: AdapterPayload } | { result: 'missing' };

export const storeKey = (model: string, id: string) => `oidc:${model}:${id}`;
export const grantKey = (grantId: string) => `oidc:grant:${grantId}`;
export const uidKey = (model: string, uid: string) => `oidc:${model}:uid:${uid}`;
export const userCodeKey = (model: string, userCode: string) => `oidc:${model}:userCode:${userCode}`;
export const indexKey = (index: string) => `oidc:index:${index}`;

export const epochSeconds = () => Math.floor(Date.now() / 1000);

/**
 * The same store, with every operation timed into `observe(operation, seconds, failed)` (the
 * Prometheus dependency histogram). ping and close pass through untimed.
 */
export function timedStore(store: EphemeralStore, observe: (operation: string, seconds: number, failed: boolean) => void): EphemeralStore {
  const time =
    <A extends unknown[], R>(operation: string, run: (...args: A) => Promise<R>) =>
    (...args: A): Promise<R> => {
      const started = process.hrtime.bigint();
      const done = (failed: boolean) => observe(operation, Number(process.hrtime.bigint() - started) / 1e9, failed);
      return run(...args).then(
        (value) => {
          done(false);
          return value;
        },
        (error: unknown) => {
          done(true);
          throw error;
        },
      );
    };
  return {
    kind: store.kind,
    upsert: time('upsert', (model: string, id: string, payload: AdapterPayload, expiresIn?: number) => store.upsert(model, id, payload, expiresIn)),
    find: time('find', (model: string, id: string) => store.find(model, id)),
    findByUid: time('findByUid', (model: string, uid: string) => store.findByUid(model, uid)),
    findByUserCode: time('findByUserCode', (model: string, userCode: string) => store.findByUserCode(model, userCode)),
    consume: time('consume', (model: string, id: string) => store.consume(model, id)),
    destroy: time('destroy', (model: string, id: string) => store.destroy(model, id)),
    insertIfAbsent: time('insertIfAbsent', (model: string, id: string, payload: AdapterPayload, expiresIn: number) => store.insertIfAbsent(model, id, payload, expiresIn)),
    revokeByGrantId: time('revokeByGrantId', (grantId: string) => store.revokeByGrantId(grantId)),
    indexSet: time('indexSet', (index: string, member: string, value: string, expiresIn?: number) => store.indexSet(index, member, value, expiresIn)),
    indexList: time('indexList', (index: string) => store.indexList(index)),
    indexRemove: time('indexRemove', (index: string, members: string[]) => store.indexRemove(index, members)),
    ping: (timeoutMs) => store.ping(timeoutMs),
    close: () => store.close(),
  };
}
