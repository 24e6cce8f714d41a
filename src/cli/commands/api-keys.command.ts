import type { Command } from 'commander';
import { apiKeyToJson, createApiKey, listApiKeys, revokeApiKey } from '../../services/api-keys.service.js';
import { cliActor } from '../cli-audit.js';
import { withDatabase } from '../context.js';
import { group, handle, str, type CliRuntime } from '../define.js';
import { printResult, UsageError } from '../output.js';

const KEY_NOTE =
  'api_key is shown this once: hand it to its owner (a script keeps it in an environment variable, such as GATEHOUSE_API_KEY). It is exchanged at the token endpoint for access tokens to its API (docs/api-keys.md); users api-keys revoke ends it.';

function parseExpiresIn(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[1-9]\d{0,15}$/.test(value)) throw new UsageError(`--expires-in must be a whole number of seconds (got "${value}")`);
  return Number(value);
}

/**
 * `gatehouse users api-keys create ID --label L --resource URI [--scope S] [--expires-in SECONDS] |
 * list ID | revoke ID KEY_ID`: a person's personal API keys (services/api-keys.service.ts). A new key
 * is printed once; lists show labels and prefixes, never keys.
 */
export function apiKeysCommand(runtime: CliRuntime): Command {
  const apiKeys = group('api-keys', "manage a person's personal API keys");

  apiKeys
    .command('create')
    .summary('make an API key for a person, printed once')
    .usage('ID --label L --resource URI [--scope S] [--expires-in SECONDS] [options]')
    .description(
      'Makes a personal API key for the person ID, for one registered API (never the admin API) and scopes it defines (none unless --scope). The key is printed once; only its digest is kept.',
    )
    .argument('<ID>', "the person's id")
    .option('--label <L>', 'what the key is for, as its owner will see it (1 to 100 characters)')
    .option('--resource <URI>', 'the API (resource server identifier) the key gets tokens for')
    .option('--scope <S>', 'space-separated scopes of that API the key may ask for')
    .option('--expires-in <SECONDS>', 'how long the key works (60 seconds to 366 days); none: until revoked')
    .action(
      handle(runtime, async (ctx, values, ids) => {
        const { io, json } = ctx;
        const label = str(values, 'label');
        const resource = str(values, 'resource');
        if (label === undefined) throw new UsageError('users api-keys create needs --label L');
        if (resource === undefined) throw new UsageError('users api-keys create needs --resource URI');
        const expiresIn = parseExpiresIn(str(values, 'expires-in'));
        const scope = str(values, 'scope');
        const body = { label, resource, ...(scope !== undefined ? { scope } : {}), ...(expiresIn !== undefined ? { expires_in: expiresIn } : {}) };
        await withDatabase(ctx, async (registry) => {
          const { key, apiKey } = await createApiKey(registry, cliActor(), ids[0] ?? '', body);
          printResult(io, json, { ...apiKeyToJson(key), user_id: key.userId, api_key: apiKey }, json ? undefined : KEY_NOTE);
        });
      }),
    );

  apiKeys
    .command('list')
    .summary("list a person's API keys")
    .description("Lists the person's API keys: label, prefix, API, scopes, expiry and last use (never a key).")
    .argument('<ID>', "the person's id")
    .action(
      handle(runtime, async (ctx, _values, ids) => {
        const { io, json } = ctx;
        await withDatabase(ctx, async (registry) => {
          printResult(io, json, (await listApiKeys(registry.db, ids[0] ?? '')).map(apiKeyToJson));
        });
      }),
    );

  apiKeys
    .command('revoke')
    .summary('end one of a person’s API keys')
    .description('Deletes the API key KEY_ID of the person ID: the token endpoint refuses it at once (tokens already issued run out within their lifetime, at most an hour).')
    .argument('<ID>', "the person's id")
    .argument('<KEY_ID>', 'the key’s id, from users api-keys list')
    .action(
      handle(runtime, async (ctx, _values, ids) => {
        const { io, json } = ctx;
        await withDatabase(ctx, async (registry) => {
          const key = await revokeApiKey(registry, cliActor(), ids[0] ?? '', ids[1] ?? '');
          printResult(io, json, { id: key.id, user_id: key.userId, label: key.label, prefix: key.prefix, revoked: true });
        });
      }),
    );
  return apiKeys;
}
