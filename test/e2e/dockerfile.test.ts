import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, realpath, rm, stat, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../fixtures/database.js';
import { WORKER_REDIS_URL } from '../fixtures/env.js';
import { captureLogs, recordSecret } from '../fixtures/log-capture.js';
import { freePort } from '../fixtures/ports.js';
import { SERVER_NODE_OPTIONS } from '../../src/runtime.js';

/*
 * There is no Docker engine on the test machines, so this test replays the Dockerfile: it parses it,
 * checks what matters about the image (multi-stage, production-only dependencies, non-root user,
 * no keys, the CMD), then performs the build itself. Every stage gets a scratch root file system in a
 * temporary directory; COPY honours .dockerignore, RUN runs the npm steps (and mkdir) with Node 22
 * first on PATH, as in the node:22 base image. The final stage's /app is then started with its CMD in
 * production mode against real PostgreSQL and Redis, and must issue a client-credentials token.
 */

const REPO = path.resolve(import.meta.dirname, '../..');
/** The node:22 image's runtime here: the `node` devDependency's binary (.ci/run installs it), else this process if it is Node 22. */
const NODE22_CANDIDATES = [path.join(REPO, 'node_modules', '.bin', 'node'), process.execPath];
const COOKIE_KEY = 'dockerfile-test-cookie-key-0123456789abcdef';
const STEP_TIMEOUT_MS = 240_000;

// ---------------------------------------------------------------------------------------------
// Dockerfile parsing

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

interface Stage {
  index: number;
  name: string;
  from: string;
  instructions: Instruction[];
}

function parseDockerfile(text: string): Stage[] {
  const instructions: Instruction[] = [];
  const lines = text.split('\n');
  let current: { text: string; line: number } | undefined;
  lines.forEach((raw, i) => {
    const trimmed = raw.trim();
    if (trimmed.startsWith('#')) return; // comments (and parser directives); also dropped inside continuations
    if (!current) {
      if (!trimmed) return;
      current = { text: '', line: i + 1 };
    }
    if (trimmed.endsWith('\\')) {
      current.text += `${trimmed.slice(0, -1)} `;
      return;
    }
    current.text += trimmed;
    const match = /^(\S+)\s*([\s\S]*)$/.exec(current.text.trim());
    if (match) instructions.push({ keyword: match[1]!.toUpperCase(), args: match[2]!.trim(), line: current.line });
    current = undefined;
  });
  if (current) throw new Error(`Dockerfile ends inside a continued line (line ${current.line})`);

  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const words = instruction.args.split(/\s+/).filter((word) => !word.startsWith('--'));
      const from = words[0] ?? '';
      const name = words[1]?.toUpperCase() === 'AS' && words[2] ? words[2] : String(stages.length);
      stages.push({ index: stages.length, name, from, instructions: [] });
    } else if (instruction.keyword !== 'ARG' || stages.length > 0) {
      const stage = stages.at(-1);
      if (!stage) throw new Error(`line ${instruction.line}: ${instruction.keyword} before the first FROM`);
      stage.instructions.push(instruction);
    }
  }
  return stages;
}

