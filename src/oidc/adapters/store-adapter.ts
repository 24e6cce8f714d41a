import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { EphemeralStore } from '../../store/ephemeral-store.js';

/** oidc-provider's adapter for one model, backed by the ephemeral store. */
export function createStoreAdapter(model: string, store: EphemeralStore): Adapter {
  return {
    upsert: (id: string, payload: AdapterPayload, expiresIn?: number) => store.upsert(model, id, payload, expiresIn),
    find: (id: string) => store.find(model, id),
    findByUid: (uid: string) => store.findByUid(model, uid),
    findByUserCode: (userCode: string) => store.findByUserCode(model, userCode),
    consume: (id: string) => store.consume(model, id),
    destroy: (id: string) => store.destroy(model, id),
    revokeByGrantId: (grantId: string) => store.revokeByGrantId(grantId),
  };
}
