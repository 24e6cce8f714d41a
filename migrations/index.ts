import type { Migration } from 'kysely/migration';
import * as createRegistry from './2026_11_23_120000_create_registry.js';

/** Every migration, by name; names sort in the order they run. Add new ones here; never edit old ones. */
export const MIGRATIONS: Record<string, Migration> = {
  '2026_11_23_120000_create_registry': createRegistry,
};
