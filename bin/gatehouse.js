#!/usr/bin/env node
// Entry point of `npx gatehouse`: runs the compiled CLI (built by `npm ci` through the prepare script).
// npx and npm scripts run it on the project's Node 22 (the `node` devDependency); a bare `node`
// older than that is refused here, in one line, before the CLI and its dependencies load.
import { unsupportedNodeVersion } from '../dist/src/runtime.js';

const unsupported = unsupportedNodeVersion();
if (unsupported) {
  process.stderr.write(`gatehouse: ${unsupported}\n`);
  process.exitCode = 1;
} else {
  const { runCli } = await import('../dist/src/cli/main.js');
  process.exitCode = await runCli(process.argv.slice(2));
}
