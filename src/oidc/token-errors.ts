import type { Context } from 'koa';
import { DEVICE_CODE_GRANT_TYPE as DEVICE_CODE_GRANT } from '../config/protocol.js';

interface TokenContext {
  oidc?: {
    route?: string;
    params?: Record<string, unknown>;
    client?: { grantTypeAllowed(grantType: string): boolean };
  };
}

/**
 * Runs on the provider's answer (see provider-host.ts), for error answers only (a successful answer
 * passes untouched):
 * - a grant the client is not registered for (at the token endpoint, or the device authorization
 *   endpoint for the device_code grant): oidc-provider says invalid_request, RFC 6749 §5.2 names it
 *   unauthorized_client;
 * - JWT access tokens cannot be introspected or revoked (they are not stored): the answer says
 *   so, so that a resource server author knows to rely on `exp`.
 */
export function rewriteProtocolErrors(ctx: Context): void {
  if (ctx.status < 400) return;
  const { oidc } = ctx as unknown as TokenContext;
  const body = ctx.body as { error?: unknown } | undefined;
  const grantType = oidc?.params?.grant_type;
  if (
    oidc?.route === 'token' &&
    ctx.status === 400 &&
    body?.error === 'invalid_request' &&
    typeof grantType === 'string' &&
    oidc.client &&
    !oidc.client.grantTypeAllowed(grantType)
  ) {
    ctx.body = {
      error: 'unauthorized_client',
      error_description: `this client is not registered for the ${grantType} grant`,
    };
  } else if (oidc?.route === 'device_authorization' && ctx.status === 400 && body?.error === 'invalid_request' && oidc.client && !oidc.client.grantTypeAllowed(DEVICE_CODE_GRANT)) {
    // The same for the device authorization endpoint (RFC 8628 §3.2 answers with RFC 6749 §5.2's codes).
    ctx.body = {
      error: 'unauthorized_client',
      error_description: `this client is not registered for the ${DEVICE_CODE_GRANT} grant`,
    };
  } else if ((oidc?.route === 'introspection' || oidc?.route === 'revocation') && body?.error === 'unsupported_token_type') {
    ctx.body = {
      error: 'unsupported_token_type',
      error_description:
        'JWT access tokens are self-contained and cannot be introspected or revoked: verify them with the JWKS and rely on their exp (they are short-lived)',
    };
  }
}
