import { Option, type Command } from 'commander';
import { loadDataKeyring } from '../../keys/data-key.js';
import {
  createProvider,
  deleteProvider,
  disableProvider,
  enableProvider,
  getProvider,
  listProviders,
  providerToJson,
  updateProvider,
  type UpstreamProviderDeps,
} from '../../services/upstream-providers.service.js';
import { cliActor, type CliRegistry } from '../cli-audit.js';
import { withDatabase, type Context } from '../context.js';
import { collect, group, handle, list, str, takesPasswordOnStdin, type CliRuntime, type Values } from '../define.js';
import { printResult, readStdinPassword, UsageError } from '../output.js';

const SECRET_HELP = `
The client secret is read from standard input (without one trailing newline), never taken as an
argument (ps and shell history would show it); on a terminal it is asked for twice and not shown.
It is stored sealed under the data key and never printed. Register <ISSUER>/upstream/callback as
the redirect URI at the provider. For example:
  gatehouse providers create --name "Example SSO" --issuer https://sso.example.com \\
    --client-id gatehouse --client-secret-stdin --allow-signup --allowed-email-domain example.com < secret.txt
`;

const SECRET_STDIN = 'read the client secret from standard input (on a terminal: asked for, not shown)';

async function providerDeps(ctx: Context, registry: CliRegistry): Promise<UpstreamProviderDeps> {
  const dataKeys = await loadDataKeyring(ctx.config.keysDir, { generateIfMissing: !ctx.config.production });
  return { db: registry.db, audit: registry.audit, dataKeys, production: ctx.config.production, timeoutSeconds: ctx.config.upstreamTimeoutSeconds };
}

const body = (values: Values) =>
  Object.fromEntries(
    Object.entries({
      id: str(values, 'id'),
      name: str(values, 'name'),
      issuer: str(values, 'issuer'),
      client_id: str(values, 'client-id'),
      scope: str(values, 'scope'),
      allow_signup: values['allow-signup'] === true ? true : values['disallow-signup'] === true ? false : undefined,
      allowed_email_domains: values['any-email-domain'] === true ? [] : list(values, 'allowed-email-domain'),
    }).filter(([, value]) => value !== undefined),
  );

/** The options create and update share. */
function providerOptions(command: Command): Command {
  return command
    .option('--name <NAME>', 'the name people see: "Continue with <NAME>"')
    .option('--issuer <URL>', "the provider's issuer (https; its /.well-known/openid-configuration must answer)")
    .option('--client-id <ID>', "Gatehouse's client id at the provider")
    .option('--client-secret-stdin', SECRET_STDIN)
    .option('--scope <SCOPES>', 'the scopes asked for, space-separated; must contain openid ("openid email profile" unless said)')
    .option('--allow-signup', 'a person the provider signs in for the first time gets an account here (with a verified email)')
    .option('--allowed-email-domain <DOMAIN>', 'only emails at this domain may sign up or link (repeatable; any domain unless said)', collect);
}

