import { rm } from 'node:fs/promises';
import { LOG_DIR } from './fixtures/log-capture.js';

/** A fresh log directory per run: the log audit reads only this run's logs. */
export default async function setup(): Promise<void> {
  await rm(LOG_DIR, { recursive: true, force: true });
}
