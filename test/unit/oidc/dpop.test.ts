import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { dpopFeature, dpopNonceSecret } from '../../../src/oidc/dpop.js';

describe('the DPoP nonce secret', () => {
  it('is 32 bytes derived from the digest key: the same key gives the same secret (every node agrees), another key another', () => {
    const key = randomBytes(32);
    const secret = dpopNonceSecret(key);
    expect(secret).toHaveLength(32);
    expect(dpopNonceSecret(Buffer.from(key)).equals(secret)).toBe(true);
    expect(dpopNonceSecret(randomBytes(32)).equals(secret)).toBe(false);
    // Derived, not the digest key itself.
    expect(secret.equals(key)).toBe(false);
  });

  it('is HKDF-SHA-256 with Gatehouse\'s info string (a fixed vector, so a change of derivation is noticed)', () => {
    expect(dpopNonceSecret(Buffer.alloc(32, 7)).toString('hex')).toBe('5d8c4b862199c21a539769bedf683f04c668da8c755cbeb6649c3ff7d967129e');
  });
});

describe('features.dPoP', () => {
  it('is enabled, refuses replays and requires nonces only when configured', () => {
    const off = dpopFeature({ digestKey: randomBytes(32), requireNonce: false });
    const on = dpopFeature({ digestKey: randomBytes(32), requireNonce: true });
    expect(off.enabled).toBe(true);
    expect(off.allowReplay).toBe(false);
    expect(off.nonceSecret).toHaveLength(32);
    const call = (feature: typeof off) => (feature.requireNonce as (ctx: unknown) => boolean)({});
    expect(call(off)).toBe(false);
    expect(call(on)).toBe(true);
  });
});
