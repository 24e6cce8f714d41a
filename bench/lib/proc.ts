import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** Clock ticks per second of /proc/<pid>/stat utime and stime (getconf CLK_TCK, nearly always 100). */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Whether a program is on PATH. */
export function hasCommand(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** taskset exists and this machine has at least two CPUs to give the server and the load generator one each. */
export const CAN_PIN = hasCommand('taskset');

/** Fields of /proc/<pid>/stat after the command name (which may contain spaces): index 0 is field 3 (state). */
function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The pid and every live descendant of it (a cluster primary and its workers). */
export function processTree(root: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(Number(entry));
    if (fields) parents.set(Number(entry), Number(fields[1]));
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i += 1) {
    for (const [pid, ppid] of parents) if (ppid === tree[i] && !tree.includes(pid)) tree.push(pid);
  }
  return tree.filter((pid) => parents.has(pid));
}

/** User plus system CPU time in milliseconds of the given processes. */
export function cpuMs(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const fields = statFields(pid);
    // utime and stime are fields 14 and 15 of stat, 11 and 12 here.
    if (fields) ticks += Number(fields[11]) + Number(fields[12]);
  }
  return (ticks * 1000) / CLK_TCK;
}

/** Resident set size in MB of one process (VmRSS), or 0 when it is gone. */
export function rssMb(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Sum of VmRSS over a process tree (a cluster's primary and workers). */
export function treeRssMb(root: number): number {
  return processTree(root).reduce((sum, pid) => sum + rssMb(pid), 0);
}

/** Samples the RSS of a process tree every `everyMs` until stopped; returns the peak in MB. */
export function sampleRss(root: number, everyMs = 100): { stop(): number } {
  let peak = treeRssMb(root);
  let pids = processTree(root);
  let ticks = 0;
  const timer = setInterval(() => {
    // The tree of a cluster is re-read now and then (a worker may be replaced), the RSS every tick.
    ticks += 1;
    if (ticks % 20 === 0) pids = processTree(root);
    peak = Math.max(
      peak,
      pids.reduce((sum, pid) => sum + rssMb(pid), 0),
    );
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

/** Every child the harness started: killed when it stops, whatever the reason. */
const children = new Set<ChildProcess>();

export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** SIGKILLs every child still running (synchronous, so it also works in process.on('exit')). */
export function killAll(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null && child.pid) {
      try {
        // A cluster primary's workers die with their IPC channel; kill them outright anyway.
        for (const pid of processTree(child.pid).reverse()) process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
}

/** Spawns a command, optionally pinned to CPUs with taskset (then the child's pid is the command's own, as taskset execs it). */
export function spawnPinned(
  cpus: string | undefined,
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; stdio?: Array<'ignore' | 'pipe' | 'inherit'> } = {},
): ChildProcess {
  const [file, argv] = cpus && CAN_PIN ? ['taskset', ['-c', cpus, command, ...args]] : [command, args];
  return track(
    spawn(file, argv, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: (options.stdio ?? ['ignore', 'pipe', 'pipe']) as ['ignore' | 'pipe', 'ignore' | 'pipe', 'ignore' | 'pipe'],
    }),
  );
}

/** The CPUs a process may run on ("0-1"), or undefined when it is gone or taskset cannot tell. */
function cpuList(pid: number): string | undefined {
  try {
    // "pid 123's current affinity list: 0,1"
    return /list:\s*(\S+)/.exec(execFileSync('taskset', ['-c', '-p', String(pid)], { encoding: 'utf8' }))?.[1];
  } catch {
    return undefined;
  }
}

/**
 * Moves local processes that serve the server (PostgreSQL backends, Redis), every thread of them,
 * onto `cpus`, so that what they do for a request is not charged to the server's CPU, as it would
 * not be with them on machines of their own. Answers how to put each back where it was; a process
 * that is gone or not ours to move is left alone.
 */
export function placeOnCpus(pids: readonly number[], cpus: string): () => void {
  const moved: Array<{ pid: number; was: string }> = [];
  for (const pid of pids) {
    const was = cpuList(pid);
    if (!was || was === cpus) continue;
    // Even a partial move (some threads) is put back.
    moved.push({ pid, was });
    setCpus(pid, cpus);
  }
  return () => {
    for (const { pid, was } of moved) setCpus(pid, was);
  };
}

/**
 * Sets the CPUs of every thread of a process; false when it is gone or not ours. `taskset -a` fails
 * when a thread ends while it walks them (a process's threads come and go): it is tried again.
 */
export function setCpus(pid: number, cpus: string): boolean {
  for (let attempt = 0; attempt < 5; attempt += 1) {
    try {
      execFileSync('taskset', ['-a', '-c', '-p', cpus, String(pid)], { stdio: 'ignore' });
      return true;
    } catch {
      if (cpuList(pid) === undefined) return false;
    }
  }
  return false;
}

/** Waits for a child to exit; SIGTERM first, SIGKILL after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (child.pid) for (const pid of processTree(child.pid).reverse()) process.kill(pid, 'SIGKILL');
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

/** Collects a child's output, keeping the last `limit` characters for error messages. */
export function collectOutput(child: ChildProcess, limit = 20_000): () => string {
  let output = '';
  const add = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-limit);
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  return () => output;
}

/** Polls a URL until it answers 200; throws when the child exits or time runs out. Returns the time it took. */
export async function waitForOk(url: string, child: ChildProcess, output: () => string, timeoutMs = 30_000, everyMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${url}: the process exited (${child.exitCode ?? child.signalCode}) before answering; output:\n${output()}`);
    }
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await response.arrayBuffer();
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(everyMs);
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms; output:\n${output()}`);
}

/** Runs a command to completion and returns its stdout (throws with stderr on a non-zero exit). */
export function run(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; cpus?: string; timeoutMs?: number } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawnPinned(options.cpus, command, args, {
      env: options.env,
      cwd: options.cwd,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${command} ${args.join(' ')} failed (${code ?? signal}): ${stderr.slice(-2000)}`));
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/**
 * CPU time in ms of the given CPUs ("0", "0-1"; undefined: all), from /proc/stat: `busy` is what
 * ran there (everything but idle, iowait and steal; with the server's own CPU time taken off, what
 * else ran there), `stolen` the time the hypervisor gave the virtual CPU to someone else's machine.
 */
export function cpusTimeMs(cpus: string | undefined): { busy: number; stolen: number } {
  const wanted = new Set<string>();
  if (cpus) {
    for (const part of cpus.split(',')) {
      const [from, to = from] = part.split('-').map(Number) as [number, number?];
      for (let cpu = from; cpu <= to; cpu += 1) wanted.add(`cpu${cpu}`);
    }
  }
  let busy = 0;
  let stolen = 0;
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const [name, ...fields] = line.split(/\s+/);
    if (!name || !/^cpu\d*$/.test(name)) continue;
    if (cpus ? !wanted.has(name) : name !== 'cpu') continue;
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    const values = fields.map(Number);
    const steal = values[7] ?? 0;
    busy += values.slice(0, 8).reduce((a, b) => a + b, 0) - (values[3] ?? 0) - (values[4] ?? 0) - steal;
    stolen += steal;
  }
  return { busy: (busy * 1000) / CLK_TCK, stolen: (stolen * 1000) / CLK_TCK };
}

/** Busy time in ms of the given CPUs: see cpusTimeMs. */
export const cpusBusyMs = (cpus: string | undefined): number => cpusTimeMs(cpus).busy;
