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
