import { parseArgs } from 'node:util';
import type { Config } from '../config/load-config.js';
import { cliActor, type CliRegistry } from './cli-audit.js';
import { printResult, UsageError, type CliIo } from './output.js';

/** What the registration commands need from the CLI: its output, the configuration and a way to open the registry. */
export interface RegistrationCommandDeps {
  io: CliIo;
  json: boolean;
  config: Config;
  withDatabase<T>(run: (registry: CliRegistry) => Promise<T>): Promise<T>;
}

const TOKEN_NOTE = 'initial_access_token is shown this once: hand it to whoever registers clients (POST /reg, Authorization: Bearer …); it registers clients until it expires or is revoked (registration token list shows its id, registration token revoke ID ends it).';

function parseTokenArgs(args: string[], options: { expiresIn: boolean; positionals: number }): { expiresIn: string | undefined; ids: string[] } {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: { json: { type: 'boolean' }, ...(options.expiresIn ? { 'expires-in': { type: 'string' } } : {}) },
    });
  } catch (error) {
    throw new UsageError((error as Error).message.split('\n')[0] ?? 'bad arguments');
  }
  if (parsed.positionals.length > options.positionals) throw new UsageError(`unexpected argument "${parsed.positionals[options.positionals]}"`);
  if (parsed.positionals.length < options.positionals) throw new UsageError('expected one ID (from registration token list)');
  const value = (parsed.values as { 'expires-in'?: string })['expires-in'];
  return { expiresIn: value, ids: parsed.positionals };
}

function parseExpiresIn(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[1-9]\d{0,15}$/.test(value)) throw new UsageError(`--expires-in must be a whole number of seconds (got "${value}")`);
  return Number(value);
}

const USAGE = 'use registration token create [--expires-in SECONDS], registration token list or registration token revoke ID';

/**
 * `gatehouse registration token create [--expires-in SECONDS] | list | revoke ID`: initial access
 * tokens for dynamic client registration (RFC 7591). A new token is printed once; the listing shows
 * ids derived from the stored tokens (never their values), which revoke takes. A token lives at most
 * REGISTRATION_TOKEN_MAX_TTL_SECONDS (30 days unless configured).
 */
export async function runRegistrationCommand(deps: RegistrationCommandDeps, sub: string | undefined, args: string[]): Promise<number> {
  const { io, json, config } = deps;
  const [object, verb, ...rest] = [sub, ...args];
  if (object !== 'token' || (verb !== 'create' && verb !== 'list' && verb !== 'revoke')) {
    throw new UsageError(`unknown command "registration ${[object, verb].filter(Boolean).join(' ')}": ${USAGE}`);
  }
  // Loaded here, not at start: oidc-provider costs every other command ~0.2 s of start-up.
  const service = await import('../services/registration.service.js');
  if (verb === 'list') {
    parseTokenArgs(rest, { expiresIn: false, positionals: 0 });
    await deps.withDatabase(async (registry) => {
      printResult(io, json, (await service.listInitialAccessTokens(registry.db)).map(service.initialAccessTokenToJson));
    });
    return 0;
  }
  if (verb === 'revoke') {
    const { ids } = parseTokenArgs(rest, { expiresIn: false, positionals: 1 });
    const id = ids[0] ?? '';
    await deps.withDatabase(async (registry) => {
      await service.revokeInitialAccessToken(registry, cliActor(), id);
      printResult(io, json, { id, revoked: true });
    });
    return 0;
  }
  const expiresIn = parseExpiresIn(parseTokenArgs(rest, { expiresIn: true, positionals: 0 }).expiresIn);
  await deps.withDatabase(async (registry) => {
    const { id, token, expiresAt } = await service.createInitialAccessToken(
      { db: registry.db, audit: registry.audit, issuer: config.issuer, maxTtl: config.registrationTokenMaxTtlSeconds },
      cliActor(),
      expiresIn,
    );
    printResult(io, json, { id, initial_access_token: token, expires_at: expiresAt.toISOString() }, json ? undefined : TOKEN_NOTE);
  });
  if (!config.registrationEnabled) {
    io.stderr('gatehouse: note: REGISTRATION_ENABLED is not true here; the server takes registrations only where it is\n');
  }
  return 0;
}
