import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { envSchema } from '../../src/config/schema.js';
import { runCliCapture } from '../fixtures/cli.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const DOCS = path.join(ROOT, 'docs');
const pages = readdirSync(DOCS).filter((name) => name.endsWith('.md'));
const read = (name: string) => readFileSync(path.join(DOCS, name), 'utf8');
/** Variables the docs may name that belong to other programs. */
const NOT_OURS = new Set(['MIGRATION_DATABASE_URL', 'CLIENT_ID', 'CLIENT_SECRET']);

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

  it.each(pages)('%s shows only CLI commands that exist', async (name) => {
    const usage = (await runCliCapture(['--help'], {})).stdout;
    for (const [, command] of read(name).matchAll(/npx gatehouse ([a-z-]+(?: [a-z-]+)?)/g)) {
      const [group, sub] = command!.split(' ');
      const listed = usage.includes(`${group} ${sub}`) || (usage.includes(`  ${group}\n`) && sub === undefined) || usage.includes(`| ${sub}`);
      expect(listed || usage.split('\n').some((line) => line.trim().startsWith(group!) && (sub === undefined || line.includes(sub))), `${name}: gatehouse ${command}`).toBe(true);
    }
  });
});
