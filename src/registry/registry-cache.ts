import type { Logger } from '../observability/logger.js';
import { findClientById, readRegistryRevision, type ClientRecord } from './client.repository.js';
import type { RegistryDatabase } from './database.js';
import { findResourceServer, type ResourceServer } from './resource-server.repository.js';

/** Read-through cache of clients and resource servers, dropped whenever the registry changes. */
export interface RegistryCache {
  getClient(clientId: string): Promise<ClientRecord | undefined>;
  getResourceServer(identifier: string): Promise<ResourceServer | undefined>;
  /** Asks the database for its revision now and drops the cache if it moved. */
  refresh(): Promise<void>;
  start(): void;
  stop(): void;
}

const MAX_ENTRIES = 10_000;

/**
 * Clients and resources are read once and then served from memory; a background poll of the
 * registry's revision counter (bumped by a trigger on every change, from any process) drops the
 * cache, so a change made by the CLI or another node is seen within one poll interval.
 * When the database is unreachable the cache keeps serving what it has.
 *
 * @example
 * const cache = createRegistryCache({ registry, logger, pollMs: 250 });
 * cache.start();
 */
export function createRegistryCache(deps: { registry: RegistryDatabase; logger: Logger; pollMs: number }): RegistryCache {
  const { registry, logger, pollMs } = deps;
  let clients = new Map<string, Promise<ClientRecord | undefined>>();
  let resources = new Map<string, Promise<ResourceServer | undefined>>();
  let revision: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let polling = false;
  let pollFailing = false;

  function clear(): void {
    clients = new Map();
    resources = new Map();
  }

  function readThrough<T>(map: Map<string, Promise<T | undefined>>, key: string, load: () => Promise<T | undefined>) {
    const hit = map.get(key);
    if (hit) return hit;
    if (map.size >= MAX_ENTRIES) map.clear();
    const pending = load();
    map.set(key, pending);
    // A failed read is not remembered: the next request asks the database again.
    pending.catch(() => {
      if (map.get(key) === pending) map.delete(key);
    });
    return pending;
  }

  async function refresh(): Promise<void> {
    const current = await readRegistryRevision(registry.db);
    if (current !== revision) {
      revision = current;
      clear();
    }
  }

  async function poll(): Promise<void> {
    if (polling) return;
    polling = true;
    try {
      await refresh();
      if (pollFailing) logger.info('registry reachable again');
      pollFailing = false;
    } catch (error) {
      if (!pollFailing) {
        logger.warn({ err: { message: (error as Error).message } }, 'registry revision poll failed; serving cached clients');
      }
      pollFailing = true;
    } finally {
      polling = false;
    }
  }

  return {
    getClient: (clientId) => readThrough(clients, clientId, () => findClientById(registry.db, clientId)),
    getResourceServer: (identifier) =>
      readThrough(resources, identifier, async () => {
        const found = await findResourceServer(registry.db, identifier);
        return found?.identifier === identifier ? found : undefined;
      }),
    refresh,
    start() {
      if (timer) return;
      timer = setInterval(() => void poll(), pollMs);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}
