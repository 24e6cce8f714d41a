import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createAccountService } from '../../../src/accounts/accounts.js';
import { hashesInFlight } from '../../../src/accounts/passwords.js';
import { loadConfig } from '../../../src/config/load-config.js';
import { staticDataKeyring } from '../../../src/keys/data-key.js';
import { createLogger } from '../../../src/observability/logger.js';
import { openCliDatabase, type RegistryDatabase } from '../../../src/registry/database.js';
import { migrateToLatest } from '../../../src/registry/migrate.js';
import { insertUser } from '../../../src/registry/user.repository.js';
import { ConflictError, NotFoundError, ValidationError } from '../../../src/services/errors.js';
import { reencryptSealedSecrets } from '../../../src/services/reencrypt.service.js';
import { SealedSecretError, unsealSecret } from '../../../src/services/sealed-secrets.js';
import { LastSignInMethodError, linkUpstream, unlinkUpstream, type UpstreamIdentity } from '../../../src/services/upstream-links.service.js';
import {
  createProvider,
  deleteProvider,
  disableProvider,
  enableProvider,
  getProvider,
  listProviders,
  providerToJson,
  updateProvider,
  type UpstreamProviderDeps,
} from '../../../src/services/upstream-providers.service.js';
import { createTestDatabase, type TestDatabase } from '../../fixtures/database.js';
import { startFakeOp, type FakeOp } from '../../fixtures/fake-op.js';
import { recordSecret } from '../../fixtures/log-capture.js';
import { testServices } from '../../fixtures/services.js';

const SECRET = 'the upstream client secret 0123456789';
const ACTOR = { actor: 'cli:tester' };

