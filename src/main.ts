import cluster from 'node:cluster';
import { ConfigError, loadConfig, type Config } from './config/load-config.js';
import { portProblem } from './http/port-check.js';
import { createLogger, wantsPrettyLogs } from './observability/logger.js';
import { missingNodeOptions, unsupportedNodeVersion } from './runtime.js';

// Only what checks the Node.js version, the configuration and the ports is imported up front; the
// server, the registry and the keys are loaded once those passed (import() below), so a mistake
// there is reported at once instead of after oidc-provider, Kysely and the rest have loaded.

function readConfig(): Config | undefined {
  try {
    const config = loadConfig(process.env);
    if (config.workers > 1 && (!config.databaseUrl || !config.redisUrl)) {
      throw new ConfigError([
        'GATEHOUSE_WORKERS: more than one worker needs DATABASE_URL and REDIS_URL (the embedded database and store serve one process)',
      ]);
    }
    return config;
  } catch (error) {
    if (error instanceof ConfigError) {
      for (const problem of error.problems) process.stderr.write(`gatehouse: configuration error: ${problem}\n`);
      return undefined;
    }
    throw error;
  }
}

/** What the workers would race over, done once by the primary: dev migrations and first keys. */
async function preparePrimary(config: Config, logger: ReturnType<typeof createLogger>): Promise<void> {
  const { loadAuditKeyring } = await import('./keys/audit-key.js');
  const { loadDataKeyring } = await import('./keys/data-key.js');
  const { loadDigestKey, loadSigningJwks } = await import('./keys/key-store.js');
  const { openServerDatabase } = await import('./registry/database.js');
  const { migrateToLatest } = await import('./registry/migrate.js');
  await loadDigestKey(config.keysDir, { generateIfMissing: !config.production });
  await loadAuditKeyring(config.keysDir, { generateIfMissing: !config.production });
  await loadDataKeyring(config.keysDir, { generateIfMissing: !config.production });
  await loadSigningJwks(config.keysDir, { generateIfMissing: !config.production });
  if (!config.production) {
    const registry = await openServerDatabase(config, logger);
    try {
      await migrateToLatest(registry.db);
    } finally {
      await registry.close();
    }
  }
}

/** One line per port of the configuration that cannot be listened on, checked before anything is opened. */
async function portProblems(config: Config): Promise<string[]> {
  const ports: Array<[string, number | undefined]> = [
    ['PORT', config.port],
    ['METRICS_PORT', config.metricsPort],
  ];
  const problems: string[] = [];
  for (const [name, port] of ports) {
    const problem = port === undefined ? undefined : await portProblem(port);
    if (problem) problems.push(`${name}: ${port} is ${problem}`);
  }
  return problems;
}

async function serve(config: Config, logger: ReturnType<typeof createLogger>): Promise<number> {
  let server;
  try {
    const { startServer } = await import('./server.js');
    server = await startServer(config, logger);
  } catch (error) {
    logger.fatal({ err: { message: (error as Error).message } }, 'gatehouse could not start');
    process.stderr.write(`gatehouse: could not start: ${(error as Error).message}\n`);
    return 1;
  }
  const running = server;
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      logger.info({ signal }, 'shutting down');
      running.close().then(resolve, (error: unknown) => {
        logger.error({ err: { message: (error as Error).message } }, 'error while shutting down');
        resolve();
      });
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  logger.info('stopped');
  return 0;
}

async function main(): Promise<number> {
  const unsupported = unsupportedNodeVersion();
  if (unsupported) {
    process.stderr.write(`gatehouse: ${unsupported}\n`);
    return 1;
  }
  const config = readConfig();
  if (!config) return 1;
  // The primary checks the ports; workers listen on its handle, so they would only find their own.
  if (cluster.isPrimary) {
    const problems = await portProblems(config);
    for (const problem of problems) process.stderr.write(`gatehouse: could not start: ${problem}\n`);
    if (problems.length > 0) return 1;
  }
  const logger = createLogger({ logLevel: config.logLevel, pretty: wantsPrettyLogs(config.nodeEnv, process.stdout) });
  const missing = missingNodeOptions();
  if (missing.length > 0 && cluster.isPrimary) {
    logger.warn({ missing }, 'started without the Node.js options Gatehouse runs with (npm start and the Docker image pass them): it works, at more CPU per request');
  }
  if (config.workers > 1 && cluster.isPrimary) {
    try {
      await preparePrimary(config, logger);
    } catch (error) {
      process.stderr.write(`gatehouse: could not start: ${(error as Error).message}\n`);
      return 1;
    }
    const { runPrimary } = await import('./cluster.js');
    return runPrimary(config, logger);
  }
  const code = await serve(config, logger);
  // A cluster worker's IPC channel would keep it alive after its server closed.
  if (cluster.isWorker) process.disconnect();
  return code;
}

process.exitCode = await main();
