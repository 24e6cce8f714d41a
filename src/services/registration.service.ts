import type { Kysely } from 'kysely';
import { Provider } from 'oidc-provider';
import { createDurableAdapter } from '../oidc/adapters/durable-adapter.js';
import type { Database } from '../registry/tables.js';
import { ValidationError } from './errors.js';

/** How long an initial access token lives when the command does not say. */
export const DEFAULT_INITIAL_ACCESS_TOKEN_TTL = 24 * 3600;
const MAX_INITIAL_ACCESS_TOKEN_TTL = 365 * 24 * 3600;

/** An initial access token, shown once: the registry keeps only its digest, until it expires. */
export interface InitialAccessTokenIssued {
  token: string;
  expiresAt: Date;
}

/**
 * Mints an initial access token for the registration endpoint (RFC 7591 §3). It is oidc-provider's
 * own InitialAccessToken model, saved through the same durable adapter the server reads it with, by a
 * provider built only for this (no signing keys, no other model): the server finds it as if it had
 * issued it. It may register clients until it expires.
 *
 * @example
 * const { token, expiresAt } = await createInitialAccessToken({ db, issuer }, 3600);
 */
export async function createInitialAccessToken(
  deps: { db: Kysely<Database>; issuer: string },
  expiresIn: number = DEFAULT_INITIAL_ACCESS_TOKEN_TTL,
): Promise<InitialAccessTokenIssued> {
  if (!Number.isSafeInteger(expiresIn) || expiresIn < 1 || expiresIn > MAX_INITIAL_ACCESS_TOKEN_TTL) {
    throw new ValidationError([{ field: 'expires_in', message: `must be a whole number of seconds from 1 to ${MAX_INITIAL_ACCESS_TOKEN_TTL}` }]);
  }
  const provider = new Provider(deps.issuer, {
    jwks: { keys: [] },
    adapter: (model: string) => {
      if (model !== 'InitialAccessToken') throw new Error(`this provider only mints initial access tokens, not ${model}`);
      return createDurableAdapter(model, deps.db);
    },
    features: { devInteractions: { enabled: false }, registration: { enabled: true, initialAccessToken: true } },
  });
  const value = await new provider.InitialAccessToken({ expiresIn }).save();
  // Read back as the registration endpoint will read it: proves the row is one the server accepts.
  const saved = await provider.InitialAccessToken.find(value);
  if (!saved?.exp) throw new Error('the initial access token was not stored');
  return { token: value, expiresAt: new Date(saved.exp * 1000) };
}