/** Splits shell words (quotes, backslashes); refuses shell syntax the replay cannot honour, except &&. */
function shellWords(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i]!;
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated quote in: ${text}`);
      word += text.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (c === '"') {
      i += 1;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\' && i + 1 < text.length) i += 1;
        if (text[i] === '$' || text[i] === '`') throw new Error(`the replay does not expand variables: ${text}`);
        word += text[i];
        i += 1;
      }
      if (i >= text.length) throw new Error(`unterminated quote in: ${text}`);
      inWord = true;
    } else if (c === '\\' && i + 1 < text.length) {
      i += 1;
      word += text[i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else if (c === '&' && text[i + 1] === '&') {
      if (inWord) words.push(word);
      words.push('&&');
      word = '';
      inWord = false;
      i += 1;
    } else if ('|;<>`$()&'.includes(c)) {
      throw new Error(`the replay does not support shell syntax "${c}" in: ${text}`);
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

function splitCommands(words: string[]): string[][] {
  const commands: string[][] = [[]];
  for (const word of words) {
    if (word === '&&') commands.push([]);
    else commands.at(-1)!.push(word);
  }
  return commands.filter((command) => command.length > 0);
}

function parseEnv(args: string): Record<string, string> {
  const words = shellWords(args);
  if (words.length > 0 && !words[0]!.includes('=')) return { [words[0]!]: words.slice(1).join(' ') }; // ENV KEY value
  return Object.fromEntries(
    words.map((word) => {
      const at = word.indexOf('=');
      if (at <= 0) throw new Error(`cannot read ENV ${args}`);
      return [word.slice(0, at), word.slice(at + 1)];
    }),
  );
}

function parseExecForm(args: string): string[] {
  if (args.startsWith('[')) return JSON.parse(args) as string[];
  return ['/bin/sh', '-c', args];
}

interface CopyStep {
  from?: string;
  chown?: string;
  sources: string[];
  dest: string;
}

function parseCopy(args: string): CopyStep {
  const words = args.startsWith('[') ? (JSON.parse(args) as string[]) : shellWords(args);
  const step: CopyStep = { sources: [], dest: '' };
  const rest: string[] = [];
  for (const word of words) {
    if (word.startsWith('--from=')) step.from = word.slice('--from='.length);
    else if (word.startsWith('--chown=')) step.chown = word.slice('--chown='.length);
    else if (word.startsWith('--chmod=') || word === '--link') continue;
    else if (word.startsWith('--')) throw new Error(`the replay does not know COPY ${word}`);
    else rest.push(word);
  }
  if (rest.length < 2) throw new Error(`COPY needs a source and a destination: ${args}`);
  step.dest = rest.pop()!;
  step.sources = rest;
  return step;
}

// ---------------------------------------------------------------------------------------------
// .dockerignore (moby patternmatcher semantics: last match wins, a match on a parent folder counts)

interface IgnoreRule {
  negated: boolean;
  pattern: string;
  regex: RegExp;
}

function globToRegex(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i += 1) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      i += 1;
      if (pattern[i + 1] === '/') {
        i += 1;
        source += '(?:.*/)?';
      } else source += '.*';
    } else if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else if (c === '\\' && i + 1 < pattern.length) {
      i += 1;
      source += pattern[i]!.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    } else source += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

function parseDockerignore(text: string): IgnoreRule[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const negated = line.startsWith('!');
      const pattern = path.posix.normalize((negated ? line.slice(1) : line).trim()).replace(/^\/+/, '').replace(/\/+$/, '');
      return { negated, pattern, regex: globToRegex(pattern) };
    });
}

function isIgnored(rules: IgnoreRule[], relative: string): boolean {
  if (!relative || relative === '.') return false;
  const parts = relative.split('/');
  const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const rule of rules) {
    if (candidates.some((candidate) => rule.regex.test(candidate))) ignored = !rule.negated;
  }
  return ignored;
}

/** Whether an ignored folder may still hold re-included files (a `!` rule reaching inside it). */
function mayHoldExceptions(rules: IgnoreRule[], relative: string): boolean {
  return rules.some((rule) => rule.negated && (rule.pattern.startsWith(`${relative}/`) || rule.pattern.startsWith('**')));
}

// ---------------------------------------------------------------------------------------------
// Processes

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      stderr += `\n[test] killed after ${options.timeoutMs ?? STEP_TIMEOUT_MS} ms`;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? STEP_TIMEOUT_MS);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** The environment of this process minus what npm/vitest put there (npm_config_local_prefix would point npm at the repo). */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_/.test(key) || /^VITEST/.test(key) || ['INIT_CWD', 'NODE', 'NODE_ENV', 'NODE_OPTIONS', 'TEST', 'KEYS_DIR', 'DATA_DIR'].includes(key)) continue;
    if (/^(DATABASE_URL|REDIS_URL|COOKIE_KEYS|ISSUER|PORT|LOG_LEVEL)$/.test(key)) continue;
    env[key] = value;
  }
  return env;
}

function describeResult(what: string, result: RunResult): string {
  return `${what} exited with ${result.code ?? result.signal}\n--- stdout ---\n${result.stdout.slice(-4000)}\n--- stderr ---\n${result.stderr.slice(-4000)}`;
}

