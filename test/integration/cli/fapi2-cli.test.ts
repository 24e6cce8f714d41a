import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectJsonResult, expectOneLineError, runCliCapture } from '../../fixtures/cli.js';
import { createCliEnv } from '../../fixtures/cli-env.js';

type Json = Record<string, unknown>;

/** The FAPI 2.0 profile on the command line: the profile key (keys generate --profile fapi2, rotate) and clients create --profile fapi2. */
describe('gatehouse: the fapi2 profile', () => {
  let env: Record<string, string>;
  let dispose: () => Promise<void>;

  const run = (args: string[]) => runCliCapture(args, env);
  const json = (args: string[]): Promise<Json> => run([...args, '--json']).then((result) => expectJsonResult<Json>(result, args.join(' ')));

  beforeAll(async () => {
    ({ env, dispose } = await createCliEnv('fapi2-cli'));
  });
  afterAll(() => dispose?.());

  it('keys generate --profile fapi2 makes a profile key beside the signing key; rotate renews both; PS256 or ES256 only', async () => {
    const server = await json(['keys', 'generate']);
    const profile = await json(['keys', 'generate', '--profile', 'fapi2']);
    expect(profile).toMatchObject({ alg: 'ES256', profile: 'fapi2', status: 'active' });
    expect(server).not.toHaveProperty('profile');
    const listed = (await json(['keys', 'list'])) as unknown as Json[];
    // The signing key stays first though the profile key is newer.
    expect(listed.map((key) => [key.kid, key.profile ?? null])).toEqual([
      [server.kid, null],
      [profile.kid, 'fapi2'],
    ]);

    const rotated = await json(['keys', 'rotate']);
    expect(rotated).toMatchObject({ alg: 'RS256', status: 'pending', retired: [server.kid], profile_key: { alg: 'ES256', profile: 'fapi2', status: 'pending', retired: [profile.kid] } });
    expect((rotated.profile_key as Json).activatesAt).toBe(rotated.activatesAt);

    const refused = await run(['keys', 'generate', '--profile', 'fapi2', '--alg', 'RS256', '--json']);
    expectOneLineError(refused, /--alg must be one of PS256, ES256 with --profile fapi2/, 2);
    expect(((await json(['keys', 'list'])) as unknown as Json[]).length).toBe(4);
  });

  it('clients create --profile fapi2 takes a private_key_jwt client with named key algs and implies PAR and DPoP; refuses a secret, creating nothing', async () => {
    const { publicKey } = await generateKeyPair('ES256', { extractable: true });
    const file = path.join(path.dirname(env.KEYS_DIR!), 'client-jwks.json');
    await writeFile(file, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] }));
    const made = await json([
      'clients', 'create', '--name', 'Bank app', '--redirect-uri', 'https://bank.example.test/cb',
      '--auth-method', 'private_key_jwt', '--jwks-file', file, '--profile', 'fapi2',
    ]);
    expect(made).toMatchObject({ profile: 'fapi2', token_endpoint_auth_method: 'private_key_jwt', require_pushed_authorization_requests: true, dpop_bound_access_tokens: true });

    const before = await json(['clients', 'list']);
    expectOneLineError(
      await run(['clients', 'create', '--name', 'bad', '--redirect-uri', 'https://bank.example.test/cb', '--auth-method', 'client_secret_basic', '--profile', 'fapi2', '--json']),
      /--auth-method: profile fapi2 needs private_key_jwt/,
    );
    expectOneLineError(await run(['clients', 'update', String(made.client_id), '--no-dpop', '--json']), /(--dpop|dpop_bound_access_tokens): must be true for profile fapi2/);
    expect(await json(['clients', 'list'])).toEqual(before);
  });
});
