import type { ClientRecord } from '../registry/client.repository.js';
import type { RegistryCache } from '../registry/registry-cache.js';
import { ACCOUNT_CLIENT_ID, accountClientRecord, API_KEY_CLIENT_ID, apiKeyClientRecord, CONSOLE_CLIENT_ID, consoleClientRecord } from '../services/built-in-clients.js';

/**
 * The registry cache as the provider sees it: the registry's clients, plus the account page's
 * built-in client `gatehouse-account` (services/built-in-clients.ts), synthesised from the issuer
 * rather than read from a row. Every reader inside the provider (the Client adapter, the first-party
 * consent skip, the mfa_required check, resource indicators, rememberBuiltClients) goes through
 * this one view, so they all agree on it; the record is built once, so the provider builds its
 * Client once too.
 *
 * @example
 * const cache = withAccountClient(deps.cache, config.issuer);
 */
export function withAccountClient(cache: RegistryCache, issuer: string): RegistryCache {
  const record = accountClientRecord(issuer);
  const found = Promise.resolve(record);
  // And the client personal API keys are exchanged through (gatehouse-api-keys), built the same way.
  const apiKeyClient = Promise.resolve(apiKeyClientRecord());
  // And the console's (gatehouse-console: docs/console.md).
  const consoleClient = Promise.resolve(consoleClientRecord(issuer));
  const builtIn: Record<string, Promise<ClientRecord>> = { [ACCOUNT_CLIENT_ID]: found, [API_KEY_CLIENT_ID]: apiKeyClient, [CONSOLE_CLIENT_ID]: consoleClient };
  return {
    getClient: (clientId) => (Object.hasOwn(builtIn, clientId) ? (builtIn[clientId] as Promise<ClientRecord>) : cache.getClient(clientId)),
    getResourceServer: (identifier) => cache.getResourceServer(identifier),
    refresh: () => cache.refresh(),
    start: () => cache.start(),
    stop: () => cache.stop(),
  };
}