// ---------------------------------------------------------------------------------------------
// The replay

interface StageState {
  stage: Stage;
  root: string;
  workdir: string;
  env: Record<string, string>;
  user: string;
  cmd?: string[];
  expose: string[];
  volumes: string[];
  copies: CopyStep[];
  runs: string[][];
}

class DockerfileReplay {
  readonly states = new Map<string, StageState>();
  readonly log: string[] = [];

  constructor(
    private readonly stages: Stage[],
    private readonly ignore: IgnoreRule[],
    private readonly context: string,
    private readonly scratch: string,
    private readonly pathPrefix: string,
  ) {}

  /** Image path → host path inside the stage's scratch root. */
  hostPath(state: StageState, imagePath: string): string {
    const absolute = path.posix.resolve(state.workdir, imagePath);
    return path.join(state.root, ...absolute.split('/').filter(Boolean));
  }

  async build(): Promise<StageState> {
    let last: StageState | undefined;
    for (const stage of this.stages) last = await this.buildStage(stage);
    if (!last) throw new Error('the Dockerfile has no stage');
    return last;
  }

  private async buildStage(stage: Stage): Promise<StageState> {
    const root = path.join(this.scratch, `stage-${stage.index}-${stage.name.replace(/[^A-Za-z0-9_-]/g, '_')}`);
    const parent = this.states.get(stage.from);
    let state: StageState;
    if (parent) {
      await cp(parent.root, root, { recursive: true, verbatimSymlinks: true });
      state = { ...parent, stage, root, env: { ...parent.env }, expose: [...parent.expose], volumes: [...parent.volumes], copies: [], runs: [] };
    } else {
      await mkdir(root, { recursive: true });
      state = { stage, root, workdir: '/', env: {}, user: 'root', expose: [], volumes: [], copies: [], runs: [] };
    }
    this.log.push(`# stage ${stage.name} FROM ${stage.from}`);
    for (const instruction of stage.instructions) {
      const where = `Dockerfile line ${instruction.line} (${instruction.keyword} ${instruction.args})`;
      try {
        await this.apply(state, instruction);
      } catch (error) {
        throw new Error(`${where}: ${(error as Error).message}`, { cause: error });
      }
    }
    this.states.set(stage.name, state);
    this.states.set(String(stage.index), state);
    return state;
  }

  private async apply(state: StageState, instruction: Instruction): Promise<void> {
    const { keyword, args } = instruction;
    switch (keyword) {
      case 'WORKDIR':
        state.workdir = path.posix.resolve(state.workdir, args);
        await mkdir(this.hostPath(state, state.workdir), { recursive: true });
        return;
      case 'ENV':
        Object.assign(state.env, parseEnv(args));
        return;
      case 'USER':
        state.user = args.trim();
        return;
      case 'CMD':
        state.cmd = parseExecForm(args);
        return;
      case 'EXPOSE':
        state.expose.push(...args.split(/\s+/));
        return;
      case 'VOLUME':
        state.volumes.push(...(args.startsWith('[') ? (JSON.parse(args) as string[]) : args.split(/\s+/)));
        return;
      case 'COPY':
        return this.copy(state, parseCopy(args));
      case 'RUN':
        return this.runStep(state, args);
      case 'HEALTHCHECK':
      case 'LABEL':
      case 'ARG':
      case 'STOPSIGNAL':
        return;
      default:
        throw new Error(`the replay does not know ${keyword}`);
    }
  }

