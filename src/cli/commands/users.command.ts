import type { Command } from 'commander';
import { createUser, deleteUser, disableUser, enableUser, getUser, listUsers, setUserPassword, userToJson } from '../../services/users.service.js';
import { cliActor, type CliRegistry } from '../cli-audit.js';
import { withDatabase, type Context } from '../context.js';
import { group, handle, str, takesPasswordOnStdin, type CliRuntime } from '../define.js';
import { printResult, readStdinPassword, UsageError } from '../output.js';
import { apiKeysCommand } from './api-keys.command.js';

const PASSWORD_HELP = `
The password is read from standard input, without one trailing newline; passwords are never taken
as arguments (ps and shell history would show them). On a terminal, it is asked for twice and not
shown. For example:
  gatehouse users create --email ada@example.com --name "Ada Lovelace" --password-stdin < password.txt
`;

const PASSWORD_STDIN = 'read the password from standard input (on a terminal: asked for, not shown)';

/** `gatehouse users create | list | get | set-password | disable | enable | delete | api-keys …`: the people who sign in. */
export function usersCommand(runtime: CliRuntime): Command {
  const users = group('users', 'manage the people who sign in');
  const byId = (ctx: Context, ids: string[], run: (registry: CliRegistry, id: string) => Promise<void>) =>
    withDatabase(ctx, (registry) => run(registry, ids[0] ?? ''));

  const create = users
    .command('create')
    .summary('add a person who signs in with a password')
    .usage('--email EMAIL --password-stdin [options]')
    .description('Adds a person who signs in with an email and a password.')
    .option('--email <EMAIL>', 'their email (stored trimmed and lower case)')
    .option('--name <NAME>', 'their name')
    .option('--password-stdin', PASSWORD_STDIN)
    .addHelpText('after', PASSWORD_HELP)
    .action(
      handle(runtime, async (ctx, values) => {
        const { io, json } = ctx;
        if (str(values, 'email') === undefined) throw new UsageError('users create needs --email EMAIL');
        if (values['password-stdin'] !== true) {
          throw new UsageError('users create needs --password-stdin: pipe the password to it (passwords are never taken as arguments)');
        }
        const body = {
          email: str(values, 'email'),
          password: await readStdinPassword(io, '--password-stdin'),
          ...(values.name !== undefined ? { name: str(values, 'name') } : {}),
        };
        await withDatabase(ctx, async (registry) => {
          printResult(io, json, userToJson(await createUser(registry, cliActor(), body)));
        });
      }),
    );
  takesPasswordOnStdin(create, { flag: '--password-stdin', what: 'the password' });

  users
    .command('list')
    .summary('list the people')
    .description('Lists the people (never a password or its hash).')
    .action(
      handle(runtime, async (ctx) => {
        const { io, json } = ctx;
        await withDatabase(ctx, async (registry) => {
          const users = (await listUsers(registry.db)).map(userToJson);
          if (json) printResult(io, true, users);
          else printResult(io, false, users.map((u) => ({ id: u.id, email: u.email, name: u.name, disabled: u.disabled })));
        });
      }),
    );

  users
    .command('get')
    .summary('show one person')
    .description('Shows one person.')
    .argument('<ID>', 'the person\'s id')
    .action(
      handle(runtime, async (ctx, _values, ids) => {
        const { io, json } = ctx;
        await byId(ctx, ids, async (registry, id) => printResult(io, json, userToJson(await getUser(registry.db, id))));
      }),
    );

  const setPassword = users
    .command('set-password')
    .summary("set a person's password")
    .usage('ID --password-stdin [options]')
    .description('Sets a person\'s password; ends their browser sessions, consents and refresh tokens unless --keep-sessions.')
    .argument('<ID>', 'the person\'s id')
    .option('--password-stdin', PASSWORD_STDIN)
    .option('--keep-sessions', 'leave their sessions, consents and refresh tokens as they are')
    .addHelpText('after', PASSWORD_HELP)
    .action(
      handle(runtime, async (ctx, values, ids) => {
        const { io, json } = ctx;
        if (values['password-stdin'] !== true) {
          throw new UsageError('users set-password needs --password-stdin: pipe the password to it (passwords are never taken as arguments)');
        }
        const id = ids[0] ?? '';
        const keepSessions = values['keep-sessions'] === true;
        const password = await readStdinPassword(io, '--password-stdin');
        await withDatabase(ctx, async (registry) => {
          const after = userToJson(await setUserPassword(registry, cliActor(), id, password, { keepSessions }));
          printResult(io, json, { ...after, sessions_ended: !keepSessions });
        });
      }),
    );
  takesPasswordOnStdin(setPassword, { flag: '--password-stdin', what: 'the password' });

  for (const sub of ['disable', 'enable'] as const) {
    users
      .command(sub)
      .summary(sub === 'disable' ? 'stop a person from signing in' : 'let a disabled person sign in again')
      .description(sub === 'disable' ? 'Stops a person from signing in.' : 'Lets a disabled person sign in again.')
      .argument('<ID>', 'the person\'s id')
      .action(
        handle(runtime, async (ctx, _values, ids) => {
          const { io, json } = ctx;
          await byId(ctx, ids, async (registry, id) => {
            printResult(io, json, userToJson(await (sub === 'disable' ? disableUser : enableUser)(registry, cliActor(), id)));
          });
        }),
      );
  }

  users
    .command('delete')
    .summary('delete a person')
    .description('Deletes a person.')
    .argument('<ID>', 'the person\'s id')
    .action(
      handle(runtime, async (ctx, _values, ids) => {
        const { io, json } = ctx;
        await byId(ctx, ids, async (registry, id) => {
          await deleteUser(registry, cliActor(), id);
          printResult(io, json, { id, deleted: true });
        });
      }),
    );
  users.addCommand(apiKeysCommand(runtime));
  return users;
}
