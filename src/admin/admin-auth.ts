import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet } from 'jose';
import type { Middleware } from 'koa';
import { SIGNING_ALGS } from '../keys/key-store.js';
import type { RegistryCache } from '../registry/registry-cache.js';
import { ADMIN_SCOPE, adminAudience } from '../registry/resource-server.repository.js';
import { ApiError } from './problem.js';

/** Who called the admin API: the admin client the token was issued to. */
export interface AdminCaller {
  clientId: string;
}

declare module 'koa' {
  interface DefaultState {
    admin?: AdminCaller;
  }
}

const challenge = (error: string, description: string) => ({
  'WWW-Authenticate': `Bearer realm="gatehouse-admin", error="${error}", error_description="${description}"`,
});

const invalidToken = (description: string) =>
  new ApiError(401, 'invalid_token', description, { headers: challenge('invalid_token', description) });

/**
 * Admin API authorization: a Bearer JWT that Gatehouse issued (verified locally against its own
 * signing keys) to a client registered with --admin, for the admin API audience, with scope `admin`.
 * A person's access token (sub ≠ client_id) never passes, whatever its scope.
 */
export function requireAdmin(deps: { issuer: string; jwks: () => JSONWebKeySet; cache: RegistryCache }): Middleware {
  const audience = adminAudience(deps.issuer);
  let keySet: { source: JSONWebKeySet; verify: ReturnType<typeof createLocalJWKSet> } | undefined;
  const currentKeys = () => {
    const source = deps.jwks();
    if (keySet?.source !== source) keySet = { source, verify: createLocalJWKSet(source) };
    return keySet.verify;
  };

  return async (ctx, next) => {
    const header = ctx.get('Authorization');
    const match = /^Bearer ([A-Za-z0-9_.~+/=-]+)$/i.exec(header);
    if (!match?.[1]) throw invalidToken('a Bearer access token is required');
    let payload;
    try {
      ({ payload } = await jwtVerify(match[1], currentKeys(), {
        issuer: deps.issuer,
        audience,
        typ: 'at+jwt',
        algorithms: [...SIGNING_ALGS],
      }));
    } catch (error) {
      const expired = error instanceof joseErrors.JWTExpired;
      throw invalidToken(expired ? 'the access token has expired' : 'the access token is not valid for this API');
    }
    const clientId = typeof payload.client_id === 'string' ? payload.client_id : undefined;
    const client = clientId ? await deps.cache.getClient(clientId) : undefined;
    if (!clientId || payload.sub !== clientId || !client?.admin) {
      throw invalidToken('the access token was not issued to an admin client');
    }
    const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ') : [];
    if (!scopes.includes(ADMIN_SCOPE)) {
      throw new ApiError(403, 'insufficient_scope', 'the access token lacks the admin scope', {
        headers: { 'WWW-Authenticate': `Bearer realm="gatehouse-admin", error="insufficient_scope", scope="${ADMIN_SCOPE}"` },
      });
    }
    ctx.state.admin = { clientId };
    await next();
  };
}
