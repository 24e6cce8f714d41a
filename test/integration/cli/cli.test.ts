import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../../migrations/index.js';
import { expectJsonResult, expectOneLineError, runCliCapture } from '../../fixtures/cli.js';
import { createCliEnv } from '../../fixtures/cli-env.js';

type Json = Record<string, unknown>;

describe('gatehouse CLI', () => {
  let env: Record<string, string>;
  let dispose: () => Promise<void>;

  beforeAll(async () => {
    ({ env, dispose } = await createCliEnv('cli'));
  });
  afterAll(() => dispose?.());

  const run = (...args: string[]) => runCliCapture(args, env);

  const json = <T = Json,>(...args: string[]): Promise<T> =>
    run(...args, '--json').then((result) => expectJsonResult<T>(result, args.join(' ')));

  /** Expects a refusal: non-zero exit, nothing on stdout, exactly one line on stderr. */

  const uniqueResource = () => `https://api-${randomUUID()}.example.test`;

  describe('migrate', () => {
    it('applies the migration once, then reports nothing applied', async () => {
      const first = await json('migrate');
      expect(first).toEqual({ applied: Object.keys(MIGRATIONS), status: 'migrated' });
      const second = await json('migrate');
      expect(second).toEqual({ applied: [], status: 'up to date' });
    });

    it('prints a human summary without --json', async () => {
      const result = await run('migrate');
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/status\s+up to date/);
      expect(() => JSON.parse(result.stdout)).toThrow();
    });
  });

  describe('resources', () => {
    it('create, list, get, update and delete each print one JSON document', async () => {
      const identifier = uniqueResource();
      const created = await json('resources', 'create', '--identifier', identifier, '--name', 'Orders', '--scope', 'orders:read orders:write', '--access-token-ttl', '300');
      expect(created).toMatchObject({ identifier, name: 'Orders', scope: 'orders:read orders:write', access_token_ttl: 300 });
      expect(typeof created.id).toBe('string');

      const listed = await json<Json[]>('resources', 'list');
      expect(Array.isArray(listed)).toBe(true);
      expect(listed.map((r) => r.identifier)).toContain(identifier);

      expect(await json('resources', 'get', identifier)).toEqual(created);
      expect((await json('resources', 'get', String(created.id))).identifier).toBe(identifier);

      const updated = await json('resources', 'update', identifier, '--scope', 'orders:read', '--access-token-ttl', '60');
      expect(updated).toMatchObject({ id: created.id, scope: 'orders:read', access_token_ttl: 60, name: 'Orders' });

      expect(await json('resources', 'delete', identifier)).toEqual({ id: identifier, deleted: true });
      expectOneLineError(await run('resources', 'get', identifier), /not found/);
    });

    it('refuses a duplicate identifier on one line naming --identifier', async () => {
      const identifier = uniqueResource();
      await json('resources', 'create', '--identifier', identifier);
      const line = expectOneLineError(await run('resources', 'create', '--identifier', identifier, '--json'), /--identifier/);
      expect(line).toMatch(/already registered/);
    });

    it('refuses to delete a resource that a client uses as its default', async () => {
      const identifier = uniqueResource();
      await json('resources', 'create', '--identifier', identifier, '--scope', 'x');
      await json('clients', 'create', '--name', 'uses it', '--resource', identifier);
      expectOneLineError(await run('resources', 'delete', identifier, '--json'), /default resource/);
      expect((await json('resources', 'get', identifier)).identifier).toBe(identifier);
    });
  });

  describe('clients', () => {
    it('create, list, get, update, rotate-secret and delete each print one JSON document; the secret only on create and rotate', async () => {
      const resource = uniqueResource();
      await json('resources', 'create', '--identifier', resource, '--scope', 'read write');
      const created = await json('clients', 'create', '--name', 'billing', '--resource', resource, '--scope', 'read');
      const clientId = String(created.client_id);
      const secret = String(created.client_secret);
      expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(created).toMatchObject({
        client_name: 'billing',
        grant_types: ['client_credentials'],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: 'read',
        default_resource: resource,
      });

      const got = await run('clients', 'get', clientId, '--json');
      expect(got.code).toBe(0);
      expect(got.stdout).not.toContain(secret);
      const gotJson = JSON.parse(got.stdout) as Json;
      expect(gotJson).not.toHaveProperty('client_secret');
      expect(gotJson.client_id).toBe(clientId);

      const listed = await run('clients', 'list', '--json');
      expect(listed.code).toBe(0);
      expect(listed.stdout).not.toContain(secret);
      const list = JSON.parse(listed.stdout) as Json[];
      expect(list.map((c) => c.client_id)).toContain(clientId);
      expect(list.every((c) => !('client_secret' in c) && !('secret_digest' in c))).toBe(true);

      const updated = await json('clients', 'update', clientId, '--name', 'billing v2', '--scope', 'read write');
      expect(updated).toMatchObject({ client_id: clientId, client_name: 'billing v2', scope: 'read write' });
      expect(updated).not.toHaveProperty('client_secret');

      const rotated = await json('clients', 'rotate-secret', clientId);
      expect(rotated.client_id).toBe(clientId);
      expect(String(rotated.client_secret)).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(rotated.client_secret).not.toBe(secret);
      expect((await run('clients', 'get', clientId, '--json')).stdout).not.toContain(String(rotated.client_secret));

      expect(await json('clients', 'delete', clientId)).toEqual({ client_id: clientId, deleted: true });
      expect((await json<Json[]>('clients', 'list')).map((c) => c.client_id)).not.toContain(clientId);
    });

    it('creates a sign-in client with redirect URIs', async () => {
      const created = await json('clients', 'create', '--name', 'web', '--redirect-uri', 'https://app.example.test/cb', '--redirect-uri', 'http://localhost:3001/cb');
      expect(created.redirect_uris).toEqual(['https://app.example.test/cb', 'http://localhost:3001/cb']);
      expect(created.grant_types).toEqual(['authorization_code']);
      expect(created.scope).toBe('openid profile email');
    });

    it('--require-mfa sets require_mfa, update --no-require-mfa clears it, and an update without either keeps it', async () => {
      const created = await json('clients', 'create', '--name', 'bank', '--redirect-uri', 'https://bank.example.test/cb', '--require-mfa');
      expect(created.require_mfa).toBe(true);
      const id = String(created.client_id);
      expect((await json('clients', 'update', id, '--name', 'bank v2')).require_mfa).toBe(true);
      expect((await json('clients', 'update', id, '--no-require-mfa')).require_mfa).toBe(false);
      expect((await json('clients', 'get', id)).require_mfa).toBe(false);
      expect((await json('clients', 'update', id, '--require-mfa')).require_mfa).toBe(true);
      expect((await json('clients', 'create', '--name', 'lenient')).require_mfa).toBe(false);
    });

    it('without --json prints the secret on stdout and the one-time note on stderr', async () => {
      const result = await run('clients', 'create', '--name', 'human');
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/client_secret\s+[A-Za-z0-9_-]{43}/);
      expect(result.stderr).toMatch(/shown this once/);
      expect(result.stderr).not.toMatch(/[A-Za-z0-9_-]{43}/);
    });
  });

  describe('refusals: exit non-zero, stdout empty, one line on stderr naming what to fix', () => {
    const cases: Array<{ what: string; args: () => string[]; mentions: RegExp; code?: number }> = [
      { what: 'an unknown option', args: () => ['clients', 'create', '--name', 'x', '--colour', 'blue'], mentions: /--colour/, code: 2 },
      { what: 'a missing --name', args: () => ['clients', 'create', '--redirect-uri', 'https://x.test/cb'], mentions: /--name/, code: 2 },
      {
        what: 'an http redirect URI',
        args: () => ['clients', 'create', '--name', 'x', '--redirect-uri', 'http://example.com/cb'],
        mentions: /--redirect-uri.*https/,
        code: 1,
      },
      {
        what: 'a redirect URI with a fragment',
        args: () => ['clients', 'create', '--name', 'x', '--redirect-uri', 'https://x.test/cb#frag'],
        mentions: /--redirect-uri.*fragment/,
        code: 1,
      },
      { what: 'an unknown grant type', args: () => ['clients', 'create', '--name', 'x', '--grant-type', 'password'], mentions: /--grant-type/, code: 1 },
      {
        what: 'a non-numeric --access-token-ttl',
        args: () => ['resources', 'create', '--identifier', uniqueResource(), '--access-token-ttl', 'abc'],
        mentions: /--access-token-ttl.*"abc"/,
        code: 2,
      },
      {
        what: 'an out-of-range --access-token-ttl',
        args: () => ['resources', 'create', '--identifier', uniqueResource(), '--access-token-ttl', '100000'],
        mentions: /--access-token-ttl/,
        code: 1,
      },
      { what: 'an unknown command', args: () => ['frobnicate'], mentions: /unknown command "frobnicate"/, code: 2 },
      { what: 'an unknown subcommand', args: () => ['clients', 'frobnicate'], mentions: /unknown command "clients frobnicate"/, code: 2 },
      { what: 'clients get of an unknown id', args: () => ['clients', 'get', 'no-such-client'], mentions: /client no-such-client not found/, code: 1 },
      { what: 'clients get without an id', args: () => ['clients', 'get'], mentions: /one ID/, code: 2 },
      { what: 'an unknown --alg', args: () => ['keys', 'generate', '--alg', 'HS256'], mentions: /--alg.*HS256/, code: 2 },
    ];

    it.each(cases)('$what', async ({ args, mentions, code }) => {
      for (const withJson of [false, true]) {
        const result = await run(...args(), ...(withJson ? ['--json'] : []));
        expectOneLineError(result, mentions);
        if (code !== undefined) expect(result.code).toBe(code);
      }
    });

    it('writes nothing when it refuses a client', async () => {
      const before = (await json<Json[]>('clients', 'list')).length;
      expectOneLineError(await run('clients', 'create', '--name', 'nope', '--redirect-uri', 'http://example.com/cb', '--json'), /--redirect-uri/);
      expect(await json<Json[]>('clients', 'list')).toHaveLength(before);
    });

    it('reports a configuration error on one line', async () => {
      const result = await runCliCapture(['clients', 'list', '--json'], { ...env, DATABASE_URL: 'nonsense' });
      expectOneLineError(result, /configuration error: DATABASE_URL/);
    });
  });

  describe('keys', () => {
    it('generate, list and rotate print one JSON document and never private key material', async () => {
      const keysDir = env.KEYS_DIR ?? '';
      expect(await json<Json[]>('keys', 'list')).toEqual([]);

      const generated = await json('keys', 'generate');
      expect(generated).toMatchObject({ alg: 'RS256', status: 'active', retiredAt: null, keys_dir: keysDir });
      expect(typeof generated.kid).toBe('string');
      expect((await stat(path.join(keysDir, `${String(generated.kid)}.json`))).mode & 0o777).toBe(0o600);
      expect((await stat(path.join(keysDir, 'client-secret.key'))).mode & 0o777).toBe(0o600);

      const listed = await run('keys', 'list', '--json');
      expect(listed.stderr).toBe('');
      expect(listed.stdout).not.toMatch(/"(d|p|q|dp|dq|qi|jwk)"/);
      expect((JSON.parse(listed.stdout) as Json[]).map((k) => k.kid)).toEqual([generated.kid]);

      const staged = await json('keys', 'rotate');
      expect(staged).toMatchObject({ alg: 'RS256', status: 'pending', retired: [generated.kid], removed: [] });
      expect(Date.parse(String(staged.activatesAt)) - Date.now()).toBeGreaterThan(290_000);
      const during = await json<Json[]>('keys', 'list');
      expect(during.map((k) => [k.kid, k.status])).toEqual([
        [generated.kid, 'active'],
        [staged.kid, 'pending'],
      ]);

      const rotated = await json('keys', 'rotate', '--alg', 'ES256', '--activate-in', '0');
      // Rotating at once retires both the key that signed and the one that was about to.
      expect(rotated).toMatchObject({ alg: 'ES256', status: 'active', removed: [] });
      expect([...(rotated.retired as string[])].sort()).toEqual([generated.kid, staged.kid].sort());
      expect(rotated.kid).not.toBe(generated.kid);

      const after = await json<Json[]>('keys', 'list');
      expect(after.map((k) => [k.kid, k.status])).toEqual([
        [rotated.kid, 'active'],
        [staged.kid, 'retired'],
        [generated.kid, 'retired'],
      ]);
      expect((await run('keys', 'rotate', '--activate-in', 'soon')).code).toBe(2);
    });
  });
});
