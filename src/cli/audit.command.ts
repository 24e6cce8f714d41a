import { parseArgs } from 'node:util';
import { AUDIT_TAIL_MAX_LIMIT, auditToJson, tailAudit, verifyAuditChain } from '../audit/audit-log.js';
import type { RegistryDatabase } from '../registry/database.js';
import { UsageError, type CliIo } from './output.js';

/** What the audit commands need from the CLI: its output and a way to open the registry. */
export interface AuditCommandDeps {
  io: CliIo;
  json: boolean;
  withDatabase<T>(run: (registry: RegistryDatabase) => Promise<T>): Promise<T>;
}

function parse(args: string[], options: { since?: true; limit?: true } = {}) {
  try {
    const { values, positionals } = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        json: { type: 'boolean' },
        ...(options.since ? { since: { type: 'string' } } : {}),
        ...(options.limit ? { limit: { type: 'string' } } : {}),
      },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    return values as { since?: string; limit?: string };
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

/**
 * `gatehouse audit tail [--since ISO-TIME] [--limit N]`: the last rows, oldest first.
 * `gatehouse audit verify`: recomputes the hash chain; exit 1 and one stderr line where it breaks.
 * Returns the exit code.
 */
export async function runAuditCommand(deps: AuditCommandDeps, sub: string | undefined, args: string[]): Promise<number> {
  const { io, json } = deps;
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
      parse(args);
      const result = await deps.withDatabase((registry) => verifyAuditChain(registry.db));
      if (result.ok) {
        io.stdout(json ? `${JSON.stringify({ ok: true, rows: result.rows }, null, 2)}\n` : `audit log intact: ${result.rows} rows\n`);
        return 0;
      }
      if (json) io.stdout(`${JSON.stringify({ ok: false, broken_at: result.brokenAt, reason: result.reason }, null, 2)}\n`);
      io.stderr(`gatehouse: audit chain broken at seq ${result.brokenAt}: ${result.reason}\n`);
      return 1;
    }
    default:
      throw new UsageError(`unknown command "audit ${sub ?? ''}": use tail or verify`);
  }
}
