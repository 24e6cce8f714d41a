import { ConfigError, loadConfig } from './config/load-config.js';
import { createLogger } from './observability/logger.js';
import { startServer } from './server.js';

async function main(): Promise<number> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      for (const problem of error.problems) process.stderr.write(`gatehouse: configuration error: ${problem}\n`);
      return 1;
    }
    throw error;
  }
  const logger = createLogger(config);
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

process.exitCode = await main();
