import { defineConfig } from 'vitest/config';
import { SERVER_NODE_OPTIONS } from './src/runtime.js';
import LongestFirst from './test/sequencer.js';

// Three groups, one after the other: the suite proper; the soak (alone, so that its memory and file
// counts are its own); then the log audit, which reads what every test server logged.
export default defineConfig({
  test: {
    globalSetup: ['test/global-setup.ts'],
    reporters: ['default', './test/reporters/summary-line.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // vitest's default is one worker per core less one: one on this 2-core machine, so the suite ran
    // one file after another, mostly waiting (on servers, databases, child processes and sleeps).
    // Two overlap those waits. Each worker has its own Redis database (test/fixtures/env.ts) and each
    // file its own PostgreSQL database; `npx vitest run --maxWorkers=1` runs them one at a time.
    maxWorkers: 2,
    // The longest files first, so that they overlap the rest instead of trailing it (test/sequencer.ts).
    sequence: { sequencer: LongestFirst },
    // Servers started inside the test processes run with the Node.js options npm start passes.
    execArgv: [...SERVER_NODE_OPTIONS],
    projects: [
      {
        extends: true,
        test: {
          name: 'suite',
          // A worker runs its files one after another in one process, so each file does not pay
          // again for loading oidc-provider, kysely and the rest (import time 48 s → 10 s of the
          // suite's; 222 s → 199 s). Files still get their own databases, servers and ports, and
          // undo what they stub (vi.unstubAllGlobals in afterAll).
          isolate: false,
          include: ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'soak',
          include: ['test/soak/**/*.test.ts'],
          sequence: { groupOrder: 1 },
        },
      },
      {
        extends: true,
        test: {
          name: 'log-audit',
          include: ['test/audit/**/*.test.ts'],
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
