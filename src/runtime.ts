/**
 * The Node.js options the server runs with: `npm start`, the Docker image's CMD, the tests and the
 * bench all start it with these (node:cluster workers inherit them).
 *
 * `--experimental-async-context-frame` keeps AsyncLocalStorage (oidc-provider holds each request's
 * context in one) in V8's continuation-preserved embedder data instead of on async_hooks, whose
 * promise hooks otherwise run for every promise the server makes (the measurements are in
 * docs/performance.md). It is the default from Node 24 on; on Node 22 it takes the flag, which
 * NODE_OPTIONS does not accept.
 *
 * @example
 * spawn(process.execPath, [...SERVER_NODE_OPTIONS, 'dist/src/main.js']);
 */
export const SERVER_NODE_OPTIONS: readonly string[] = ['--experimental-async-context-frame'];

/** The SERVER_NODE_OPTIONS this process was started without. */
export function missingNodeOptions(execArgv: readonly string[] = process.execArgv): string[] {
  return SERVER_NODE_OPTIONS.filter((option) => !execArgv.includes(option));
}

/**
 * The oldest Node.js Gatehouse runs on, checked by the server and the CLI themselves. package.json
 * has no `engines`: npm checks those against the Node it runs on itself (the machine's, which may be
 * older), and would warn EBADENGINE on every install although Gatehouse runs on the `node`
 * devDependency. A test checks that devDependency against this.
 */
export const MINIMUM_NODE_VERSION = '22.12';

/**
 * Why this Node.js cannot run Gatehouse, in one line, or undefined when it can. npm scripts
 * (`npm start`, `npx gatehouse`) and `npx node` run the project's own Node 22, the `node`
 * devDependency, whatever `node` the machine has; a bare `node` may be older.
 *
 * @example
 * const refusal = unsupportedNodeVersion(process.versions.node);
 * if (refusal) process.stderr.write(`gatehouse: ${refusal}\n`);
 */
export function unsupportedNodeVersion(version: string = process.versions.node): string | undefined {
  const parts = (text: string) => text.split('.').map((part) => Number.parseInt(part, 10) || 0);
  const [major = 0, minor = 0, patch = 0] = parts(version);
  const [wantMajor = 0, wantMinor = 0, wantPatch = 0] = parts(MINIMUM_NODE_VERSION);
  const recentEnough = major !== wantMajor ? major > wantMajor : minor !== wantMinor ? minor > wantMinor : patch >= wantPatch;
  if (recentEnough) return undefined;
  return (
    `Node.js ${MINIMUM_NODE_VERSION} or later is needed and this is ${version}: ` +
    'run it through npm (npm start, npx gatehouse …) or as npx node …, which use the project\'s Node 22 (the node devDependency)'
  );
}
