import type { Command } from 'commander';

/** One command of the tree as completion and the docs test see it: generated from the definitions, never written by hand. */
export interface CommandInfo {
  /** Words after `gatehouse`: '' for the program itself, `clients`, `registration token create`. */
  path: string;
  /** A command that runs (not a group of commands). */
  leaf: boolean;
  subcommands: string[];
  /** Its visible long options, e.g. `--redirect-uri`. */
  options: string[];
  /** The options that take a value, with the value's placeholder (`FILE`) and its choices, if listed. */
  values: Array<{ flag: string; placeholder: string; choices: string[] }>;
  /** Its positional arguments' names (`ID`), and the choices of the first, if listed. */
  arguments: string[];
  argumentChoices: string[];
}

/** `clients create` for the `create` command of `clients`; '' for the program. */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let at: Command | null = command; at?.parent; at = at.parent) names.unshift(at.name());
  return names.join(' ');
}

/** Every command of the program, the program itself first, in definition order. */
export function describeCommands(program: Command): CommandInfo[] {
  const out: CommandInfo[] = [];
  const visit = (command: Command) => {
    const options = command.options.filter((option) => !option.hidden && option.long);
    out.push({
      path: commandPath(command),
      leaf: command.commands.length === 0,
      subcommands: command.commands.map((sub) => sub.name()),
      options: options.map((option) => option.long ?? ''),
      values: options
        .filter((option) => option.required || option.optional)
        .map((option) => ({
          flag: option.long ?? '',
          placeholder: /[<[]([^>\]]+)[>\]]/.exec(option.flags)?.[1] ?? '',
          choices: option.argChoices ?? [],
        })),
      arguments: command.registeredArguments.map((argument) => argument.name()),
      argumentChoices: command.registeredArguments[0]?.argChoices ?? [],
    });
    command.commands.forEach(visit);
  };
  visit(program);
  return out;
}
