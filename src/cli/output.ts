import { isatty } from 'node:tty';
import { promptHidden } from './prompt.js';

/** Where a command writes; injectable so tests run the CLI in-process. */
export interface CliIo {
  env: Record<string, string | undefined>;
  cwd: string;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** All of standard input, as text; only commands that take --password-stdin read it. */
  readStdin?: () => Promise<string>;
  /** Set when standard input is a terminal: asks for a password there without showing it (the prompt on stderr). */
  promptPassword?: (prompt: string) => Promise<string>;
  /** The width help text is wrapped to (the terminal's, else 100). */
  columns?: number;
}

/** More than any password: a file piped in by mistake is refused, not read into memory. */
const MAX_STDIN_BYTES = 64 * 1024;

async function readProcessStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size > MAX_STDIN_BYTES) throw new UsageError(`standard input is longer than ${MAX_STDIN_BYTES} bytes`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function processIo(): CliIo {
  return {
    env: process.env,
    cwd: process.cwd(),
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    readStdin: readProcessStdin,
    // isatty, not process.stdin.isTTY: standard input is opened only by a command that reads it.
    ...(isatty(0) ? { promptPassword: (prompt: string) => promptHidden(process.stdin, process.stderr, prompt) } : {}),
    ...(isatty(1) && process.stdout.columns ? { columns: process.stdout.columns } : {}),
  };
}

/** A mistake in how the command was called: exit code 2, one line saying what to fix. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * The password piped to a `--…-stdin` flag (named in errors), without the one line ending `echo`
 * or a here-string adds. When standard input is a terminal, the password is asked for there, unseen,
 * twice (`what` names it in the prompts: "password", "runtime role's password").
 */
export async function readStdinPassword(io: CliIo, flag: string, what = 'password'): Promise<string> {
  if (io.promptPassword) {
    const password = await io.promptPassword(`${what[0]?.toUpperCase() ?? ''}${what.slice(1)} (not shown): `);
    if (password === '') throw new UsageError(`${flag}: nothing was typed`);
    if ((await io.promptPassword(`Repeat the ${what}: `)) !== password) throw new UsageError(`${flag}: the ${what} and its repetition differ`);
    return password;
  }
  if (!io.readStdin) throw new UsageError(`${flag}: standard input cannot be read here`);
  let text: string;
  try {
    text = await io.readStdin();
  } catch (error) {
    if (error instanceof UsageError) throw new UsageError(`${flag}: ${error.message}`);
    throw error;
  }
  const password = text.endsWith('\r\n') ? text.slice(0, -2) : text.endsWith('\n') ? text.slice(0, -1) : text;
  if (password === '') throw new UsageError(`${flag}: standard input is empty; pipe the password to it`);
  return password;
}

type Printable = Record<string, unknown> | Array<Record<string, unknown>>;

function formatValue(value: unknown): string {
  if (value === null || value === undefined) return '-';
  if (Array.isArray(value)) return value.length === 0 ? '-' : value.join(' ');
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** Prints one JSON document with --json, else aligned "key: value" lines (a blank line between items). */
export function printResult(io: CliIo, json: boolean, result: Printable, note?: string): void {
  if (json) {
    io.stdout(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }
  const items = Array.isArray(result) ? result : [result];
  if (items.length === 0) io.stdout('(none)\n');
  const blocks = items.map((item) => {
    const width = Math.max(...Object.keys(item).map((key) => key.length));
    return Object.entries(item)
      .map(([key, value]) => `${key.padEnd(width)}  ${formatValue(value)}`)
      .join('\n');
  });
  if (blocks.length > 0) io.stdout(`${blocks.join('\n\n')}\n`);
  if (note) io.stderr(`${note}\n`);
}
