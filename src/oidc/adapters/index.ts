import type { Adapter } from 'oidc-provider';
import type { RegistryCache } from '../../registry/registry-cache.js';
import type { EphemeralStore } from '../../store/ephemeral-store.js';
import { createClientAdapter } from './client-adapter.js';
import { createStoreAdapter } from './store-adapter.js';

/**
 * oidc-provider's `adapter` option: Client comes from the registry; every other model goes to the
 * ephemeral store. (Grant and RefreshToken move to the registry with the sign-in flows.)
 */
export function createAdapterFactory(deps: { cache: RegistryCache; store: EphemeralStore }): (model: string) => Adapter {
  const clientAdapter = createClientAdapter(deps.cache);
  return (model: string) => (model === 'Client' ? clientAdapter : createStoreAdapter(model, deps.store));
}
