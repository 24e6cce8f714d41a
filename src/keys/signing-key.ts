import { constants, createPrivateKey, createPublicKey, sign, type KeyObject, type SignKeyObjectInput } from 'node:crypto';
import type { JWK } from 'jose';
import { SIGNING_ALGS, type SigningAlg } from './key-store.js';

/** How node:crypto signs for each JWS algorithm Gatehouse keys use (RFC 7518 §3, RFC 8037). */
const SIGN_PARAMETERS: Record<SigningAlg, { digest: string | null; options: Omit<SignKeyObjectInput, 'key'> }> = {
  RS256: { digest: 'sha256', options: {} },
  PS256: { digest: 'sha256', options: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } },
  ES256: { digest: 'sha256', options: { dsaEncoding: 'ieee-p1363' } },
  EdDSA: { digest: null, options: {} },
};

/**
 * A private signing key that signs a JWS signing input with node:crypto on the libuv thread pool:
 * the same signature jose would make, without WebCrypto's key wrapping and algorithm normalisation
 * on the main thread. oidc-provider is handed it through its external signing support
 * (oidc/upstream.ts, providerSigningKey).
 *
 * On the pool rather than synchronously on the main thread: under load the pool signs one token
 * after another with the RSA key's tables hot in the CPU cache, while the main thread serves the
 * next request (measured in docs/performance.md). On more than one core a single process also
 * signs in parallel.
 *
 * @example
 * const signer = new LocalSigner(privateJwk);
 * const signature = await signer.sign(Buffer.from(`${header}.${payload}`));
 */
export class LocalSigner {
  readonly kid: string;
  readonly alg: string;
  /** The public half, as a node:crypto key. */
  readonly publicKey: KeyObject;
  readonly #digest: string | null;
  readonly #signOptions: SignKeyObjectInput;

  constructor(jwk: JWK) {
    const parameters = (SIGNING_ALGS as readonly unknown[]).includes(jwk.alg) ? SIGN_PARAMETERS[jwk.alg as SigningAlg] : undefined;
    if (!parameters || !jwk.kid) throw new TypeError(`signing key needs a kid and one of ${SIGNING_ALGS.join(', ')} as alg`);
    const privateKey = createPrivateKey({ key: jwk as never, format: 'jwk' });
    this.publicKey = createPublicKey(privateKey);
    this.#digest = parameters.digest;
    this.#signOptions = { key: privateKey, ...parameters.options };
    this.kid = jwk.kid;
    this.alg = jwk.alg as string;
  }

  sign(data: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      sign(this.#digest, data, this.#signOptions, (error, signature) => (error ? reject(error) : resolve(signature)));
    });
  }
}
