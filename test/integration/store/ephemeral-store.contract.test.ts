import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/observability/logger.js';
import { storeKey, type AdapterPayload, type EphemeralStore } from '../../../src/store/ephemeral-store.js';
import { createMemoryStore } from '../../../src/store/memory-store.js';
import { connectRedis, createRedisStore } from '../../../src/store/redis-store.js';
import { WORKER_REDIS_URL } from '../../fixtures/env.js';

/** One implementation under test: how to make it, and how to let time pass for it. */
interface Subject {
  store: EphemeralStore;
  /** Lets `ms` of the store's time pass. */
  advance(ms: number): Promise<void>;
  /** Seconds left on the key in the backing store, when it can say. */
  ttl?(key: string): Promise<number>;
  exists?(key: string): Promise<boolean>;
  close(): Promise<void>;
}

const implementations: Array<{ name: string; make: () => Promise<Subject> }> = [
  {
    name: 'redis',
    async make() {
      const redis: Redis = connectRedis(WORKER_REDIS_URL, createLogger({ logLevel: 'silent' }));
      const store = createRedisStore(redis);
      return {
        store,
        advance: (ms) => sleep(ms),
        ttl: (key) => redis.ttl(key),
        exists: async (key) => (await redis.exists(key)) === 1,
        close: () => store.close(),
      };
    },
  },
  {
    name: 'memory',
    async make() {
      let now = Date.now();
      const store = createMemoryStore(() => now);
      return {
        store,
        advance: async (ms) => {
          now += ms;
        },
        close: () => store.close(),
      };
    },
  },
];

const epochNow = () => Math.floor(Date.now() / 1000);

