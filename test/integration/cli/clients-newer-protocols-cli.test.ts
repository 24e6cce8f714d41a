import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEVICE_CODE_GRANT_TYPE, TOKEN_EXCHANGE_GRANT_TYPE } from '../../../src/config/protocol.js';
import { expectJsonResult, expectOneLineError, runCliCapture } from '../../fixtures/cli.js';
import { createCliEnv } from '../../fixtures/cli-env.js';

type Json = Record<string, unknown>;

/** The newer protocols' client flags (CONTRACT: --backchannel-logout-uri, --dpop, --require-par, --profile fapi2, and may_act). */
describe('gatehouse clients: newer-protocol flags', () => {
  let env: Record<string, string>;
  let dispose: () => Promise<void>;
  const api = 'https://orders.cli-newer.example.test';

  const run = (args: string[]) => runCliCapture(args, env);
  const json = (args: string[]): Promise<Json> => run([...args, '--json']).then((result) => expectJsonResult<Json>(result, args.join(' ')));

  beforeAll(async () => {
    ({ env, dispose } = await createCliEnv('clients-newer-cli'));
    await json(['resources', 'create', '--identifier', api, '--scope', 'read']);
  });
  afterAll(() => dispose?.());

  it('create sets each field from its flag; update turns them off with --no-…', async () => {
    const created = await json([
      'clients', 'create', '--name', 'Back office',
      '--redirect-uri', 'https://office.example.test/cb',
      '--grant-type', 'authorization_code', '--grant-type', TOKEN_EXCHANGE_GRANT_TYPE,
      '--backchannel-logout-uri', 'https://office.example.test/logout',
      '--backchannel-logout-session-required',
      '--dpop', '--require-par',
      '--may-act', api,
    ]);
    expect(created).toMatchObject({
      grant_types: ['authorization_code', TOKEN_EXCHANGE_GRANT_TYPE],
      backchannel_logout_uri: 'https://office.example.test/logout',
      backchannel_logout_session_required: true,
      dpop_bound_access_tokens: true,
      require_pushed_authorization_requests: true,
      require_signed_request_object: false,
      profile: null,
      may_act: [api],
    });
    const updated = await json(['clients', 'update', String(created.client_id), '--no-dpop', '--no-require-par']);
    expect(updated).toMatchObject({ dpop_bound_access_tokens: false, require_pushed_authorization_requests: false, backchannel_logout_session_required: true });
  });

  it('a public device client is one command', async () => {
    const created = await json(['clients', 'create', '--name', 'TV', '--grant-type', DEVICE_CODE_GRANT_TYPE, '--auth-method', 'none']);
    expect(created).toMatchObject({ grant_types: [DEVICE_CODE_GRANT_TYPE], token_endpoint_auth_method: 'none' });
    expect(created.client_secret).toBeUndefined();
  });

  it('refuses a bad back-channel URI and an unknown profile in one line, creating nothing', async () => {
    const before = await json(['clients', 'list']);
    expectOneLineError(await run(['clients', 'create', '--name', 'bad', '--backchannel-logout-uri', 'http://bad.example.test/logout']), /backchannel_logout_uri/);
    expectOneLineError(await run(['clients', 'create', '--name', 'bad', '--profile', 'fapi1']), /fapi2/);
    const after = await json(['clients', 'list']);
    expect(after).toEqual(before);
  });
});