describe('upstream providers and links on PostgreSQL', () => {
  let database: TestDatabase;
  let registry: RegistryDatabase;
  let deps: UpstreamProviderDeps;
  let op: FakeOp;

  beforeAll(async () => {
    recordSecret(SECRET);
    database = await createTestDatabase();
    const config = loadConfig({ DATABASE_URL: database.url, NODE_ENV: 'test', LOG_LEVEL: 'silent' });
    registry = await openCliDatabase(config, createLogger({ logLevel: 'silent' }));
    await migrateToLatest(registry.db);
    const dataKeys = staticDataKeyring([{ kid: 'test-data-key-1', createdAt: new Date().toISOString(), secret: randomBytes(32) }]);
    deps = { ...testServices(registry.db), dataKeys, production: false };
    op = await startFakeOp('gatehouse', SECRET);
  });
  afterAll(async () => {
    await op?.close();
    await registry?.close();
    await database?.drop();
  });
  beforeEach(async () => {
    await registry.db.deleteFrom('upstream_links').execute();
    await registry.db.deleteFrom('upstream_providers').execute();
    await registry.db.deleteFrom('users').execute();
  });

  const audit = (action: string) => registry.db.selectFrom('audit_log').selectAll().where('action', '=', action).orderBy('seq', 'desc').execute();
  const providerCount = async () => (await listProviders(registry.db)).length;
  const base = () => ({ name: 'Example SSO', issuer: op.issuer, client_id: 'gatehouse', client_secret: SECRET });

  async function refusal(promise: Promise<unknown>): Promise<unknown> {
    return promise.then(
      () => expect.unreachable('expected a refusal'),
      (error: unknown) => error,
    );
  }

  it('registers a provider: id from the name, default scopes, the secret sealed for its row and never in the JSON nor the audit row', async () => {
    const created = await createProvider(deps, ACTOR, { ...base(), allowed_email_domains: ['Example.COM', '@bücher.example'] });
    expect(created).toMatchObject({ id: 'example-sso', scopes: ['openid', 'email', 'profile'], allowSignup: false, enabled: true, keyId: 'test-data-key-1' });
    expect(created.allowedEmailDomains).toEqual(['example.com', 'xn--bcher-kva.example']);
    const row = await registry.db.selectFrom('upstream_providers').selectAll().where('id', '=', 'example-sso').executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain(SECRET);
    expect(await unsealSecret(deps.dataKeys, row.client_secret_jwe!, 'upstream:example-sso')).toBe(SECRET);
    // A ciphertext moved to another provider's row does not open there.
    await expect(unsealSecret(deps.dataKeys, row.client_secret_jwe!, 'upstream:other')).rejects.toBeInstanceOf(SealedSecretError);
    const json = providerToJson(created);
    expect(json).toMatchObject({ id: 'example-sso', client_secret_set: true, scope: 'openid email profile' });
    expect(JSON.stringify(json)).not.toContain(SECRET);
    const [row0] = await audit('provider.create');
    expect(row0).toMatchObject({ actor: 'cli:tester', target: 'provider:example-sso' });
    expect(JSON.stringify(row0)).not.toContain(SECRET);
  });

  it.each([
    ['an http issuer that is not loopback', { issuer: 'http://sso.example.test' }, 'issuer', /https/],
    ['an issuer with a query', { issuer: 'https://sso.example.test/?a=1' }, 'issuer', /query/],
    ['not a URL', { issuer: 'sso.example.test' }, 'issuer', /absolute https URL/],
    ['scopes without openid', { scope: 'email profile' }, 'scope', /must contain openid/],
    ['a bad id', { id: 'Not_A_Slug!' }, 'id', /a-z, 0-9/],
    ['a too long id', { id: 'a'.repeat(41) }, 'id', /a-z, 0-9/],
    ['an unknown field', { client_secret_jwe: 'x' }, 'body', /./],
    ['a bad email domain', { allowed_email_domains: ['not a domain'] }, 'allowed_email_domains.0', /domain name/],
  ])('refuses %s, writing nothing', async (_label, change, field, message) => {
    const audited = (await audit('provider.create')).length;
    const error = await refusal(createProvider(deps, ACTOR, { ...base(), ...change }));
    expect(error).toBeInstanceOf(ValidationError);
    const found = (error as ValidationError).errors.find((e) => e.field === field);
    expect(found?.message, JSON.stringify((error as ValidationError).errors)).toMatch(message);
    expect(await providerCount()).toBe(0);
    expect(await audit('provider.create')).toHaveLength(audited);
  });

  it('refuses http even on loopback in production, an unreachable issuer, and an issuer whose metadata names another', async () => {
    const production = await refusal(createProvider({ ...deps, production: true }, ACTOR, base()));
    expect((production as ValidationError).errors).toEqual([{ field: 'issuer', message: 'issuer must be an https URL' }]);
    const gone = await startFakeOp('gatehouse', SECRET);
    await gone.close();
    const unreachable = await refusal(createProvider(deps, ACTOR, { ...base(), issuer: gone.issuer }));
    expect((unreachable as ValidationError).errors[0]?.message).toMatch(/^issuer_unreachable/);
    // The fake provider's metadata says http://localhost:<port>: asked as 127.0.0.1, the issuer differs.
    const mismatch = await refusal(createProvider(deps, ACTOR, { ...base(), issuer: op.issuer.replace('localhost', '127.0.0.1') }));
    expect((mismatch as ValidationError).errors[0]?.message).toMatch(/^issuer_mismatch/);
    expect(await providerCount()).toBe(0);
  });

  it('refuses a duplicate id, and changes only what is given (a new secret sealed again, recorded without it)', async () => {
    await createProvider(deps, ACTOR, { ...base(), id: 'sso' });
    expect(await refusal(createProvider(deps, ACTOR, { ...base(), id: 'sso' }))).toBeInstanceOf(ConflictError);
    const before = await getProvider(registry.db, 'sso');
    const updated = await updateProvider(deps, ACTOR, 'sso', { name: 'Renamed', client_secret: `${SECRET}-2`, allow_signup: true });
    expect(updated).toMatchObject({ name: 'Renamed', allowSignup: true, issuer: op.issuer });
    expect(updated.clientSecretJwe).not.toBe(before.clientSecretJwe);
    expect(await unsealSecret(deps.dataKeys, updated.clientSecretJwe!, 'upstream:sso')).toBe(`${SECRET}-2`);
    const [row] = await audit('provider.update');
    expect(row?.details).toMatchObject({ before: { name: 'Example SSO' }, after: { name: 'Renamed', client_secret_set: true }, secret_changed: true });
    expect(JSON.stringify(row)).not.toContain(SECRET);
    expect((await updateProvider(deps, ACTOR, 'sso', { client_secret: null })).clientSecretJwe).toBeNull();
    expect((await disableProvider(deps, ACTOR, 'sso')).enabled).toBe(false);
    expect((await enableProvider(deps, ACTOR, 'sso')).enabled).toBe(true);
    expect(await refusal(updateProvider(deps, ACTOR, 'sso', { scope: 'profile' }))).toBeInstanceOf(ValidationError);
    expect(await refusal(updateProvider(deps, ACTOR, 'nope', { name: 'x' }))).toBeInstanceOf(NotFoundError);
  });

  it('keys reencrypt re-seals a provider\'s secret under the newest data key', async () => {
    const older = deps.dataKeys.keys()[0]!;
    await createProvider(deps, ACTOR, { ...base(), id: 'resealed' });
    await createProvider(deps, ACTOR, { ...base(), id: 'public', client_secret: undefined });
    const newer = { kid: 'test-data-key-2', createdAt: new Date(Date.parse(older.createdAt) + 1000).toISOString(), secret: randomBytes(32) };
    const ring = staticDataKeyring([older, newer]);
    const report = await reencryptSealedSecrets({ ...deps, dataKeys: ring }, ACTOR);
    expect(report).toMatchObject({ key: 'test-data-key-2', resealed: 1, failed: [], remaining: 0 });
    const provider = await getProvider(registry.db, 'resealed');
    expect(provider.keyId).toBe('test-data-key-2');
    expect(await unsealSecret(ring, provider.clientSecretJwe!, 'upstream:resealed')).toBe(SECRET);
    expect((await getProvider(registry.db, 'public')).clientSecretJwe).toBeNull();
  });

  async function person(options: { password?: boolean } = {}) {
    const now = new Date();
    return insertUser(registry.db, {
      id: randomUUID(),
      email: `p-${randomUUID().slice(0, 8)}@example.test`,
      password_hash: options.password === false ? null : '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA',
      created_at: now,
      updated_at: now,
    });
  }
  const identity = (providerId: string, sub: string): UpstreamIdentity => ({ providerId, iss: op.issuer, sub, email: null, emailVerified: true, name: null });

  it('unlinkUpstream removes a link (audited) but never the last way to sign in', async () => {
    await createProvider(deps, ACTOR, { ...base(), id: 'one' });
    await createProvider(deps, ACTOR, { ...base(), id: 'two', name: 'Two' });
    const upstreamOnly = await person({ password: false });
    await linkUpstream(deps, { actor: `person:${upstreamOnly.id}` }, upstreamOnly.id, identity('one', 'a'));
    await linkUpstream(deps, { actor: `person:${upstreamOnly.id}` }, upstreamOnly.id, identity('two', 'b'));
    // One identity per provider and person; one person per identity.
    expect(await refusal(linkUpstream(deps, ACTOR, upstreamOnly.id, identity('one', 'c')))).toBeInstanceOf(ConflictError);
    const other = await person();
    expect(await refusal(linkUpstream(deps, ACTOR, other.id, identity('two', 'a')))).toBeInstanceOf(ConflictError);

    const by = { actor: `person:${upstreamOnly.id}`, requestId: 'req-1', ip: '127.0.0.1' };
    const removed = await unlinkUpstream(deps, by, upstreamOnly.id, 'one');
    expect(removed).toMatchObject({ providerId: 'one', subject: 'a' });
    const [row] = await audit('upstream.unlink');
    expect(row).toMatchObject({ actor: `person:${upstreamOnly.id}`, target: `user:${upstreamOnly.id}`, request_id: 'req-1', details: { provider_id: 'one', subject: 'a' } });
    // The last link of a person without a password (nor a passkey) stays.
    expect(await refusal(unlinkUpstream(deps, by, upstreamOnly.id, 'two'))).toBeInstanceOf(LastSignInMethodError);
    expect(await registry.db.selectFrom('upstream_links').select('provider_id').where('user_id', '=', upstreamOnly.id).execute()).toEqual([{ provider_id: 'two' }]);
    expect(await audit('upstream.unlink')).toHaveLength(1);
    // …unless a passkey remains (the passkeys module says how many).
    await unlinkUpstream({ ...deps, countPasskeys: () => Promise.resolve(1) }, by, upstreamOnly.id, 'two');
    expect(await refusal(unlinkUpstream(deps, by, upstreamOnly.id, 'two'))).toBeInstanceOf(NotFoundError);

    // A person with a password may remove their only link.
    const withPassword = await person();
    await linkUpstream(deps, ACTOR, withPassword.id, identity('one', 'z'));
    await unlinkUpstream(deps, ACTOR, withPassword.id, 'one');
    expect(await registry.db.selectFrom('upstream_links').selectAll().where('user_id', '=', withPassword.id).execute()).toEqual([]);
  });

  it('deleting a provider removes its links and records how many', async () => {
    await createProvider(deps, ACTOR, { ...base(), id: 'gone' });
    const someone = await person();
    await linkUpstream(deps, ACTOR, someone.id, identity('gone', 's'));
    expect(await deleteProvider(deps, ACTOR, 'gone')).toEqual({ linksRemoved: 1 });
    expect(await registry.db.selectFrom('upstream_links').selectAll().execute()).toEqual([]);
    const [row] = await audit('provider.delete');
    expect(row?.details).toMatchObject({ links_removed: 1, before: { id: 'gone' } });
    expect(await refusal(deleteProvider(deps, ACTOR, 'gone'))).toBeInstanceOf(NotFoundError);
  });

  it('a person without a password is refused at sign-in like a wrong password, after the dummy verify, and nothing is written', async () => {
    const accounts = createAccountService({ db: registry.db, logger: createLogger({ logLevel: 'silent' }) });
    const upstreamOnly = await person({ password: false });
    /** The most argon2id computations seen running while `run` ran (sampled every turn of the event loop). */
    async function argon2Seen(run: () => Promise<unknown>): Promise<number> {
      let most = 0;
      let done = false;
      const sample = () => {
        most = Math.max(most, hashesInFlight());
        if (!done) setImmediate(sample);
      };
      sample();
      try {
        await run();
      } finally {
        done = true;
      }
      return most;
    }
    // The dummy hash is made once per process: made first, so what follows is verifies only.
    await accounts.authenticate('nobody-at-all@example.test', 'warm up the dummy hash');
    // The same work as for an unknown email or a wrong password: one argon2id verify (the dummy one).
    expect(await argon2Seen(() => accounts.authenticate(upstreamOnly.email, 'whatever password 123'))).toBe(1);
    expect(await argon2Seen(() => accounts.authenticate('nobody-at-all@example.test', 'whatever password 123'))).toBe(1);
    expect(await accounts.authenticate(upstreamOnly.email, 'whatever password 123')).toEqual({ ok: false, reason: 'invalid' });
    expect(await accounts.authenticate(upstreamOnly.email, '')).toEqual({ ok: false, reason: 'invalid' });
    const row = await registry.db.selectFrom('users').selectAll().where('id', '=', upstreamOnly.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ password_hash: null, last_login_at: null });
  });
});
