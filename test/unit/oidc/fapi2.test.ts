import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { errors, Provider } from 'oidc-provider';
import { beforeAll, describe, expect, it } from 'vitest';
import { fapi2ClientMetadata, fapi2Feature } from '../../../src/oidc/fapi2.js';

/**
 * What oidc-provider makes of a client under src/oidc/fapi2.ts: a real Provider (in this process, no
 * request) builds Clients from metadata, as it does from the registry and from registrations.
 */
describe('the fapi2 client metadata and features.fapi', () => {
  let signingKeys: JWK[];
  let clientJwk: JWK;

  beforeAll(async () => {
    signingKeys = [];
    for (const alg of ['RS256', 'ES256'] as const) {
      const { privateKey } = await generateKeyPair(alg, { extractable: true });
      signingKeys.push({ ...(await exportJWK(privateKey)), alg, kid: alg, use: 'sig' });
    }
    const { publicKey } = await generateKeyPair('ES256', { extractable: true });
    clientJwk = { ...(await exportJWK(publicKey)), alg: 'ES256', kid: 'c1', use: 'sig' };
  });

  const provider = (alg: 'ES256' | undefined) =>
    new Provider('http://issuer.test', {
      jwks: { keys: signingKeys as never },
      extraClientMetadata: fapi2ClientMetadata(alg),
      features: { ...fapi2Feature(), devInteractions: { enabled: false } },
    });
  const metadata = (extra: Record<string, unknown> = {}) => ({
    client_id: 'c',
    redirect_uris: ['https://rp.example.test/cb'],
    token_endpoint_auth_method: 'private_key_jwt',
    jwks: { keys: [clientJwk] },
    ...extra,
  });
  // oidc-provider's Client takes its metadata in the constructor (the types declare none).
  const build = (p: Provider, extra: Record<string, unknown> = {}) => {
    const ClientClass = p.Client as unknown as new (metadata: Record<string, unknown>) => Record<string, unknown>;
    return new ClientClass(metadata(extra));
  };
  /** The invalid_client_metadata description building the client is refused with. */
  const refusal = (p: Provider, extra: Record<string, unknown>) => {
    try {
      build(p, extra);
    } catch (error) {
      expect(error).toBeInstanceOf(errors.InvalidClientMetadata);
      return (error as { error_description?: string }).error_description;
    }
    throw new Error('the client was built');
  };

  it('a fapi2 client is built with PAR, DPoP-bound tokens and the profile key alg for its ID tokens; features.fapi answers 2.0 for it', () => {
    const p = provider('ES256');
    const client = build(p, { gatehouse_profile: 'fapi2', dpop_bound_access_tokens: false });
    expect(client).toMatchObject({ gatehouse_profile: 'fapi2', requirePushedAuthorizationRequests: true, dpopBoundAccessTokens: true, idTokenSignedResponseAlg: 'ES256' });
    const profile = fapi2Feature().fapi?.profile;
    expect(typeof profile === 'function' ? profile({} as never, client as never) : undefined).toBe('2.0');
  });

  it('any other client is built as before, and features.fapi leaves it alone', () => {
    const client = build(provider('ES256'), { token_endpoint_auth_method: 'client_secret_basic', client_secret: 'x'.repeat(43), jwks: undefined });
    expect(client).toMatchObject({ requirePushedAuthorizationRequests: false, dpopBoundAccessTokens: false, idTokenSignedResponseAlg: 'RS256' });
    expect(client.gatehouse_profile).toBeUndefined();
    const profile = fapi2Feature().fapi?.profile;
    expect(typeof profile === 'function' ? profile({} as never, client as never) : 'not a function').toBeUndefined();
  });

  it('refuses a fapi2 client that does not authenticate with private_key_jwt, an unknown profile, and a fapi2 client when the server has no PS256 or ES256 key', () => {
    const p = provider('ES256');
    expect(refusal(p, { gatehouse_profile: 'fapi2', token_endpoint_auth_method: 'client_secret_basic', client_secret: 'x'.repeat(43), jwks: undefined })).toMatch(/needs token_endpoint_auth_method private_key_jwt/);
    expect(refusal(p, { gatehouse_profile: 'fapi1' })).toBe('gatehouse_profile must be "fapi2" or null');
    expect(refusal(provider(undefined), { gatehouse_profile: 'fapi2' })).toMatch(/needs a PS256 or ES256 signing key/);
    // Without the profile the same server serves the client.
    expect(build(provider(undefined))).toMatchObject({ idTokenSignedResponseAlg: 'RS256' });
  });
});