describe.each(implementations)('ephemeral store contract: $name', ({ make }) => {
  let subject: Subject;
  let store: EphemeralStore;

  beforeAll(async () => {
    subject = await make();
    store = subject.store;
  });
  afterAll(() => subject.close());

  const id = () => randomUUID();

  it('round-trips a payload through upsert and find', async () => {
    const key = id();
    const payload: AdapterPayload = {
      jti: key,
      kind: 'Session',
      accountId: 'alice',
      exp: epochNow() + 60,
      authorizations: { client1: { sid: 's1', grantId: 'g1' } },
      transient: false,
    };
    await store.upsert('Session', key, payload, 60);
    expect(await store.find('Session', key)).toEqual(payload);
  });

  it('finds nothing for an unknown id, or the same id under another model', async () => {
    const key = id();
    await store.upsert('Session', key, { jti: key }, 60);
    expect(await store.find('Session', id())).toBeUndefined();
    expect(await store.find('Interaction', key)).toBeUndefined();
  });

  it('hands out copies: changing a found payload or the upserted object does not change the stored entry', async () => {
    const key = id();
    const payload: AdapterPayload = { jti: key, scope: 'openid' };
    await store.upsert('AccessToken', key, payload, 60);
    payload.scope = 'changed-after-upsert';
    const found = await store.find('AccessToken', key);
    expect(found?.scope).toBe('openid');
    found!.scope = 'changed-after-find';
    expect((await store.find('AccessToken', key))?.scope).toBe('openid');
  });

  it('honours expiresIn', async () => {
    const key = id();
    const uid = id();
    await store.upsert('Interaction', key, { jti: key, uid }, 1);
    expect(await store.find('Interaction', key)).toBeDefined();
    await subject.advance(1500);
    expect(await store.find('Interaction', key)).toBeUndefined();
    expect(await store.findByUid('Interaction', uid)).toBeUndefined();
  });

  it('keeps an entry upserted without expiresIn', async () => {
    const key = id();
    await store.upsert('ReplayDetection', key, { jti: key }, undefined);
    try {
      await subject.advance(1200);
      expect(await store.find('ReplayDetection', key)).toEqual({ jti: key });
    } finally {
      await store.destroy('ReplayDetection', key);
    }
  });

  it('finds an entry by uid', async () => {
    const key = id();
    const uid = id();
    await store.upsert('Session', key, { jti: key, uid, accountId: 'bob' }, 60);
    expect(await store.findByUid('Session', uid)).toEqual({ jti: key, uid, accountId: 'bob' });
    expect(await store.findByUid('Session', id())).toBeUndefined();
    expect(await store.findByUid('Interaction', uid)).toBeUndefined();
  });

  it('finds an entry by user code', async () => {
    const key = id();
    const userCode = `WDJB-${randomUUID().slice(0, 8)}`;
    await store.upsert('DeviceCode', key, { jti: key, userCode, grantId: id() }, 60);
    expect((await store.findByUserCode('DeviceCode', userCode))?.jti).toBe(key);
    expect(await store.findByUserCode('DeviceCode', 'NOPE-NOPE')).toBeUndefined();
  });

  it('finds nothing by uid or user code once the entry is destroyed', async () => {
    const key = id();
    const uid = id();
    const userCode = id();
    await store.upsert('DeviceCode', key, { jti: key, uid, userCode }, 60);
    await store.destroy('DeviceCode', key);
    expect(await store.findByUid('DeviceCode', uid)).toBeUndefined();
    expect(await store.findByUserCode('DeviceCode', userCode)).toBeUndefined();
  });

  it('consume marks the entry consumed with epoch seconds, keeps it, and keeps its expiry', async () => {
    const key = id();
    await store.upsert('AuthorizationCode', key, { jti: key, grantId: id() }, 1);
    const before = epochNow();
    expect(await store.consume('AuthorizationCode', key)).toEqual({ result: 'consumed' });
    const after = epochNow();
    const found = await store.find('AuthorizationCode', key);
    expect(found?.jti).toBe(key);
    expect(typeof found?.consumed).toBe('number');
    expect(found!.consumed).toBeGreaterThanOrEqual(before);
    expect(found!.consumed).toBeLessThanOrEqual(after);
    if (subject.ttl) expect(await subject.ttl(storeKey('AuthorizationCode', key))).toBeGreaterThan(0);
    await subject.advance(1500);
    expect(await store.find('AuthorizationCode', key)).toBeUndefined();
  });

  it('consume is a compare-and-set: a second consume is told the entry was spent, with its grant, and changes nothing', async () => {
    const key = id();
    const grantId = id();
    await store.upsert('AuthorizationCode', key, { jti: key, grantId }, 60);
    expect(await store.consume('AuthorizationCode', key)).toEqual({ result: 'consumed' });
    const spent = await store.find('AuthorizationCode', key);
    expect(await store.consume('AuthorizationCode', key)).toEqual({ result: 'spent', payload: { jti: key, grantId, consumed: spent!.consumed } });
    expect(await store.find('AuthorizationCode', key)).toEqual(spent);
  });

  it('lets exactly one of many concurrent consumes of one entry win', async () => {
    for (let round = 0; round < 10; round += 1) {
      const key = id();
      const grantId = id();
      await store.upsert('AuthorizationCode', key, { jti: key, grantId }, 60);
      const outcomes = await Promise.all(Array.from({ length: 8 }, () => store.consume('AuthorizationCode', key)));
      expect(outcomes.filter((outcome) => outcome.result === 'consumed')).toHaveLength(1);
      for (const outcome of outcomes.filter((outcome) => outcome.result !== 'consumed')) {
        expect(outcome).toMatchObject({ result: 'spent', payload: { jti: key, grantId, consumed: expect.any(Number) } });
      }
    }
  });

  it('insertIfAbsent stores an entry with its expiry only when there is none, and lets exactly one of concurrent calls win', async () => {
    const key = id();
    expect(await store.insertIfAbsent('ReplayDetection', key, { jti: key, iss: 'a' }, 1)).toBe(true);
    expect(await store.find('ReplayDetection', key)).toEqual({ jti: key, iss: 'a' });
    expect(await store.insertIfAbsent('ReplayDetection', key, { jti: key, iss: 'b' }, 60)).toBe(false);
    expect(await store.find('ReplayDetection', key)).toEqual({ jti: key, iss: 'a' });
    // Gone with its expiry, the id can be taken again.
    await subject.advance(1500);
    expect(await store.find('ReplayDetection', key)).toBeUndefined();
    expect(await store.insertIfAbsent('ReplayDetection', key, { jti: key, iss: 'c' }, 60)).toBe(true);
    for (let round = 0; round < 10; round += 1) {
      const contested = id();
      const outcomes = await Promise.all(Array.from({ length: 8 }, (_, i) => store.insertIfAbsent('ReplayDetection', contested, { jti: contested, iss: String(i) }, 60)));
      expect(outcomes.filter(Boolean)).toHaveLength(1);
    }
  });

  it('consume of a missing id answers missing and does not create it', async () => {
    const key = id();
    expect(await store.consume('AuthorizationCode', key)).toEqual({ result: 'missing' });
    expect(await store.find('AuthorizationCode', key)).toBeUndefined();
    if (subject.exists) expect(await subject.exists(storeKey('AuthorizationCode', key))).toBe(false);
  });

  it('consume of an expired entry does not bring it back', async () => {
    const key = id();
    await store.upsert('AuthorizationCode', key, { jti: key }, 1);
    await subject.advance(1500);
    expect(await store.consume('AuthorizationCode', key)).toEqual({ result: 'missing' });
    expect(await store.find('AuthorizationCode', key)).toBeUndefined();
    if (subject.exists) expect(await subject.exists(storeKey('AuthorizationCode', key))).toBe(false);
  });

  it('destroy removes the entry and leaves others', async () => {
    const gone = id();
    const kept = id();
    await store.upsert('Session', gone, { jti: gone }, 60);
    await store.upsert('Session', kept, { jti: kept }, 60);
    await store.destroy('Session', gone);
    expect(await store.find('Session', gone)).toBeUndefined();
    expect(await store.find('Session', kept)).toEqual({ jti: kept });
    // Destroying what is not there is fine.
    await expect(store.destroy('Session', id())).resolves.toBeUndefined();
  });

  it('revokeByGrantId removes every entry of any model with that grantId and leaves the rest', async () => {
    const grantId = id();
    const otherGrant = id();
    const revoked = [
      ['AuthorizationCode', id()],
      ['AccessToken', id()],
      ['RefreshToken', id()],
      ['BackchannelAuthenticationRequest', id()],
    ] as const;
    for (const [model, key] of revoked) await store.upsert(model, key, { jti: key, grantId }, 60);
    const untimed = id();
    await store.upsert('AccessToken', untimed, { jti: untimed, grantId }, undefined);
    const otherToken = id();
    const noGrant = id();
    await store.upsert('AccessToken', otherToken, { jti: otherToken, grantId: otherGrant }, 60);
    await store.upsert('Session', noGrant, { jti: noGrant }, 60);

    await store.revokeByGrantId(grantId);

    for (const [model, key] of revoked) expect(await store.find(model, key), model).toBeUndefined();
    expect(await store.find('AccessToken', untimed)).toBeUndefined();
    expect(await store.find('AccessToken', otherToken)).toEqual({ jti: otherToken, grantId: otherGrant });
    expect(await store.find('Session', noGrant)).toEqual({ jti: noGrant });
    // Revoking an unknown grant is fine.
    await expect(store.revokeByGrantId(id())).resolves.toBeUndefined();
    await store.revokeByGrantId(otherGrant);
    expect(await store.find('AccessToken', otherToken)).toBeUndefined();
  });

  it('revokeByGrantId still reaches a short-lived entry after a longer-lived one joined the grant', async () => {
    const grantId = id();
    const short = id();
    const long = id();
    await store.upsert('AuthorizationCode', short, { jti: short, grantId }, 1);
    await store.upsert('AccessToken', long, { jti: long, grantId }, 60);
    await subject.advance(1500);
    expect(await store.find('AuthorizationCode', short)).toBeUndefined();
    await store.revokeByGrantId(grantId);
    expect(await store.find('AccessToken', long)).toBeUndefined();
  });

  it('revokeByGrantId still reaches an entry without expiry after the timed entries of its grant expired', async () => {
    const grantId = id();
    const timed = id();
    const forever = id();
    await store.upsert('AuthorizationCode', timed, { jti: timed, grantId }, 1);
    await store.upsert('AccessToken', forever, { jti: forever, grantId }, undefined);
    try {
      await subject.advance(1500);
      await store.revokeByGrantId(grantId);
      expect(await store.find('AccessToken', forever)).toBeUndefined();
    } finally {
      await store.destroy('AccessToken', forever);
    }
  });

  it('upsert over an existing id replaces the payload entirely', async () => {
    const key = id();
    await store.upsert('Session', key, { jti: key, accountId: 'alice', scope: 'openid old' }, 60);
    await store.consume('Session', key);
    await store.upsert('Session', key, { jti: key, accountId: 'bob' }, 60);
    expect(await store.find('Session', key)).toEqual({ jti: key, accountId: 'bob' });
  });

  it('upsert over an existing id takes the new expiry', async () => {
    const key = id();
    await store.upsert('Session', key, { jti: key, n: 1 }, 1);
    await store.upsert('Session', key, { jti: key, n: 2 }, 60);
    await subject.advance(1500);
    expect(await store.find('Session', key)).toEqual({ jti: key, n: 2 });
  });

  it('an index keeps members and values, replaces a member, removes members, and is empty when unknown', async () => {
    const index = `account-sessions:${id()}`;
    expect(await store.indexList(index)).toEqual(new Map());
    await store.indexSet(index, 'a', '{"n":1}', 60);
    await store.indexSet(index, 'b', '{"n":2}', 60);
    await store.indexSet(index, 'a', '{"n":3}', 60);
    expect(await store.indexList(index)).toEqual(new Map([['a', '{"n":3}'], ['b', '{"n":2}']]));
    await store.indexRemove(index, ['a', 'unknown']);
    await store.indexRemove(index, []);
    expect(await store.indexList(index)).toEqual(new Map([['b', '{"n":2}']]));
    expect(await store.indexList(`account-sessions:${id()}`)).toEqual(new Map());
  });

  it('an index lives as long as its longest-lived member: a shorter one joining does not cut it, and it expires after', async () => {
    const index = `account-sessions:${id()}`;
    await store.indexSet(index, 'long', 'x', 2);
    await store.indexSet(index, 'short', 'y', 1);
    await subject.advance(1500);
    expect(await store.indexList(index)).toEqual(new Map([['long', 'x'], ['short', 'y']]));
    await subject.advance(1000);
    expect(await store.indexList(index)).toEqual(new Map());
  });

  it('ping resolves', async () => {
    await expect(store.ping(1000)).resolves.toBeUndefined();
  });
});