  private async copy(state: StageState, step: CopyStep): Promise<void> {
    state.copies.push(step);
    const destIsDir = step.dest.endsWith('/') || step.sources.length > 1;
    const dest = this.hostPath(state, step.dest);
    for (const source of step.sources) {
      let from: string;
      let filter: ((src: string) => boolean) | undefined;
      if (step.from !== undefined) {
        const other = this.states.get(step.from);
        if (!other) throw new Error(`no earlier stage named ${step.from}`);
        from = path.join(other.root, ...path.posix.resolve('/', source).split('/').filter(Boolean));
      } else {
        const relative = path.posix.normalize(source).replace(/^\/+/, '');
        if (relative.startsWith('..')) throw new Error(`${source} is outside the build context`);
        if (isIgnored(this.ignore, relative === '.' ? '' : relative)) throw new Error(`${source} is excluded by .dockerignore`);
        from = path.join(this.context, relative);
        filter = (src: string) => {
          const rel = path.relative(this.context, src).split(path.sep).join('/');
          if (!isIgnored(this.ignore, rel)) return true;
          return isDirectory(src) && mayHoldExceptions(this.ignore, rel);
        };
      }
      if (!existsSync(from)) throw new Error(`COPY source ${source} does not exist${step.from ? ` in stage ${step.from}` : ''}`);
      const isDir = (await stat(from)).isDirectory();
      const target = isDir || !(destIsDir || (existsSync(dest) && (await stat(dest)).isDirectory())) ? dest : path.join(dest, path.basename(from));
      await mkdir(isDir ? target : path.dirname(target), { recursive: true });
      await cp(from, target, { recursive: true, verbatimSymlinks: true, force: true, ...(filter ? { filter } : {}) });
      this.log.push(`COPY ${step.from ? `--from=${step.from} ` : ''}${source} -> ${path.relative(this.scratch, target)}`);
    }
  }

  private async runStep(state: StageState, args: string): Promise<void> {
    const commands = splitCommands(shellWords(args));
    const cwd = this.hostPath(state, state.workdir);
    for (const command of commands) {
      state.runs.push(command);
      const [program, ...rest] = command as [string, ...string[]];
      if (program === 'npm' && rest[0] === 'cache') {
        // Only touches the build stage's own cache in Docker; here it would be the machine's shared ~/.npm.
        this.log.push(`RUN ${command.join(' ')} (skipped: would act on the shared npm cache)`);
      } else if (program === 'npm' || program === 'npx') {
        const env = { ...cleanEnv(), ...state.env, PATH: `${this.pathPrefix}${path.delimiter}${process.env.PATH ?? ''}` };
        const started = Date.now();
        const result = await run(program, rest, { cwd, env });
        this.log.push(`RUN ${command.join(' ')} (${Math.round((Date.now() - started) / 1000)} s, exit ${result.code})`);
        if (result.code !== 0) throw new Error(describeResult(`RUN ${command.join(' ')}`, result));
      } else if (program === 'mkdir') {
        for (const dir of rest.filter((word) => !word.startsWith('-'))) await mkdir(this.hostPath(state, dir), { recursive: true });
        this.log.push(`RUN ${command.join(' ')}`);
      } else if (program === 'chown' || program === 'chmod') {
        // Ownership is checked statically; the test machine need not have the image's users.
        for (const target of rest.filter((word) => !word.startsWith('-')).slice(1)) {
          if (!existsSync(this.hostPath(state, target))) throw new Error(`${program}: ${target} does not exist`);
        }
        this.log.push(`RUN ${command.join(' ')} (checked, not applied)`);
      } else {
        throw new Error(`the replay does not know how to run "${command.join(' ')}"; teach test/e2e/dockerfile.test.ts`);
      }
    }
  }
}

function isDirectory(file: string): boolean {
  try {
    return statSync(file).isDirectory();
  } catch {
    return false;
  }
}

/** Appends a child's output to the captured logs line by line; lines that are not JSON get wrapped as JSON. */
function lineSink(logs: ReturnType<typeof captureLogs>, stream: 'stdout' | 'stderr') {
  let pending = '';
  const emit = (line: string) => {
    if (!line.trim()) return;
    let json: boolean;
    try {
      json = typeof JSON.parse(line) === 'object';
    } catch {
      json = false;
    }
    logs.append(`${json ? line : JSON.stringify({ level: stream === 'stderr' ? 'error' : 'info', time: new Date().toISOString(), stream, msg: line })}\n`);
  };
  return {
    write(chunk: string) {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      lines.forEach(emit);
    },
    flush() {
      emit(pending);
      pending = '';
    },
  };
}

async function listFiles(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  return (await readdir(dir, { recursive: true })).map(String);
}

