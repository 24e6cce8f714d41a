import type { Command } from 'commander';
import { loadAuditKeyring } from '../../keys/audit-key.js';
import { generateKey, loadDigestKey, loadKeys, rotateKeys, SIGNING_ALGS, summarize, type SigningAlg } from '../../keys/key-store.js';
import { AuditWriteError, isUndefinedTable, recordCliChange } from '../cli-audit.js';
import { withDatabase, type Context } from '../context.js';
import { choiceOption, group, handle, seconds, str, type CliRuntime, type Values } from '../define.js';
import { printResult, UsageError } from '../output.js';

function parseAlg(values: Values): SigningAlg | undefined {
  const alg = str(values, 'alg');
  if (alg === undefined) return undefined;
  if (!(SIGNING_ALGS as readonly string[]).includes(alg)) {
    throw new UsageError(`--alg must be one of ${SIGNING_ALGS.join(', ')} (got "${alg}")`);
  }
  return alg as SigningAlg;
}

/**
 * Records a key change, which is made on disk before the registry is opened: a rotation must not
 * wait on the database. The first `keys generate` of a production install runs before `migrate`,
 * so a registry without the audit table is said on stderr, not an error.
 */
async function recordKeyChange(ctx: Context, entry: Parameters<typeof recordCliChange>[1], show: () => void): Promise<void> {
  let shown = false;
  const showOnce = () => {
    if (!shown) show();
    shown = true;
  };
  try {
    await withDatabase(ctx, (registry) => recordCliChange(registry, entry, showOnce));
  } catch (error) {
    showOnce();
    if (isUndefinedTable(error)) {
      ctx.io.stderr(`gatehouse: ${entry.action} was not recorded in the audit log: the registry has no audit table yet (run gatehouse migrate)\n`);
      return;
    }
    throw error instanceof AuditWriteError ? error : new AuditWriteError(entry.action, error);
  }
}

const ROTATE_HELP = `
keys rotate publishes the new key at once and signs with it from --activate-in seconds later (300
unless said; 0 for at once, as after a leak), when the current key retires: every node and every
resource server that caches the JWKS sees a key before any token carries it.
`;

/** `gatehouse keys generate | rotate | list`: the signing keys in KEYS_DIR. */
export function keysCommand(runtime: CliRuntime): Command {
  const keys = group('keys', 'generate, rotate and list the signing keys in KEYS_DIR');
  const alg = () => choiceOption('--alg <ALG>', 'the signing algorithm (RS256 unless said)', SIGNING_ALGS);

  keys
    .command('generate')
    .summary('generate a signing key in KEYS_DIR')
    .description('Generates a signing key (and the client-secret and audit keys, if missing) in KEYS_DIR.')
    .addOption(alg())
    .action(
      handle(runtime, async (ctx, values) => {
        const { io, json, config } = ctx;
        const key = await generateKey(config.keysDir, parseAlg(values) ?? 'RS256');
        await loadDigestKey(config.keysDir, { generateIfMissing: true });
        await loadAuditKeyring(config.keysDir, { generateIfMissing: true });
        const out = { ...summarize(key), keys_dir: config.keysDir };
        await recordKeyChange(ctx, { action: 'keys.generate', target: `key:${key.kid}`, details: { created: summarize(key), keys_dir: config.keysDir } }, () =>
          printResult(io, json, out),
        );
      }),
    );

  keys
    .command('rotate')
    .summary('publish a new signing key, signing from --activate-in on')
    .description('Makes a new signing key: published at once, signing from --activate-in seconds later.')
    .addOption(alg())
    .option('--activate-in <SECONDS>', 'when the new key starts signing and the current one retires (300 unless said; 0 for at once)')
    .addHelpText('after', ROTATE_HELP)
    .action(
      handle(runtime, async (ctx, values) => {
        const { io, json, config } = ctx;
        const activateIn = seconds(values, 'activate-in');
        const { created, retired, removed } = await rotateKeys(config.keysDir, parseAlg(values), activateIn === undefined ? {} : { activateInMs: activateIn * 1000 });
        const out = { ...summarize(created), retired, removed };
        await recordKeyChange(ctx, { action: 'keys.rotate', target: `key:${created.kid}`, details: { created: summarize(created), retired, removed } }, () =>
          printResult(io, json, out),
        );
      }),
    );

  keys
    .command('list')
    .summary('list the signing keys')
    .description('Lists the signing keys (never private key material).')
    .action(
      handle(runtime, async (ctx) => {
        const { io, json, config } = ctx;
        printResult(io, json, (await loadKeys(config.keysDir)).map(summarize));
      }),
    );
  return keys;
}
