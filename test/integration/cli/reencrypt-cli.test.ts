import { randomBytes, randomUUID } from 'node:crypto';
import os from 'node:os';
import { generate } from 'otplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliJson, expectJsonResult, runCliCapture } from '../../fixtures/cli.js';
import { createCliEnv } from '../../fixtures/cli-env.js';
import type { AuditJson } from '../../../src/audit/audit-log.js';
import { loadConfig } from '../../../src/config/load-config.js';
import { loadDataKeyring, staticDataKeyring } from '../../../src/keys/data-key.js';
import { createLogger } from '../../../src/observability/logger.js';
import { openCliDatabase, type RegistryDatabase } from '../../../src/registry/database.js';
import { insertUser } from '../../../src/registry/user.repository.js';
import { beginTotpEnrolment, confirmTotpEnrolment, verifySecondFactor, type SecondFactorDeps } from '../../../src/services/second-factors.service.js';
import { sealSecret, unsealSecret } from '../../../src/services/sealed-secrets.js';
import { testServices } from '../../fixtures/services.js';

describe('gatehouse keys reencrypt', () => {
  let env: Record<string, string>;
  let dispose: () => Promise<void>;
  let registry: RegistryDatabase;
  let keysDir: string;

  beforeAll(async () => {
    ({ env, dispose } = await createCliEnv('reencrypt-cli'));
    keysDir = env.KEYS_DIR!;
    await cliJson(['migrate'], env);
    registry = await openCliDatabase(loadConfig({ ...env, LOG_LEVEL: 'silent' }), createLogger({ logLevel: 'silent' }));
  });
  afterAll(async () => {
    await registry?.close();
    await dispose?.();
  });

  async function newPerson(): Promise<string> {
    const id = randomUUID();
    await insertUser(registry.db, { id, email: `${id}@example.test`, name: null, password_hash: 'not-a-hash', created_at: new Date(), updated_at: new Date() });
    return id;
  }

  const keyIds = async () => Object.fromEntries((await registry.db.selectFrom('totp_factors').select(['user_id', 'state', 'key_id']).execute()).map((r) => [`${r.user_id}/${r.state}`, r.key_id]));

  it('re-seals every secret under an older key with the newest, reports one that does not open, and then says 0 rows under old keys', async () => {
    const first = await cliJson<{ kid: string }>(['keys', 'rotate-data-key'], env);
    const deps: SecondFactorDeps = { ...testServices(registry.db, keysDir), dataKeys: await loadDataKeyring(keysDir, { generateIfMissing: false }) };
    // Two people with an authenticator, one with an enrolment still pending, all under the first key.
    const people: Array<{ id: string; secret: string }> = [];
    for (let i = 0; i < 2; i += 1) {
      const id = await newPerson();
      const { secret } = await beginTotpEnrolment(deps, id, { issuer: 'Gatehouse' });
      await confirmTotpEnrolment(deps, { actor: `person:${id}` }, id, await generate({ secret }));
      people.push({ id, secret });
    }
    const pendingId = await newPerson();
    const pending = await beginTotpEnrolment(deps, pendingId, { issuer: 'Gatehouse' });
    // And one sealed under a key this KEYS_DIR never had: it cannot be re-sealed.
    const lostId = await newPerson();
    const lost = await sealSecret(staticDataKeyring([{ kid: 'lost-data-key-1', createdAt: new Date().toISOString(), secret: randomBytes(32) }]), 'JBSWY3DPEHPK3PXP', `totp:${lostId}`);
    await registry.db.insertInto('totp_factors').values({ user_id: lostId, state: 'active', secret_jwe: lost.jwe, key_id: lost.kid, created_at: new Date() }).execute();
    expect(new Set(Object.values(await keyIds()))).toEqual(new Set([first.kid, 'lost-data-key-1']));

    const second = await cliJson<{ kid: string; older_keys: string[] }>(['keys', 'rotate-data-key'], env);
    expect(second.older_keys).toEqual([first.kid]);

    const result = await runCliCapture(['keys', 'reencrypt', '--json'], env);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toEqual({ key: second.kid, resealed: 3, failed: 1, under_old_keys: 1, keys_dir: keysDir });
    expect(result.stderr.trimEnd().split('\n')).toEqual([`gatehouse: 1 stored secret(s) could not be decrypted and stay under their old key (first: totp_factors user:${lostId}: unknown_key)`]);

    const ids = await keyIds();
    expect(ids[`${lostId}/active`]).toBe('lost-data-key-1');
    for (const key of [`${people[0]!.id}/active`, `${people[1]!.id}/active`, `${pendingId}/pending`]) expect(ids[key]).toBe(second.kid);
    // The secrets are the same ones, now under the new key: codes from the person's app still work.
    const ring = await loadDataKeyring(keysDir, { generateIfMissing: false });
    const row = await registry.db.selectFrom('totp_factors').select('secret_jwe').where('user_id', '=', pendingId).executeTakeFirstOrThrow();
    expect(await unsealSecret(ring, row.secret_jwe, `totp:${pendingId}`)).toBe(pending.secret);
    const at = Date.now() + 60_000;
    const later: SecondFactorDeps = { ...deps, dataKeys: ring, now: () => at };
    expect(await verifySecondFactor(later, people[0]!.id, await generate({ secret: people[0]!.secret, epoch: Math.floor(at / 1000) }))).toMatchObject({ ok: true, method: 'totp' });

    // Once the lost row is gone, nothing needs an older key.
    await registry.db.deleteFrom('totp_factors').where('user_id', '=', lostId).execute();
    const again = expectJsonResult<Record<string, unknown>>(await runCliCapture(['keys', 'reencrypt', '--json'], env), 'keys reencrypt');
    expect(again).toEqual({ key: second.kid, resealed: 0, failed: 0, under_old_keys: 0, keys_dir: keysDir });

    const audit = (await cliJson<AuditJson[]>(['audit', 'tail'], env)).filter((r) => r.action === 'keys.reencrypt');
    expect(audit.map((r) => [r.actor, r.target, r.details])).toEqual([[`cli:${os.userInfo().username}`, `data-key:${second.kid}`, { table: 'totp_factors', rows: 3 }]]);
    expect(await cliJson(['audit', 'verify'], env)).toMatchObject({ ok: true });
  });
});
