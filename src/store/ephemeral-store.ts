import type { AdapterPayload } from 'oidc-provider';

export type { AdapterPayload };

/**
 * Short-lived protocol state (sessions, interactions, codes, replay detection, opaque tokens)
 * keyed by oidc-provider model name. Redis in production, an in-process map in development:
 * both pass the same contract tests.
 */
export interface EphemeralStore {
  readonly kind: 'redis' | 'memory';
  upsert(model: string, id: string, payload: AdapterPayload, expiresIn?: number): Promise<void>;
  find(model: string, id: string): Promise<AdapterPayload | undefined>;
  findByUid(model: string, uid: string): Promise<AdapterPayload | undefined>;
  findByUserCode(model: string, userCode: string): Promise<AdapterPayload | undefined>;
  /** Marks the entry consumed (epoch seconds), keeping its expiry. */
  consume(model: string, id: string): Promise<void>;
  destroy(model: string, id: string): Promise<void>;
  /** Deletes every entry, of any model, that carries this grantId. */
  revokeByGrantId(grantId: string): Promise<void>;
  /** Resolves when the store answers within the timeout, else rejects. */
  ping(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export const storeKey = (model: string, id: string) => `oidc:${model}:${id}`;
export const grantKey = (grantId: string) => `oidc:grant:${grantId}`;
export const uidKey = (model: string, uid: string) => `oidc:${model}:uid:${uid}`;
export const userCodeKey = (model: string, userCode: string) => `oidc:${model}:userCode:${userCode}`;

export const epochSeconds = () => Math.floor(Date.now() / 1000);
