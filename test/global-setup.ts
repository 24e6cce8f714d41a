import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../.test-logs');
const KEEP_MS = 60 * 60 * 1000;

/**
 * Names this run's log folder (test files read GATEHOUSE_TEST_RUN through log-capture.ts) and
 * clears folders of runs older than an hour; a run in progress next to this one is left alone.
 */
export default async function setup(): Promise<void> {
  // Each project of the run calls this: they share the first one's folder.
  const run = process.env.GATEHOUSE_TEST_RUN ?? `run-${Date.now()}-${process.pid}`;
  process.env.GATEHOUSE_TEST_RUN = run;
  await mkdir(path.join(ROOT, run), { recursive: true });
  for (const name of await readdir(ROOT).catch(() => [] as string[])) {
    const folder = path.join(ROOT, name);
    const info = await stat(folder).catch(() => undefined);
    if (info && name !== run && Date.now() - info.mtimeMs > KEEP_MS) await rm(folder, { recursive: true, force: true });
  }
}
