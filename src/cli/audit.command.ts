import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  AuditChainBrokenError,
  checkpointJwsFromFile,
  createAuditCheckpoint,
  InvalidCheckpointError,
  verifyAuditChainAgainst,
  type CheckpointVerification,
} from '../audit/audit-checkpoint.js';
import { AUDIT_TAIL_MAX_LIMIT, auditToJson, tailAudit, verifyAuditChain } from '../audit/audit-log.js';
import type { Config } from '../config/load-config.js';
import { rotateAuditKey } from '../services/keys.service.js';
import { cliActor, type CliRegistry } from './cli-audit.js';
import { printResult, UsageError, type CliIo } from './output.js';

/** What the audit commands need from the CLI: its output, the configuration and a way to open the registry. */
export interface AuditCommandDeps {
  io: CliIo;
  json: boolean;
  config: Config;
  withDatabase<T>(run: (registry: CliRegistry) => Promise<T>): Promise<T>;
}

function parse(args: string[], options: { since?: true; limit?: true; checkpoint?: true } = {}) {
  try {
    const { values, positionals } = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        json: { type: 'boolean' },
        ...(options.since ? { since: { type: 'string' } } : {}),
        ...(options.limit ? { limit: { type: 'string' } } : {}),
        ...(options.checkpoint ? { checkpoint: { type: 'string' } } : {}),
      },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    return values as { since?: string; limit?: string; checkpoint?: string };
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError((error as Error).message.split('\n')[0] ?? 'bad arguments');
  }
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
 * Returns the exit code.
 */
export async function runAuditCommand(deps: AuditCommandDeps, sub: string | undefined, args: string[]): Promise<number> {
  const { io, json, config } = deps;
  switch (sub) {
    case 'tail': {
      const values = parse(args, { since: true, limit: true });
      const since = parseSince(values.since);
      const limit = parseLimit(values.limit);
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
      const values = parse(args, { checkpoint: true });
      const jws = values.checkpoint === undefined ? undefined : await readCheckpointFile(io, values.checkpoint);
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
      parse(args);
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
      parse(args);
      // The record is the first row keyed with the new key: from it on, every node keys with it.
      const { key } = await rotateAuditKey({ keysDir: config.keysDir, withRegistry: (run) => deps.withDatabase(run) }, cliActor());
      printResult(io, json, { kid: key.kid, created_at: key.createdAt, keys_dir: config.keysDir });
      return 0;
    }
    default:
      throw new UsageError(`unknown command "audit ${sub ?? ''}": use tail, verify, checkpoint or rotate-key`);
  }
}
