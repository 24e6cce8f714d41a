import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeCommands, type CommandInfo } from '../../src/cli/command-tree.js';
import { createRuntime } from '../../src/cli/define.js';
import { createProgram } from '../../src/cli/program.js';
import { envSchema } from '../../src/config/schema.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const DOCS = path.join(ROOT, 'docs');
const pages = readdirSync(DOCS).filter((name) => name.endsWith('.md'));
const read = (name: string) => readFileSync(path.join(DOCS, name), 'utf8');
/** Variables the docs may name that belong to other programs. */
const NOT_OURS = new Set(['MIGRATION_DATABASE_URL', 'CLIENT_ID', 'CLIENT_SECRET', 'GATEHOUSE_API_KEY']);

describe('docs/', () => {
  it('has the guides the README promises', () => {
    expect(pages).toEqual(expect.arrayContaining(['quick-start.md', 'resource-servers.md', 'clients.md', 'production.md', 'scaling.md']));
  });

  it.each(pages)('%s links only to files that exist', (name) => {
    for (const [, target] of read(name).matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
      if (/^[a-z]+:/.test(target!)) continue;
      expect(existsSync(path.resolve(DOCS, target!)), `${name} → ${target}`).toBe(true);
    }
  });

  it.each(pages)('%s names only environment variables Gatehouse reads', (name) => {
    const known = new Set(Object.keys(envSchema.shape));
    for (const [, variable] of read(name).matchAll(/\b([A-Z][A-Z0-9]*_[A-Z0-9_]*[A-Z0-9])\b/g)) {
      if (NOT_OURS.has(variable!)) continue;
      expect(known.has(variable!), `${name}: ${variable}`).toBe(true);
    }
  });

  it.each(pages)('%s shows only CLI commands and options that exist', (name) => {
    expect(unknownCommandsIn(read(name)), name).toEqual([]);
  });
});

/** The CLI's commands as its definitions generate them (what --help and completion show). */
const COMMANDS = new Map<string, CommandInfo>(
  describeCommands(createProgram(createRuntime({ env: {}, cwd: ROOT, stdout: () => undefined, stderr: () => undefined }))).map((info) => [info.path, info]),
);
/** Options of every command: the program's --json, help and --version. */
const GLOBAL_OPTIONS = ['--json', '--help', '-h', '--version', '-V'];

/** The command a line names after `gatehouse`: the longest run of words that is a command, and what follows it. */
function commandOf(words: string[]): { info: CommandInfo | undefined; rest: string[] } {
  let path = '';
  let at = 0;
  while (at < words.length && COMMANDS.has(path ? `${path} ${words[at]}` : words[at]!)) {
    path = path ? `${path} ${words[at]}` : words[at]!;
    at += 1;
  }
  return { info: COMMANDS.get(path), rest: words.slice(at) };
}

/** `gatehouse …` command lines in a page (code lines joined at a trailing backslash, inline code cut at its backtick) that name no command, or an option that command does not take. */
function unknownCommandsIn(text: string): string[] {
  const problems: string[] = [];
  for (const [, line] of text.replace(/\s*\\\n\s*/g, ' ').matchAll(/(?<![\w:/.-])gatehouse((?: +[^\s`#|<>;]+)*)/g)) {
    const words = line!.trim().split(/ +/).filter(Boolean);
    const { info, rest } = commandOf(words);
    if (!info || (info.path === '' && rest.length > 0 && /^[a-z]/.test(rest[0]!)) || (!info.leaf && rest.some((word) => /^[a-z]/.test(word)))) {
      problems.push(`gatehouse ${line!.trim()}: no such command`);
      continue;
    }
    for (const word of rest) {
      const flag = /^\[?(--?[a-z][a-z-]*)/.exec(word)?.[1];
      if (flag && !info.options.includes(flag) && !GLOBAL_OPTIONS.includes(flag)) problems.push(`gatehouse ${line!.trim()}: ${info.path} has no ${flag}`);
    }
  }
  return problems;
}

describe('README.md and the CLI', () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');

  it('shows only CLI commands and options that exist', () => {
    expect(unknownCommandsIn(readme)).toEqual([]);
  });

  it('lists every command the CLI has, and no other, in its CLI list', () => {
    const section = /More of the CLI[^]*?\n\n((?: {4}.*\n)+)/.exec(readme)?.[1];
    expect(section, 'the README\'s CLI list').toBeDefined();
    const listed = section!
      .split('\n')
      .map((line) => /^ {4}npx gatehouse ((?:[a-z][a-z-]*(?: |$))*)/.exec(line)?.[1]?.trim())
      .filter((words): words is string => words !== undefined && words !== '');
    const leaves = [...COMMANDS.values()].filter((info) => info.leaf).map((info) => info.path);
    expect([...new Set(listed.map((words) => commandOf(words.split(' ')).info?.path ?? words))].sort()).toEqual([...leaves].sort());
  });
});

describe('the checker of command lines', () => {
  it('finds unknown commands, unknown subcommands and options a command does not take', () => {
    expect(unknownCommandsIn('    npx gatehouse clients create --name x --json\n    `gatehouse audit verify --checkpoint cp.json`')).toEqual([]);
    expect(unknownCommandsIn('    npx gatehouse clients create --name x \\\n      --nmae y')).toEqual(['gatehouse clients create --name x --nmae y: clients create has no --nmae']);
    expect(unknownCommandsIn('run `gatehouse frobnicate`')).toEqual(['gatehouse frobnicate: no such command']);
    expect(unknownCommandsIn('    npx gatehouse clients frobnicate ID')).toEqual(['gatehouse clients frobnicate ID: no such command']);
    expect(unknownCommandsIn('urn:gatehouse:admin-api and gatehouse_owner')).toEqual([]);
  });
});
