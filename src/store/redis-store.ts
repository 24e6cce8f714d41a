import { Redis } from 'ioredis';
import type { Logger } from '../observability/logger.js';
import { epochSeconds, grantKey, indexKey, storeKey, uidKey, userCodeKey, type AdapterPayload, type EphemeralStore } from './ephemeral-store.js';

// Compare-and-set: marks a hash consumed only if it exists (an expired entry is not brought back
// without a TTL) and no one marked it before. Answers 1 when this call consumed it, 0 when there is
// no entry, and the stored payload and consumed time when it was consumed already.
const CONSUME_SCRIPT = `
local payload = redis.call('HGET', KEYS[1], 'payload')
if not payload then
  return 0
end
local consumed = redis.call('HGET', KEYS[1], 'consumed')
if consumed then
  return {payload, consumed}
end
redis.call('HSET', KEYS[1], 'consumed', ARGV[1])
return 1`;

// Creates an entry (payload and TTL) only if the key does not exist: 1 when this call created it.
const INSERT_IF_ABSENT_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'payload', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1`;

// Adds a key to its grant's index and keeps the index alive as long as its longest-lived entry:
// a new index takes the entry's TTL, a timed index only ever grows its TTL, and an entry without
// expiry makes the index permanent.
const GRANT_INDEX_SCRIPT = `
local existed = redis.call('EXISTS', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
redis.call('RPUSH', KEYS[1], ARGV[1])
if ARGV[2] == '' then
  redis.call('PERSIST', KEYS[1])
elseif existed == 0 or (ttl >= 0 and ttl < tonumber(ARGV[2])) then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 0`;

// Sets a member of an index (a hash) with the same lifetime rule as a grant's index.
const INDEX_SET_SCRIPT = `
local existed = redis.call('EXISTS', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] == '' then
  redis.call('PERSIST', KEYS[1])
elseif existed == 0 or (ttl >= 0 and ttl < tonumber(ARGV[3])) then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return 0`;

function parse(fields: Array<string | null>): AdapterPayload | undefined {
  const [payload, consumed] = fields;
  if (!payload) return undefined;
  const value = JSON.parse(payload) as AdapterPayload;
  if (consumed) value.consumed = Number(consumed);
  return value;
}

/** Connects ioredis with settings that fail fast instead of queueing forever while Redis is down. */
export function connectRedis(url: string, logger: Logger): Redis {
  const redis = new Redis(url, {
    lazyConnect: false,
    enableOfflineQueue: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  });
  let down = false;
  redis.on('error', (error: Error) => {
    if (!down) logger.warn({ err: { message: error.message } }, 'redis unreachable');
    down = true;
  });
  redis.on('ready', () => {
    if (down) logger.info('redis reachable again');
    down = false;
  });
  return redis;
}

/**
 * The Redis ephemeral store. Each entry is a hash (`payload` JSON, `consumed` epoch) under
 * `oidc:<Model>:<id>`; `oidc:grant:<grantId>` lists the keys issued under a grant.
 *
 * @example
 * const store = createRedisStore(connectRedis(config.redisUrl, logger));
 */
export function createRedisStore(redis: Redis): EphemeralStore {
  async function findKey(key: string) {
    return parse(await redis.hmget(key, 'payload', 'consumed'));
  }
  async function findPointer(model: string, pointer: string) {
    const id = await redis.get(pointer);
    return id ? findKey(storeKey(model, id)) : undefined;
  }

  return {
    kind: 'redis',
    async upsert(model, id, payload, expiresIn) {
      const key = storeKey(model, id);
      const multi = redis.multi();
      multi.del(key);
      multi.hset(key, 'payload', JSON.stringify(payload));
      if (payload.consumed) multi.hset(key, 'consumed', String(payload.consumed));
      if (expiresIn !== undefined) multi.expire(key, expiresIn);
      if (payload.grantId) {
        const gk = grantKey(payload.grantId);
        multi.eval(GRANT_INDEX_SCRIPT, 1, gk, key, expiresIn === undefined ? '' : String(expiresIn));
      }
      for (const pointer of [
        payload.uid ? uidKey(model, payload.uid) : undefined,
        payload.userCode ? userCodeKey(model, payload.userCode) : undefined,
      ]) {
        if (!pointer) continue;
        if (expiresIn === undefined) multi.set(pointer, id);
        else multi.set(pointer, id, 'EX', expiresIn);
      }
      await multi.exec().then((results) => {
        const failed = results?.find(([error]) => error);
        if (failed?.[0]) throw failed[0];
      });
    },
    find: (model, id) => findKey(storeKey(model, id)),
    findByUid: (model, uid) => findPointer(model, uidKey(model, uid)),
    findByUserCode: (model, userCode) => findPointer(model, userCodeKey(model, userCode)),
    async consume(model, id) {
      const answer = (await redis.eval(CONSUME_SCRIPT, 1, storeKey(model, id), String(epochSeconds()))) as number | [string, string];
      if (answer === 1) return { result: 'consumed' };
      const spent = Array.isArray(answer) ? parse(answer) : undefined;
      return spent ? { result: 'spent', payload: spent } : { result: 'missing' };
    },
    async destroy(model, id) {
      await redis.del(storeKey(model, id));
    },
    async insertIfAbsent(model, id, payload, expiresIn) {
      const created = await redis.eval(INSERT_IF_ABSENT_SCRIPT, 1, storeKey(model, id), JSON.stringify(payload), String(Math.max(1, Math.ceil(expiresIn))));
      return created === 1;
    },
    async revokeByGrantId(grantId) {
      const gk = grantKey(grantId);
      const keys = await redis.lrange(gk, 0, -1);
      await redis.del(...keys, gk);
    },
    async indexSet(index, member, value, expiresIn) {
      await redis.eval(INDEX_SET_SCRIPT, 1, indexKey(index), member, value, expiresIn === undefined ? '' : String(expiresIn));
    },
    async indexList(index) {
      return new Map(Object.entries(await redis.hgetall(indexKey(index))));
    },
    async indexRemove(index, members) {
      if (members.length > 0) await redis.hdel(indexKey(index), ...members);
    },
    async ping(timeoutMs = 1000) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        redis.ping(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`redis did not answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]).finally(() => clearTimeout(timer));
    },
    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
