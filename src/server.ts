import { once } from 'node:events';
import http, { type RequestListener, type Server } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type { Config } from './config/load-config.js';
import { createAccountService } from './accounts/accounts.js';
import { createAdminRoutes } from './admin/admin.routes.js';
import { createAuditSink, createAuditWriter, sealLegacyAuditChain } from './audit/audit-log.js';
import { purgeExpiredDurableRows } from './oidc/adapters/durable-adapter.js';
import { createApp } from './http/app.js';
import { createConsoleRoutes } from './http/console.routes.js';
import { createAccountRoutes } from './interactions/account.routes.js';
import { createAccountLinkRoutes } from './interactions/account-links.routes.js';
import { createAccountSelf } from './interactions/account-self.routes.js';
import { createInteractionRoutes } from './interactions/interaction.routes.js';
import { createUpstreamRoutes, UPSTREAM_START_WINDOW_SECONDS } from './interactions/upstream.routes.js';
import { createUpstreamSignIn } from './services/upstream-sign-in.js';
import { createLoginLimiter, createRequestLimiter, type RequestLimiter } from './interactions/login-limiter.js';
import { relyingPartyOf } from './accounts/passkeys.js';
import { createMailer } from './mail/smtp-mailer.js';
import { createMailComposer } from './mail/compose.js';
import { createResetRoutes, RESET_WINDOW_SECONDS } from './interactions/reset.routes.js';
import { createSignupRoutes, SIGNUP_WINDOW_SECONDS } from './interactions/signup.routes.js';
import { createEmailAddressRoutes } from './interactions/email-address.routes.js';
import { ACCOUNT_EMAIL_MAILS_PER_HOUR, createAccountEmailRoutes } from './interactions/account-email.routes.js';
import { purgeEmailLinks } from './registry/email-link.repository.js';
import { createPages } from './oidc/pages.js';
import { loadAuditKeyring } from './keys/audit-key.js';
import { loadDataKeyring } from './keys/data-key.js';
import { keyState, loadDigestKey, loadKeys } from './keys/key-store.js';
import type { Logger } from './observability/logger.js';
import { createMetrics, createMetricsServer } from './observability/metrics.js';
import { createCounterWindow } from './observability/counter-window.js';
import { createAuditChainMonitor } from './audit/audit-chain-monitor.js';
import { createBackchannelLogoutQueue, createSessionSignOut, watchCliSignOuts } from './oidc/backchannel-logout.js';
import { listAccountSessions } from './oidc/adapters/session-index.js';
import { grantScopes } from './oidc/upstream.js';
import { createProviderHost, type ProviderHost } from './oidc/provider-host.js';
import { openServerDatabase, type RegistryDatabase } from './registry/database.js';
import { migrateToLatest } from './registry/migrate.js';
import { createRegistryCache, type RegistryCache } from './registry/registry-cache.js';
import { createSignInRecorder } from './services/sign-ins.service.js';
import { timedStore, type EphemeralStore } from './store/ephemeral-store.js';
import { createMemoryStore } from './store/memory-store.js';
import { connectRedis, createRedisStore } from './store/redis-store.js';

/** A running Gatehouse: its address and what closes it. */
export interface RunningServer {
  /**
   * Its address on this machine, by the name the default issuer (`http://localhost:PORT`) uses:
   * the Host is pinned to the issuer's, so with another ISSUER requests must name that one.
   */
  readonly url: string;
  /** The port it listens on; 0 when started with `listen: false`. */
  readonly port: number;
  /** The app's request handler (the Koa app's callback): what the listener runs for every request. */
  readonly handler: RequestListener;
  readonly registry: RegistryDatabase;
  readonly store: EphemeralStore;
  readonly cache: RegistryCache;
  readonly host: ProviderHost;
  /** Stops accepting connections, lets in-flight requests finish, closes the pools. */
  close(): Promise<void>;
}

const SHUTDOWN_GRACE_MS = 10_000;
/** How long shutdown leaves idle keep-alive connections open for requests already on their way. */
const DRAIN_LINGER_MS = 1000;
const IDLE_SWEEP_MS = 100;
const DURABLE_SWEEP_MS = 60 * 60 * 1000;
/** The window of DEVICE_CODE_MAX_PER_IP: wrong user codes per client IP per 15 minutes. */
const DEVICE_CODE_WINDOW_SECONDS = 900;
/** How often a node reads the audit log for sign-outs made with the CLI (back-channel logout). */
const CLI_SIGN_OUT_POLL_MS = 1000;

