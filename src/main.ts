import cluster from 'node:cluster';
import { ConfigError, loadConfig, type Config } from './config/load-config.js';
import { runPrimary } from './cluster.js';
import { loadAuditKeyring } from './keys/audit-key.js';
import { loadDigestKey, loadSigningJwks } from './keys/key-store.js';
import { createLogger, wantsPrettyLogs } from './observability/logger.js';
import { openServerDatabase } from './registry/database.js';
import { migrateToLatest } from './registry/migrate.js';
import { missingNodeOptions } from './runtime.js';
import { startServer } from './server.js';

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
  await loadDigestKey(config.keysDir, { generateIfMissing: !config.production });
  await loadAuditKeyring(config.keysDir, { generateIfMissing: !config.production });
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

async function serve(config: Config, logger: ReturnType<typeof createLogger>): Promise<number> {
  let server;
  try {
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
  const config = readConfig();
  if (!config) return 1;
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
    return runPrimary(config, logger);
  }
  const code = await serve(config, logger);
  // A cluster worker's IPC channel would keep it alive after its server closed.
  if (cluster.isWorker) process.disconnect();
  return code;
}

process.exitCode = await main();
