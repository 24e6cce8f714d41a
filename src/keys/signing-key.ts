import { constants, createPrivateKey, createPublicKey, sign, type KeyObject, type SignKeyObjectInput } from 'node:crypto';
import { ExternalSigningKey, type JWK } from 'oidc-provider';

/** How node:crypto signs for each JWS algorithm Gatehouse keys use (RFC 7518 §3, RFC 8037). */
const SIGN_PARAMETERS: Record<string, { digest: string | null; options: Omit<SignKeyObjectInput, 'key'> }> = {
  RS256: { digest: 'sha256', options: {} },
  PS256: { digest: 'sha256', options: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } },
  ES256: { digest: 'sha256', options: { dsaEncoding: 'ieee-p1363' } },
  EdDSA: { digest: null, options: {} },
};

/**
 * A private signing key that oidc-provider hands the JWS signing input to, through its external
 * signing support. node:crypto signs it on the libuv thread pool: the same signature jose would
 * make, without WebCrypto's key wrapping and algorithm normalisation on the main thread.
 *
 * On the pool rather than synchronously on the main thread: under load the pool signs one token
 * after another with the RSA key's tables hot in the CPU cache, while the main thread serves the
 * next request (measured in docs/performance.md). On more than one core a single process also
 * signs in parallel.
 *
 * @example
 * const key = new LocalSigningKey(privateJwk);
 * new Provider(issuer, { jwks: { keys: [key] }, features: { externalSigningSupport: EXTERNAL_SIGNING } });
 */
export class LocalSigningKey extends ExternalSigningKey {
  readonly #privateKey: KeyObject;
  readonly #publicKey: KeyObject;
  readonly #digest: string | null;
  readonly #signOptions: SignKeyObjectInput;
  readonly #kid: string;
  readonly #alg: string;

  constructor(jwk: JWK) {
    super();
    const parameters = jwk.alg ? SIGN_PARAMETERS[jwk.alg] : undefined;
    if (!parameters || !jwk.kid) throw new TypeError(`signing key needs a kid and one of ${Object.keys(SIGN_PARAMETERS).join(', ')} as alg`);
    this.#privateKey = createPrivateKey({ key: jwk as never, format: 'jwk' });
    this.#publicKey = createPublicKey(this.#privateKey);
    this.#digest = parameters.digest;
    this.#signOptions = { key: this.#privateKey, ...parameters.options };
    this.#kid = jwk.kid;
    this.#alg = jwk.alg as string;
  }

  override get kid(): string {
    return this.#kid;
  }

  override get alg(): string {
    return this.#alg;
  }

  override keyObject(): KeyObject {
    return this.#publicKey;
  }

  override sign(data: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      sign(this.#digest, data, this.#signOptions, (error, signature) => (error ? reject(error) : resolve(signature)));
    });
  }
}

/** oidc-provider's `features.externalSigningSupport` setting that lets it use LocalSigningKey. */
export const EXTERNAL_SIGNING = { enabled: true, ack: 'experimental-01' } as const;