/**
 * Sockets already listening, to answer on instead of binding `config.port` and `config.metricsPort`:
 * a caller that binds port 0 first learns its port before it names the issuer (the tests do; a port
 * picked first and bound later could be taken in between).
 */
export interface StartOptions {
  server?: Server;
  metricsServer?: Server;
  /**
   * false: bind no port at all (neither `config.port` nor `config.metricsPort`); requests reach the
   * app only through `handler`, called in this process (the tests' in-process dispatcher).
   */
  listen?: boolean;
}

/**
 * Opens the registry and store, migrates (automatically outside production), loads keys and
 * listens. Used by main.ts and by the tests.
 *
 * @example
 * const server = await startServer(loadConfig(process.env), logger);
 */
export async function startServer(config: Config, logger: Logger, options: StartOptions = {}): Promise<RunningServer> {
  if (config.cookieKeysGenerated) {
    logger.warn('COOKIE_KEYS is not set: using random cookie keys for this start (sessions end on restart)');
  }
  const digestKey = await loadDigestKey(config.keysDir, { generateIfMissing: !config.production });
  const auditKeys = await loadAuditKeyring(config.keysDir, { generateIfMissing: !config.production });
  // Seals the secrets stored in the registry (TOTP secrets); in production `keys generate` makes it,
  // and a start without one stops here, naming the command.
  const dataKeys = await loadDataKeyring(config.keysDir, { generateIfMissing: !config.production });

  const metrics = createMetrics({
    clientIds: config.metricsClientIds,
    keyAges: async () => {
      const now = Date.now();
      return (await loadKeys(config.keysDir)).map((key) => ({ kid: key.kid, status: keyState(key, now), ageSeconds: (now - Date.parse(key.createdAt)) / 1000 }));
    },
  });
  const registry = await openServerDatabase(config, logger, (seconds, failed) => metrics.dependency('database', 'query', seconds, failed));
  let store: EphemeralStore | undefined;
  try {
    if (!config.production) {
      const applied = await migrateToLatest(registry.db);
      if (applied.length > 0) logger.info({ applied }, 'migrations applied');
    }
    // Rows from before the audit chain was keyed are sealed by a keyed row after them.
    await sealLegacyAuditChain(registry.db, auditKeys).then(
      (sealed) => sealed && logger.info('audit log: the rows written before the chain was keyed are sealed by a keyed row'),
      (error: unknown) => logger.warn({ err: { message: (error as Error)?.message ?? String(error) } }, 'audit log: unkeyed rows could not be sealed'),
    );
    const redis = config.redisUrl ? connectRedis(config.redisUrl, logger) : undefined;
    if (redis) {
      store = createRedisStore(redis);
    } else {
      logger.warn('REDIS_URL is not set: using the in-process store (development only; state is lost on restart)');
      store = createMemoryStore();
    }
    store = timedStore(store, (operation, seconds, failed) => metrics.dependency('store', operation, seconds, failed));
    const cache = createRegistryCache({ registry, logger, pollMs: config.registryPollMs });
    const accounts = createAccountService({ db: registry.db, logger });
    const pages = createPages(config.brand);
    // Mail (reset and verification links): queued, sent after the answer, retried (docs/design/self-service.md §1).
    const mailer = createMailer({ config, logger, onOutcome: (kind, outcome) => metrics.mail(kind, outcome) });
    // Security events go to the sink (never failing a request); registry changes are recorded by the
    // services with the writer, in the change's transaction (a failed record fails the change).
    const audit = createAuditSink(registry.db, auditKeys, logger);
    const auditWriter = createAuditWriter(auditKeys);
    // Email addresses (verification, sign-up, changes): the services send through the mailer (docs/design/self-service.md).
    const email = { db: registry.db, audit: auditWriter, mail: { mailer, compose: createMailComposer(config.brand), issuer: config.issuer, brandName: config.brand.name } };
    const signup = config.signupEnabled
      ? createSignupRoutes({ email, audit, limiter: counted(createRequestLimiter({ ...(redis ? { redis } : {}), keyPrefix: 'signup_ip', points: config.signupMaxPerIp, windowSeconds: SIGNUP_WINDOW_SECONDS }), () => metrics.rateLimited('signup_ip')) })
      : undefined;
    // Failed personal API key exchanges, per client IP (the login limits' perIp and window).
    const apiKeyLimiter = createLoginLimiter({ ...(redis ? { redis } : {}), limits: config.loginLimits, kind: 'api_key' });
    const apiKeyFailures = {
      check: async (ip: string) => {
        const check = await apiKeyLimiter.check(undefined, ip);
        if (!check.allowed) metrics.rateLimited('api_key');
        return check;
      },
      recordFailure: (ip: string) => apiKeyLimiter.recordFailure(undefined, ip),
    };
    // The device flow (docs/device-flow.md): wrong user codes per client IP on /device, and one poll
    // of a pending device code per interval (a faster one is answered slow_down).
    const deviceCodeLimiter = createLoginLimiter({
      ...(redis ? { redis } : {}),
      limits: { perAccount: config.deviceFlow.maxFailuresPerIp, perIp: config.deviceFlow.maxFailuresPerIp, windowSeconds: DEVICE_CODE_WINDOW_SECONDS },
      kind: 'device',
    });
    const deviceCodeFailures = {
      check: async (ip: string) => {
        const check = await deviceCodeLimiter.check(undefined, ip);
        if (!check.allowed) metrics.rateLimited('device');
        return check;
      },
      recordFailure: (ip: string) => deviceCodeLimiter.recordFailure(undefined, ip),
    };
    const devicePolls = createRequestLimiter({ ...(redis ? { redis } : {}), keyPrefix: 'device_poll', points: 1, windowSeconds: config.deviceFlow.pollIntervalSeconds });
    // Back-channel logout (docs/backchannel-logout.md): logout tokens queued by every sign-out and
    // delivered after the answer, with retries; sessions Gatehouse ends itself tell their apps too.
    const backchannelLogout = createBackchannelLogoutQueue({
      logger,
      retry: { timeoutMs: config.backchannelLogout.timeoutSeconds * 1000, attempts: config.backchannelLogout.attempts },
      onOutcome: (outcome) => metrics.backchannelLogout(outcome),
    });
    const host = await createProviderHost({ config, cache, store, db: registry.db, accounts, pages, digestKey, logger, audit, auditWriter, metrics, apiKeyFailures, deviceCodeFailures, devicePolls, backchannelLogout });
    const signOut = createSessionSignOut({ store, provider: () => host.provider, logger });
    // After a change that already ended the sessions in the registry (disable, delete, a new password):
    // a store that is down does not fail the change; those sessions end at their next use.
    const sessionsEnded = (accountId: string) =>
      signOut(accountId).then(
        () => undefined,
        (error: unknown) => logger.warn({ accountId, err: { message: (error as Error)?.message } }, 'ended sessions could not be removed from the store; their apps are not told'),
      );
    // The admin API's People routes: a person's sessions (the session index), a removed consent's
    // codes and opaque tokens (after the registry change: a store that is down does not undo it).
    const sessionStore = store;
    const people = {
      listSessions: (accountId: string) => listAccountSessions(sessionStore, accountId),
      revokeGrants: async (grantIds: readonly string[]) => {
        await Promise.all(grantIds.map((grantId) => sessionStore.revokeByGrantId(grantId))).catch((error: unknown) =>
          logger.warn({ err: { message: (error as Error)?.message } }, "a removed consent's codes and opaque tokens could not be revoked in the store; they run out by themselves"),
        );
      },
      grantScopes,
    };
    // Sign-outs made with the CLI (users disable, delete, set-password) reach the apps through the audit log.
    const cliSignOuts = watchCliSignOuts({ db: registry.db, signOut, logger, pollMs: CLI_SIGN_OUT_POLL_MS });
    const signIns = createSignInRecorder({ db: registry.db, historyDays: config.signInHistoryDays, logger });
    // Sign-in with upstream OpenID providers (docs/design/sign-in-methods.md §6).
    const upstream = createUpstreamRoutes({
      upstream: createUpstreamSignIn({ db: registry.db, dataKeys, store, issuer: config.issuer, production: config.production, timeoutSeconds: config.upstreamTimeoutSeconds }),
      registry: { db: registry.db, audit: auditWriter },
      store,
      pages,
      logger,
      audit,
      startLimiter: createRequestLimiter({ ...(redis ? { redis } : {}), keyPrefix: 'upstream_start_ip', points: config.upstreamMaxStartsPerIp, windowSeconds: UPSTREAM_START_WINDOW_SECONDS }),
      metrics,
    });
    const mfaLimiter = createLoginLimiter({ ...(redis ? { redis } : {}), limits: config.loginLimits, kind: 'mfa' });
    const passkeyDeps = { db: registry.db, audit: auditWriter, store, relyingParty: relyingPartyOf(config.issuer, config.brand.name) };
    const interactions = createInteractionRoutes({
      provider: () => host.provider,
      accounts,
      limiter: createLoginLimiter({ ...(redis ? { redis } : {}), limits: config.loginLimits }),
      mfaLimiter,
      secondFactors: { db: registry.db, audit: auditWriter, dataKeys },
      passkeys: passkeyDeps,
      passkeyLimiter: createLoginLimiter({ ...(redis ? { redis } : {}), limits: config.loginLimits, kind: 'passkey' }),
      store,
      pages,
      cache,
      config,
      logger,
      audit,
      metrics,
      signIns,
      upstream,
      ...(signup ? { signup } : {}),
    });
    // The account page's own sections (profile, password, connected apps, sessions, security events):
    // their routers come before /account's in `routers`; wrong current passwords count with sign-ins'.
    const passwordLimiter = createLoginLimiter({ ...(redis ? { redis } : {}), limits: config.loginLimits });
    const accountSelf = createAccountSelf({ provider: () => host.provider, accounts, pages, config, registry: { db: registry.db, audit: auditWriter }, store, passwordLimiter, signOut });
    // The account page (/account) and the sign-in history every sign-in method writes. Its
    // "Linked accounts" routes (/account/links) come before it in `routers`: the first prefix that matches answers.
    const account = createAccountRoutes({
      provider: () => host.provider,
      accounts,
      pages,
      config,
      secondFactors: { db: registry.db, audit: auditWriter, dataKeys },
      signIns,
      passkeys: passkeyDeps,
      mfaLimiter,
      audit,
      sections: accountSelf.sections,
    });
    // Password reset (docs/design/self-service.md, "Landed as" of part 1): links by mail, limited per address and per IP.
    const reset = createResetRoutes({
      registry: { db: registry.db, audit: auditWriter },
      mailer,
      compose: createMailComposer(config.brand),
      pages,
      config,
      addressLimiter: createRequestLimiter({ ...(redis ? { redis } : {}), keyPrefix: 'reset_address', points: config.resetLimits.perAddress, windowSeconds: RESET_WINDOW_SECONDS }),
      ipLimiter: createRequestLimiter({ ...(redis ? { redis } : {}), keyPrefix: 'reset_ip', points: config.resetLimits.perIp, windowSeconds: RESET_WINDOW_SECONDS }),
      logger,
      metrics,
      sessionsEnded,
    });
    // The admin API's overview: tokens issued in the last hour from the metrics' counter (a ring of
    // per-minute samples in this process), and the audit chain's verification, cached and bounded.
    const tokensIssued = createCounterWindow({ read: () => metrics.tokensIssuedTotal() });
    const auditChain = createAuditChainMonitor({ db: registry.db, keyring: auditKeys });
    const activeStore = store;
    let draining = false;
    const app = createApp({
      draining: () => draining,
      metrics,
      metricsOnOwnPort: config.metricsPort !== undefined,
      config,
      logger,
      host,
      pages,
      routers: [
        ...createEmailAddressRoutes({ email, pages, config }),
        createAccountEmailRoutes({ provider: () => host.provider, accounts, pages, config, email, limiter: createRequestLimiter({ ...(redis ? { redis } : {}), keyPrefix: 'account_email_mail', points: ACCOUNT_EMAIL_MAILS_PER_HOUR, windowSeconds: 3600 }) }),
        interactions, reset.router, createAccountLinkRoutes({ provider: () => host.provider, accounts, pages, config, registry: { db: registry.db, audit: auditWriter } }), ...accountSelf.routers, account, upstream.callbackRouter, createAdminRoutes({ config, registry, cache, jwks: () => host.publicJwks, digestKey, audit: auditWriter, dataKeys, mail: email.mail, sessionsEnded, store, people, auditChain, tokensIssued, keysChanged: () => host.reloadIfKeysChanged() }), createConsoleRoutes({ config })],
      readiness: [
        { name: 'database', check: () => registry.ping(1000) },
        { name: 'store', check: () => activeStore.ping(1000) },
      ],
    });

    const handler = app.callback();
    const listen = options.listen ?? true;
    const server: Server = (options.server ?? http.createServer()).on('request', handler);
    if (listen && !server.listening) {
      server.listen(config.port);
      await once(server, 'listening');
    }
    // METRICS_PORT: /metrics on a port of its own (keep it off the public listener), nothing else there.
    const metricsServer = config.metricsPort === undefined || !listen ? undefined : createMetricsServer(metrics, options.metricsServer);
    if (metricsServer && !metricsServer.listening) {
      metricsServer.listen(config.metricsPort);
      await once(metricsServer, 'listening');
    }
    server.keepAliveTimeout = 65_000;
    server.headersTimeout = 66_000;
    server.requestTimeout = 30_000;
    cache.start();
    host.start();
    cliSignOuts.start();
    tokensIssued.start();
    // Expired grants and refresh tokens are never read again: sweep them hourly (any node may; it is idempotent).
    const sweeper = setInterval(() => {
      purgeExpiredDurableRows(registry.db).then(
        (removed) => removed > 0 && logger.info({ removed }, 'expired grants and tokens purged'),
        (error: unknown) => logger.warn({ err: { message: (error as Error).message } }, 'could not purge expired grants and tokens'),
      );
      signIns.purge().then(
        (removed) => removed > 0 && logger.info({ removed }, 'sign-in history past SIGN_IN_HISTORY_DAYS purged'),
        (error: unknown) => logger.warn({ err: { message: (error as Error).message } }, 'could not purge the sign-in history'),
      );
      // Links sent by mail, a day after they expired (kept that long so "already used" and "expired" can still be told apart).
      purgeEmailLinks(registry.db, new Date(Date.now() - 86_400_000)).then(
        (removed) => removed > 0 && logger.info({ removed }, 'expired links sent by mail purged'),
        (error: unknown) => logger.warn({ err: { message: (error as Error).message } }, 'could not purge expired links sent by mail'),
      );
    }, DURABLE_SWEEP_MS);
    sweeper.unref();
    const port = server.listening ? (server.address() as AddressInfo).port : 0;
    if (server.listening) logger.info({ port, issuer: config.issuer, database: registry.kind, store: activeStore.kind }, 'gatehouse listening');
    else logger.info({ issuer: config.issuer, database: registry.kind, store: activeStore.kind }, 'gatehouse ready, listening on no port (requests dispatched in-process)');

    let closing: Promise<void> | undefined;
    const close = () => {
      closing ??= (async () => {
        draining = true;
        cache.stop();
        host.stop();
        cliSignOuts.stop();
        tokensIssued.stop();
        clearInterval(sweeper);
        // Stop accepting connections, but do not drop the open ones yet (http.Server#close would
        // drop idle keep-alive connections at once, racing clients that are sending on them):
        // requests already sent are answered, each answer closing its connection.
        // (Not listening, as with `listen: false`, it calls back at once with ERR_SERVER_NOT_RUNNING.)
        const closed = new Promise<void>((resolve) => net.Server.prototype.close.call(server, () => resolve()));
        let sweep: NodeJS.Timeout | undefined;
        const linger = setTimeout(() => {
          server.closeIdleConnections();
          sweep = setInterval(() => server.closeIdleConnections(), IDLE_SWEEP_MS);
        }, DRAIN_LINGER_MS);
        const force = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
        await closed;
        if (metricsServer) await new Promise<void>((resolve) => metricsServer.close(() => resolve()));
        clearTimeout(linger);
        clearInterval(sweep);
        clearTimeout(force);
        await reset.settle();
        await backchannelLogout.close();
        await mailer.close();
        await activeStore.close();
        await registry.close();
      })();
      return closing;
    };

    return { url: listen ? `http://localhost:${port}` : config.issuer, port, handler, registry, store: activeStore, cache, host, close };
  } catch (error) {
    await store?.close().catch(() => undefined);
    await registry.close().catch(() => undefined);
    throw error;
  }
}

/** A request limiter whose refusals are also counted (gatehouse_rate_limited_total). */
function counted(limiter: RequestLimiter, refused: () => void): RequestLimiter {
  return {
    async take(key) {
      const check = await limiter.take(key);
      if (!check.allowed) refused();
      return check;
    },
  };
}
