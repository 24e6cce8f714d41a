/**
 * The Node.js options the server runs with: `npm start`, the Docker image's CMD, the tests and the
 * bench all start it with these (node:cluster workers inherit them).
 *
 * `--experimental-async-context-frame` keeps AsyncLocalStorage (oidc-provider holds each request's
 * context in one) in V8's continuation-preserved embedder data instead of on async_hooks, whose
 * promise hooks otherwise run for every promise the server makes: 12–15% less CPU per token
 * request, measured side by side (README, Performance). It is the default from Node 24 on; on
 * Node 22 it takes the flag, which NODE_OPTIONS does not accept.
 *
 * @example
 * spawn(process.execPath, [...SERVER_NODE_OPTIONS, 'dist/src/main.js']);
 */
export const SERVER_NODE_OPTIONS: readonly string[] = ['--experimental-async-context-frame'];

/** The SERVER_NODE_OPTIONS this process was started without. */
export function missingNodeOptions(execArgv: readonly string[] = process.execArgv): string[] {
  return SERVER_NODE_OPTIONS.filter((option) => !execArgv.includes(option));
}
