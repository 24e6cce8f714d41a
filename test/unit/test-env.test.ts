import { describe, expect, it } from 'vitest';
import { redisDatabaseOf, withRedisDatabase, workerRedisDatabase } from '../fixtures/env.js';

describe('the Redis database of a test worker', () => {
  it('is TEST_REDIS_URL’s database plus the worker’s index, counted from 1', () => {
    expect(workerRedisDatabase({ VITEST_POOL_ID: '1' }, 'redis://127.0.0.1:6379/8')).toBe(8);
    expect(workerRedisDatabase({ VITEST_POOL_ID: '3' }, 'redis://127.0.0.1:6379/8')).toBe(10);
    expect(workerRedisDatabase({ VITEST_POOL_ID: '2' }, 'redis://127.0.0.1:6379')).toBe(1);
    // Outside a vitest worker (a script importing the fixtures): the first one.
    expect(workerRedisDatabase({}, 'redis://127.0.0.1:6379/5')).toBe(5);
  });

  it('reads and writes the database in the URL, keeping the rest', () => {
    expect(redisDatabaseOf('redis://127.0.0.1:6379')).toBe(0);
    expect(redisDatabaseOf('redis://:secret@cache.internal:6380/12')).toBe(12);
    expect(() => redisDatabaseOf('redis://127.0.0.1:6379/x')).toThrow(/no database number/);
    expect(withRedisDatabase('redis://:secret@cache.internal:6380/12', 13)).toBe('redis://:secret@cache.internal:6380/13');
    expect(withRedisDatabase('redis://127.0.0.1:6379', 2)).toBe('redis://127.0.0.1:6379/2');
  });

  it('refuses a worker index that is not one', () => {
    expect(() => workerRedisDatabase({ VITEST_POOL_ID: '0' }, 'redis://127.0.0.1:6379')).toThrow(/not a worker index/);
  });
});
