import { errors, type Configuration } from 'oidc-provider';
import type { Fapi2SigningAlg } from '../keys/key-store.js';
import { PROVIDER_PROFILE_METADATA } from './adapters/client-adapter.js';

type Features = NonNullable<Configuration['features']>;
type ExtraClientMetadata = NonNullable<Configuration['extraClientMetadata']>;

/** What oidc-provider's Client holds of a client's profile: extra metadata keep their own name. */
const profileOf = (client: unknown): unknown => (client as Record<string, unknown> | undefined)?.[PROVIDER_PROFILE_METADATA];

/**
 * oidc-provider's `features.fapi`, per client: a client of profile fapi2 is served under its FAPI
 * 2.0 checks (PKCE required, request objects with exp, nbf and aud, no more than an hour apart,
 * redirect_uri always sent); every other client as before. Synchronous, as oidc-provider calls it.
 */
export function fapi2Feature(): Pick<Features, 'fapi'> {
  return {
    fapi: {
      enabled: true,
      profile: (_ctx, client) => (profileOf(client) === 'fapi2' ? '2.0' : undefined),
    },
  };
}

/** Registration routes, where the metadata is the client's own. */
const REGISTRATION_ROUTES = new Set(['registration', 'client_update']);

/**
 * `extraClientMetadata`: the profile (PROVIDER_PROFILE_METADATA: null or "fapi2", from the
 * registry; a registration request that names it is refused, since an administrator sets a
 * profile), and for a fapi2 client what the profile asks of its metadata, checked whenever
 * oidc-provider builds it: private_key_jwt, PAR and DPoP-bound access tokens (made true), and ID
 * tokens signed `signingAlg` (PS256 or ES256; none: this server has no key of such an algorithm,
 * and the client is refused until it has one). The clients service has refused other values
 * already (checkProfileRules): this is the second line, for a row changed behind its back.
 */
export function fapi2ClientMetadata(signingAlg: Fapi2SigningAlg | undefined): ExtraClientMetadata {
  return {
    properties: [PROVIDER_PROFILE_METADATA],
    validator(ctx, key, value, metadata) {
      if (key !== PROVIDER_PROFILE_METADATA) return;
      const route = ctx?.oidc?.route;
      const body = route && REGISTRATION_ROUTES.has(route) ? (ctx.oidc.body as Record<string, unknown> | undefined) : undefined;
      if (body?.[PROVIDER_PROFILE_METADATA] !== undefined) {
        throw new errors.InvalidClientMetadata(`${PROVIDER_PROFILE_METADATA} is not taken at registration: an administrator sets a client's profile`);
      }
      if (value === undefined || value === null) return;
      if (value !== 'fapi2') throw new errors.InvalidClientMetadata(`${PROVIDER_PROFILE_METADATA} must be "fapi2" or null`);
      if (metadata.token_endpoint_auth_method !== 'private_key_jwt') {
        throw new errors.InvalidClientMetadata('profile fapi2 needs token_endpoint_auth_method private_key_jwt (mutual TLS is not offered)');
      }
      metadata.require_pushed_authorization_requests = true;
      metadata.dpop_bound_access_tokens = true;
      if (!signingAlg) {
        throw new errors.InvalidClientMetadata('profile fapi2 needs a PS256 or ES256 signing key and this server has none (gatehouse keys generate --profile fapi2)');
      }
      metadata.id_token_signed_response_alg = signingAlg;
    },
  };
}
