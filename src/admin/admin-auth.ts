import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, createLocalJWKSet, EmbeddedJWK, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import type { Context, Middleware } from 'koa';
import { SIGNING_ALGS } from '../keys/key-store.js';
import type { RegistryCache } from '../registry/registry-cache.js';
import { ADMIN_SCOPE, adminAudience } from '../registry/resource-server.repository.js';
import type { RegistryDatabase } from '../registry/database.js';
import { findUserById } from '../registry/user.repository.js';
import { CONSOLE_CLIENT_ID } from '../services/built-in-clients.js';
import type { ConsoleActivity } from '../services/console-activity.js';
import type { EphemeralStore } from '../store/ephemeral-store.js';
import { ApiError } from './problem.js';

/**
 * Who called the admin API: the admin client the token was issued to and, for the console, the
 * person signed in to it (who holds the admin role).
 */
export interface AdminCaller {
  clientId: string;
  /** The person behind a console token; absent for an admin client's own token. */
  personId?: string;
}

declare module 'koa' {
  interface DefaultState {
    admin?: AdminCaller;
  }
}

/** The role a person needs for the admin API (services/users.service.ts ROLES). */
export const ADMIN_ROLE = 'admin';

/** How old a DPoP proof may be (its iat, RFC 9449 §11.1), and how far ahead of this server's clock. */
const PROOF_WINDOW_SECONDS = 60;
const PROOF_CLOCK_TOLERANCE_SECONDS = 5;
/** How long a proof's jti is remembered: longer than any proof is accepted (iat within [now - 65 s, now + 5 s]). */
const PROOF_MEMORY_SECONDS = 2 * (PROOF_WINDOW_SECONDS + PROOF_CLOCK_TOLERANCE_SECONDS);
/** The algorithms a DPoP proof may be signed with (asymmetric only, as oidc-provider's token endpoint takes them). */
const PROOF_ALGS = ['ES256', 'ES384', 'EdDSA', 'Ed25519', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512'];
/** The store model replayed proofs are remembered under. */
const PROOF_MODEL = 'AdminDPoPProof';

const challenge = (scheme: 'Bearer' | 'DPoP', error: string, description: string) => ({
  'WWW-Authenticate': `${scheme} realm="gatehouse-admin", error="${error}", error_description="${description}"${scheme === 'DPoP' ? ` algs="${PROOF_ALGS.join(' ')}"` : ''}`,
});

const invalidToken = (description: string, scheme: 'Bearer' | 'DPoP' = 'Bearer') =>
  new ApiError(401, 'invalid_token', description, { headers: challenge(scheme, 'invalid_token', description) });

const invalidProof = (description: string) =>
  new ApiError(401, 'invalid_dpop_proof', description, { headers: challenge('DPoP', 'invalid_dpop_proof', description) });

/** The request's URL as a DPoP proof names it: no query, no fragment (RFC 9449 §4.3). */
function htuOf(ctx: Context, issuer: string): string {
  const base = new URL(issuer);
  return `${base.origin}${ctx.path}`;
}

/**
 * Checks the DPoP proof of a DPoP-bound token (RFC 9449 §4.3, §7.1): one proof, signed with the key
 * the token is bound to (cnf.jkt), for this method and URL, fresh, naming this token (ath), and never
 * seen before (its jti is claimed in the ephemeral store, atomically).
 */
async function checkProof(ctx: Context, deps: { issuer: string; replay: Pick<EphemeralStore, 'insertIfAbsent'> }, token: string, jkt: string): Promise<void> {
  const header = ctx.get('DPoP');
  if (!header || header.includes(',')) throw invalidProof('exactly one DPoP proof is required with a DPoP-bound token');
  let proof: JWTPayload;
  let thumbprint: string;
  try {
    const verified = await jwtVerify(header, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: PROOF_ALGS, maxTokenAge: `${PROOF_WINDOW_SECONDS}s`, clockTolerance: PROOF_CLOCK_TOLERANCE_SECONDS });
    proof = verified.payload;
    if (!verified.protectedHeader.jwk) throw new Error('no jwk');
    thumbprint = await calculateJwkThumbprint(verified.protectedHeader.jwk, 'sha256');
  } catch {
    throw invalidProof('the DPoP proof is not valid (signature, typ, alg, key or iat)');
  }
  if (thumbprint !== jkt) throw invalidProof('the DPoP proof is not signed with the key the token is bound to');
  if (proof.htm !== ctx.method) throw invalidProof('the DPoP proof names another method (htm)');
  if (proof.htu !== htuOf(ctx, deps.issuer)) throw invalidProof('the DPoP proof names another URL (htu)');
  const ath = createHash('sha256').update(token).digest('base64url');
  if (proof.ath !== ath) throw invalidProof('the DPoP proof names another access token (ath)');
  if (typeof proof.jti !== 'string' || proof.jti.length < 8 || proof.jti.length > 256) throw invalidProof('the DPoP proof has no usable jti');
  const fresh = await deps.replay.insertIfAbsent(PROOF_MODEL, `${jkt}:${proof.jti}`, { jti: proof.jti }, PROOF_MEMORY_SECONDS);
  if (!fresh) throw invalidProof('this DPoP proof was used before');
}

