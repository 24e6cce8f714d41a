/**
 * Protocol facts that layers from observability/ up to http/ all need, defined once here, in the
 * lowest layer, so that each of them can import them.
 */

/** RFC 8628 device authorization grant: command-line tools and TVs (docs/device-flow.md). */
export const DEVICE_CODE_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:device_code';
/** RFC 8693 token exchange: personal API keys (docs/api-keys.md) and services acting for a person (docs/token-exchange.md). */
export const TOKEN_EXCHANGE_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** The OAuth grant types Gatehouse serves: what a client may register, and the label values metrics and logs keep. */
export const GRANT_TYPES = ['authorization_code', 'client_credentials', 'refresh_token', DEVICE_CODE_GRANT_TYPE, TOKEN_EXCHANGE_GRANT_TYPE] as const;
export type GrantType = (typeof GRANT_TYPES)[number];

const GRANT_TYPE_SET: ReadonlySet<string> = new Set(GRANT_TYPES);

/** The subject_token_type of a personal API key (CONTRACT, "Personal API keys"). */
export const API_KEY_TOKEN_TYPE = 'urn:gatehouse:params:oauth:token-type:api-key';
/** RFC 8693 §3: an OAuth 2.0 access token, the issued_token_type of every exchange. */
export const ACCESS_TOKEN_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/** True for a grant type of GRANT_TYPES (a request's `grant_type` may be anything). */
export function isGrantType(value: unknown): value is GrantType {
  return typeof value === 'string' && GRANT_TYPE_SET.has(value);
}

/**
 * True for a loopback host name as URL.hostname gives it: `localhost`, `[::1]`, or 127.0.0.0/8 in
 * dotted form. Where http is allowed: a development issuer, a native app's redirect URI (RFC 8252 §7.3).
 */
export function isLoopbackHostname(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);
}
