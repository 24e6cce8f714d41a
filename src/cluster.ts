import cluster, { type Worker } from 'node:cluster';
import type { Config } from './config/load-config.js';
import type { Logger } from './observability/logger.js';

const RESPAWN_WINDOW_MS = 10_000;
const MAX_RESPAWNS_IN_WINDOW = 5;
const FORCE_STOP_MS = 20_000;

/**
 * The node:cluster primary for GATEHOUSE_WORKERS > 1: forks the workers (each a full server on
 * the shared port), replaces one that dies, and on SIGTERM/SIGINT lets each finish its requests.
 * Resolves with the exit code once every worker has exited.
 */
export async function runPrimary(config: Config, logger: Logger): Promise<number> {
  let stopping = false;
  const recentDeaths: number[] = [];

  const live = new Map<number, Worker>();
  const fork = (): void => {
    const worker = cluster.fork();
    live.set(worker.id, worker);
  };
  for (let i = 0; i < config.workers; i += 1) fork();
  logger.info({ workers: config.workers }, 'cluster primary started');

  return new Promise<number>((resolve) => {
    let exitCode = 0;
    cluster.on('exit', (worker, code, signal) => {
      live.delete(worker.id);
      if (stopping) {
        if (live.size === 0) resolve(exitCode);
        return;
      }
      logger.error({ workerPid: worker.process.pid, code, signal }, 'worker exited; starting another');
      const now = Date.now();
      recentDeaths.push(now);
      while (recentDeaths.length > 0 && (recentDeaths[0] ?? now) < now - RESPAWN_WINDOW_MS) recentDeaths.shift();
      if (recentDeaths.length > MAX_RESPAWNS_IN_WINDOW) {
        logger.fatal('workers keep dying; stopping');
        exitCode = 1;
        stop('SIGTERM');
        return;
      }
      fork();
    });

    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'stopping workers');
      if (live.size === 0) resolve(exitCode);
      for (const worker of live.values()) worker.process.kill('SIGTERM');
      // A worker that cannot finish in time is ended: shutdown must be bounded.
      setTimeout(() => {
        for (const worker of live.values()) worker.process.kill('SIGKILL');
      }, FORCE_STOP_MS).unref();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
