import { compactVerify, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { SIGNING_ALGS } from '../../../src/keys/key-store.js';
import { LocalSigner } from '../../../src/keys/signing-key.js';

async function privateJwk(alg: string): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { ...(await exportJWK(privateKey)), alg, kid: `test-${alg}`, use: 'sig' };
}

function publicOnly(jwk: JWK): JWK {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...rest } = jwk;
  return rest;
}

describe('LocalSigner', () => {
  it.each(SIGNING_ALGS)('makes %s signatures that jose verifies with the published key', async (alg) => {
    const jwk = await privateJwk(alg);
    const key = new LocalSigner(jwk);
    const header = Buffer.from(JSON.stringify({ alg, kid: jwk.kid })).toString('base64url');
    const payload = Buffer.from(JSON.stringify({ sub: 'someone' })).toString('base64url');
    const signature = Buffer.from(await key.sign(Buffer.from(`${header}.${payload}`))).toString('base64url');

    const verified = await compactVerify(`${header}.${payload}.${signature}`, await importJWK(publicOnly(jwk), alg));
    expect(new TextDecoder().decode(verified.payload)).toBe('{"sub":"someone"}');
  });

  it('exposes only the public half and names its kid and alg', async () => {
    const jwk = await privateJwk('RS256');
    const key = new LocalSigner(jwk);
    expect(key.kid).toBe(jwk.kid);
    expect(key.alg).toBe('RS256');
    expect(key.publicKey.type).toBe('public');
    const published = key.publicKey.export({ format: 'jwk' });
    expect([published.kty, published.n, published.e]).toEqual([jwk.kty, jwk.n, jwk.e]);
  });

  it('refuses a key without a kid or with an algorithm Gatehouse does not sign with', async () => {
    const { kid: _kid, ...withoutKid } = await privateJwk('RS256');
    expect(() => new LocalSigner(withoutKid)).toThrow(/kid/);
    const rs512 = { ...(await privateJwk('RS256')), alg: 'RS512' };
    expect(() => new LocalSigner(rs512)).toThrow(/alg/);
  });
});
