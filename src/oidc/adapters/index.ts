import type { Adapter } from 'oidc-provider';
import type { Kysely } from 'kysely';
import type { Database } from '../../registry/tables.js';
import type { EphemeralStore } from '../../store/ephemeral-store.js';
import { createClientAdapter, type ClientAdapterDeps } from './client-adapter.js';
import { createDurableAdapter, DURABLE_MODELS } from './durable-adapter.js';
import { createStoreAdapter } from './store-adapter.js';

/**
 * oidc-provider's `adapter` option: Client comes from the registry (cached), the durable models
 * (consents, refresh tokens, registration tokens) from PostgreSQL, every other model from the
 * ephemeral store.
 */
export function createAdapterFactory(deps: ClientAdapterDeps & { store: EphemeralStore; db: Kysely<Database> }): (model: string) => Adapter {
  const clientAdapter = createClientAdapter(deps);
  return (model: string) => {
    if (model === 'Client') return clientAdapter;
    if (DURABLE_MODELS.has(model)) return createDurableAdapter(model, deps.db);
    return createStoreAdapter(model, deps.store);
  };
}
