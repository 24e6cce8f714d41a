import { AsyncLocalStorage } from 'node:async_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errors, type Adapter } from 'oidc-provider';
import { createDurableAdapter } from '../../../src/oidc/adapters/durable-adapter.js';
import type { RegistryDatabase } from '../../../src/registry/database.js';
import { migrateToLatest } from '../../../src/registry/migrate.js';
import { prepareQuery } from '../../../src/registry/prepared.js';
import { rotationScope, takeReadAheadAccount } from '../../../src/oidc/adapters/rotation-scope.js';
import { insertUser } from '../../../src/registry/user.repository.js';
import { REGISTRY_ENGINES } from '../../fixtures/registry-engines.js';

describe.each(REGISTRY_ENGINES)('durable grants and refresh tokens on $name', (engine) => {
  let registry: RegistryDatabase;
  let cleanup: () => Promise<void>;
  let grants: Adapter;
  let refreshTokens: Adapter;

  beforeAll(async () => {
    ({ registry, cleanup } = await engine.open());
    await migrateToLatest(registry.db);
    grants = createDurableAdapter('Grant', registry.db);
    refreshTokens = createDurableAdapter('RefreshToken', registry.db);
  }, 60_000);
  afterAll(async () => {
    await cleanup?.();
  });

  it('stores, finds and overwrites a token; a model does not see another model’s rows', async () => {
    await refreshTokens.upsert('rt-1', { jti: 'rt-1', grantId: 'g-1', accountId: 'a-1', clientId: 'c-1', kind: 'RefreshToken' }, 600);
    expect(await refreshTokens.find('rt-1')).toMatchObject({ jti: 'rt-1', grantId: 'g-1' });
    expect(await grants.find('rt-1')).toBeUndefined();

    await refreshTokens.upsert('rt-1', { jti: 'rt-1', grantId: 'g-1', accountId: 'a-1', clientId: 'c-1', scope: 'openid' }, 600);
    expect(await refreshTokens.find('rt-1')).toMatchObject({ scope: 'openid' });
    const row = await registry.db.selectFrom('oidc_durable').selectAll().where('id', '=', 'rt-1').executeTakeFirstOrThrow();
    expect([row.grant_id, row.account_id, row.client_id]).toEqual(['g-1', 'a-1', 'c-1']);
  });

  it('does not find an expired token', async () => {
    await refreshTokens.upsert('rt-expired', { jti: 'rt-expired', grantId: 'g-x' }, 600);
    await registry.db.updateTable('oidc_durable').set({ expires_at: new Date(Date.now() - 1000) }).where('id', '=', 'rt-expired').execute();
    expect(await refreshTokens.find('rt-expired')).toBeUndefined();
  });

  it('consumes a token once; a second consume is reuse and revokes the grant and its tokens', async () => {
    await grants.upsert('g-2', { jti: 'g-2', accountId: 'a-2', clientId: 'c-2', kind: 'Grant' }, 3600);
    await refreshTokens.upsert('rt-2', { jti: 'rt-2', grantId: 'g-2' }, 600);
    await refreshTokens.upsert('rt-2b', { jti: 'rt-2b', grantId: 'g-2' }, 600);

    await refreshTokens.consume('rt-2');
    expect(await refreshTokens.find('rt-2')).toMatchObject({ jti: 'rt-2', consumed: expect.any(Number) });

    await expect(refreshTokens.consume('rt-2')).rejects.toBeInstanceOf(errors.InvalidGrant);
    expect(await grants.find('g-2')).toBeUndefined();
    expect(await refreshTokens.find('rt-2b')).toBeUndefined();
  });

  it('lets exactly one of many concurrent consumes of the same token win', async () => {
    await refreshTokens.upsert('rt-3', { jti: 'rt-3', grantId: 'g-3' }, 600);
    const outcomes = await Promise.allSettled(Array.from({ length: 8 }, () => refreshTokens.consume('rt-3')));
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1);
  });

  it('prepareQuery refuses a query an argument does not reach as a bound value', () => {
    const db = registry.db;
    expect(() => prepareQuery(db, 2, (id: string, _unused: string) => db.selectFrom('users').selectAll().where('id', '=', id))).toThrow(/argument 1/);
  });
});

