import { Argument, Command } from 'commander';
import { describeCommands } from '../command-tree.js';
import { bashCompletion, zshCompletion } from '../completion.js';
import { jsonRequested, type CliRuntime } from '../define.js';

const COMPLETION_HELP = `
Loads in the current shell with  source <(gatehouse completion bash)  (zsh: after compinit), or
for every shell:
  gatehouse completion bash > ~/.local/share/bash-completion/completions/gatehouse
  gatehouse completion zsh > "\${fpath[1]}/_gatehouse"
It completes the command \`gatehouse\` where the shell finds it on PATH (after npm link in a checkout).
`;

/** `gatehouse completion bash|zsh`: a completion script generated from the command definitions. */
export function completionCommand(runtime: CliRuntime): Command {
  return new Command('completion')
    .summary('print a shell completion script (bash or zsh)')
    .description('Prints a completion script for bash or zsh, generated from these command definitions.')
    .addArgument(new Argument('<SHELL>', 'the shell').choices(['bash', 'zsh']))
    .addHelpText('after', COMPLETION_HELP)
    .action((shell: string, _options: unknown, command: Command) => {
      let program = command;
      while (program.parent) program = program.parent;
      const commands = describeCommands(program);
      const script = shell === 'zsh' ? zshCompletion(commands) : bashCompletion(commands);
      runtime.io.stdout(jsonRequested(command) ? `${JSON.stringify({ shell, script }, null, 2)}\n` : script);
    });
}
