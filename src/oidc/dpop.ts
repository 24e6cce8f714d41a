import { hkdfSync } from 'node:crypto';
import type { Configuration } from 'oidc-provider';

/** HKDF `info` of the DPoP nonce secret: binds the derived key to this one use (and its version). */
const NONCE_SECRET_INFO = 'gatehouse/dpop-nonce-secret/v1';

/**
 * The secret oidc-provider derives its DPoP server nonces from (RFC 9449 §8), 32 bytes. It is
 * derived with HKDF-SHA-256 from the digest key in KEYS_DIR (keys/client-secret.key), which every
 * node mounts and which never rotates (every client-secret digest is keyed with it), so a nonce one
 * node hands out is accepted by every other. The derivation's `info` separates it from the digest
 * key's own use: knowing one says nothing about the other.
 */
export function dpopNonceSecret(digestKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', digestKey, Buffer.alloc(0), NONCE_SECRET_INFO, 32));
}

type DPoPFeature = NonNullable<NonNullable<Configuration['features']>['dPoP']>;

/**
 * oidc-provider's `features.dPoP`, set on purpose rather than taken from its defaults:
 * - `nonceSecret`: see dpopNonceSecret; with it the server answers a DPoP-Nonce header on DPoP
 *   requests and accepts proofs that carry one of its nonces instead of a fresh `iat`.
 * - `requireNonce` (DPOP_REQUIRE_NONCE): oidc-provider calls it with the request only, at the token
 *   endpoint after client authentication but at userinfo before any client is known, so it is one
 *   server-wide answer: every proof must carry a nonce (the first request of a client is answered
 *   `use_dpop_nonce` with the nonce to use).
 * - `allowReplay: false`: a proof's `jti` is remembered per client for the proof's acceptance window
 *   (ReplayDetection, in the ephemeral store: Redis in production, shared by every node) and a second
 *   use of it is refused.
 * Which clients must use DPoP is per client: `dpop_bound_access_tokens` (clients create --dpop).
 */
export function dpopFeature(options: { digestKey: Buffer; requireNonce: boolean }): DPoPFeature {
  const { requireNonce } = options;
  return {
    enabled: true,
    nonceSecret: dpopNonceSecret(options.digestKey),
    requireNonce: () => requireNonce,
    allowReplay: false,
  };
}
