import { sql, type Kysely, type Transaction } from 'kysely';
import { DEFAULT_MIGRATION_TABLE, Migrator, type MigrationResult } from 'kysely/migration';
import { MIGRATIONS } from '../../migrations/index.js';
import type { Database } from './tables.js';

export class MigrationError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'MigrationError';
  }
}

/** Where the registry stands against this build's migrations. */
export interface MigrationState {
  /** Migrations of this build not applied yet, in the order they run. */
  pending: string[];
  /** Migrations the database has applied that this build does not know (a newer Gatehouse migrated it). */
  unknown: string[];
}

/**
 * Reads which migrations are applied, with SELECTs only: a role that may not change the schema
 * (the runtime role of `gatehouse db roles`) can ask.
 *
 * @example
 * const { pending } = await migrationState(registry.db);
 */
export async function migrationState(db: Kysely<Database> | Transaction<Database>): Promise<MigrationState> {
  const { rows } = await sql<{ present: boolean }>`select to_regclass(${DEFAULT_MIGRATION_TABLE}) is not null as present`.execute(db);
  const applied = rows[0]?.present
    ? (await sql<{ name: string }>`select name from ${sql.table(DEFAULT_MIGRATION_TABLE)}`.execute(db)).rows.map((row) => row.name)
    : [];
  const known = Object.keys(MIGRATIONS);
  const done = new Set(applied);
  return {
    pending: known.filter((name) => !done.has(name)),
    unknown: applied.filter((name) => !(name in MIGRATIONS)).sort(),
  };
}

/** PostgreSQL's insufficient_privilege, wherever in the cause chain it is. */
function isInsufficientPrivilege(error: unknown): boolean {
  for (let cause = error; typeof cause === 'object' && cause !== null; cause = (cause as { cause?: unknown }).cause) {
    if ((cause as { code?: unknown }).code === '42501') return true;
  }
  return false;
}

/**
 * Runs every pending migration; running it again does nothing. Returns the names it applied.
 * When nothing is pending it only reads (see migrationState), so it succeeds for a role that may
 * not change the schema; otherwise the migrator takes its lock and runs what is pending.
 */
export async function migrateToLatest(db: Kysely<Database>): Promise<string[]> {
  const state = await migrationState(db);
  // Unknown applied migrations go to the migrator, which refuses them as before.
  if (state.pending.length === 0 && state.unknown.length === 0) return [];
  const migrator = new Migrator({
    db,
    provider: { getMigrations: () => Promise.resolve(MIGRATIONS) },
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((result: MigrationResult) => result.status === 'Error');
    const message = error instanceof Error ? error.message : String(error);
    const hint = isInsufficientPrivilege(error) ? ' (this role may not change the schema: run gatehouse migrate as the schema owner)' : '';
    throw new MigrationError(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${message}${hint}`, { cause: error });
  }
  return (results ?? []).filter((result) => result.status === 'Success').map((result) => result.migrationName);
}
