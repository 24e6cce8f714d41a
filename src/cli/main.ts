import { CommanderError } from 'commander';
import { ConfigError } from '../config/load-config.js';
import { ConflictError, NotFoundError, ValidationError } from '../services/errors.js';
import { createRuntime } from './define.js';
import { processIo, UsageError, type CliIo } from './output.js';
import { createProgram, USAGE_EXIT_CODE } from './program.js';
import { PromptInterruptedError } from './prompt.js';

/** Field names in service errors are wire names; say them as the CLI flags the user typed. */
const FLAG_FOR_FIELD: Record<string, string> = {
  client_name: '--name',
  redirect_uris: '--redirect-uri',
  post_logout_redirect_uris: '--post-logout-redirect-uri',
  grant_types: '--grant-type',
  token_endpoint_auth_method: '--auth-method',
  scope: '--scope',
  default_resource: '--resource',
  jwks: '--jwks-file',
  logo_uri: '--logo-uri',
  identifier: '--identifier',
  name: '--name',
  access_token_ttl: '--access-token-ttl',
  email: '--email',
  password: '--password-stdin',
  expires_in: '--expires-in',
};

function flagFor(field: string): string {
  const [head] = field.split('.');
  return FLAG_FOR_FIELD[head ?? field] ?? field;
}

/**
 * Runs one CLI command line (the words after `gatehouse`); returns the exit code: 0 ok, 1 refused or
 * failed, 2 usage (see the program's help), 130 interrupted at a password prompt.
 *
 * @example
 * process.exitCode = await runCli(process.argv.slice(2));
 */
export async function runCli(argv: string[], io: CliIo = processIo()): Promise<number> {
  const runtime = createRuntime(io);
  try {
    await createProgram(runtime).parseAsync(argv, { from: 'user' });
    return runtime.exitCode;
  } catch (error) {
    // Help and --version: already written.
    if (error instanceof CommanderError) return error.exitCode;
    return reportError(io, error);
  }
}

function reportError(io: CliIo, error: unknown): number {
  if (error instanceof UsageError) {
    io.stderr(`gatehouse: ${error.message}\n`);
    return USAGE_EXIT_CODE;
  }
  if (error instanceof ConfigError) {
    io.stderr(`gatehouse: configuration error: ${error.problems.join('; ')}\n`);
    return 1;
  }
  if (error instanceof PromptInterruptedError) {
    io.stderr('gatehouse: interrupted\n');
    return 130;
  }
  if (error instanceof ValidationError) {
    io.stderr(`gatehouse: ${error.errors.map((e) => `${flagFor(e.field)}: ${e.message}`).join('; ')}\n`);
    return 1;
  }
  if (error instanceof ConflictError) {
    io.stderr(`gatehouse: ${flagFor(error.field)}: ${error.message.slice(error.field.length + 2)}\n`);
    return 1;
  }
  if (error instanceof NotFoundError) {
    io.stderr(`gatehouse: ${error.message}\n`);
    return 1;
  }
  io.stderr(`gatehouse: ${(error as Error).message ?? String(error)}\n`);
  return 1;
}
