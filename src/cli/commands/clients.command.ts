import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { GRANT_TYPES } from '../../config/protocol.js';
import { CLIENT_PROFILES } from '../../registry/tables.js';
import { loadDigestKey } from '../../keys/key-store.js';
import {
  AUTH_METHODS,
  clientToJson,
  createClient,
  deleteClient,
  getClient,
  grantClient,
  listClients,
  revokeClientGrant,
  rotateClientSecret,
  updateClient,
  type ClientServiceDeps,
} from '../../services/clients.service.js';
import { cliActor, type CliRegistry } from '../cli-audit.js';
import { withDatabase, type Context } from '../context.js';
import { choiceOption, collect, group, handle, list, str, type CliRuntime, type Values } from '../define.js';
import { printResult, UsageError, type CliIo } from '../output.js';

const SECRET_NOTE = 'client_secret is shown this once: store it now (it is kept only as a digest).';

async function readJwks(io: CliIo, file: string | undefined): Promise<unknown> {
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = await readFile(file.startsWith('/') ? file : `${io.cwd}/${file}`, 'utf8');
  } catch {
    throw new UsageError(`--jwks-file: cannot read ${file}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError(`--jwks-file: ${file} is not JSON`);
  }
}

/** CLI flags to the RFC 7591 body the services take; undefined fields are left out. */
async function clientBody(io: CliIo, values: Values): Promise<Record<string, unknown>> {
  const flag = (name: string) => (typeof values[name] === 'boolean' ? values[name] : undefined);
  const body: Record<string, unknown> = {
    client_name: str(values, 'name'),
    redirect_uris: list(values, 'redirect-uri'),
    post_logout_redirect_uris: list(values, 'post-logout-redirect-uri'),
    grant_types: list(values, 'grant-type'),
    token_endpoint_auth_method: str(values, 'auth-method'),
    scope: str(values, 'scope'),
    default_resource: str(values, 'resource'),
    jwks: await readJwks(io, str(values, 'jwks-file')),
    logo_uri: str(values, 'logo-uri'),
    first_party: flag('first-party'),
    require_mfa: flag('require-mfa'),
    backchannel_logout_uri: str(values, 'backchannel-logout-uri'),
    backchannel_logout_session_required: flag('backchannel-logout-session-required'),
    dpop_bound_access_tokens: flag('dpop'),
    require_pushed_authorization_requests: flag('require-par'),
    require_signed_request_object: flag('require-signed-request-object'),
    profile: str(values, 'profile'),
    may_act: list(values, 'may-act'),
  };
  return Object.fromEntries(Object.entries(body).filter(([, value]) => value !== undefined));
}

async function clientDeps(ctx: Context, registry: CliRegistry): Promise<ClientServiceDeps> {
  const digestKey = await loadDigestKey(ctx.config.keysDir, { generateIfMissing: !ctx.config.production });
  return { db: registry.db, issuer: ctx.config.issuer, digestKey, audit: registry.audit };
}

/** The options of clients create, and of clients update (where --admin is refused, so not shown). */
function clientOptions(command: Command, { forUpdate }: { forUpdate: boolean }): Command {
  command
    .option('--name <NAME>', 'the name people see on the consent screen (client_name)')
    .option('--redirect-uri <URI>', 'where sign-ins return to (https, or http on localhost); repeat for more', collect)
    .addOption(choiceOption('--grant-type <TYPE>', 'a grant type the client may use; repeat for more', GRANT_TYPES).argParser(collect))
    .addOption(choiceOption('--auth-method <METHOD>', 'how the client authenticates at the token endpoint', AUTH_METHODS))
    .option('--scope <SCOPES>', 'space-separated: the OpenID scopes (openid profile email offline_access) and, with --resource, the scopes granted at that API')
    .option('--resource <URI>', 'the API (resource server) the client gets a grant for and its default audience')
    .option('--jwks-file <FILE>', 'the client\'s public keys, a JWKS in a file (private_key_jwt)')
    .option('--post-logout-redirect-uri <URI>', 'where sign-outs may return to; repeat for more', collect)
    .option('--logo-uri <URI>', 'a logo shown on the consent screen')
    .option('--first-party', 'a client of your own: no consent screen')
    .option('--no-first-party', 'a third-party client: people consent')
    .option('--require-mfa', 'sign-ins for this client need a second factor (acr urn:gatehouse:acr:mfa)')
    .option('--no-require-mfa', 'sign-ins for this client need no second factor unless it asks (acr_values) or MFA_REQUIRED')
    .option('--backchannel-logout-uri <URI>', 'where logout tokens are posted when a person signs out (OpenID Connect Back-Channel Logout)')
    .option('--backchannel-logout-session-required', 'logout tokens carry the session id (sid)')
    .option('--no-backchannel-logout-session-required', 'logout tokens need not carry the session id')
    .option('--dpop', 'access tokens are DPoP-bound: token requests need a DPoP proof (RFC 9449)')
    .option('--no-dpop', 'DPoP is optional for this client')
    .option('--require-par', 'authorization requests only as pushed authorization requests (RFC 9126)')
    .option('--no-require-par', 'plain authorization requests are accepted (unless REQUIRE_PAR)')
    .option('--require-signed-request-object', 'request objects must be signed with one of the client keys (RFC 9101)')
    .option('--no-require-signed-request-object', 'request objects need not be signed')
    .addOption(choiceOption('--profile <PROFILE>', 'a security profile the client is held to (fapi2: FAPI 2.0 Security Profile)', CLIENT_PROFILES))
    .option('--may-act <URI>', 'an API whose access tokens this client may exchange (RFC 8693 token exchange); repeat for more', collect);
  const admin = new Option('--admin', 'an admin client: grants the admin API (scope admin); set only when a client is created');
  return command.addOption(forUpdate ? admin.hideHelp() : admin);
}

const GRANTS_HELP = `
A client gets access tokens only for the APIs it holds a grant for, and only with that grant's
scopes: clients grant gives (or replaces) the grant at one API, every scope the API offers unless
--scope says which; revoke-grant takes it away. clients create --resource URI --scope S makes
exactly that grant (and the API the default audience); --scope's OpenID scopes (openid profile
email offline_access) are the client's own. --admin grants the admin API (scope admin).
`;

/** `gatehouse clients create | list | get | update | delete | rotate-secret | grant | revoke-grant`. */
export function clientsCommand(runtime: CliRuntime): Command {
  const clients = group('clients', 'register and manage OAuth clients and their grants');
  clients.addHelpText('after', GRANTS_HELP);

  clientOptions(clients.command('create').summary('register a client; prints its secret once').usage('--name NAME [options]'), { forUpdate: false })
    .description('Registers a client. A confidential client\'s secret is printed this once and kept only as a digest.')
    .addHelpText('after', GRANTS_HELP)
    .action(
      handle(runtime, async (ctx, values) => {
        const { io, json } = ctx;
        if (!str(values, 'name')) throw new UsageError('clients create needs --name NAME');
        const body = await clientBody(io, values);
        if (values.admin === true) body.admin = true;
        await withDatabase(ctx, async (registry) => {
          const { client, clientSecret } = await createClient(await clientDeps(ctx, registry), cliActor(), body);
          const out = { ...clientToJson(client), ...(clientSecret ? { client_secret: clientSecret } : {}) };
          printResult(io, json, out, clientSecret && !json ? SECRET_NOTE : undefined);
        });
      }),
    );

  clients
    .command('list')
    .summary('list the clients (never a secret)')
    .description('Lists the clients (never a secret).')
    .action(
      handle(runtime, async (ctx) => {
        const { io, json } = ctx;
        await withDatabase(ctx, async (registry) => {
          const clients = (await listClients(registry.db)).map(clientToJson);
          if (json) printResult(io, true, clients);
          else printResult(io, false, clients.map((c) => ({ client_id: c.client_id, client_name: c.client_name, grant_types: c.grant_types })));
        });
      }),
    );

  clients
    .command('get')
    .summary('show one client and its grants')
    .description('Shows one client, its grants included (never its secret).')
    .argument('<ID>', 'the client_id')
    .action(
      handle(runtime, async (ctx, _values, ids) => {
        const { io, json } = ctx;
        await withDatabase(ctx, async (registry) => printResult(io, json, clientToJson(await getClient(registry.db, ids[0] ?? ''))));
      }),
    );

  clientOptions(clients.command('update').summary('change a client\'s metadata'), { forUpdate: true })
    .description('Changes the metadata given; what is not given stays. A client that becomes confidential gets a secret, printed this once.')
    .argument('<ID>', 'the client_id')
    .action(
      handle(runtime, async (ctx, values, ids) => {
        const { io, json } = ctx;
        if (values.admin !== undefined) throw new UsageError('--admin is set when a client is created and cannot be changed');
        const body = await clientBody(io, values);
        if (Object.keys(body).length === 0) throw new UsageError('clients update needs at least one option to change');
        await withDatabase(ctx, async (registry) => {
          const { client, clientSecret } = await updateClient(await clientDeps(ctx, registry), cliActor(), ids[0] ?? '', body);
          const out = { ...clientToJson(client), ...(clientSecret ? { client_secret: clientSecret } : {}) };
          printResult(io, json, out, clientSecret && !json ? SECRET_NOTE : undefined);
        });
      }),
    );

  clients
    .command('delete')
    .summary('delete a client, its grants and its refresh tokens')
    .description('Deletes a client, its grants and its refresh tokens.')
    .argument('<ID>', 'the client_id')
    .action(
      handle(runtime, async (ctx, _values, ids) => {
        const { io, json } = ctx;
        await withDatabase(ctx, async (registry) => {
          await deleteClient(registry, cliActor(), ids[0] ?? '');
          printResult(io, json, { client_id: ids[0], deleted: true });
        });
      }),
    );

  clients
    .command('rotate-secret')
    .summary('give a confidential client a new secret, printed once')
    .description('Gives a confidential client a new secret, printed this once; the old one stops working.')
    .argument('<ID>', 'the client_id')
    .action(
      handle(runtime, async (ctx, _values, ids) => {
        const { io, json } = ctx;
        await withDatabase(ctx, async (registry) => {
          const { client, clientSecret } = await rotateClientSecret(await clientDeps(ctx, registry), cliActor(), ids[0] ?? '');
          printResult(io, json, { client_id: client.clientId, client_secret: clientSecret }, json ? undefined : SECRET_NOTE);
        });
      }),
    );

  for (const sub of ['grant', 'revoke-grant'] as const) {
    const command = clients
      .command(sub)
      .summary(sub === 'grant' ? "give (or replace) the client's grant at one API" : "take away the client's grant at one API")
      .usage('ID --resource URI [options]')
      .description(
        sub === 'grant'
          ? 'Gives the client (or replaces) its grant at one API: every scope the API offers unless --scope says which.'
          : 'Takes away the client\'s grant at one API.',
      )
      .argument('<ID>', 'the client_id')
      .option('--resource <URI>', 'the API (resource server identifier)');
    if (sub === 'grant') command.option('--scope <SCOPES>', 'space-separated scopes of that API');
    command.action(
      handle(runtime, async (ctx, values, ids) => {
        const { io, json } = ctx;
        const resource = str(values, 'resource');
        if (!resource) throw new UsageError(`clients ${sub} needs --resource URI`);
        const scope = str(values, 'scope');
        await withDatabase(ctx, async (registry) => {
          const deps = await clientDeps(ctx, registry);
          const client =
            sub === 'grant'
              ? await grantClient(deps, cliActor(), ids[0] ?? '', { resource, ...(scope !== undefined ? { scope } : {}) })
              : await revokeClientGrant(deps, cliActor(), ids[0] ?? '', resource);
          printResult(io, json, clientToJson(client));
        });
      }),
    );
  }
  return clients;
}
