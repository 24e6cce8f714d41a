import type { Command } from 'commander';
import type { Config } from '../../config/load-config.js';
import { cliActor, type CliRegistry } from '../cli-audit.js';
import { withDatabase, type Context } from '../context.js';
import { group, handle, str, type CliRuntime, type Values } from '../define.js';
import { printResult, UsageError, type CliIo } from '../output.js';
import * as service from '../../services/registration.service.js';

/** What the registration commands need from the CLI: its output, the configuration and a way to open the registry. */
export interface RegistrationCommandDeps {
  io: CliIo;
  json: boolean;
  config: Config;
  withDatabase<T>(run: (registry: CliRegistry) => Promise<T>): Promise<T>;
}

const TOKEN_NOTE = 'initial_access_token is shown this once: hand it to whoever registers clients (POST /reg, Authorization: Bearer …); it registers clients until it expires or is revoked (registration token list shows its id, registration token revoke ID ends it).';

function parseExpiresIn(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[1-9]\d{0,15}$/.test(value)) throw new UsageError(`--expires-in must be a whole number of seconds (got "${value}")`);
  return Number(value);
}

/**
 * `gatehouse registration token create [--expires-in SECONDS] | list | revoke ID`: initial access
 * tokens for dynamic client registration (RFC 7591). A new token is printed once; the listing shows
 * ids derived from the stored tokens (never their values), which revoke takes. A token lives at most
 * REGISTRATION_TOKEN_MAX_TTL_SECONDS (30 days unless configured). Returns the exit code; commander
 * has parsed the options (`options`) and the ID (`ids`) by then.
 */
export async function runRegistrationCommand(
  deps: RegistrationCommandDeps,
  verb: 'create' | 'list' | 'revoke',
  options: Values,
  ids: string[],
): Promise<number> {
  const { io, json, config } = deps;
  if (verb === 'list') {
    await deps.withDatabase(async (registry) => {
      printResult(io, json, (await service.listInitialAccessTokens(registry.db)).map(service.initialAccessTokenToJson));
    });
    return 0;
  }
  if (verb === 'revoke') {
    const id = ids[0] ?? '';
    await deps.withDatabase(async (registry) => {
      await service.revokeInitialAccessToken(registry, cliActor(), id);
      printResult(io, json, { id, revoked: true });
    });
    return 0;
  }
  const expiresIn = parseExpiresIn(str(options, 'expires-in'));
  await deps.withDatabase(async (registry) => {
    const { id, token, expiresAt } = await service.createInitialAccessToken(
      { db: registry.db, audit: registry.audit, maxTtl: config.registrationTokenMaxTtlSeconds },
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

/** `gatehouse registration token create | list | revoke`: initial access tokens for POST /reg. */
export function registrationCommand(runtime: CliRuntime): Command {
  const registration = group('registration', 'mint, list and revoke initial access tokens for dynamic client registration');
  const token = group('token', 'initial access tokens: whoever holds one registers clients at POST /reg');
  registration.addCommand(token);
  const deps = (ctx: Context): RegistrationCommandDeps => ({ io: ctx.io, json: ctx.json, config: ctx.config, withDatabase: (run) => withDatabase(ctx, run) });

  token
    .command('create')
    .summary('mint an initial access token, printed once')
    .description(
      'Mints an initial access token for POST /reg, printed once: 1 day unless --expires-in, at most REGISTRATION_TOKEN_MAX_TTL_SECONDS (30 days by default).',
    )
    .option('--expires-in <SECONDS>', 'how long it registers clients')
    .action(handle(runtime, (ctx, values, ids) => runRegistrationCommand(deps(ctx), 'create', values, ids)));
  token
    .command('list')
    .summary('list the tokens by their ids')
    .description('Lists the tokens by ids derived from them (never their values).')
    .action(handle(runtime, (ctx, values, ids) => runRegistrationCommand(deps(ctx), 'list', values, ids)));
  token
    .command('revoke')
    .summary('end a token')
    .description('Ends a token: /reg refuses it at once.')
    .argument('<ID>', 'its id, from registration token list')
    .action(handle(runtime, (ctx, values, ids) => runRegistrationCommand(deps(ctx), 'revoke', values, ids)));
  return registration;
}
