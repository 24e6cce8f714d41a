import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import {
  AuditChainBrokenError,
  checkpointJwsFromFile,
  createAuditCheckpoint,
  InvalidCheckpointError,
  verifyAuditChainAgainst,
  type CheckpointVerification,
} from '../../audit/audit-checkpoint.js';
import { AUDIT_TAIL_MAX_LIMIT, auditToJson, tailAudit, verifyAuditChain } from '../../audit/audit-log.js';
import type { Config } from '../../config/load-config.js';
import { rotateAuditKey } from '../../services/keys.service.js';
import { cliActor, type CliRegistry } from '../cli-audit.js';
import { withDatabase, type Context } from '../context.js';
import { group, handle, str, type CliRuntime, type Values } from '../define.js';
import { printResult, UsageError, type CliIo } from '../output.js';

/** What the audit commands need from the CLI: its output, the configuration and a way to open the registry. */
export interface AuditCommandDeps {
  io: CliIo;
  json: boolean;
  config: Config;
  withDatabase<T>(run: (registry: CliRegistry) => Promise<T>): Promise<T>;
}

function parseSince(value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  // An ISO 8601 date or date-time; a bare date is midnight UTC.
  const date = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value) ? new Date(value) : undefined;
  if (!date || Number.isNaN(date.getTime())) throw new UsageError(`--since must be an ISO 8601 time such as 2026-11-23T14:00:00Z (got "${value}")`);
  return date;
}

function parseLimit(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const limit = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!(limit >= 1 && limit <= AUDIT_TAIL_MAX_LIMIT)) throw new UsageError(`--limit must be a whole number from 1 to ${AUDIT_TAIL_MAX_LIMIT} (got "${value}")`);
  return limit;
}

async function readCheckpointFile(io: CliIo, file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path.resolve(io.cwd, file), 'utf8');
  } catch {
    throw new UsageError(`--checkpoint: cannot read ${file}`);
  }
  try {
    return checkpointJwsFromFile(text);
  } catch (error) {
    if (error instanceof InvalidCheckpointError) throw new UsageError(`--checkpoint: ${error.message}`);
    throw error;
  }
}

function verificationJson(result: CheckpointVerification) {
  if (!result.ok) return { ok: false, broken_at: result.brokenAt, reason: result.reason, ...(result.truncated ? { truncated: true } : {}) };
  return {
    ok: true,
    rows: result.rows,
    legacy_rows: result.legacyRows,
    head: result.head ? { seq: result.head.seq, hash: result.head.hash } : null,
    ...(result.checkpoint ? { checkpoint: result.checkpoint } : {}),
  };
}

/**
 * `gatehouse audit tail [--since ISO-TIME] [--limit N]`: the last rows, oldest first.
 * `gatehouse audit verify [--checkpoint FILE]`: recomputes the keyed chain (and checks that it still
 * holds the checkpoint's head); exit 1 and one stderr line where it breaks.
 * `gatehouse audit checkpoint`: verifies the chain and prints its head, signed with the audit key.
 * `gatehouse audit rotate-key`: a new audit key, which keys every row from this command's own on.
 * Returns the exit code; commander has parsed the options (`options`) by then.
 */
