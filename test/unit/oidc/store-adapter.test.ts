import { errors } from 'oidc-provider';
import { describe, expect, it } from 'vitest';
import { createStoreAdapter } from '../../../src/oidc/adapters/store-adapter.js';
import { createMemoryStore } from '../../../src/store/memory-store.js';

describe('the store adapter redeeming a code', () => {
  const setUp = (model = 'AuthorizationCode') => {
    const store = createMemoryStore();
    const revoked: string[] = [];
    const adapter = createStoreAdapter(model, store, async (grantId) => {
      revoked.push(grantId);
    });
    return { store, adapter, revoked };
  };

  it('lets the first consume through, and refuses a second one with invalid_grant, revoking the grant', async () => {
    const { store, adapter, revoked } = setUp();
    await adapter.upsert('code-1', { jti: 'code-1', grantId: 'grant-1' }, 60);
    await expect(adapter.consume('code-1')).resolves.toBeUndefined();
    expect(revoked).toEqual([]);
    const second = adapter.consume('code-1');
    await expect(second).rejects.toBeInstanceOf(errors.InvalidGrant);
    await expect(second).rejects.toMatchObject({ error: 'invalid_grant', error_detail: 'authorization code already consumed' });
    expect(revoked).toEqual(['grant-1']);
    await store.close();
  });

  it('lets exactly one of concurrent consumes through; each loser revokes the grant', async () => {
    const { store, adapter, revoked } = setUp();
    await adapter.upsert('code-2', { jti: 'code-2', grantId: 'grant-2' }, 60);
    const outcomes = await Promise.allSettled(Array.from({ length: 8 }, () => adapter.consume('code-2')));
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1);
    for (const outcome of outcomes.filter((outcome) => outcome.status === 'rejected')) expect(outcome.reason).toBeInstanceOf(errors.InvalidGrant);
    expect(revoked).toEqual(Array.from({ length: 7 }, () => 'grant-2'));
    await store.close();
  });

  it('refuses a code gone since it was read (revoked or expired) without revoking anything more', async () => {
    const { store, adapter, revoked } = setUp();
    await expect(adapter.consume('never-issued')).rejects.toMatchObject({ error: 'invalid_grant', error_detail: 'authorization code not found' });
    expect(revoked).toEqual([]);
    await store.close();
  });

  it('keeps consume a plain mark for models the token endpoint does not redeem', async () => {
    const { store, adapter, revoked } = setUp('PushedAuthorizationRequest');
    await adapter.upsert('par-1', { jti: 'par-1', grantId: 'grant-3' }, 60);
    await adapter.consume('par-1');
    await expect(adapter.consume('par-1')).resolves.toBeUndefined();
    await expect(adapter.consume('missing')).resolves.toBeUndefined();
    expect(revoked).toEqual([]);
    expect(await adapter.find('par-1')).toMatchObject({ consumed: expect.any(Number) });
    await store.close();
  });
});

describe('the store adapter detecting replays (ReplayDetection)', () => {
  it('claims an id on find: of concurrent look-ups of one id exactly one finds nothing; the save that follows replaces the claim', async () => {
    const store = createMemoryStore();
    const adapter = createStoreAdapter('ReplayDetection', store, async () => undefined);
    const found = await Promise.all(Array.from({ length: 5 }, () => adapter.find('proof-id')));
    expect(found.filter((payload) => payload === undefined)).toHaveLength(1);
    expect(found.filter((payload) => payload !== undefined)).toEqual(Array.from({ length: 4 }, () => ({ jti: 'proof-id' })));
    await adapter.upsert('proof-id', { jti: 'proof-id', iss: 'a-client' }, 300);
    expect(await store.find('ReplayDetection', 'proof-id')).toEqual({ jti: 'proof-id', iss: 'a-client' });
    expect(await adapter.find('proof-id')).toBeDefined();
  });

  it('keeps find a plain look-up for other models', async () => {
    const store = createMemoryStore();
    const adapter = createStoreAdapter('AccessToken', store, async () => undefined);
    expect(await adapter.find('nothing')).toBeUndefined();
    expect(await adapter.find('nothing')).toBeUndefined();
    expect(await store.find('AccessToken', 'nothing')).toBeUndefined();
  });
});