/** `gatehouse providers create | list | get | update | enable | disable | delete`: upstream OpenID providers people sign in with. */
export function providersCommand(runtime: CliRuntime): Command {
  const providers = group('providers', 'register and manage upstream OpenID providers people may sign in with');
  const withDeps = (ctx: Context, run: (deps: UpstreamProviderDeps) => Promise<void>) => withDatabase(ctx, async (registry) => run(await providerDeps(ctx, registry)));

  const create = providerOptions(providers.command('create').summary('register an upstream OpenID provider').usage('--name NAME --issuer URL --client-id ID [--client-secret-stdin] [options]'))
    .description('Registers a generic OpenID Connect provider; its login button appears on the sign-in page.')
    .option('--id <SLUG>', 'its id (a-z, 0-9 and -, at most 40): [data-provider] on the login page (made from the name unless said)')
    .option('--disabled', 'register it without showing it on the login page yet')
    .addHelpText('after', SECRET_HELP)
    .action(
      handle(runtime, async (ctx, values) => {
        const { io, json } = ctx;
        for (const [flag, key] of [['--name NAME', 'name'], ['--issuer URL', 'issuer'], ['--client-id ID', 'client-id']] as const) {
          if (str(values, key) === undefined) throw new UsageError(`providers create needs ${flag}`);
        }
        const input = {
          ...body(values),
          ...(values.disabled === true ? { enabled: false } : {}),
          ...(values['client-secret-stdin'] === true ? { client_secret: await readStdinPassword(io, '--client-secret-stdin', 'client secret') } : {}),
        };
        await withDeps(ctx, async (deps) => printResult(io, json, providerToJson(await createProvider(deps, cliActor(), input))));
      }),
    );
  takesPasswordOnStdin(create, { flag: '--client-secret-stdin', what: 'the client secret' });

  providers
    .command('list')
    .summary('list the upstream providers')
    .description('Lists the upstream providers (never a client secret).')
    .action(
      handle(runtime, async (ctx) => {
        const { io, json } = ctx;
        await withDatabase(ctx, async (registry) => printResult(io, json, (await listProviders(registry.db)).map(providerToJson)));
      }),
    );

  providers
    .command('get')
    .alias('show')
    .summary('show one upstream provider')
    .description('Shows one upstream provider (never its client secret).')
    .argument('<ID>', "the provider's id")
    .action(
      handle(runtime, async (ctx, _values, ids) => {
        const { io, json } = ctx;
        await withDatabase(ctx, async (registry) => printResult(io, json, providerToJson(await getProvider(registry.db, ids[0] ?? ''))));
      }),
    );

  const update = providerOptions(providers.command('update').summary('change an upstream provider'))
    .description('Changes what is given; a new issuer or client id is checked as at registration.')
    .argument('<ID>', "the provider's id")
    .option('--disallow-signup', 'no longer make accounts for people the provider signs in for the first time')
    .option('--any-email-domain', 'allow emails at any domain again')
    .option('--remove-client-secret', 'remove the stored client secret (a public, PKCE-only registration)')
    .addOption(new Option('--id <SLUG>').hideHelp())
    .addHelpText('after', SECRET_HELP)
    .action(
      handle(runtime, async (ctx, values, ids) => {
        const { io, json } = ctx;
        if (values.id !== undefined) throw new UsageError('--id cannot be changed; create a new provider');
        if (values['client-secret-stdin'] === true && values['remove-client-secret'] === true) {
          throw new UsageError('give --client-secret-stdin or --remove-client-secret, not both');
        }
        const input = {
          ...body(values),
          ...(values['client-secret-stdin'] === true ? { client_secret: await readStdinPassword(io, '--client-secret-stdin', 'client secret') } : {}),
          ...(values['remove-client-secret'] === true ? { client_secret: null } : {}),
        };
        if (Object.keys(input).length === 0) throw new UsageError('providers update needs at least one option to change');
        await withDeps(ctx, async (deps) => printResult(io, json, providerToJson(await updateProvider(deps, cliActor(), ids[0] ?? '', input))));
      }),
    );
  takesPasswordOnStdin(update, { flag: '--client-secret-stdin', what: 'the client secret' });

  for (const [name, summary, run] of [
    ['enable', 'show an upstream provider on the login page again', enableProvider],
    ['disable', 'take an upstream provider off the login page (its links stay)', disableProvider],
  ] as const) {
    providers
      .command(name)
      .summary(summary)
      .description(`${summary[0]?.toUpperCase() ?? ''}${summary.slice(1)}.`)
      .argument('<ID>', "the provider's id")
      .action(
        handle(runtime, async (ctx, _values, ids) => {
          const { io, json } = ctx;
          await withDeps(ctx, async (deps) => printResult(io, json, providerToJson(await run(deps, cliActor(), ids[0] ?? ''))));
        }),
      );
  }

  providers
    .command('delete')
    .summary('delete an upstream provider and every link to it')
    .description('Deletes an upstream provider and every link of a person to it; people with no other way in can no longer sign in.')
    .argument('<ID>', "the provider's id")
    .action(
      handle(runtime, async (ctx, _values, ids) => {
        const { io, json } = ctx;
        await withDatabase(ctx, async (registry) => {
          const { linksRemoved } = await deleteProvider(registry, cliActor(), ids[0] ?? '');
          printResult(io, json, { id: ids[0], deleted: true, links_removed: linksRemoved });
        });
      }),
    );
  return providers;
}
