import { Option, type Command } from 'commander';
import { createResource, deleteResource, getResource, listResources, resourceToJson, updateResource } from '../../services/resources.service.js';
import { cliActor } from '../cli-audit.js';
import { withDatabase } from '../context.js';
import { group, handle, seconds, str, type CliRuntime, type Values } from '../define.js';
import { printResult, UsageError } from '../output.js';

const body = (values: Values) =>
  Object.fromEntries(
    Object.entries({
      identifier: str(values, 'identifier'),
      name: str(values, 'name'),
      scope: str(values, 'scope'),
      access_token_ttl: seconds(values, 'access-token-ttl'),
    }).filter(([, value]) => value !== undefined),
  );

/** The options of resources create, and of resources update (where --identifier is refused, so not shown). */
function resourceOptions(command: Command, { forUpdate }: { forUpdate: boolean }): Command {
  const identifier = new Option('--identifier <URI>', 'the API\'s identifier: the audience (aud) of its tokens, the resource parameter that asks for it');
  return command
    .addOption(forUpdate ? identifier.hideHelp() : identifier)
    .option('--name <NAME>', 'a name for people')
    .option('--scope <SCOPES>', 'the space-separated scopes the API offers, e.g. "read:orders write:orders"')
    .option('--access-token-ttl <SECONDS>', 'how long its access tokens live (600 unless said)');
}

/** `gatehouse resources create | list | get | update | delete`: the APIs (resource servers) tokens are issued for. */
export function resourcesCommand(runtime: CliRuntime): Command {
  const resources = group('resources', 'register and manage the APIs (resource servers) tokens are issued for');

  resourceOptions(resources.command('create').summary('register an API').usage('--identifier URI [options]'), { forUpdate: false })
    .description('Registers an API (resource server).')
    .action(
      handle(runtime, async (ctx, values) => {
        const { io, json } = ctx;
        if (!str(values, 'identifier')) throw new UsageError('resources create needs --identifier URI');
        const input = body(values);
        await withDatabase(ctx, async (registry) => {
          printResult(io, json, resourceToJson(await createResource(registry, cliActor(), input)));
        });
      }),
    );

  resources
    .command('list')
    .summary('list the APIs')
    .description('Lists the APIs.')
    .action(
      handle(runtime, async (ctx) => {
        const { io, json } = ctx;
        await withDatabase(ctx, async (registry) => printResult(io, json, (await listResources(registry.db)).map(resourceToJson)));
      }),
    );

  resources
    .command('get')
    .summary('show one API')
    .description('Shows one API.')
    .argument('<ID>', 'the API\'s id or identifier')
    .action(
      handle(runtime, async (ctx, _values, ids) => {
        const { io, json } = ctx;
        await withDatabase(ctx, async (registry) => printResult(io, json, resourceToJson(await getResource(registry.db, ids[0] ?? ''))));
      }),
    );

  resourceOptions(resources.command('update').summary("change an API's name, scopes or token lifetime"), { forUpdate: true })
    .description('Changes what is given; the identifier never changes (create a new API instead).')
    .argument('<ID>', 'the API\'s id or identifier')
    .action(
      handle(runtime, async (ctx, values, ids) => {
        const { io, json } = ctx;
        if (values.identifier !== undefined) throw new UsageError('--identifier cannot be changed; create a new resource server');
        const input = body(values);
        if (Object.keys(input).length === 0) throw new UsageError('resources update needs at least one option to change');
        await withDatabase(ctx, async (registry) => {
          printResult(io, json, resourceToJson(await updateResource(registry, cliActor(), ids[0] ?? '', input)));
        });
      }),
    );

  resources
    .command('delete')
    .summary('delete an API and every grant at it')
    .description('Deletes an API and every grant at it (refused while a client has it as its default).')
    .argument('<ID>', 'the API\'s id or identifier')
    .action(
      handle(runtime, async (ctx, _values, ids) => {
        const { io, json } = ctx;
        await withDatabase(ctx, async (registry) => {
          await deleteResource(registry, cliActor(), ids[0] ?? '');
          printResult(io, json, { id: ids[0], deleted: true });
        });
      }),
    );
  return resources;
}