// ---------------------------------------------------------------------------------------------

const dockerfileText = readFileSync(path.join(REPO, 'Dockerfile'), 'utf8');
const dockerignoreText = existsSync(path.join(REPO, '.dockerignore')) ? readFileSync(path.join(REPO, '.dockerignore'), 'utf8') : '';
const stages = parseDockerfile(dockerfileText);
const finalStage = stages.at(-1)!;
const ignoreRules = parseDockerignore(dockerignoreText);

/** Stage names a stage descends from (itself included). */
function lineage(stage: Stage): Stage[] {
  const chain = [stage];
  let current = stage;
  for (;;) {
    const parent = stages.find((candidate) => candidate.name === current.from && candidate.index < current.index);
    if (!parent) return chain;
    chain.push(parent);
    current = parent;
  }
}

function runCommandsOf(stage: Stage): string[][] {
  return stage.instructions.filter((i) => i.keyword === 'RUN').flatMap((i) => splitCommands(shellWords(i.args)));
}

describe('Dockerfile (static)', () => {
  it('is multi-stage on a Node 22 base image', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) {
      const base = stages.find((s) => s.name === stage.from && s.index < stage.index);
      if (!base) expect(stage.from, `stage ${stage.name}`).toMatch(/^node:22[-.\w]*$/);
    }
  });

  it('builds with npm ci and npm run build in a stage the final image does not descend from', () => {
    const builders = stages.filter((stage) => runCommandsOf(stage).some((c) => c.join(' ') === 'npm run build'));
    expect(builders.length, 'a stage runs npm run build').toBeGreaterThan(0);
    for (const builder of builders) {
      expect(runCommandsOf(builder).some((c) => c[0] === 'npm' && c[1] === 'ci'), `stage ${builder.name} installs with npm ci`).toBe(true);
      expect(lineage(finalStage).map((s) => s.name)).not.toContain(builder.name);
    }
  });

  it('gives the final image production dependencies only, installed without scripts', () => {
    const copies = finalStage.instructions.filter((i) => i.keyword === 'COPY').map((i) => parseCopy(i.args));
    const modules = copies.find((c) => c.sources.some((s) => /(^|\/)node_modules\/?$/.test(s)));
    expect(modules, 'the final stage copies node_modules from another stage').toBeDefined();
    const source = stages.find((s) => s.name === modules!.from);
    expect(source, `stage ${modules!.from}`).toBeDefined();
    const commands = lineage(source!).flatMap(runCommandsOf).filter((c) => c[0] === 'npm');
    const omitsDev = commands.filter((c) => c.includes('--omit=dev') || c.includes('--production'));
    expect(omitsDev.length, `stage ${source!.name} installs or prunes with --omit=dev`).toBeGreaterThan(0);
    for (const install of commands.filter((c) => c[1] === 'ci' || c[1] === 'install')) {
      expect(install, 'npm installs skip lifecycle scripts (prepare would need tsc)').toContain('--ignore-scripts');
    }
  });

  it('runs as a non-root user in production mode, exposes 3000 and starts dist/src/main.js with the server\'s Node.js options', () => {
    const final = lineage(finalStage).reverse().flatMap((s) => s.instructions);
    const users = final.filter((i) => i.keyword === 'USER');
    const user = users.at(-1)?.args.trim() ?? 'root';
    expect(user).not.toMatch(/^(root|0)(:.*)?$/);
    const env = Object.assign({}, ...final.filter((i) => i.keyword === 'ENV').map((i) => parseEnv(i.args))) as Record<string, string>;
    expect(env.NODE_ENV).toBe('production');
    expect(final.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => i.args.split(/\s+/))).toContain('3000');
    // Production requires METRICS_PORT (GET /metrics is never on the public port there): the image sets and exposes it.
    expect(env.METRICS_PORT).toMatch(/^\d+$/);
    expect(final.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => i.args.split(/\s+/))).toContain(env.METRICS_PORT);
    const cmd = final.filter((i) => i.keyword === 'CMD').at(-1);
    expect(cmd, 'CMD').toBeDefined();
    // The Node.js options npm start passes too (src/runtime.ts).
    expect(parseExecForm(cmd!.args)).toEqual(['node', ...SERVER_NODE_OPTIONS, 'dist/src/main.js']);
  });

  it('keeps keys, local data and dependencies out of the build context', () => {
    for (const file of ['keys/abc.json', 'keys/client-secret.key', 'node_modules/koa/package.json', 'dist/src/main.js', '.data/pglite/x', '.env', '.git/HEAD', 'test/e2e/dockerfile.test.ts']) {
      expect(isIgnored(ignoreRules, file), `${file} is ignored`).toBe(true);
    }
    for (const file of ['package.json', 'package-lock.json', 'src/main.ts', 'migrations/index.ts', 'bin/gatehouse.js']) {
      expect(isIgnored(ignoreRules, file), `${file} is in the context`).toBe(false);
    }
    const contextCopies = stages.flatMap((s) => s.instructions.filter((i) => i.keyword === 'COPY').map((i) => parseCopy(i.args))).filter((c) => c.from === undefined);
    for (const copy of contextCopies) expect(copy.sources.join(' ')).not.toMatch(/(^|\s|\/)keys(\/|\s|$)/);
  });
});

