/**
 * The members of a JWK that hold private key material (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2):
 * `d` of an EC or OKP key, `d p q dp dq qi oth` of an RSA key, `k` of a symmetric one.
 */
export const PRIVATE_JWK_MEMBERS: ReadonlySet<string> = new Set(['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']);

/** A JWK without its private members: the public half, as a JWKS publishes it. */
export function publicJwk<T extends object>(jwk: T): Partial<T> {
  return Object.fromEntries(Object.entries(jwk).filter(([name]) => !PRIVATE_JWK_MEMBERS.has(name))) as Partial<T>;
}
