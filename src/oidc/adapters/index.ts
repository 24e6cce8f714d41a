import type { Adapter } from 'oidc-provider';
import type { Kysely } from 'kysely';
import type { Database } from '../../registry/tables.js';
import type { Dependency } from '../../services/dependency-outage.js';
import type { EphemeralStore } from '../../store/ephemeral-store.js';
import { createClientAdapter, type ClientAdapterDeps } from './client-adapter.js';
import { createDurableAdapter, DURABLE_MODELS } from './durable-adapter.js';
import { createStoreAdapter } from './store-adapter.js';
import { indexSessions } from './session-index.js';
import { currentProviderRequest, rethrowUnreachable } from '../upstream.js';

/**
 * oidc-provider's `adapter` option: Client comes from the registry (cached), the durable models
 * (consents, refresh tokens, registration tokens) from PostgreSQL, every other model from the
 * ephemeral store.
 */
export function createAdapterFactory(deps: ClientAdapterDeps & { store: EphemeralStore; db: Kysely<Database> }): (model: string) => Adapter {
  const clientAdapter = guardAdapter(createClientAdapter({ currentRequest: currentProviderRequest, ...deps }), 'database');
  // What oidc-provider's own revocation of a grant reaches: the consent and its refresh tokens share
  // its grant_id in the registry; codes and opaque tokens are indexed by it in the store.
  const durableFamily = guardAdapter(createDurableAdapter('Grant', deps.db), 'database');
  const storeGone = rethrowUnreachable('store');
  const revokeGrant = async (grantId: string) => {
    await Promise.all([durableFamily.revokeByGrantId(grantId), deps.store.revokeByGrantId(grantId).catch(storeGone)]);
  };
  return (model: string) => {
    if (model === 'Client') return clientAdapter;
    if (DURABLE_MODELS.has(model)) return guardAdapter(createDurableAdapter(model, deps.db), 'database');
    // Sessions are also indexed by account (session-index.ts: the account page's "Sessions").
    if (model === 'Session') return guardAdapter(indexSessions(createStoreAdapter(model, deps.store, revokeGrant), deps.store), 'store');
    return guardAdapter(createStoreAdapter(model, deps.store, revokeGrant), 'store');
  };
}

/**
 * An adapter whose every call answers DependencyUnavailable (503 temporarily_unavailable) when
 * the database or store behind it cannot be reached, instead of oidc-provider's 500 server_error.
 */
function guardAdapter(adapter: Adapter, dependency: Dependency): Adapter {
  const rethrow = rethrowUnreachable(dependency);
  return {
    upsert: (id, payload, expiresIn) => adapter.upsert(id, payload, expiresIn).catch(rethrow),
    find: (id) => adapter.find(id).catch(rethrow),
    findByUid: (uid) => adapter.findByUid(uid).catch(rethrow),
    findByUserCode: (userCode) => adapter.findByUserCode(userCode).catch(rethrow),
    consume: (id) => adapter.consume(id).catch(rethrow),
    destroy: (id) => adapter.destroy(id).catch(rethrow),
    revokeByGrantId: (grantId) => adapter.revokeByGrantId(grantId).catch(rethrow),
  };
}
