#!/usr/bin/env node
// Entry point of `npx gatehouse`: runs the compiled CLI (built by `npm ci` through the prepare script).
import { runCli } from '../dist/src/cli/main.js';

process.exitCode = await runCli(process.argv.slice(2));