describe.each(REGISTRY_ENGINES)('refresh-token rotation in one statement on $name', (engine) => {
  let registry: RegistryDatabase;
  let cleanup: () => Promise<void>;
  let refreshTokens: Adapter;
  let grants: Adapter;
  type FakeContext = { method: string; path: string; status: number; body?: unknown };
  // oidc-provider's own async context (Provider.ctx) stands in as this test's store.
  const requests = new AsyncLocalStorage<FakeContext>();
  const currentRequest = () => requests.getStore();
  /** Runs `body` as a token request that ends with `status`; answers the context as the client would see it. */
  const inRequest = async (body: (ctx: FakeContext) => Promise<void>, status = 200) => {
    const ctx: FakeContext = { method: 'POST', path: '/token', status: 404 };
    await rotationScope()(ctx as unknown as Parameters<ReturnType<typeof rotationScope>>[0], () =>
      requests.run(ctx, async () => {
        await body(ctx);
        ctx.status = status;
      }),
    );
    return ctx;
  };
  const state = async (id: string) =>
    (await registry.db.selectFrom('oidc_durable').select(['consumed_at']).where('id', '=', id).executeTakeFirst()) ?? 'missing';

  beforeAll(async () => {
    ({ registry, cleanup } = await engine.open());
    await migrateToLatest(registry.db);
    refreshTokens = createDurableAdapter('RefreshToken', registry.db, currentRequest);
    grants = createDurableAdapter('Grant', registry.db, currentRequest);
  }, 60_000);
  afterAll(async () => {
    await cleanup?.();
  });

  it('reads a refresh token’s grant and account with it, and hands each out once to the same request', async () => {
    await insertUser(registry.db, { id: 'acct-5', email: 'five@example.test', password_hash: 'x', name: 'Five' });
    await grants.upsert('fam-5', { jti: 'fam-5', accountId: 'acct-5', clientId: 'c-5', kind: 'Grant' }, 600);
    await refreshTokens.upsert('old-5', { jti: 'old-5', grantId: 'fam-5', accountId: 'acct-5' }, 600);
    await inRequest(async (ctx) => {
      expect(await refreshTokens.find('old-5')).toMatchObject({ jti: 'old-5', grantId: 'fam-5' });
      // Gone from the database now: what the request gets next was read with the token.
      await registry.db.deleteFrom('oidc_durable').where('id', '=', 'fam-5').execute();
      await registry.db.deleteFrom('users').where('id', '=', 'acct-5').execute();
      expect(await grants.find('fam-5')).toMatchObject({ jti: 'fam-5', accountId: 'acct-5' });
      expect(takeReadAheadAccount(ctx, 'acct-5')).toMatchObject({ found: true, record: { id: 'acct-5', email: 'five@example.test', name: 'Five', disabled: false } });
      // Once: a second lookup reads the database (where both are gone).
      expect(await grants.find('fam-5')).toBeUndefined();
      expect(takeReadAheadAccount(ctx, 'acct-5')).toEqual({ found: false });
    });
    // Outside a token request nothing is read ahead.
    expect(takeReadAheadAccount({}, 'acct-5')).toEqual({ found: false });
  });

  it('reads ahead nothing for an expired grant or a deleted account', async () => {
    await grants.upsert('fam-6', { jti: 'fam-6', kind: 'Grant' }, 600);
    await registry.db.updateTable('oidc_durable').set({ expires_at: new Date(Date.now() - 1000) }).where('id', '=', 'fam-6').execute();
    await refreshTokens.upsert('old-6', { jti: 'old-6', grantId: 'fam-6', accountId: 'nobody' }, 600);
    await inRequest(async (ctx) => {
      expect(await refreshTokens.find('old-6')).toMatchObject({ jti: 'old-6' });
      expect(await grants.find('fam-6')).toBeUndefined();
      expect(takeReadAheadAccount(ctx, 'nobody')).toEqual({ found: true, record: undefined });
    });
  });

  it('spends the old token and stores its successor together, once the request has succeeded', async () => {
    await refreshTokens.upsert('old-1', { jti: 'old-1', grantId: 'fam-1' }, 600);
    const ctx = await inRequest(async () => {
      await refreshTokens.consume('old-1');
      await refreshTokens.upsert('new-1', { jti: 'new-1', grantId: 'fam-1' }, 600);
      // Deferred: nothing is written while the answer is being built.
      expect(await state('old-1')).toEqual({ consumed_at: null });
      expect(await state('new-1')).toBe('missing');
    });
    expect(ctx.status).toBe(200);
    expect(await state('old-1')).toEqual({ consumed_at: expect.any(Date) });
    expect(await state('new-1')).toEqual({ consumed_at: null });
  });

  it('writes nothing when the request fails after the rotation (the old token stays valid)', async () => {
    await refreshTokens.upsert('old-4', { jti: 'old-4', grantId: 'fam-4' }, 600);
    await inRequest(async () => {
      await refreshTokens.consume('old-4');
      await refreshTokens.upsert('new-4', { jti: 'new-4', grantId: 'fam-4' }, 600);
    }, 503);
    expect(await state('old-4')).toEqual({ consumed_at: null });
    expect(await state('new-4')).toBe('missing');
  });

  it('of two requests rotating the same token, one wins; the other answers invalid_grant and revokes the family', async () => {
    await refreshTokens.upsert('old-2', { jti: 'old-2', grantId: 'fam-2' }, 600);
    const rotate = (next: string) =>
      inRequest(async () => {
        await refreshTokens.consume('old-2');
        await refreshTokens.upsert(next, { jti: next, grantId: 'fam-2' }, 600);
      });
    const answers = await Promise.all([rotate('new-2a'), rotate('new-2b')]);
    expect(answers.map((ctx) => ctx.status).sort()).toEqual([200, 400]);
    expect(answers.find((ctx) => ctx.status === 400)?.body).toMatchObject({ error: 'invalid_grant' });
    // The loser revoked the family, the winner's successor included.
    const family = await registry.db.selectFrom('oidc_durable').select('id').where('grant_id', '=', 'fam-2').execute();
    expect(family).toEqual([]);
  });

  it('consumes a deferred token when a successful request saved no successor', async () => {
    await refreshTokens.upsert('old-3', { jti: 'old-3', grantId: 'fam-3' }, 600);
    await inRequest(async () => {
      await refreshTokens.consume('old-3');
    });
    expect(await state('old-3')).toEqual({ consumed_at: expect.any(Date) });
  });
});