/**
 * Admin API authorization. A JWT access token that Gatehouse issued (verified locally against its own
 * signing keys) for the admin API audience with scope `admin`, and either
 * - issued to a client registered with --admin for itself (client credentials: sub = client_id), as
 *   a Bearer token; or
 * - issued to the console (gatehouse-console) for a person who holds the admin role and is not
 *   disabled at the time of this request (read from the registry on every call, so a role taken away
 *   stops working at once), presented as a DPoP-bound token with its proof (RFC 9449).
 * Any other person's token never passes, whatever its scope or client.
 */
export function requireAdmin(deps: {
  issuer: string;
  jwks: () => JSONWebKeySet;
  cache: RegistryCache;
  registry: Pick<RegistryDatabase, 'db'>;
  replay: Pick<EphemeralStore, 'insertIfAbsent'>;
  /** Renewed at each console call: the console's sign-in reads it after an idle timeout (services/console-activity.ts). */
  activity?: Pick<ConsoleActivity, 'touch'>;
}): Middleware {
  const audience = adminAudience(deps.issuer);
  let keySet: { source: JSONWebKeySet; verify: ReturnType<typeof createLocalJWKSet> } | undefined;
  const currentKeys = () => {
    const source = deps.jwks();
    if (keySet?.source !== source) keySet = { source, verify: createLocalJWKSet(source) };
    return keySet.verify;
  };

  return async (ctx, next) => {
    const header = ctx.get('Authorization');
    const match = /^(Bearer|DPoP) ([A-Za-z0-9_.~+/=-]+)$/i.exec(header);
    if (!match?.[2]) throw invalidToken('a Bearer or DPoP access token is required');
    const scheme = match[1]?.toLowerCase() === 'dpop' ? 'DPoP' : 'Bearer';
    const token = match[2];
    let payload;
    try {
      ({ payload } = await jwtVerify(token, currentKeys(), {
        issuer: deps.issuer,
        audience,
        typ: 'at+jwt',
        algorithms: [...SIGNING_ALGS],
      }));
    } catch (error) {
      const expired = error instanceof joseErrors.JWTExpired;
      throw invalidToken(expired ? 'the access token has expired' : 'the access token is not valid for this API', scheme);
    }
    const clientId = typeof payload.client_id === 'string' ? payload.client_id : undefined;
    const cnf = payload.cnf as { jkt?: unknown } | undefined;
    const jkt = typeof cnf?.jkt === 'string' ? cnf.jkt : undefined;
    // A DPoP-bound token is used only with its proof (RFC 9449 §7.1); a proof is checked only for one.
    if (jkt) {
      if (scheme !== 'DPoP') throw invalidToken('this access token is DPoP-bound: present it with the DPoP scheme and a proof', 'DPoP');
      await checkProof(ctx, deps, token, jkt);
    } else if (scheme === 'DPoP') {
      throw invalidToken('this access token is not DPoP-bound: present it as a Bearer token');
    }

    let caller: AdminCaller;
    if (clientId === CONSOLE_CLIENT_ID) {
      const personId = typeof payload.sub === 'string' ? payload.sub : undefined;
      if (!jkt || !personId) throw invalidToken('a console token must be DPoP-bound and name a person', 'DPoP');
      const person = await findUserById(deps.registry.db, personId);
      if (!person || person.disabled) throw invalidToken('the person this token was issued for cannot sign in', 'DPoP');
      // Signed out everywhere, or a password change, after this token was issued: it ends with the sessions.
      // Compared in whole seconds (iat has no more): a token got in the very second of the cutoff stands.
      const issuedAt = typeof payload.iat === 'number' ? payload.iat : 0;
      if (person.sessionsValidAfter && issuedAt < Math.floor(person.sessionsValidAfter.getTime() / 1000)) throw invalidToken('this console session has ended: sign in again', 'DPoP');
      if (!person.roles.includes(ADMIN_ROLE)) {
        throw new ApiError(403, 'forbidden', 'you do not hold the admin role: ask an administrator to give it to you', {
          headers: { 'WWW-Authenticate': 'DPoP realm="gatehouse-admin", error="insufficient_scope", error_description="the admin role is required"' },
        });
      }
      caller = { clientId, personId };
      await deps.activity?.touch(personId);
    } else {
      const client = clientId ? await deps.cache.getClient(clientId) : undefined;
      if (!clientId || payload.sub !== clientId || !client?.admin) {
        throw invalidToken('the access token was not issued to an admin client', scheme);
      }
      caller = { clientId };
    }
    const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ') : [];
    if (!scopes.includes(ADMIN_SCOPE)) {
      throw new ApiError(403, 'insufficient_scope', 'the access token lacks the admin scope', {
        headers: { 'WWW-Authenticate': `${scheme} realm="gatehouse-admin", error="insufficient_scope", scope="${ADMIN_SCOPE}"` },
      });
    }
    ctx.state.admin = caller;
    await next();
  };
}
