import { AsyncLocalStorage } from 'node:async_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errors, type Adapter } from 'oidc-provider';
import { createDurableAdapter } from '../../../src/oidc/adapters/durable-adapter.js';
import { digestTokenValue } from '../../../src/registry/token-digest.js';
import type { RegistryDatabase } from '../../../src/registry/database.js';
import { Migrator } from 'kysely/migration';
import { sql } from 'kysely';
import { MIGRATIONS } from '../../../migrations/index.js';
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
    const row = await registry.db.selectFrom('oidc_durable').selectAll().where('id', '=', digestTokenValue('rt-1')).executeTakeFirstOrThrow();
    expect([row.grant_id, row.account_id, row.client_id]).toEqual(['g-1', 'a-1', 'c-1']);
  });

  it('does not find an expired token', async () => {
    await refreshTokens.upsert('rt-expired', { jti: 'rt-expired', grantId: 'g-x' }, 600);
    await registry.db.updateTable('oidc_durable').set({ expires_at: new Date(Date.now() - 1000) }).where('id', '=', digestTokenValue('rt-expired')).execute();
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

  it.each(['RefreshToken', 'InitialAccessToken', 'RegistrationAccessToken'])('stores a %s under the digest of its value, never the value; finds it by the value alone', async (model) => {
    const tokens = createDurableAdapter(model, registry.db);
    const value = `${model}-value-0123456789abcdefghijklmnopqrstuvwxyz`;
    await tokens.upsert(value, { jti: value, kind: model, grantId: 'g-digest', clientId: 'c-digest', policies: ['p'], iat: 1, exp: 2_000_000_000 }, 600);

    const rows = await registry.db.selectFrom('oidc_durable').selectAll().where('model', '=', model).where('grant_id', '=', 'g-digest').execute();
    expect(rows.map((row) => row.id)).toEqual([digestTokenValue(value)]);
    expect(rows[0]!.id).toMatch(/^sha256\$[A-Za-z0-9_-]{43}$/);
    // Nowhere in the row: not the id, not the payload.
    expect(JSON.stringify(rows)).not.toContain(value);
    expect(rows[0]!.payload).not.toHaveProperty('jti');
    expect(rows[0]!.grant_id).toBe('g-digest');

    // The value finds it, with the value back as jti; what the table holds finds nothing.
    expect(await tokens.find(value)).toEqual({ jti: value, kind: model, grantId: 'g-digest', clientId: 'c-digest', policies: ['p'], iat: 1, exp: 2_000_000_000 });
    expect(await tokens.find(rows[0]!.id)).toBeUndefined();
    expect(await tokens.find(rows[0]!.id.slice('sha256$'.length))).toBeUndefined();

    // Consume, destroy and revokeByGrantId reach it through the value (or its grant).
    await expect(tokens.consume(rows[0]!.id)).rejects.toBeInstanceOf(errors.InvalidGrant);
    expect(await tokens.find(value)).toEqual(expect.not.objectContaining({ consumed: expect.anything() }));
    await tokens.consume(value);
    expect(await tokens.find(value)).toMatchObject({ jti: value, consumed: expect.any(Number) });
    await tokens.destroy(rows[0]!.id);
    expect(await tokens.find(value)).toMatchObject({ jti: value });
    await tokens.destroy(value);
    expect(await tokens.find(value)).toBeUndefined();
    await tokens.upsert(value, { jti: value, kind: model, grantId: 'g-digest' }, 600);
    await tokens.revokeByGrantId('g-digest');
    expect(await tokens.find(value)).toBeUndefined();
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
  const state = async (token: string) =>
    (await registry.db.selectFrom('oidc_durable').select(['consumed_at']).where('id', '=', digestTokenValue(token)).executeTakeFirst()) ?? 'missing';

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

  it('in a token request, a refresh token’s stored id finds nothing and reads nothing ahead', async () => {
    await grants.upsert('fam-7', { jti: 'fam-7', accountId: 'acct-7', kind: 'Grant' }, 600);
    await refreshTokens.upsert('old-7', { jti: 'old-7', grantId: 'fam-7', accountId: 'acct-7' }, 600);
    await inRequest(async (ctx) => {
      expect(await refreshTokens.find(digestTokenValue('old-7'))).toBeUndefined();
      expect(takeReadAheadAccount(ctx, 'acct-7')).toEqual({ found: false });
      expect(await refreshTokens.find('old-7')).toEqual({ jti: 'old-7', grantId: 'fam-7', accountId: 'acct-7' });
    });
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

describe.each(REGISTRY_ENGINES)('migration 2026_12_03_110000_digest_stored_tokens on $name', (engine) => {
  const MIGRATION = '2026_12_03_110000_digest_stored_tokens';
  let registry: RegistryDatabase;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    ({ registry, cleanup } = await engine.open());
  }, 60_000);
  afterAll(async () => {
    await cleanup?.();
  });

  it('rewrites tokens stored by their values to digests, keeps grants, and the server then finds them by value only', async () => {
    // A registry as the migrations before this one left it, with rows as the old adapter wrote them.
    const names = Object.keys(MIGRATIONS).sort();
    const before = names[names.indexOf(MIGRATION) - 1]!;
    const migrator = new Migrator({ db: registry.db, provider: { getMigrations: () => Promise.resolve(MIGRATIONS) } });
    expect((await migrator.migrateTo(before)).error).toBeUndefined();
    const values = {
      RefreshToken: 'KpW3tJ9-refresh_0123456789abcdefghijklmnopq',
      InitialAccessToken: 'Zx81-initial_0123456789abcdefghijklmnopqrst',
      RegistrationAccessToken: 'Qa_7-registration_0123456789abcdefghijklmn',
    };
    const inAnHour = new Date(Date.now() + 3_600_000);
    const old = (model: string, id: string, payload: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
      sql`insert into oidc_durable (model, id, grant_id, client_id, payload, expires_at, consumed_at)
          values (${model}, ${id}, ${extra.grant_id ?? null}, ${extra.client_id ?? null}, ${JSON.stringify(payload)}::jsonb, ${inAnHour}, ${extra.consumed_at ?? null})`.execute(registry.db);
    await old('Grant', 'grant-old-1', { jti: 'grant-old-1', kind: 'Grant', accountId: 'a-1', clientId: 'c-1' }, { grant_id: 'grant-old-1', client_id: 'c-1' });
    await old('RefreshToken', values.RefreshToken, { jti: values.RefreshToken, kind: 'RefreshToken', grantId: 'grant-old-1', scope: 'openid' }, { grant_id: 'grant-old-1', client_id: 'c-1' });
    await old('RefreshToken', 'spent-refresh-token-value', { jti: 'spent-refresh-token-value', kind: 'RefreshToken', grantId: 'grant-old-1' }, { grant_id: 'grant-old-1', consumed_at: new Date() });
    await old('InitialAccessToken', values.InitialAccessToken, { jti: values.InitialAccessToken, kind: 'InitialAccessToken' });
    await old('RegistrationAccessToken', values.RegistrationAccessToken, { jti: values.RegistrationAccessToken, kind: 'RegistrationAccessToken', clientId: 'c-2' }, { client_id: 'c-2' });

    expect(await migrateToLatest(registry.db)).toContain(MIGRATION);

    const rows = await registry.db.selectFrom('oidc_durable').select(['model', 'id', 'grant_id', 'client_id', 'payload', 'consumed_at']).orderBy('model').orderBy('id').execute();
    const dump = JSON.stringify(rows);
    for (const value of [...Object.values(values), 'spent-refresh-token-value']) expect(dump).not.toContain(value);
    // The same digest the adapter computes (SQL and JavaScript agree), with the rest of each row kept.
    expect(rows).toEqual(
      expect.arrayContaining([
        { model: 'Grant', id: 'grant-old-1', grant_id: 'grant-old-1', client_id: 'c-1', payload: { jti: 'grant-old-1', kind: 'Grant', accountId: 'a-1', clientId: 'c-1' }, consumed_at: null },
        { model: 'RefreshToken', id: digestTokenValue(values.RefreshToken), grant_id: 'grant-old-1', client_id: 'c-1', payload: { kind: 'RefreshToken', grantId: 'grant-old-1', scope: 'openid' }, consumed_at: null },
        { model: 'RefreshToken', id: digestTokenValue('spent-refresh-token-value'), grant_id: 'grant-old-1', client_id: null, payload: { kind: 'RefreshToken', grantId: 'grant-old-1' }, consumed_at: expect.any(Date) },
        { model: 'InitialAccessToken', id: digestTokenValue(values.InitialAccessToken), grant_id: null, client_id: null, payload: { kind: 'InitialAccessToken' }, consumed_at: null },
        { model: 'RegistrationAccessToken', id: digestTokenValue(values.RegistrationAccessToken), grant_id: null, client_id: 'c-2', payload: { kind: 'RegistrationAccessToken', clientId: 'c-2' }, consumed_at: null },
      ]),
    );
    expect(rows).toHaveLength(5);

    // Found by the value, as before the migration; what the table now holds finds nothing.
    for (const [model, value] of Object.entries(values)) {
      const adapter = createDurableAdapter(model, registry.db);
      expect(await adapter.find(value)).toMatchObject({ jti: value, kind: model });
      expect(await adapter.find(digestTokenValue(value))).toBeUndefined();
    }
    const refreshTokens = createDurableAdapter('RefreshToken', registry.db);
    expect(await refreshTokens.find('spent-refresh-token-value')).toMatchObject({ consumed: expect.any(Number) });
    // Reuse of the spent one still revokes its family, migrated rows included.
    await expect(refreshTokens.consume('spent-refresh-token-value')).rejects.toBeInstanceOf(errors.InvalidGrant);
    expect(await refreshTokens.find(values.RefreshToken)).toBeUndefined();
    expect(await createDurableAdapter('Grant', registry.db).find('grant-old-1')).toBeUndefined();

    // Running it again changes nothing; going down is refused rather than leaving unusable rows.
    await MIGRATIONS[MIGRATION]!.up(registry.db as never);
    const again = await registry.db.selectFrom('oidc_durable').select('id').execute();
    expect(again.map((row) => row.id).sort()).toEqual([digestTokenValue(values.InitialAccessToken), digestTokenValue(values.RegistrationAccessToken)].sort());
    await expect(MIGRATIONS[MIGRATION]!.down!(registry.db as never)).rejects.toThrow(/cannot be undone/);
  }, 60_000);
});
