import { exportJWK, generateKeyPair, generateSecret } from 'jose';
import { describe, expect, it } from 'vitest';
import { PRIVATE_JWK_MEMBERS, publicJwk } from '../../../src/keys/jwk.js';

describe('publicJwk', () => {
  it.each([
    ['RSA', 'RS256', {}],
    ['EC', 'ES256', {}],
    ['OKP', 'EdDSA', { crv: 'Ed25519' }],
  ] as const)('keeps exactly the public half of an %s key', async (_kty, alg, options) => {
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, ...options });
    const full = { ...(await exportJWK(privateKey)), kid: 'k1', alg, use: 'sig' };
    expect(publicJwk(full)).toEqual({ ...(await exportJWK(publicKey)), kid: 'k1', alg, use: 'sig' });
  });

  it('leaves nothing of a symmetric key but its metadata', async () => {
    const secret = await exportJWK(await generateSecret('HS256', { extractable: true }));
    expect(publicJwk({ ...secret, kid: 'k2' })).toEqual({ kty: 'oct', kid: 'k2' });
  });

  it('names every private member of RFC 7518 and RFC 8037, and no public one', () => {
    expect([...PRIVATE_JWK_MEMBERS].sort()).toEqual(['d', 'dp', 'dq', 'k', 'oth', 'p', 'q', 'qi']);
  });
});
