import { Command, Option } from 'commander';
import { loadConfig } from '../config/load-config.js';
import type { Context } from './context.js';
import { UsageError, type CliIo } from './output.js';

/** A command's options as the user spelled them: `values['redirect-uri']`, not commander's camelCase. */
export type Values = Record<string, string | boolean | string[] | undefined>;

/** What every command's action shares: the CLI's output and the exit code the action chose. */
export interface CliRuntime {
  readonly io: CliIo;
  exitCode: number;
}

export function createRuntime(io: CliIo): CliRuntime {
  return { io, exitCode: 0 };
}

/** A command body: the context, its options by flag name and its positional arguments; returns the exit code (0 when void). */
export type Handler = (ctx: Context, values: Values, ids: string[]) => Promise<number | void>;

/** The options given to `command`, keyed by long flag without the dashes; `--no-x` sets `x` to false. */
export function valuesOf(command: Command): Values {
  const opts = command.opts<Record<string, unknown>>();
  const values: Values = {};
  for (const option of command.options) {
    if (option.negate || !option.long) continue;
    const value = opts[option.attributeName()];
    if (typeof value === 'string' || typeof value === 'boolean' || Array.isArray(value)) values[option.long.slice(2)] = value as Values[string];
  }
  return values;
}

/** Whether --json was given anywhere on the line (it is the root command's option). */
export function jsonRequested(command: Command): boolean {
  return command.optsWithGlobals<{ json?: boolean }>().json === true;
}

/**
 * A commander action that loads the configuration (a ConfigError ends the command, exit 1) and runs
 * `run` with the command's options and arguments; its result is the exit code.
 */
export function handle(runtime: CliRuntime, run: Handler): (...args: unknown[]) => Promise<void> {
  return async (...args) => {
    const command = args.at(-1) as Command;
    const config = loadConfig(runtime.io.env, runtime.io.cwd, { server: false });
    const ids = command.processedArgs.map((arg: unknown) => String(arg));
    runtime.exitCode = (await run({ io: runtime.io, config, json: jsonRequested(command) }, valuesOf(command), ids)) ?? 0;
  };
}

/** A group of commands (`gatehouse clients …`); what a group named alone does is set up by the program. */
export function group(name: string, summary: string): Command {
  return new Command(name).summary(summary).description(`${summary[0]?.toUpperCase() ?? ''}${summary.slice(1)}.`);
}

/** Collects a repeatable option's values in order: `--redirect-uri A --redirect-uri B` → [A, B]. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** An option whose value is one of `choices`, listed in help and completion; the command itself checks the value (so that its error stays its own). */
export function choiceOption(flags: string, description: string, choices: readonly string[]): Option {
  const option = new Option(flags, description);
  option.argChoices = [...choices];
  return option;
}

/** A command that reads a password from standard input through `flag`: a password typed as an argument is refused without echoing it. */
export interface PasswordInput {
  flag: string;
  /** What the password is, as in "pipe <what> to <flag>". */
  what: string;
}

const PASSWORD_INPUTS = new WeakMap<Command, PasswordInput>();

export function takesPasswordOnStdin(command: Command, input: PasswordInput): Command {
  PASSWORD_INPUTS.set(command, input);
  return command;
}

export function passwordInputOf(command: Command): PasswordInput | undefined {
  return PASSWORD_INPUTS.get(command);
}

export function str(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

export function list(values: Values, name: string): string[] | undefined {
  const value = values[name];
  return Array.isArray(value) ? value : undefined;
}

export function seconds(values: Values, name: string): number | undefined {
  const value = str(values, name);
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} must be a whole number of seconds (got "${value}")`);
  return Number(value);
}
