import type { Command } from 'commander';
import { createUser, deleteUser, disableUser, enableUser, getUser, listUsers, ROLES, setUserPassword, updateUserFields, userToJson } from '../../services/users.service.js';
import { cliActor, type CliRegistry } from '../cli-audit.js';
import { cliLogger, withDatabase, type Context } from '../context.js';
import { createMailComposer } from '../../mail/compose.js';
import { createMailer, type MailOutcome } from '../../mail/smtp-mailer.js';
import { sendVerificationLink, type EmailMailDeps } from '../../services/email-verification.service.js';
import { choiceOption, collect, group, handle, list, str, takesPasswordOnStdin, type CliRuntime } from '../define.js';
import { printResult, readStdinPassword, UsageError } from '../output.js';
import { apiKeysCommand } from './api-keys.command.js';

const PASSWORD_HELP = `
The password is read from standard input, without one trailing newline; passwords are never taken
as arguments (ps and shell history would show them). On a terminal, it is asked for twice and not
shown. For example:
  gatehouse users create --email ada@example.com --name "Ada Lovelace" --password-stdin < password.txt
`;

const PASSWORD_STDIN = 'read the password from standard input (on a terminal: asked for, not shown)';

/** The mail `users create --send-verification` sends itself, and whether it was handed over (or written to the development outbox). */
function cliMail(ctx: Context): { deps: EmailMailDeps; delivered: () => boolean } {
  const outcomes: MailOutcome[] = [];
  const mailer = createMailer({ config: ctx.config, logger: cliLogger(ctx.io), onOutcome: (_kind, outcome) => outcomes.push(outcome) });
  if (!mailer.available) throw new Error('users create --send-verification: no mail can be sent (SMTP_URL is not set, and production has no outbox); nothing was created');
  return {
    deps: { mailer, compose: createMailComposer(ctx.config.brand), issuer: ctx.config.issuer, brandName: ctx.config.brand.name },
    delivered: () => outcomes.includes('sent') || outcomes.includes('written'),
  };
}

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
    .option('--send-verification', 'mail them a link that confirms their address (needs SMTP_URL in production)')
    .addOption(choiceOption('--role <ROLE>', 'a role they hold (admin: the console); repeat for more', ROLES).argParser(collect))
    .addHelpText('after', PASSWORD_HELP)
    .action(
      handle(runtime, async (ctx, values) => {
        const { io, json } = ctx;
        if (str(values, 'email') === undefined) throw new UsageError('users create needs --email EMAIL');
        if (values['password-stdin'] !== true) {
          throw new UsageError('users create needs --password-stdin: pipe the password to it (passwords are never taken as arguments)');
        }
        // The CLI sends the mail itself (no server is needed): refused before anything is created
        // when no mail can go (production without SMTP_URL), never pretended.
        const mail = values['send-verification'] === true ? cliMail(ctx) : undefined;
        try {
          const body = {
            email: str(values, 'email'),
            password: await readStdinPassword(io, '--password-stdin'),
            ...(values.name !== undefined ? { name: str(values, 'name') } : {}),
            ...(values.role !== undefined ? { roles: list(values, 'role') } : {}),
          };
          await withDatabase(ctx, async (registry) => {
            const user = await createUser(registry, cliActor(), body);
            if (!mail) {
              printResult(io, json, userToJson(user));
              return;
            }
            await sendVerificationLink({ db: registry.db, audit: registry.audit, mail: mail.deps }, cliActor(), user.id);
            // Waits for the queue to hand the message over before the process ends.
            await mail.deps.mailer.close();
            if (!mail.delivered()) {
              throw new Error(`user ${user.id} was created, but the verification mail could not be delivered (check SMTP_URL); nothing else was sent`);
            }
            printResult(io, json, { ...userToJson(user), verification_sent: true });
          });
        } finally {
          await mail?.deps.mailer.close();
        }
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
    .command('set-roles')
    .summary("set a person's roles")
    .usage('ID [--role ROLE]...')
    .description("Sets a person's roles to exactly those given (none: no role). admin lets them use the console.")
    .argument('<ID>', "the person's id")
    .addOption(choiceOption('--role <ROLE>', 'a role they hold (admin: the console); repeat for more', ROLES).argParser(collect))
    .action(
      handle(runtime, async (ctx, values, ids) => {
        const { io, json } = ctx;
        await byId(ctx, ids, async (registry, id) => {
          printResult(io, json, userToJson(await updateUserFields(registry, cliActor(), id, { roles: list(values, 'role') ?? [] })));
        });
      }),
    );

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
