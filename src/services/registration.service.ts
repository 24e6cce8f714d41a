import { createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { deleteInitialAccessTokenRow, insertInitialAccessTokenRow, listInitialAccessTokenRows } from '../registry/initial-access-token.repository.js';
import type { Database } from '../registry/tables.js';
import { digestTokenValue } from '../registry/token-digest.js';
import { z } from 'zod';
import { recordChange, type AuditActor, type RegistryServiceDeps } from './changes.js';
import { NotFoundError, ValidationError } from './errors.js';
import { parseInput } from './validation.js';

/** How long an initial access token lives when the command does not say (never beyond the cap). */
export const DEFAULT_INITIAL_ACCESS_TOKEN_TTL = 24 * 3600;
/** The cap when the configuration gives none (REGISTRATION_TOKEN_MAX_TTL_SECONDS). */
export const DEFAULT_INITIAL_ACCESS_TOKEN_MAX_TTL = 30 * 24 * 3600;

/** An initial access token, shown once: the registry keeps only its digest, until it expires. */
export interface InitialAccessTokenIssued {
  /** The token's listing id (not the token): what `registration token revoke` takes. */
  id: string;
  token: string;
  expiresAt: Date;
}

/** An initial access token as listed: never its value. */
export interface InitialAccessTokenListed {
  id: string;
  createdAt: Date;
  expiresAt: Date | null;
  expired: boolean;
}

/**
 * The id a token is listed and revoked by: the first 128 bits of SHA-256 over the key the registry
 * stores it under (itself a digest of the value), in hex: short, and no token.
 */
export function initialAccessTokenId(storedId: string): string {
  return createHash('sha256').update(storedId).digest('hex').slice(0, 32);
}

/** The key the durable adapter stores a token under: the digest of its value (token-digest.ts). */
const storedKeyOf = (value: string): string => digestTokenValue(value);

/**
 * What oidc-provider's InitialAccessToken model stores for a token without policies, in its opaque
 * format: `iat`, `exp` (epoch seconds) and `kind`; its value (`jti`) is the row's key and is not
 * kept (token-digest.ts). Written here, without oidc-provider, so that the CLI never loads it:
 * oidc/upstream.ts lists this as a reliance on the provider's internals, and its contract test
 * checks that the provider's own model saves the same and accepts a token minted here.
 */
export function initialAccessTokenPayload(issuedAt: number, expiresAt: number): { iat: number; exp: number; kind: 'InitialAccessToken' } {
  return { iat: issuedAt, exp: expiresAt, kind: 'InitialAccessToken' };
}

/**
 * A new token value as oidc-provider makes its opaque ones: 256 random bits, 43 base64url characters
 * (its default formats.bitsOfOpaqueRandomness).
 */
export function newInitialAccessTokenValue(): string {
  return randomBytes(32).toString('base64url');
}

const describeTtl = (seconds: number) =>
  seconds % 86_400 === 0 ? `${seconds / 86_400} day${seconds === 86_400 ? '' : 's'}` : `${seconds} seconds`;

/**
 * Mints an initial access token for the registration endpoint (RFC 7591 §3): a row of
 * oidc-provider's InitialAccessToken model as its durable adapter stores one (initialAccessTokenPayload),
 * so the server finds it as if it had issued it. It may register clients until it expires, at most
 * `maxTtl` seconds from now (REGISTRATION_TOKEN_MAX_TTL_SECONDS), or until it is revoked. Saved and
 * recorded as `registration.token_create` by `by` in one transaction.
 *
 * @example
 * const { id, token, expiresAt } = await createInitialAccessToken({ db, audit, maxTtl: config.registrationTokenMaxTtlSeconds }, by, 3600);
 */
export async function createInitialAccessToken(
  deps: RegistryServiceDeps & { maxTtl?: number },
  by: AuditActor,
  expiresIn?: number,
): Promise<InitialAccessTokenIssued> {
  const maxTtl = deps.maxTtl ?? DEFAULT_INITIAL_ACCESS_TOKEN_MAX_TTL;
  const ttl = expiresIn ?? Math.min(DEFAULT_INITIAL_ACCESS_TOKEN_TTL, maxTtl);
  if (!Number.isSafeInteger(ttl) || ttl < 1) {
    throw new ValidationError([{ field: 'expires_in', message: 'must be a whole number of seconds, at least 1' }]);
  }
  if (ttl > maxTtl) {
    throw new ValidationError([
      {
        field: 'expires_in',
        message: `${ttl} seconds is longer than an initial access token may live here: at most ${maxTtl} (${describeTtl(maxTtl)}, REGISTRATION_TOKEN_MAX_TTL_SECONDS)`,
      },
    ]);
  }
  return deps.db.transaction().execute(async (trx) => {
    const now = Date.now();
    const issuedAt = Math.floor(now / 1000);
    const value = newInitialAccessTokenValue();
    const payload = initialAccessTokenPayload(issuedAt, issuedAt + ttl);
    // The token and its audit row commit together.
    await insertInitialAccessTokenRow(trx, { storedId: storedKeyOf(value), payload, expiresAt: new Date(now + ttl * 1000) });
    const issued = { id: initialAccessTokenId(storedKeyOf(value)), token: value, expiresAt: new Date(payload.exp * 1000) };
    await recordChange(deps.audit, trx, by, {
      action: 'registration.token_create',
      target: `initial_access_token:${issued.id}`,
      details: { after: { id: issued.id, expires_at: issued.expiresAt.toISOString() } },
    });
    return issued;
  });
}

/** Every initial access token the registry holds, by listing id, with its times: never a token value. */
export async function listInitialAccessTokens(db: Kysely<Database>, now: Date = new Date()): Promise<InitialAccessTokenListed[]> {
  return (await listInitialAccessTokenRows(db)).map((row) => {
    // The token's own expiry (exp) is in whole seconds and ends it first: shown as create showed it.
    const expiresAt = row.expiresAt && new Date(Math.floor(row.expiresAt.getTime() / 1000) * 1000);
    return {
      id: initialAccessTokenId(row.storedId),
      createdAt: row.createdAt,
      expiresAt,
      expired: expiresAt !== null && expiresAt.getTime() <= now.getTime(),
    };
  });
}

/**
 * Revokes an initial access token by its listing id: the registration endpoint refuses it (401)
 * from then on. Recorded as `registration.token_revoke` by `by`, in the same transaction.
 */
export async function revokeInitialAccessToken(deps: RegistryServiceDeps, by: AuditActor, id: string): Promise<void> {
  const wanted = /^[0-9a-f]{32}$/.test(id) ? id : undefined;
  await deps.db.transaction().execute(async (trx) => {
    const row = wanted && (await listInitialAccessTokenRows(trx)).find((stored) => initialAccessTokenId(stored.storedId) === wanted);
    if (!row || !(await deleteInitialAccessTokenRow(trx, row.storedId))) {
      // Not echoed unless it has an id's form: what was given may be a token pasted by mistake.
      throw new NotFoundError(`initial access token ${wanted ?? 'with that id'} (give an id from registration token list)`);
    }
    await recordChange(deps.audit, trx, by, { action: 'registration.token_revoke', target: `initial_access_token:${wanted}`, details: {} });
  });
}

/** The wire form of a listed token (CLI --json). */
export function initialAccessTokenToJson(token: InitialAccessTokenListed) {
  return { id: token.id, created_at: token.createdAt.toISOString(), expires_at: token.expiresAt?.toISOString() ?? null, expired: token.expired };
}

/** The admin API's body for a new token: its lifetime in seconds, 1 day (or the cap, if shorter) unless given. */
export const initialAccessTokenCreateSchema = z.strictObject({
  expires_in: z
    .number({ error: 'must be a whole number of seconds' })
    .int('must be a whole number of seconds')
    .min(1, 'must be at least 1 second')
    .optional()
    .describe('seconds until it expires; at most REGISTRATION_TOKEN_MAX_TTL_SECONDS (30 days unless configured)'),
});

/** createInitialAccessToken for a request body (the admin API). */
export function createInitialAccessTokenFromInput(deps: RegistryServiceDeps & { maxTtl?: number }, by: AuditActor, input: unknown) {
  return createInitialAccessToken(deps, by, parseInput(initialAccessTokenCreateSchema, input).expires_in);
}
