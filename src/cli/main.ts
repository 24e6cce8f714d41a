import { readFile } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { createAuditWriter, sealLegacyAuditChain } from '../audit/audit-log.js';
import { ConfigError, loadConfig, type Config } from '../config/load-config.js';
import { loadAuditKeyring, type AuditKeyring } from '../keys/audit-key.js';
import { KeyStoreError, loadDigestKey, loadKeys, SIGNING_ALGS, summarize, type SigningAlg } from '../keys/key-store.js';
import { createLogger } from '../observability/logger.js';
import { openCliDatabase } from '../registry/database.js';
import { migrateToLatest } from '../registry/migrate.js';
import {
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
} from '../services/clients.service.js';
import { ConflictError, NotFoundError, ValidationError } from '../services/errors.js';
import { createResource, deleteResource, getResource, listResources, resourceToJson, updateResource } from '../services/resources.service.js';
import { generateSigningKey, rotateSigningKeys, type KeysServiceDeps } from '../services/keys.service.js';
import { createUser, deleteUser, disableUser, enableUser, getUser, listUsers, setUserPassword, userToJson } from '../services/users.service.js';
import { runAuditCommand } from './audit.command.js';
import { cliActor, type CliRegistry } from './cli-audit.js';
import { runDbCommand } from './db.command.js';
import { printResult, processIo, readStdinPassword, UsageError, type CliIo } from './output.js';
import { runRegistrationCommand } from './registration.command.js';

const USAGE = `Usage: gatehouse <command> [options] [--json]

  migrate
  keys generate [--alg RS256|PS256|ES256|EdDSA] | keys rotate [--alg ALG] [--activate-in SECONDS] | keys list
  resources create --identifier URI [--name NAME] [--scope "read:x write:x"] [--access-token-ttl SECONDS]
  resources list | get ID | update ID [--name] [--scope] [--access-token-ttl] | delete ID
  clients create --name NAME [--redirect-uri URI]... [--grant-type TYPE]...
                 [--auth-method client_secret_basic|client_secret_post|private_key_jwt|none]
                 [--scope "a b"] [--resource URI] [--jwks-file FILE] [--post-logout-redirect-uri URI]...
                 [--logo-uri URI] [--first-party] [--admin]
  clients list | get ID | update ID [same options as create] | delete ID | rotate-secret ID
  clients grant ID --resource URI [--scope "a b"] | clients revoke-grant ID --resource URI
  users create --email EMAIL --password-stdin [--name NAME]
  users list | get ID | disable ID | enable ID | delete ID
  users set-password ID --password-stdin [--keep-sessions]
        (ends the person's browser sessions, consents and refresh tokens unless --keep-sessions)
  registration token create [--expires-in SECONDS]   (an initial access token for POST /reg; 1 day unless said,
                                                     at most REGISTRATION_TOKEN_MAX_TTL_SECONDS, 30 days by default)
  registration token list | revoke ID                (ids derived from the tokens, never their values)
  audit tail [--since ISO-TIME] [--limit N] | audit verify [--checkpoint FILE] | audit checkpoint | audit rotate-key
  db roles --owner NAME --runtime NAME [--runtime-password-stdin] [--sql]

A client gets access tokens only for the APIs it holds a grant for, and only with that grant's
scopes: clients grant gives (or replaces) the grant at one API, every scope the API offers unless
--scope says which; revoke-grant takes it away. clients create --resource URI --scope S makes
exactly that grant (and the API the default audience); --scope's OpenID scopes (openid profile
email offline_access) are the client's own. --admin grants the admin API (scope admin).

users create and users set-password read the password from standard input and drops one trailing newline; passwords are
never taken as arguments (ps and shell history would show them). For example:
  gatehouse users create --email ada@example.com --name "Ada Lovelace" --password-stdin < password.txt

keys rotate publishes the new key at once and signs with it from --activate-in seconds later (300
unless said; 0 for at once, as after a leak), when the current key retires: every node and every
resource server that caches the JWKS sees a key before any token carries it.

Every change (clients, resources, users, keys, db roles) is recorded in the audit log as cli:<os user>.
audit tail prints the last rows (100 unless --limit), oldest first; audit verify recomputes the
keyed hash chain (HMAC-SHA-256 with the audit keys in KEYS_DIR) and exits 1 naming the first row
where it breaks. audit checkpoint verifies the chain and prints its head (seq, hash, time) signed
with the audit key: keep it outside the database; audit verify --checkpoint FILE (the JWS or that
--json output) also exits 1 when the log has lost the newest rows or a row before the checkpoint
changed. audit rotate-key makes a new audit key, which keys every row from its own record on; old
keys stay in KEYS_DIR to verify the rows they keyed.

db roles (as a superuser, after migrate) creates the schema owner, which owns every table and runs
the migrations from then on, and the runtime role the server connects as: SELECT, INSERT, UPDATE
and DELETE on the registry's tables, INSERT and SELECT only on audit_log, SELECT on the migration
tables, no DDL. Names are a-z, 0-9 and _; the runtime role's password, if any, is read from
standard input. Running it again re-asserts the same grants. --sql prints the statements as a psql
script and changes nothing.
  gatehouse db roles --owner gatehouse_owner --runtime gatehouse_runtime --runtime-password-stdin < app-password.txt

Every command takes --json and then prints one JSON document on stdout and nothing else.
`;

