import compose from 'koa-compose';
import type { Middleware } from 'koa';
import type { JSONWebKeySet } from 'jose';
import type { JWK, Provider } from 'oidc-provider';
import type { AuditSink } from '../audit/audit-log.js';
import type { Config } from '../config/load-config.js';
import { publicJwk } from '../keys/jwk.js';
import { keysFingerprint, loadSigningKeys } from '../keys/key-store.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { closeRotationScope, openRotationScope } from './adapters/rotation-scope.js';
import type { BackchannelLogoutQueue } from './backchannel-logout.js';
import type { ProviderDeps } from './configuration.js';
import { answerRewrites, createProvider } from './provider.js';

/** A signing key's public half, as the JWKS endpoint publishes it. */
function publicPart(jwk: JWK): JSONWebKeySet['keys'][number] {
  return publicJwk(jwk) as JSONWebKeySet['keys'][number];
}

/** Holds the current provider and swaps in a new one when the signing keys on disk change. */
export interface ProviderHost {
  readonly provider: Provider;
  /** The public keys the provider publishes at /jwks, for verifying our own tokens locally. */
  readonly publicJwks: JSONWebKeySet;
  /** Koa middleware running the current provider with the parent app's context. */
  readonly middleware: Middleware;
  /** Rebuilds the provider now if the keys directory changed; true when it did. */
  reloadIfKeysChanged(): Promise<boolean>;
  start(): void;
  stop(): void;
}

/**
 * @example
 * const host = await createProviderHost({ config, cache, store, digestKey, logger });
 * app.use(host.middleware);
 */
export async function createProviderHost(
  deps: Omit<ProviderDeps, 'jwks'> & { config: Config; digestKey: Buffer; logger: Logger; audit?: AuditSink | undefined; metrics?: Metrics | undefined; backchannelLogout: BackchannelLogoutQueue },
): Promise<ProviderHost> {
  const { config, logger } = deps;

  async function build() {
    const fingerprint = await keysFingerprint(config.keysDir);
    const { jwks, nextChangeAt, fapi2Alg } = await loadSigningKeys(config.keysDir, { generateIfMissing: !config.production });
    const provider = createProvider({ ...deps, jwks, fapi2SigningAlg: fapi2Alg });
    const publicJwks: JSONWebKeySet = { keys: jwks.map(publicPart) };
    return { fingerprint, nextChangeAt, provider, dispatch: compose(provider.middleware), kid: jwks[0]?.kid, fapi2Alg, publicJwks };
  }

  const rewrites = answerRewrites(config);
  let current = await build();
  const tokenPath = current.provider.pathFor('token');
  // In development the first start may have just generated the key: fingerprint what is there now.
  current.fingerprint = await keysFingerprint(config.keysDir);
  logger.info({ kid: current.kid }, 'signing key loaded');
  if (!current.fapi2Alg) {
    logger.warn('no active PS256 or ES256 key: clients of profile fapi2 are refused until one is made (gatehouse keys generate --profile fapi2)');
  }
  let timer: NodeJS.Timeout | undefined;
  /** The check under way, if any: one at a time. */
  let checking: Promise<boolean> | undefined;

  /**
   * Reloads the provider when the keys on disk (or who signs, on schedule) changed. A call made while
   * a check is under way waits for it and then checks again: that check may have read the directory
   * before the caller's change (a rotation through the admin API reloads before answering).
   */
  async function reloadIfKeysChanged(): Promise<boolean> {
    while (checking) await checking;
    const mine = checkKeys();
    checking = mine;
    try {
      return await mine;
    } finally {
      if (checking === mine) checking = undefined;
    }
  }

  async function checkKeys(): Promise<boolean> {
    try {
      const fingerprint = await keysFingerprint(config.keysDir);
      // A pending key's activation (or a retirement) changes who signs without any file changing.
      const due = current.nextChangeAt !== undefined && Date.now() >= current.nextChangeAt;
      if (fingerprint === current.fingerprint && !due) return false;
      const next = await build();
      if (next.fingerprint !== fingerprint) return false;
      current = next;
      logger.info({ kid: next.kid }, due ? 'signing key changed on schedule; provider reloaded' : 'signing keys changed; provider reloaded');
      return true;
    } catch (error) {
      logger.error({ err: { message: (error as Error).message } }, 'could not reload signing keys; keeping the current ones');
      return false;
    }
  }

  return {
    get provider() {
      return current.provider;
    },
    get publicJwks() {
      return current.publicJwks;
    },
    // One async frame around the provider: the rotation scope and the answer rewrites are steps of
    // it, not Koa layers of their own (each layer costs a few promises per request).
    async middleware(ctx, next) {
      const scope = openRotationScope(ctx, tokenPath);
      await current.dispatch(ctx, next);
      // Awaited only when a step has something to wait for: each await is a turn of the microtask queue.
      for (const rewrite of rewrites) {
        const pending = rewrite(ctx);
        if (pending) await pending;
      }
      const writing = scope && closeRotationScope(ctx, scope);
      if (writing) await writing;
    },
    reloadIfKeysChanged,
    start() {
      if (timer) return;
      timer = setInterval(() => void reloadIfKeysChanged(), config.keysPollMs);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}