describe('Dockerfile (replayed build and production start)', () => {
  let scratch: string;
  let database: TestDatabase | undefined;
  let final: StageState;
  let appDir: string;
  let replay: DockerfileReplay;
  let buildSeconds = 0;
  let child: ChildProcess | undefined;
  let node22 = '';
  const logs = captureLogs('dockerfile');

  beforeAll(async () => {
    scratch = await realpath(await mkdtemp(path.join(os.tmpdir(), 'gatehouse-dockerfile-')));
    for (const candidate of NODE22_CANDIDATES) {
      if (!existsSync(candidate)) continue;
      const version = await run(candidate, ['--version'], { cwd: scratch, env: cleanEnv() });
      if (/^v22\./.test(version.stdout.trim())) {
        node22 = await realpath(candidate);
        break;
      }
    }
    if (!node22) {
      throw new Error(
        `no Node 22 binary among ${NODE22_CANDIDATES.join(', ')}; install the node devDependency's binary ` +
          '(cd node_modules/node && node installArchSpecificPackage.js && ln -sfn ../node/bin/node ../.bin/node), as .ci/run does',
      );
    }
    // The node:22 image's `node`: only node itself is shadowed, not the repo's tsc or vitest.
    const nodeBin = path.join(scratch, 'node22-bin');
    await mkdir(nodeBin);
    await symlink(node22, path.join(nodeBin, 'node'));

    replay = new DockerfileReplay(stages, ignoreRules, REPO, path.join(scratch, 'rootfs'), nodeBin);
    const started = Date.now();
    final = await replay.build();
    buildSeconds = Math.round((Date.now() - started) / 1000);
    appDir = replay.hostPath(final, final.workdir);
    console.log(`[dockerfile] replayed build in ${buildSeconds} s:\n  ${replay.log.join('\n  ')}`);
  }, 300_000);

  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await database?.drop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }, 60_000);

  it('assembles an image without dev dependencies, sources, tests or keys', async () => {
    expect(final.workdir).toBe('/app');
    for (const file of ['package.json', 'dist/src/main.js', 'dist/src/cli/main.js', 'node_modules/oidc-provider/package.json', 'node_modules/koa/package.json']) {
      expect(existsSync(path.join(appDir, file)), `${file} in the image`).toBe(true);
    }
    const devDependencies = Object.keys(
      (JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { devDependencies?: Record<string, string> }).devDependencies ?? {},
    );
    expect(devDependencies).toContain('typescript');
    // A dev dependency that a runtime dependency needs too (oauth4webapi, under openid-client) is in
    // production's tree: the lockfile does not mark it dev. Every other one must stay out.
    const lock = JSON.parse(readFileSync(path.join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const alsoRuntime = devDependencies.filter((name) => lock.packages[`node_modules/${name}`]?.dev !== true);
    expect(alsoRuntime).toEqual(['oauth4webapi']);
    for (const name of alsoRuntime) expect(existsSync(path.join(appDir, 'node_modules', name)), `${name} (needed at run time) in the image`).toBe(true);
    for (const name of [...devDependencies.filter((dev) => !alsoRuntime.includes(dev)), '@vitest/runner', 'vite', 'esbuild']) {
      expect(existsSync(path.join(appDir, 'node_modules', name)), `dev dependency ${name} in the image`).toBe(false);
    }
    expect(existsSync(path.join(appDir, 'node_modules', '.bin', 'tsc'))).toBe(false);
    expect(existsSync(path.join(appDir, 'src')), 'TypeScript sources in the image').toBe(false);
    expect(existsSync(path.join(appDir, 'test')), 'tests in the image').toBe(false);
    const keyFiles = (await listFiles(path.join(appDir, 'keys'))).filter((f) => !f.endsWith('README.md'));
    expect(keyFiles, 'key material in the image').toEqual([]);
    // No stage, not even the build stage that copies the whole (filtered) context, ever holds key material.
    const everything = await listFiles(path.join(scratch, 'rootfs'));
    expect(everything.filter((f) => /(^|\/)keys\/[^/]+\.(json|key|pem)$|client-secret\.key$|(^|\/)\.env$/.test(f) && !f.includes('node_modules'))).toEqual([]);
    expect(everything.filter((f) => /(^|\/)(\.git|\.data|\.test-logs)$/.test(f))).toEqual([]);
    expect(final.volumes).toContain(final.env.KEYS_DIR ?? '/app/keys');
  });

  it(
    'starts with its CMD in production, serves discovery and a client-credentials RS256 token, and stops on SIGTERM',
    async () => {
      database = await createTestDatabase();
      const port = await freePort();
      const metricsPort = await freePort();
      const issuer = `http://localhost:${port}`;
      const keysVolume = path.join(scratch, 'keys-volume'); // what `-v gatehouse-keys:/app/keys` mounts
      await mkdir(keysVolume);
      const env: NodeJS.ProcessEnv = {
        ...cleanEnv(),
        ...final.env,
        PATH: `${path.join(scratch, 'node22-bin')}${path.delimiter}${process.env.PATH ?? ''}`,
        KEYS_DIR: keysVolume,
        PORT: String(port),
        ISSUER: issuer,
        DATABASE_URL: database.url,
        REDIS_URL: WORKER_REDIS_URL,
        COOKIE_KEYS: COOKIE_KEY,
        LOG_LEVEL: 'info',
        METRICS_PORT: String(metricsPort),
      };
      expect(env.NODE_ENV).toBe('production');
      const node = node22;
      const cli = existsSync(path.join(appDir, 'bin', 'gatehouse.js')) ? 'bin/gatehouse.js' : 'dist/src/cli/main.js';
      const gatehouse = async <T,>(...args: string[]): Promise<T> => {
        const result = await run(node, [cli, ...args, '--json'], { cwd: appDir, env, timeoutMs: 60_000 });
        for (const match of result.stdout.matchAll(/"client_secret":\s*"([^"]+)"/g)) recordSecret(match[1]);
        if (result.stderr.trim()) lineSink(logs, 'stderr').write(`${result.stderr}\n`);
        expect(result.code, describeResult(`gatehouse ${args.join(' ')}`, { ...result, stdout: result.stdout.replace(/"client_secret":\s*"[^"]+"/g, '"client_secret":"…"') })).toBe(0);
        return JSON.parse(result.stdout) as T;
      };

      await gatehouse('keys', 'generate');
      expect((await readdir(keysVolume)).length).toBeGreaterThan(0);
      await gatehouse('migrate');
      const resource = 'https://api.example.test';
      await gatehouse('resources', 'create', '--identifier', resource, '--scope', 'read write');
      const created = await gatehouse<{ client_id: string; client_secret: string }>(
        'clients', 'create', '--name', 'svc', '--resource', resource, '--scope', 'read',
      );
      recordSecret(created.client_secret);

      const [program, ...args] = final.cmd!;
      expect(program).toBe('node');
      let stdout = '';
      let stderr = '';
      const outSink = lineSink(logs, 'stdout');
      const errSink = lineSink(logs, 'stderr');
      const server = spawn(node, args, { cwd: appDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
      child = server;
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
        server.once('exit', (code, signal) => resolve({ code, signal }));
      });
      const closed = new Promise<void>((resolve) => server.once('close', () => resolve()));
      server.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        stdout += chunk;
        outSink.write(chunk);
      });
      server.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
        errSink.write(chunk);
      });
      const report = (what: string) => `${what}\n--- server stderr ---\n${stderr.slice(-4000)}\n--- server stdout (tail) ---\n${stdout.slice(-4000)}`;

      try {
        // Ready within 30 s, or say why not.
        let readyStatus = 0;
        const deadline = Date.now() + 30_000;
        while (Date.now() < deadline) {
          if (server.exitCode !== null || server.signalCode !== null) break;
          try {
            const response = await fetch(`${issuer}/readyz`);
            readyStatus = response.status;
            await response.body?.cancel();
            if (readyStatus === 200) break;
          } catch {
            // not listening yet
          }
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        if (server.exitCode !== null || server.signalCode !== null) {
          await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 2_000))]); // collect all of its stderr
        }
        expect(server.exitCode, report('the server exited before it was ready')).toBeNull();
        expect(readyStatus, report('GET /readyz')).toBe(200);

        const discoveryResponse = await fetch(`${issuer}/.well-known/openid-configuration`);
        expect(discoveryResponse.status, report('discovery')).toBe(200);
        const discovery = (await discoveryResponse.json()) as Record<string, unknown>;
        expect(discovery.issuer).toBe(issuer);
        expect(discovery.token_endpoint).toBe(`${issuer}/token`);
        expect(discovery.grant_types_supported).toContain('client_credentials');
        expect(typeof discovery.jwks_uri).toBe('string');

        const basic = Buffer.from(`${encodeURIComponent(created.client_id)}:${encodeURIComponent(created.client_secret)}`).toString('base64');
        const tokenResponse = await fetch(String(discovery.token_endpoint), {
          method: 'POST',
          headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'read' }),
        });
        const body = (await tokenResponse.json()) as Record<string, unknown>;
        if (typeof body.access_token === 'string') recordSecret(body.access_token);
        expect(tokenResponse.status, report(`token response ${JSON.stringify({ ...body, access_token: body.access_token ? '…' : undefined })}`)).toBe(200);
        const token = String(body.access_token);
        expect(token.split('.')).toHaveLength(3);
        const header = decodeProtectedHeader(token);
        expect(header.alg).toBe('RS256');
        expect(header.typ).toBe('at+jwt');
        const jwks = createRemoteJWKSet(new URL(String(discovery.jwks_uri)));
        const { payload } = await jwtVerify(token, jwks, { issuer, audience: resource });
        expect(payload.client_id).toBe(created.client_id);
        expect(payload.scope).toBe('read');

        // Metrics on METRICS_PORT only, with no client id as a label value.
        expect((await fetch(`${issuer}/metrics`)).status, report('GET /metrics on the main port')).toBe(404);
        const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
        expect(metrics.status, report('GET /metrics on METRICS_PORT')).toBe(200);
        const metricsText = await metrics.text();
        expect(metricsText).toContain('gatehouse_tokens_issued_total{grant_type="client_credentials",client_id="other"} 1');
        expect(metricsText).not.toContain(created.client_id);

        server.kill('SIGTERM');
        const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 20_000));
        const outcome = await Promise.race([exited, timeout]);
        expect(outcome, report('the server did not stop within 20 s of SIGTERM')).not.toBe('timeout');
        await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 2_000))]);
        expect(outcome, report('exit after SIGTERM')).toEqual({ code: 0, signal: null });
        // Started with every Node.js option the server expects (it says so when one is missing).
        expect(stdout + stderr).not.toContain('started without the Node.js options');
      } finally {
        if (server.exitCode === null && server.signalCode === null) {
          server.kill('SIGKILL');
          await exited;
        }
        outSink.flush();
        errSink.flush();
      }
      expect(stdout, 'the client secret is not logged').not.toContain(created.client_secret);
    },
    120_000,
  );
});
