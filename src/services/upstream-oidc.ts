import * as oidc from 'openid-client';
import { isLoopbackHostname } from '../config/protocol.js';

/** How long openid-client waits for an upstream provider (discovery, token endpoint, JWKS), in seconds. */
export const UPSTREAM_TIMEOUT_SECONDS = 5;

/** Why an upstream issuer cannot be used: the codes the CLI, the admin API and the pages name. */
export type IssuerProblem = 'issuer_unreachable' | 'issuer_mismatch' | 'no_code_flow';

export class IssuerCheckError extends Error {
  readonly code: IssuerProblem;

  constructor(code: IssuerProblem, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IssuerCheckError';
    this.code = code;
  }
}

/**
 * Whether requests to this issuer may use plain http: only a loopback issuer, and only outside
 * production (the test provider on another local port).
 */
export function insecureAllowed(issuer: string, production: boolean): boolean {
  const url = URL.parse(issuer);
  return !production && url?.protocol === 'http:' && isLoopbackHostname(url.hostname);
}

/**
 * openid-client's discovery for an upstream issuer (its metadata, then a Configuration for this
 * client), with the problems a person can act on told apart: unreachable (network, timeout, an
 * answer that is not metadata), an issuer other than the one registered, or no code flow with S256.
 */
export async function discoverUpstream(
  issuer: string,
  client: { clientId: string; clientSecret?: string | undefined },
  options: { production: boolean; timeoutSeconds?: number },
): Promise<oidc.Configuration> {
  let config: oidc.Configuration;
  try {
    config = await oidc.discovery(
      new URL(issuer),
      client.clientId,
      undefined,
      client.clientSecret ? oidc.ClientSecretBasic(client.clientSecret) : oidc.None(),
      { timeout: options.timeoutSeconds ?? UPSTREAM_TIMEOUT_SECONDS, execute: insecureAllowed(issuer, options.production) ? [oidc.allowInsecureRequests] : [] },
    );
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    // oauth4webapi checks that the metadata's issuer is the one asked for (OIDC Discovery §4.3).
    if (code === 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED') {
      throw new IssuerCheckError('issuer_mismatch', 'the provider\'s metadata names another issuer than this URL', { cause: error });
    }
    throw new IssuerCheckError('issuer_unreachable', 'the provider\'s discovery document (/.well-known/openid-configuration) could not be read', { cause: error });
  }
  const metadata = config.serverMetadata();
  if (!metadata.authorization_endpoint || !metadata.token_endpoint) {
    throw new IssuerCheckError('no_code_flow', 'the provider has no authorization or token endpoint');
  }
  if (metadata.response_types_supported && !metadata.response_types_supported.includes('code')) {
    throw new IssuerCheckError('no_code_flow', 'the provider does not offer the authorization code flow (response_type code)');
  }
  if (metadata.code_challenge_methods_supported && !metadata.code_challenge_methods_supported.includes('S256')) {
    throw new IssuerCheckError('no_code_flow', 'the provider does not offer PKCE with S256');
  }
  return config;
}
