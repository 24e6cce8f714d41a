import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const readmes = readdirSync(path.join(ROOT, 'examples')).map((name) => path.join('examples', name, 'README.md'));

describe('the examples\' READMEs', () => {
  // `npx node` is the project's Node 22 (the node devDependency); a bare `node` is whatever the
  // machine has, which may be too old to strip the types of a .ts file.
  it.each(readmes)('%s starts each example with the project\'s Node (npx node)', (readme) => {
    const text = readFileSync(path.join(ROOT, readme), 'utf8');
    const starts = [...text.matchAll(/(\S+ )?node (examples\/\S+\.ts)/g)];
    expect(starts.length, `${readme} shows how to start an example`).toBeGreaterThan(0);
    for (const [line, before, file] of starts) {
      expect(before, `${readme}: ${line}`).toBe('npx ');
      expect(readdirSync(path.join(ROOT, path.dirname(file!))), `${readme}: ${file}`).toContain(path.basename(file!));
    }
  });
});