type Options = NonNullable<ParseArgsConfig['options']>;
type Values = Record<string, string | boolean | string[] | undefined>;

const JSON_FLAG: Options = { json: { type: 'boolean' } };
const RESOURCE_OPTIONS: Options = {
  ...JSON_FLAG,
  identifier: { type: 'string' },
  name: { type: 'string' },
  scope: { type: 'string' },
  'access-token-ttl': { type: 'string' },
};
const USER_OPTIONS: Options = {
  ...JSON_FLAG,
  email: { type: 'string' },
  name: { type: 'string' },
  'password-stdin': { type: 'boolean' },
};
const CLIENT_OPTIONS: Options = {
  ...JSON_FLAG,
  name: { type: 'string' },
  'redirect-uri': { type: 'string', multiple: true },
  'post-logout-redirect-uri': { type: 'string', multiple: true },
  'grant-type': { type: 'string', multiple: true },
  'auth-method': { type: 'string' },
  scope: { type: 'string' },
  resource: { type: 'string' },
  'jwks-file': { type: 'string' },
  'logo-uri': { type: 'string' },
  'first-party': { type: 'boolean' },
  'no-first-party': { type: 'boolean' },
  admin: { type: 'boolean' },
};
const GRANT_OPTIONS: Options = {
  ...JSON_FLAG,
  resource: { type: 'string' },
  scope: { type: 'string' },
};

function parse(args: string[], options: Options, positionals: number): { values: Values; ids: string[] } {
  let parsed;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (error) {
    throw new UsageError((error as Error).message.split('\n')[0] ?? 'bad arguments');
  }
  if (parsed.positionals.length !== positionals) {
    throw new UsageError(
      positionals === 0
        ? `unexpected argument "${parsed.positionals[0]}"`
        : `expected ${positionals === 1 ? 'one ID' : `${positionals} arguments`}, got ${parsed.positionals.length}`,
    );
  }
  return { values: parsed.values as Values, ids: parsed.positionals };
}

