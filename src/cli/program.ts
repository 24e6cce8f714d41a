import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Command, type CommanderError } from 'commander';
import { commandPath } from './command-tree.js';
import { auditCommand } from './commands/audit.command.js';
import { clientsCommand } from './commands/clients.command.js';
import { completionCommand } from './commands/completion.command.js';
import { dbCommand } from './commands/db.command.js';
import { keysCommand } from './commands/keys.command.js';
import { migrateCommand } from './commands/migrate.command.js';
import { providersCommand } from './commands/providers.command.js';
import { registrationCommand } from './commands/registration.command.js';
import { resourcesCommand } from './commands/resources.command.js';
import { usersCommand } from './commands/users.command.js';
import { jsonRequested, passwordInputOf, type CliRuntime } from './define.js';
import { UsageError } from './output.js';

/** Exit code of a command line that is not a command: unknown command or option, missing or extra argument, a group named alone. */
export const USAGE_EXIT_CODE = 2;

const PROGRAM_HELP = `
Every command takes --json (anywhere on the line) and then prints one JSON document on stdout and
nothing else. Errors are one line on stderr, starting "gatehouse: " and naming the flag to fix.

Exit codes: 0 done; 1 refused or failed (a rule, a missing record, the configuration, the
database); 2 the command line itself (an unknown command or option, a missing or extra argument,
or a group named without a command, whose commands are then listed: on stdout, or on stderr with
--json); 130 Ctrl-C at a password prompt.

Run gatehouse <command> --help for a command's options.
`;

/** The version in Gatehouse's package.json (found above this file, in src/ or in dist/). */
function packageVersion(): string {
  for (let dir = import.meta.dirname; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (existsSync(file)) {
      const manifest = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
      if (manifest.name === 'gatehouse' && typeof manifest.version === 'string') return manifest.version;
    }
    if (path.dirname(dir) === dir) return 'unknown';
  }
}

/**
 * What to type instead, for a group: its commands, the group named once (`use audit tail, verify,
 * checkpoint or rotate-key`); a nested group's commands in full (`registration token create`).
 */
function alternatives(group: Command): string {
  const prefix = commandPath(group);
  const names = group.commands.flatMap((sub) =>
    sub.commands.length > 0 ? sub.commands.map(commandPath) : [sub.name()],
  );
  const [first, ...rest] = names;
  const words = [first && !first.startsWith(`${prefix} `) ? `${prefix} ${first}` : (first ?? ''), ...rest];
  return words.length > 1 ? `${words.slice(0, -1).join(', ')} or ${words.at(-1)}` : words.join('');
}

/**
 * A group named alone lists its commands (on stdout, or stderr with --json, whose stdout is JSON or
 * nothing) and exits 2; a group given an unknown command says which commands there are.
 */
function groupAction(runtime: CliRuntime, group: Command): () => void {
  return () => {
    const [unknown] = group.args;
    if (unknown === undefined) {
      group.outputHelp({ error: jsonRequested(group) });
      runtime.exitCode = USAGE_EXIT_CODE;
      return;
    }
    if (!group.parent) throw new UsageError(`unknown command "${unknown}" (run gatehouse --help)`);
    throw new UsageError(`unknown command "${commandPath(group)} ${unknown}": use ${alternatives(group)}`);
  };
}

/**
 * commander's parse errors as the CLI's one-line usage errors: the flag named, never a value (a
 * password typed as an argument is not echoed). Help and --version pass through with their exit code 0.
 */
function usageErrorOf(command: Command, error: CommanderError): Error {
  const message = error.message.replace(/^error: /, '');
  switch (error.code) {
    case 'commander.helpDisplayed':
    case 'commander.version':
    case 'commander.help':
      return error;
    case 'commander.unknownOption': {
      const [, given = '', suggestion = ''] = /^unknown option '([^']*)'\s*(?:\((.*)\))?/s.exec(message) ?? [];
      const password = passwordInputOf(command);
      if (password && /^--[^=]*password/.test(given)) {
        return new UsageError(`passwords are never taken as arguments: pipe ${password.what} to ${password.flag}`);
      }
      const flag = given.split('=')[0];
      return new UsageError(`unknown option '${flag}'${suggestion ? ` (${suggestion.replace(/^Did/, 'did')})` : ''}`);
    }
    case 'commander.excessArguments': {
      const expected = command.registeredArguments.length;
      if (expected > 0) return new UsageError(`expected one ${command.registeredArguments[0]?.name()}, got ${command.args.length}`);
      const password = passwordInputOf(command);
      if (password) return new UsageError(`${commandPath(command)} takes no arguments but its options (${password.what} goes to ${password.flag})`);
      return new UsageError(`unexpected argument "${command.args[0]}"`);
    }
    case 'commander.missingArgument': {
      const [argument] = command.registeredArguments;
      const choices = argument?.argChoices ? ` (${argument.argChoices.join(' or ')})` : '';
      return new UsageError(`expected one ${argument?.name()}${choices}, got 0`);
    }
    default:
      return new UsageError(message.replace(/\s*\n\s*/g, ' '));
  }
}

/** Output, help, errors and group behaviour, the same for every command of the tree. */
function configure(command: Command, runtime: CliRuntime): void {
  const { io } = runtime;
  const width = io.columns ?? 100;
  command
    .configureOutput({
      writeOut: io.stdout,
      writeErr: io.stderr,
      // The one line is written by runCli, from the error thrown below.
      outputError: () => undefined,
      getOutHelpWidth: () => width,
      getErrHelpWidth: () => width,
      getOutHasColors: () => false,
      getErrHasColors: () => false,
    })
    .configureHelp({ showGlobalOptions: true })
    .helpOption('-h, --help', 'show this help')
    .exitOverride((error) => {
      throw usageErrorOf(command, error);
    });
  if (command.commands.length > 0) command.allowExcessArguments(true).action(groupAction(runtime, command));
  for (const sub of command.commands) configure(sub, runtime);
}

/**
 * The `gatehouse` command tree: one module per command group under commands/, each command's body
 * a call into the services. Help, usage errors, --version and shell completion are generated from
 * these definitions.
 *
 * @example
 * const runtime = createRuntime(processIo());
 * await createProgram(runtime).parseAsync(['clients', 'list', '--json'], { from: 'user' });
 */
export function createProgram(runtime: CliRuntime): Command {
  const program = new Command('gatehouse')
    .description('Gatehouse, an OAuth 2.0 / OpenID Connect authorization server: its registry, keys and audit log.')
    .usage('<command> [options] [--json]')
    .version(packageVersion(), '-V, --version', 'print the version')
    .option('--json', 'print one JSON document on stdout and nothing else (anywhere on the line)')
    .addHelpText('after', PROGRAM_HELP);
  for (const command of [
    migrateCommand(runtime),
    keysCommand(runtime),
    resourcesCommand(runtime),
    clientsCommand(runtime),
    usersCommand(runtime),
    providersCommand(runtime),
    registrationCommand(runtime),
    auditCommand(runtime),
    dbCommand(runtime),
    completionCommand(runtime),
  ]) {
    program.addCommand(command);
  }
  configure(program, runtime);
  // After configure: the program's fallback action would otherwise turn the implicit help command off.
  program.helpCommand('help [command]', 'show help for a command');
  return program;
}
