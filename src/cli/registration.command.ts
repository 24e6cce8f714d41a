import { parseArgs } from 'node:util';
import type { Config } from '../config/load-config.js';
import { recordCliChange, type CliRegistry } from './cli-audit.js';
import { printResult, UsageError, type CliIo } from './output.js';

/** What the registration commands need from the CLI: its output, the configuration and a way to open the registry. */
export interface RegistrationCommandDeps {
  io: CliIo;
  json: boolean;
  config: Config;
  withDatabase<T>(run: (registry: CliRegistry) => Promise<T>): Promise<T>;
}

const TOKEN_NOTE = 'initial_access_token is shown this once: hand it to whoever registers clients (POST /reg, Authorization: Bearer …); it registers clients until it expires.';

function parseExpiresIn(args: string[]): number | undefined {
  let values: { 'expires-in'?: string | undefined };
  try {
    const parsed = parseArgs({ args, strict: true, allowPositionals: true, options: { json: { type: 'boolean' }, 'expires-in': { type: 'string' } } });
    if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`);
    values = parsed.values;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError((error as Error).message.split('\n')[0] ?? 'bad arguments');
  }
  const value = values['expires-in'];
  if (value === undefined) return undefined;
  if (!/^[1-9]\d*$/.test(value)) throw new UsageError(`--expires-in must be a whole number of seconds (got "${value}")`);
  return Number(value);
}

/**
 * `gatehouse registration token create [--expires-in SECONDS]`: an initial access token for dynamic
 * client registration (RFC 7591), printed once.
 */
export async function runRegistrationCommand(deps: RegistrationCommandDeps, sub: string | undefined, args: string[]): Promise<number> {
  const { io, json, config } = deps;
  const [object, ...rest] = args;
  if (sub !== 'token' || object !== 'create') {
    throw new UsageError(`unknown command "registration ${[sub, object].filter(Boolean).join(' ')}": use registration token create`);
  }
  const expiresIn = parseExpiresIn(rest);
  // Loaded here, not at start: oidc-provider costs every other command ~0.2 s of start-up.
  const { createInitialAccessToken } = await import('../services/registration.service.js');
  await deps.withDatabase(async (registry) => {
    const { token, expiresAt } = await createInitialAccessToken({ db: registry.db, issuer: config.issuer }, expiresIn);
    const out = { initial_access_token: token, expires_at: expiresAt.toISOString() };
    await recordCliChange(registry, { action: 'registration.token_create', details: { expires_at: out.expires_at } }, () =>
      printResult(io, json, out, json ? undefined : TOKEN_NOTE),
    );
  });
  if (!config.registrationEnabled) {
    io.stderr('gatehouse: note: REGISTRATION_ENABLED is not true here; the server takes registrations only where it is\n');
  }
  return 0;
}
