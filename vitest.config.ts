import { defineConfig } from 'vitest/config';
import { SERVER_NODE_OPTIONS } from './src/runtime.js';

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
    // Servers started inside the test processes run with the Node.js options npm start passes.
    execArgv: [...SERVER_NODE_OPTIONS],
    projects: [
      {
        extends: true,
        test: {
          name: 'suite',
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
