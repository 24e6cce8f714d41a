import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectJsonResult, expectOneLineError, runCliCapture } from '../../fixtures/cli.js';
import { createCliEnv } from '../../fixtures/cli-env.js';
import { startFakeOp, type FakeOp } from '../../fixtures/fake-op.js';
import { recordSecret } from '../../fixtures/log-capture.js';

type Json = Record<string, unknown>;

const SECRET = 'cli-provider-secret-never-shown-42';
const PROVIDER_KEYS = ['allow_signup', 'allowed_email_domains', 'client_id', 'client_secret_set', 'created_at', 'enabled', 'id', 'issuer', 'name', 'scope', 'updated_at'];

describe('gatehouse providers', () => {
  let env: Record<string, string>;
  let dispose: () => Promise<void>;
  let op: FakeOp;

  beforeAll(async () => {
    recordSecret(SECRET);
    ({ env, dispose } = await createCliEnv('providers-cli'));
    op = await startFakeOp('gatehouse', SECRET);
  });
  afterAll(async () => {
    await op?.close();
    await dispose?.();
  });

  const run = (args: string[], stdin?: string) => runCliCapture(args, env, { stdin });
  const json = <T = Json,>(args: string[], stdin?: string): Promise<T> => run([...args, '--json'], stdin).then((result) => expectJsonResult<T>(result, args.join(' ')));

  it('create reads the secret from standard input, and no command ever prints it', async () => {
    const created = await json(
      ['providers', 'create', '--name', 'Example SSO', '--issuer', op.issuer, '--client-id', 'gatehouse', '--client-secret-stdin', '--allow-signup', '--allowed-email-domain', 'Example.com', '--scope', 'openid email'],
      `${SECRET}\n`,
    );
    expect(Object.keys(created).sort()).toEqual(PROVIDER_KEYS);
    expect(created).toMatchObject({ id: 'example-sso', name: 'Example SSO', issuer: op.issuer, client_secret_set: true, allow_signup: true, allowed_email_domains: ['example.com'], scope: 'openid email', enabled: true });
    const outputs = [
      await run(['providers', 'list', '--json']),
      await run(['providers', 'list']),
      await run(['providers', 'get', 'example-sso']),
      await run(['providers', 'show', 'example-sso', '--json']),
      await run(['providers', 'update', 'example-sso', '--name', 'Renamed', '--disallow-signup', '--json']),
      await run(['providers', 'disable', 'example-sso', '--json']),
      await run(['providers', 'enable', 'example-sso', '--json']),
      await run(['audit', 'tail', '--json']),
    ];
    for (const output of outputs) {
      expect(output.code, output.stderr).toBe(0);
      expect(output.stdout + output.stderr).not.toContain(SECRET);
    }
    expect(JSON.parse(outputs[4]!.stdout)).toMatchObject({ name: 'Renamed', allow_signup: false });
    expect(JSON.parse(outputs[5]!.stdout)).toMatchObject({ enabled: false });
    expect((JSON.parse(outputs[0]!.stdout) as Json[]).map((p) => p.id)).toEqual(['example-sso']);
  });

  it('update replaces the secret from standard input, or removes it', async () => {
    await json(['providers', 'create', '--id', 'rotating', '--name', 'Rotating', '--issuer', op.issuer, '--client-id', 'gatehouse', '--client-secret-stdin'], `${SECRET}\n`);
    expect(await json(['providers', 'update', 'rotating', '--client-secret-stdin'], `${SECRET}-2\n`)).toMatchObject({ client_secret_set: true });
    expect(await json(['providers', 'update', 'rotating', '--remove-client-secret'])).toMatchObject({ client_secret_set: false });
    expectOneLineError(await run(['providers', 'update', 'rotating', '--client-secret-stdin', '--remove-client-secret'], 'x'), /not both/, 2);
    expectOneLineError(await run(['providers', 'update', 'rotating']), /at least one option/, 2);
  });

  it('refuses a bad issuer, a missing openid scope, a duplicate id, a secret as an argument: one line, nothing stored', async () => {
    const before = (await json<Json[]>(['providers', 'list'])).length;
    expectOneLineError(await run(['providers', 'create', '--name', 'Plain', '--issuer', 'http://sso.example.test', '--client-id', 'c']), /issuer.*https/, 1);
    expectOneLineError(await run(['providers', 'create', '--name', 'No OpenID', '--issuer', op.issuer, '--client-id', 'c', '--scope', 'email profile']), /scope.*must contain openid/, 1);
    expectOneLineError(await run(['providers', 'create', '--id', 'rotating', '--name', 'Again', '--issuer', op.issuer, '--client-id', 'c']), /rotating is already registered/, 1);
    expectOneLineError(await run(['providers', 'create', '--name', 'X', '--issuer', op.issuer, '--client-id', 'c', '--client-secret', SECRET]), /unknown option '--client-secret'/, 2);
    expectOneLineError(await run(['providers', 'create', '--issuer', op.issuer, '--client-id', 'c']), /needs --name NAME/, 2);
    const gone = await startFakeOp('gatehouse', SECRET);
    await gone.close();
    expectOneLineError(await run(['providers', 'create', '--name', 'Down', '--issuer', gone.issuer, '--client-id', 'c']), /issuer_unreachable/, 1);
    expect((await json<Json[]>(['providers', 'list'])).length).toBe(before);
  });

  it('refuses an http issuer in production, even on loopback', async () => {
    const result = await runCliCapture(['providers', 'create', '--name', 'Prod', '--issuer', op.issuer, '--client-id', 'c'], { ...env, NODE_ENV: 'production' });
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
  });

  it('delete removes the provider and says how many links went', async () => {
    await json(['providers', 'create', '--id', 'short-lived', '--name', 'Short', '--issuer', op.issuer, '--client-id', 'gatehouse']);
    expect(await json(['providers', 'delete', 'short-lived'])).toEqual({ id: 'short-lived', deleted: true, links_removed: 0 });
    expectOneLineError(await run(['providers', 'get', 'short-lived']), /not found/, 1);
  });
});
