import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import type { EphemeralStore } from '../../store/ephemeral-store.js';
import { REPLAY_DETECTION_MODEL } from '../upstream.js';

/**
 * The one-time grant sources the token endpoint redeems, with the name oidc-provider gives each in
 * its errors. Only the authorization code is enabled today; the device code and the CIBA request
 * are redeemed the same way.
 */
const REDEEMED = new Map([
  ['AuthorizationCode', 'authorization code'],
  ['DeviceCode', 'device code'],
  ['BackchannelAuthenticationRequest', 'backchannel authentication request'],
]);

/**
 * Models whose entries the store keeps this many seconds past their expiry: a device that polls
 * an expired device code then hears expired_token (RFC 8628 §3.5; oidc-provider reads the code
 * ignoring its expiry and says so), and a person typing its user code "expired", rather than
 * "not found" for both.
 */
const KEPT_AFTER_EXPIRY = new Map([['DeviceCode', 600]]);

/**
 * How long a replay-detection claim holds before oidc-provider's own save replaces it with the
 * entry's real lifetime (a DPoP proof's window: 300 s); only a request that fails in between leaves
 * the claim, and then its id stays refused for this long.
 */
const REPLAY_CLAIM_SECONDS = 300;

/** Revokes a grant: its consent and refresh tokens (registry) and its codes and opaque tokens (store). */
export type RevokeGrant = (grantId: string) => Promise<void>;

/**
 * oidc-provider's adapter for one model, backed by the ephemeral store.
 *
 * Redeeming a code is atomic. Reliance on oidc-provider (9.x, lib/helpers/grant_source.js): the
 * token endpoint reads the code, refuses it if `consumed` (revoking its grant), and only then calls
 * `adapter.consume`; an error thrown there is the answer. Two requests with one code can both read
 * it unconsumed, so `consume` is the store's compare-and-set: the loser is refused with
 * invalid_grant and revokes the grant, as oidc-provider does for a replay it sees, so the winner's
 * refresh and opaque access tokens die too (each use of them looks the grant up again).
 */
export function createStoreAdapter(model: string, store: EphemeralStore, revokeGrant: RevokeGrant): Adapter {
  const label = REDEEMED.get(model);
  const kept = KEPT_AFTER_EXPIRY.get(model) ?? 0;
  return {
    upsert: (id: string, payload: AdapterPayload, expiresIn?: number) => store.upsert(model, id, payload, expiresIn === undefined ? undefined : expiresIn + kept),
    // Replay detection (DPoP proofs, client assertions) is one step: the look-up claims the id.
    // oidc-provider's ReplayDetection.unique finds the id and, when there is none, saves it (see
    // upstream.ts, REPLAY_DETECTION_MODEL): two steps, between which a concurrent request with the
    // same jti would find nothing too and both would pass. Claimed atomically here, exactly one
    // finds nothing; its save then stores the entry for its real lifetime.
    find:
      model === REPLAY_DETECTION_MODEL
        ? async (id: string) => ((await store.insertIfAbsent(model, id, { jti: id }, REPLAY_CLAIM_SECONDS)) ? undefined : { jti: id })
        : (id: string) => store.find(model, id),
    findByUid: (uid: string) => store.findByUid(model, uid),
    findByUserCode: (userCode: string) => store.findByUserCode(model, userCode),
    async consume(id: string) {
      const outcome = await store.consume(model, id);
      if (outcome.result === 'consumed' || label === undefined) return;
      if (outcome.result === 'missing') {
        // Gone since the provider read it: revoked (by a concurrent replay) or expired.
        throw new errors.InvalidGrant(`${label} not found`);
      }
      const { grantId } = outcome.payload;
      if (typeof grantId === 'string') await revokeGrant(grantId);
      throw new errors.InvalidGrant(`${label} already consumed`);
    },
    destroy: (id: string) => store.destroy(model, id),
    revokeByGrantId: (grantId: string) => store.revokeByGrantId(grantId),
  };
}
