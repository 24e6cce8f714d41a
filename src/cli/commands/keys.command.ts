import type { Command } from 'commander';
import { loadDataKeyring } from '../../keys/data-key.js';
import { FAPI2_SIGNING_ALGS, isFapi2SigningAlg, loadKeys, SIGNING_ALGS, summarize, type SigningAlg } from '../../keys/key-store.js';
import { reencryptSealedSecrets } from '../../services/reencrypt.service.js';
import { generateProfileSigningKey, generateSigningKey, rotateDataKey, rotateSigningKeys, type KeysServiceDeps } from '../../services/keys.service.js';
import { cliActor } from '../cli-audit.js';
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

/** The keys service on KEYS_DIR: the registry is opened only after a key change is on disk, to record it (see KeysServiceDeps). */
function keysDeps(ctx: Context): KeysServiceDeps {
  return { keysDir: ctx.config.keysDir, withRegistry: (run) => withDatabase(ctx, run) };
}

const ROTATE_HELP = `
keys rotate publishes the new key at once and signs with it from --activate-in seconds later (300
unless said; 0 for at once, as after a leak), when the current key retires: every node and every
resource server that caches the JWKS sees a key before any token carries it.
`;

const ROTATE_DATA_KEY_HELP = `
The data key encrypts the secrets stored in the database (TOTP secrets, upstream client secrets).
keys rotate-data-key makes a new one, which encrypts every secret from then on; each node reads it
when it next encrypts or meets a secret under it. The older data keys stay in KEYS_DIR: secrets
encrypted under them still decrypt with them. keys reencrypt then re-encrypts every secret under an
older key with the newest one; once it reports 0 rows under old keys, the older data-<kid>.key
files may be deleted (keep a backup: a restored database backup needs them).
`;

/** `gatehouse keys generate | rotate | list | rotate-data-key | reencrypt`: the keys in KEYS_DIR. */
export function keysCommand(runtime: CliRuntime): Command {
  const keys = group('keys', 'generate, rotate and list the signing keys, rotate the data key and re-encrypt under it');
  const alg = () => choiceOption('--alg <ALG>', 'the signing algorithm (RS256 unless said)', SIGNING_ALGS);

  keys
    .command('generate')
    .summary('generate a signing key in KEYS_DIR')
    .description(
      'Generates a signing key (and the client-secret, audit and data keys, if missing) in KEYS_DIR; with --profile fapi2, a key that signs only for clients of the FAPI 2.0 profile (ES256 unless --alg PS256), beside the signing key.',
    )
    .addOption(alg())
    .addOption(choiceOption('--profile <PROFILE>', 'make the key for clients of this profile instead of the signing key', ['fapi2']))
    .action(
      handle(runtime, async (ctx, values) => {
        const { io, json, config } = ctx;
        if (str(values, 'profile') === 'fapi2') {
          const profileAlg = parseAlg(values);
          if (profileAlg !== undefined && !isFapi2SigningAlg(profileAlg)) {
            throw new UsageError(`--alg must be one of ${FAPI2_SIGNING_ALGS.join(', ')} with --profile fapi2 (got "${profileAlg}")`);
          }
          const made = await generateProfileSigningKey(keysDeps(ctx), cliActor(), profileAlg);
          printResult(io, json, { ...summarize(made.key), keys_dir: config.keysDir });
          if (made.unrecorded) io.stderr(`gatehouse: ${made.unrecorded}\n`);
          return;
        }
        const { key, unrecorded } = await generateSigningKey(keysDeps(ctx), cliActor(), parseAlg(values) ?? 'RS256');
        printResult(io, json, { ...summarize(key), keys_dir: config.keysDir });
        if (unrecorded) io.stderr(`gatehouse: ${unrecorded}\n`);
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
        const { io, json } = ctx;
        const activateIn = seconds(values, 'activate-in');
        const { created, retired, removed, profile, unrecorded } = await rotateSigningKeys(
          keysDeps(ctx),
          cliActor(),
          parseAlg(values),
          activateIn === undefined ? {} : { activateInMs: activateIn * 1000 },
        );
        printResult(io, json, {
          ...summarize(created),
          retired,
          removed,
          ...(profile ? { profile_key: { ...summarize(profile.created), retired: profile.retired } } : {}),
        });
        if (unrecorded) io.stderr(`gatehouse: ${unrecorded}\n`);
      }),
    );

  keys
    .command('rotate-data-key')
    .summary('make a new data key, which encrypts stored secrets from now on')
    .description('Makes a new data key in KEYS_DIR: it encrypts the secrets stored in the database from now on; older data keys stay to decrypt what they encrypted.')
    .addHelpText('after', ROTATE_DATA_KEY_HELP)
    .action(
      handle(runtime, async (ctx) => {
        const { io, json, config } = ctx;
        const { key, older, unrecorded } = await rotateDataKey(keysDeps(ctx), cliActor());
        printResult(io, json, { kid: key.kid, created_at: key.createdAt, older_keys: older, keys_dir: config.keysDir });
        if (unrecorded) io.stderr(`gatehouse: ${unrecorded}\n`);
      }),
    );

  keys
    .command('reencrypt')
    .summary('re-encrypt the stored secrets under the newest data key')
    .description('Re-encrypts every secret stored under an older data key with the newest one, and says how many rows still need an older key; exit 1 when a secret could not be decrypted.')
    .action(
      handle(runtime, async (ctx) => {
        const { io, json, config } = ctx;
        const dataKeys = await loadDataKeyring(config.keysDir, { generateIfMissing: !config.production });
        const report = await withDatabase(ctx, (registry) => reencryptSealedSecrets({ db: registry.db, audit: registry.audit, dataKeys }, cliActor()));
        printResult(io, json, { key: report.key, resealed: report.resealed, failed: report.failed.length, under_old_keys: report.remaining, keys_dir: config.keysDir });
        if (report.failed.length === 0) return 0;
        const first = report.failed[0]!;
        io.stderr(
          `gatehouse: ${report.failed.length} stored secret(s) could not be decrypted and stay under their old key (first: ${first.table} ${first.target}: ${first.reason})\n`,
        );
        return 1;
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