function str(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

function list(values: Values, name: string): string[] | undefined {
  const value = values[name];
  return Array.isArray(value) ? value : undefined;
}

function seconds(values: Values, name: string): number | undefined {
  const value = str(values, name);
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} must be a whole number of seconds (got "${value}")`);
  return Number(value);
}

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
  const firstParty = values['first-party'] === true ? true : values['no-first-party'] === true ? false : undefined;
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
    first_party: firstParty,
  };
  return Object.fromEntries(Object.entries(body).filter(([, value]) => value !== undefined));
}

/** Field names in service errors are wire names; say them as the CLI flags the user typed. */
const FLAG_FOR_FIELD: Record<string, string> = {
  client_name: '--name',
  redirect_uris: '--redirect-uri',
  post_logout_redirect_uris: '--post-logout-redirect-uri',
  grant_types: '--grant-type',
  token_endpoint_auth_method: '--auth-method',
  scope: '--scope',
  default_resource: '--resource',
  jwks: '--jwks-file',
  logo_uri: '--logo-uri',
  identifier: '--identifier',
  name: '--name',
  access_token_ttl: '--access-token-ttl',
  email: '--email',
  password: '--password-stdin',
  expires_in: '--expires-in',
};

function flagFor(field: string): string {
  const [head] = field.split('.');
  return FLAG_FOR_FIELD[head ?? field] ?? field;
}

interface Context {
  io: CliIo;
  config: Config;
  json: boolean;
}

/** Errors only, to stderr: stdout is the command's result. */
function cliLogger(io: CliIo) {
  return createLogger({ logLevel: 'error' }, { write: (line: string) => io.stderr(line) });
}

/** The audit keys of KEYS_DIR (made on first use outside production), read once per command. */
function auditKeysOf(config: Config): () => Promise<AuditKeyring> {
  let keyring: Promise<AuditKeyring> | undefined;
  return () => (keyring ??= loadAuditKeyring(config.keysDir, { generateIfMissing: !config.production }));
}

async function withDatabase<T>(ctx: Context, run: (registry: CliRegistry) => Promise<T>): Promise<T> {
  const registry = await openCliDatabase(ctx.config, cliLogger(ctx.io));
  try {
    if (!ctx.config.production) await migrateToLatest(registry.db);
    const auditKeys = auditKeysOf(ctx.config);
    return await run(Object.assign(registry, { auditKeys, audit: createAuditWriter(auditKeys) }));
  } finally {
    await registry.close();
  }
}

async function clientDeps(ctx: Context, registry: CliRegistry): Promise<ClientServiceDeps> {
  const digestKey = await loadDigestKey(ctx.config.keysDir, { generateIfMissing: !ctx.config.production });
  return { db: registry.db, issuer: ctx.config.issuer, digestKey, audit: registry.audit };
}

const SECRET_NOTE = 'client_secret is shown this once: store it now (it is kept only as a digest).';

async function clientsCommand(ctx: Context, sub: string | undefined, args: string[]): Promise<void> {
  const { io, json } = ctx;
  switch (sub) {
    case 'create': {
      const { values } = parse(args, CLIENT_OPTIONS, 0);
      if (!str(values, 'name')) throw new UsageError('clients create needs --name NAME');
      const body = await clientBody(io, values);
      if (values.admin === true) body.admin = true;
      await withDatabase(ctx, async (registry) => {
        const { client, clientSecret } = await createClient(await clientDeps(ctx, registry), cliActor(), body);
        const out = { ...clientToJson(client), ...(clientSecret ? { client_secret: clientSecret } : {}) };
        printResult(io, json, out, clientSecret && !json ? SECRET_NOTE : undefined);
      });
      return;
    }
    case 'list': {
      parse(args, JSON_FLAG, 0);
      await withDatabase(ctx, async (registry) => {
        const clients = (await listClients(registry.db)).map(clientToJson);
        if (json) printResult(io, true, clients);
        else printResult(io, false, clients.map((c) => ({ client_id: c.client_id, client_name: c.client_name, grant_types: c.grant_types })));
      });
      return;
    }
    case 'get': {
      const { ids } = parse(args, JSON_FLAG, 1);
      await withDatabase(ctx, async (registry) => printResult(io, json, clientToJson(await getClient(registry.db, ids[0] ?? ''))));
      return;
    }
    case 'update': {
      const { values, ids } = parse(args, CLIENT_OPTIONS, 1);
      if (values.admin !== undefined) throw new UsageError('--admin is set when a client is created and cannot be changed');
      const body = await clientBody(io, values);
      if (Object.keys(body).length === 0) throw new UsageError('clients update needs at least one option to change');
      await withDatabase(ctx, async (registry) => {
        const { client, clientSecret } = await updateClient(await clientDeps(ctx, registry), cliActor(), ids[0] ?? '', body);
        const out = { ...clientToJson(client), ...(clientSecret ? { client_secret: clientSecret } : {}) };
        printResult(io, json, out, clientSecret && !json ? SECRET_NOTE : undefined);
      });
      return;
    }
    case 'delete': {
      const { ids } = parse(args, JSON_FLAG, 1);
      await withDatabase(ctx, async (registry) => {
        await deleteClient(registry, cliActor(), ids[0] ?? '');
        printResult(io, json, { client_id: ids[0], deleted: true });
      });
      return;
    }
    case 'rotate-secret': {
      const { ids } = parse(args, JSON_FLAG, 1);
      await withDatabase(ctx, async (registry) => {
        const { client, clientSecret } = await rotateClientSecret(await clientDeps(ctx, registry), cliActor(), ids[0] ?? '');
        printResult(io, json, { client_id: client.clientId, client_secret: clientSecret }, json ? undefined : SECRET_NOTE);
      });
      return;
    }
    case 'grant':
    case 'revoke-grant': {
      const { values, ids } = parse(args, sub === 'grant' ? GRANT_OPTIONS : { ...JSON_FLAG, resource: { type: 'string' } }, 1);
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
      return;
    }
    default:
      throw new UsageError(`unknown command "clients ${sub ?? ''}": use create, list, get, update, delete, rotate-secret, grant or revoke-grant`);
  }
}

async function resourcesCommand(ctx: Context, sub: string | undefined, args: string[]): Promise<void> {
  const { io, json } = ctx;
  const body = (values: Values) =>
    Object.fromEntries(
      Object.entries({
        identifier: str(values, 'identifier'),
        name: str(values, 'name'),
        scope: str(values, 'scope'),
        access_token_ttl: seconds(values, 'access-token-ttl'),
      }).filter(([, value]) => value !== undefined),
    );
  switch (sub) {
    case 'create': {
      const { values } = parse(args, RESOURCE_OPTIONS, 0);
      if (!str(values, 'identifier')) throw new UsageError('resources create needs --identifier URI');
      const input = body(values);
      await withDatabase(ctx, async (registry) => {
        printResult(io, json, resourceToJson(await createResource(registry, cliActor(), input)));
      });
      return;
    }
    case 'list': {
      parse(args, JSON_FLAG, 0);
      await withDatabase(ctx, async (registry) => printResult(io, json, (await listResources(registry.db)).map(resourceToJson)));
      return;
    }
    case 'get': {
      const { ids } = parse(args, JSON_FLAG, 1);
      await withDatabase(ctx, async (registry) => printResult(io, json, resourceToJson(await getResource(registry.db, ids[0] ?? ''))));
      return;
    }
    case 'update': {
      const { values, ids } = parse(args, RESOURCE_OPTIONS, 1);
      if (values.identifier !== undefined) throw new UsageError('--identifier cannot be changed; create a new resource server');
      const input = body(values);
      if (Object.keys(input).length === 0) throw new UsageError('resources update needs at least one option to change');
      await withDatabase(ctx, async (registry) => {
        printResult(io, json, resourceToJson(await updateResource(registry, cliActor(), ids[0] ?? '', input)));
      });
      return;
    }
    case 'delete': {
      const { ids } = parse(args, JSON_FLAG, 1);
      await withDatabase(ctx, async (registry) => {
        await deleteResource(registry, cliActor(), ids[0] ?? '');
        printResult(io, json, { id: ids[0], deleted: true });
      });
      return;
    }
    default:
      throw new UsageError(`unknown command "resources ${sub ?? ''}": use create, list, get, update or delete`);
  }
}

async function usersCommand(ctx: Context, sub: string | undefined, args: string[]): Promise<void> {
  const { io, json } = ctx;
  const byId = async (run: (registry: CliRegistry, id: string) => Promise<void>) => {
    const { ids } = parse(args, JSON_FLAG, 1);
    await withDatabase(ctx, (registry) => run(registry, ids[0] ?? ''));
  };
  switch (sub) {
    case 'create': {
      // Never echo what may be a password typed where it does not belong.
      if (args.some((arg) => arg === '--password' || arg.startsWith('--password='))) {
        throw new UsageError('passwords are never taken as arguments: pipe the password to --password-stdin');
      }
      let values: Values;
      try {
        ({ values } = parse(args, USER_OPTIONS, 0));
      } catch (error) {
        if (error instanceof UsageError && error.message.startsWith('unexpected argument')) {
          throw new UsageError('users create takes no arguments but its options (the password goes to --password-stdin)');
        }
        throw error;
      }
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
      return;
    }
    case 'list': {
      parse(args, JSON_FLAG, 0);
      await withDatabase(ctx, async (registry) => {
        const users = (await listUsers(registry.db)).map(userToJson);
        if (json) printResult(io, true, users);
        else printResult(io, false, users.map((u) => ({ id: u.id, email: u.email, name: u.name, disabled: u.disabled })));
      });
      return;
    }
    case 'get':
      await byId(async (registry, id) => printResult(io, json, userToJson(await getUser(registry.db, id))));
      return;
    case 'set-password': {
      if (args.some((arg) => arg === '--password' || arg.startsWith('--password='))) {
        throw new UsageError('passwords are never taken as arguments: pipe the password to --password-stdin');
      }
      const { values, ids } = parse(args, { ...JSON_FLAG, 'password-stdin': { type: 'boolean' }, 'keep-sessions': { type: 'boolean' } }, 1);
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
      return;
    }
    case 'disable':
    case 'enable':
      await byId(async (registry, id) => {
        printResult(io, json, userToJson(await (sub === 'disable' ? disableUser : enableUser)(registry, cliActor(), id)));
      });
      return;
    case 'delete':
      await byId(async (registry, id) => {
        await deleteUser(registry, cliActor(), id);
        printResult(io, json, { id, deleted: true });
      });
      return;
    default:
      throw new UsageError(`unknown command "users ${sub ?? ''}": use create, list, get, set-password, disable, enable or delete`);
  }
}

function parseAlg(values: Values): SigningAlg | undefined {
  const alg = str(values, 'alg');
  if (alg === undefined) return undefined;
  if (!(SIGNING_ALGS as readonly string[]).includes(alg)) {
    throw new UsageError(`--alg must be one of ${SIGNING_ALGS.join(', ')} (got "${alg}")`);
  }
  return alg as SigningAlg;
}

/** The keys service on KEYS_DIR: the registry is opened only after a key change is on disk, to record it (see KeysServiceDeps). */
function keysDeps(ctx: Context): KeysServiceDeps {
  return { keysDir: ctx.config.keysDir, withRegistry: (run) => withDatabase(ctx, run) };
}

async function keysCommand(ctx: Context, sub: string | undefined, args: string[]): Promise<void> {
  const { io, json, config } = ctx;
  const options: Options = { ...JSON_FLAG, alg: { type: 'string' } };
  switch (sub) {
    case 'generate': {
      const { values } = parse(args, options, 0);
      const { key, unrecorded } = await generateSigningKey(keysDeps(ctx), cliActor(), parseAlg(values) ?? 'RS256');
      printResult(io, json, { ...summarize(key), keys_dir: config.keysDir });
      if (unrecorded) io.stderr(`gatehouse: ${unrecorded}\n`);
      return;
    }
    case 'rotate': {
      const { values } = parse(args, { ...options, 'activate-in': { type: 'string' } }, 0);
      const activateIn = seconds(values, 'activate-in');
      const { created, retired, removed, unrecorded } = await rotateSigningKeys(
        keysDeps(ctx),
        cliActor(),
        parseAlg(values),
        activateIn === undefined ? {} : { activateInMs: activateIn * 1000 },
      );
      printResult(io, json, { ...summarize(created), retired, removed });
      if (unrecorded) io.stderr(`gatehouse: ${unrecorded}\n`);
      return;
    }
    case 'list': {
      parse(args, JSON_FLAG, 0);
      printResult(io, json, (await loadKeys(config.keysDir)).map(summarize));
      return;
    }
    default:
      throw new UsageError(`unknown command "keys ${sub ?? ''}": use generate, rotate or list`);
  }
}

/** Runs one CLI command; returns the exit code (0 ok, 1 refused or failed, 2 usage). */
export async function runCli(argv: string[], io: CliIo = processIo()): Promise<number> {
  const [command, sub, ...rest] = argv;
  if (!command || command === '--help' || command === 'help' || command === '-h') {
    io.stdout(USAGE);
    return command ? 0 : 2;
  }
  let config: Config;
  try {
    config = loadConfig(io.env, io.cwd, { server: false });
  } catch (error) {
    if (error instanceof ConfigError) {
      io.stderr(`gatehouse: configuration error: ${error.problems.join('; ')}\n`);
      return 1;
    }
    throw error;
  }
  const json = argv.includes('--json');
  const ctx: Context = { io, config, json };
  try {
    switch (command) {
      case 'migrate': {
        parse([sub, ...rest].filter((a): a is string => a !== undefined), JSON_FLAG, 0);
        const logger = createLogger({ logLevel: 'error' }, { write: (line: string) => io.stderr(line) });
        const registry = await openCliDatabase(config, logger);
        try {
          const applied = await migrateToLatest(registry.db);
          // An upgraded log's unkeyed rows are sealed by a keyed row after them (needs the audit key).
          const auditKeys = await loadAuditKeyring(config.keysDir, { generateIfMissing: !config.production }).catch((error: unknown) => {
            if (!(error instanceof KeyStoreError)) throw error;
            io.stderr(`gatehouse: note: ${error.message}; until then the audit log's rows are not keyed\n`);
            return undefined;
          });
          const sealed = auditKeys ? await sealLegacyAuditChain(registry.db, auditKeys) : false;
          printResult(io, json, { applied, status: applied.length > 0 ? 'migrated' : 'up to date', ...(sealed ? { audit_log: 'unkeyed rows sealed' } : {}) });
        } finally {
          await registry.close();
        }
        return 0;
      }
      case 'keys':
        await keysCommand(ctx, sub, rest);
        return 0;
      case 'resources':
        await resourcesCommand(ctx, sub, rest);
        return 0;
      case 'clients':
        await clientsCommand(ctx, sub, rest);
        return 0;
      case 'users':
        await usersCommand(ctx, sub, rest);
        return 0;
      case 'audit':
        return await runAuditCommand({ io, json, config, withDatabase: (run) => withDatabase(ctx, run) }, sub, rest);
      case 'db':
        return await runDbCommand({ io, json, config, openDatabase: () => openCliDatabase(config, cliLogger(io)) }, sub, rest);
      case 'registration':
        return await runRegistrationCommand({ io, json, config, withDatabase: (run) => withDatabase(ctx, run) }, sub, rest);
      default:
        throw new UsageError(`unknown command "${command}" (run gatehouse --help)`);
    }
  } catch (error) {
    return reportError(io, error);
  }
}

function reportError(io: CliIo, error: unknown): number {
  if (error instanceof UsageError) {
    io.stderr(`gatehouse: ${error.message}\n`);
    return 2;
  }
  if (error instanceof ValidationError) {
    io.stderr(`gatehouse: ${error.errors.map((e) => `${flagFor(e.field)}: ${e.message}`).join('; ')}\n`);
    return 1;
  }
  if (error instanceof ConflictError) {
    io.stderr(`gatehouse: ${flagFor(error.field)}: ${error.message.slice(error.field.length + 2)}\n`);
    return 1;
  }
  if (error instanceof NotFoundError) {
    io.stderr(`gatehouse: ${error.message}\n`);
    return 1;
  }
  io.stderr(`gatehouse: ${(error as Error).message ?? String(error)}\n`);
  return 1;
}
