import { stat } from 'node:fs/promises';
import path from 'node:path';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, tokenRequest, type TestServer } from '../fixtures/server.js';

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'];

describe('signing keys and the JWKS', () => {
  let t: TestServer;
  let client: { resource: string; clientId: string; clientSecret: string };

  beforeAll(async () => {
    t = await startTestServer({ name: 'keys' });
    client = await t.build.serviceClient();
  });
  afterAll(() => t.close());

  const jwks = async () => (await (await fetch(`${t.server.url}/jwks`)).json()) as JSONWebKeySet;
  const token = async () => {
    const { status, body } = await tokenRequest(t.server.url, { grant_type: 'client_credentials', scope: 'read' }, client);
    expect(status).toBe(200);
    return String(body.access_token);
  };

  it('publishes public keys only, each with kid, alg and use', async () => {
    const set = await jwks();
    // The signing key (RS256) first, then the key that signs for clients of profile fapi2 (ES256),
    // made beside it on the first start in development.
    expect(set.keys.map((key) => key.alg)).toEqual(['RS256', 'ES256']);
    for (const key of set.keys) {
      expect(typeof key.kid).toBe('string');
      expect(key.use).toBe('sig');
      for (const member of PRIVATE_MEMBERS) expect(key).not.toHaveProperty(member);
    }
  });

  it('writes private key files readable by the owner only', async () => {
    const listed = await t.cli<Array<{ kid: string }>>('keys', 'list');
    expect(listed.length).toBeGreaterThan(0);
    for (const { kid } of listed) {
      const file = await stat(path.join(t.config.keysDir, `${kid}.json`));
      expect(file.mode & 0o777).toBe(0o600);
    }
    expect((await stat(path.join(t.config.keysDir, 'client-secret.key'))).mode & 0o777).toBe(0o600);
  });

  it('after keys rotate, publishes the new key first, signs with it from its activation time, and keeps the old one published', async () => {
    const before = await token();
    const oldKid = decodeProtectedHeader(before).kid;
    const rotated = await t.cli<{ kid: string; retired: string[]; activatesAt: string }>('keys', 'rotate', '--activate-in', '2');
    expect(rotated.kid).not.toBe(oldKid);
    expect(rotated.retired).toContain(oldKid);

    // The running server notices the new key file by itself (KEYS_POLL_MS=200 here) and publishes it...
    const published = Date.now() + 5000;
    while (!(await jwks()).keys.some((key) => key.kid === rotated.kid) && Date.now() < published) await new Promise((resolve) => setTimeout(resolve, 50));
    expect((await jwks()).keys.map((key) => key.kid)).toContain(rotated.kid);
    // ...but keeps signing with the old key until the new one's activation time.
    if (Date.now() < Date.parse(rotated.activatesAt) - 300) expect(decodeProtectedHeader(await token()).kid).toBe(oldKid);

    const deadline = Date.parse(rotated.activatesAt) + 5000;
    let after = await token();
    while (decodeProtectedHeader(after).kid !== rotated.kid && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      after = await token();
    }
    expect(decodeProtectedHeader(after).kid).toBe(rotated.kid);
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(rotated.activatesAt));

    const set = await jwks();
    expect(set.keys.map((key) => key.kid)).toEqual(expect.arrayContaining([oldKid, rotated.kid]));
    expect(set.keys[0]?.kid).toBe(rotated.kid);
    const keySet = createLocalJWKSet(set);
    const options = { issuer: t.config.issuer, audience: client.resource };
    await expect(jwtVerify(before, keySet, options)).resolves.toBeDefined();
    await expect(jwtVerify(after, keySet, options)).resolves.toBeDefined();

    const listed = await t.cli<Array<{ kid: string; status: string }>>('keys', 'list');
    expect(listed.find((key) => key.kid === rotated.kid)?.status).toBe('active');
    expect(listed.find((key) => key.kid === oldKid)?.status).toBe('retired');
  });
});