export async function runAuditCommand(deps: AuditCommandDeps, sub: 'tail' | 'verify' | 'checkpoint' | 'rotate-key', options: Values): Promise<number> {
  const { io, json, config } = deps;
  switch (sub) {
    case 'tail': {
      const since = parseSince(str(options, 'since'));
      const limit = parseLimit(str(options, 'limit'));
      const rows = await deps.withDatabase((registry) => tailAudit(registry.db, { since, limit }));
      if (json) {
        io.stdout(`${JSON.stringify(rows.map(auditToJson), null, 2)}\n`);
      } else if (rows.length === 0) {
        io.stdout('(none)\n');
      } else {
        const lines = rows.map((row) =>
          [String(row.seq), row.at.toISOString(), row.actor, row.action, row.target ?? '-', JSON.stringify(row.details)].join('  '),
        );
        io.stdout(`${lines.join('\n')}\n`);
      }
      return 0;
    }
    case 'verify': {
      const file = str(options, 'checkpoint');
      const jws = file === undefined ? undefined : await readCheckpointFile(io, file);
      let result: CheckpointVerification;
      try {
        result = await deps.withDatabase(async (registry) => {
          const keys = await registry.auditKeys();
          return jws === undefined ? verifyAuditChain(registry.db, keys) : verifyAuditChainAgainst(registry.db, keys, jws);
        });
      } catch (error) {
        if (error instanceof InvalidCheckpointError) {
          if (json) io.stdout(`${JSON.stringify({ ok: false, reason: error.message }, null, 2)}\n`);
          io.stderr(`gatehouse: --checkpoint: ${error.message}\n`);
          return 1;
        }
        throw error;
      }
      if (json) io.stdout(`${JSON.stringify(verificationJson(result), null, 2)}\n`);
      if (result.ok) {
        if (!json) {
          const legacy = result.legacyRows > 0 ? ` (the first ${result.legacyRows} unkeyed, from before the audit key)` : '';
          const anchored = result.checkpoint ? `; holds the checkpoint at seq ${result.checkpoint.seq}` : '';
          io.stdout(`audit log intact: ${result.rows} rows${legacy}${anchored}\n`);
        }
        return 0;
      }
      io.stderr(`gatehouse: audit chain broken at seq ${result.brokenAt}: ${result.reason}\n`);
      return 1;
    }
    case 'checkpoint': {
      let checkpoint;
      try {
        checkpoint = await deps.withDatabase(async (registry) => createAuditCheckpoint(registry.db, await registry.auditKeys(), config.issuer));
      } catch (error) {
        if (error instanceof AuditChainBrokenError) {
          if (json) io.stdout(`${JSON.stringify({ ok: false, broken_at: error.brokenAt, reason: error.reason }, null, 2)}\n`);
          io.stderr(`gatehouse: ${error.message}: no checkpoint is signed for a broken chain\n`);
          return 1;
        }
        throw error;
      }
      printResult(io, json, {
        seq: checkpoint.seq,
        hash: checkpoint.hash,
        at: checkpoint.at,
        created_at: checkpoint.createdAt,
        kid: checkpoint.kid,
        checkpoint: checkpoint.jws,
      });
      return 0;
    }
    case 'rotate-key': {
      // The record is the first row keyed with the new key: from it on, every node keys with it.
      const { key } = await rotateAuditKey({ keysDir: config.keysDir, withRegistry: (run) => deps.withDatabase(run) }, cliActor());
      printResult(io, json, { kid: key.kid, created_at: key.createdAt, keys_dir: config.keysDir });
      return 0;
    }
  }
}

const AUDIT_HELP = `
Every change (clients, grants, resources, users, registration tokens, keys, db roles) is recorded in the
audit log, in the change's own transaction: as cli:<os user> from here, admin:<client id> from the
admin API, registration:<client id> from a client's own registration.
audit tail prints the last rows (100 unless --limit), oldest first; audit verify recomputes the
keyed hash chain (HMAC-SHA-256 with the audit keys in KEYS_DIR) and exits 1 naming the first row
where it breaks. audit checkpoint verifies the chain and prints its head (seq, hash, time) signed
with the audit key: keep it outside the database; audit verify --checkpoint FILE (the JWS or that
--json output) also exits 1 when the log has lost the newest rows or a row before the checkpoint
changed. audit rotate-key makes a new audit key, which keys every row from its own record on; old
keys stay in KEYS_DIR to verify the rows they keyed.
`;

/** `gatehouse audit tail | verify | checkpoint | rotate-key`: the keyed, hash-chained audit log. */
export function auditCommand(runtime: CliRuntime): Command {
  const audit = group('audit', 'read and verify the audit log, anchor it, rotate its key');
  audit.addHelpText('after', AUDIT_HELP);
  const deps = (ctx: Context): AuditCommandDeps => ({ io: ctx.io, json: ctx.json, config: ctx.config, withDatabase: (run) => withDatabase(ctx, run) });

  audit
    .command('tail')
    .summary('print the last rows of the audit log')
    .description('Prints the last rows of the audit log, oldest first.')
    .option('--since <ISO-TIME>', 'only rows from then on, e.g. 2026-11-23T14:00:00Z')
    .option('--limit <N>', `at most N rows (100 unless said, at most ${AUDIT_TAIL_MAX_LIMIT})`)
    .action(handle(runtime, (ctx, values) => runAuditCommand(deps(ctx), 'tail', values)));
  audit
    .command('verify')
    .summary('recompute the keyed hash chain')
    .description('Recomputes the keyed hash chain; exits 1 naming the first row where it breaks.')
    .option('--checkpoint <FILE>', 'also check that the log still holds this checkpoint (the JWS, or audit checkpoint --json output)')
    .action(handle(runtime, (ctx, values) => runAuditCommand(deps(ctx), 'verify', values)));
  audit
    .command('checkpoint')
    .summary("print the chain's head, signed")
    .description('Verifies the chain and prints its head (seq, hash, time) signed with the audit key: keep it outside the database.')
    .action(handle(runtime, (ctx, values) => runAuditCommand(deps(ctx), 'checkpoint', values)));
  audit
    .command('rotate-key')
    .summary('make a new audit key')
    .description('Makes a new audit key, which keys every row from its own record on; old keys stay to verify their rows.')
    .action(handle(runtime, (ctx, values) => runAuditCommand(deps(ctx), 'rotate-key', values)));
  return audit;
}
