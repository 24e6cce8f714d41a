import { sql } from 'kysely';
import { keyState, loadKeys } from '../keys/key-store.js';
import { auditVerificationToJson } from './audit.routes.js';
import { AUTH_ERRORS, defineRoute, type AdminRoute, type AdminRouteDeps } from './route.js';
import { overviewOut } from './schemas.js';

const ageSeconds = (createdAt: string, now: number) => Math.max(0, Math.floor((now - Date.parse(createdAt)) / 1000));

/** The signing keys in KEYS_DIR by state, and the age of the one the server signs with. */
async function signingKeys(keysDir: string) {
  const now = Date.now();
  const keys = await loadKeys(keysDir);
  const states = keys.map((key) => ({ key, state: keyState(key, now) }));
  const active = states.filter((s) => s.state === 'active').map((s) => s.key);
  // The server signs with the newest active key that is not a profile key (key-store.ts).
  const signer = active.filter((key) => !key.profile).sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt))[0];
  const oldest = active.map((key) => ageSeconds(key.createdAt, now)).sort((a, b) => b - a)[0];
  return {
    newest_active: signer ? { kid: signer.kid, alg: signer.alg, age_seconds: ageSeconds(signer.createdAt, now), created_at: new Date(signer.createdAt).toISOString() } : null,
    oldest_active_age_seconds: oldest ?? null,
    active: active.length,
    pending: states.filter((s) => s.state === 'pending').length,
    retired: states.filter((s) => s.state === 'retired').length,
  };
}

/**
 * GET /overview: the registry's counts, the signing keys' ages, the tokens this node issued in the
 * last hour (from its metrics, never the database or the store) and the audit chain's status.
 */
export function overviewRoutes(deps: AdminRouteDeps): AdminRoute[] {
  return [
    defineRoute({
      method: 'get',
      path: '/overview',
      operationId: 'getOverview',
      tag: 'overview',
      summary: 'Figures at a glance',
      description:
        'Counts of clients, APIs, people and upstream providers (one query); the signing keys by state and the age of the one that signs; ' +
        'the tokens issued in the last hour by this node, from its gatehouse_tokens_issued_total counter sampled once a minute in its process ' +
        '(each node counts its own); and the audit chain\'s verification as GET /audit/verification gives it (cached, bounded).',
      responses: { 200: { description: 'The figures', body: overviewOut }, ...AUTH_ERRORS },
      async handler(ctx) {
        const { db, config, auditChain, tokensIssued } = deps;
        const counts = db
          .selectNoFrom([
            sql<string>`(select count(*) from clients)`.as('clients'),
            sql<string>`(select count(*) from resource_servers)`.as('apis'),
            sql<string>`(select count(*) from users)`.as('people'),
            sql<string>`(select count(*) from users where disabled)`.as('people_disabled'),
            sql<string>`(select count(*) from upstream_providers)`.as('upstream_providers'),
          ])
          .executeTakeFirstOrThrow();
        const [row, keys, chain] = await Promise.all([counts, signingKeys(config.keysDir), auditChain.status()]);
        const tokens = tokensIssued.read();
        ctx.body = {
          counts: {
            clients: Number(row.clients),
            apis: Number(row.apis),
            people: Number(row.people),
            people_disabled: Number(row.people_disabled),
            upstream_providers: Number(row.upstream_providers),
          },
          signing_keys: keys,
          tokens_last_hour: { count: tokens.count, window_seconds: tokens.windowSeconds, since: tokens.since.toISOString(), node: 'this' as const },
          audit_chain: auditVerificationToJson(chain),
        };
      },
    }),
  ];
}
