import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { build } from 'esbuild';

/** The repository root: the folder above this script (console/scripts or dist/console/scripts) that holds package.json. */
function repositoryRoot(): string {
  let dir = import.meta.dirname;
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`package.json not found above ${import.meta.dirname}`);
    dir = parent;
  }
  return dir;
}

/**
 * Bundles the console (console/src, Preact) with esbuild into dist/console: assets/ with one
 * content-hashed script and stylesheet, each beside its brotli and gzip form, and index.html naming
 * them (the server fills in its settings: src/http/console.routes.ts). Run by `npm run build`.
 */
export async function buildConsole(root = repositoryRoot()): Promise<{ script: string; stylesheet: string }> {
  const out = path.join(root, 'dist', 'console');
  const assets = path.join(out, 'assets');
  rmSync(assets, { recursive: true, force: true });
  mkdirSync(assets, { recursive: true });
  const result = await build({
    entryPoints: { console: path.join(root, 'console', 'src', 'main.tsx') },
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2022',
    platform: 'browser',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    entryNames: '[name]-[hash]',
    outdir: assets,
    metafile: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  const outputs = Object.keys(result.metafile.outputs).map((file) => path.basename(file));
  const script = outputs.find((name) => name.endsWith('.js'));
  const stylesheet = outputs.find((name) => name.endsWith('.css'));
  if (!script || !stylesheet) throw new Error(`the console build made no script or no stylesheet: ${outputs.join(', ')}`);
  for (const name of [script, stylesheet]) {
    const file = path.join(assets, name);
    const content = readFileSync(file);
    writeFileSync(`${file}.br`, brotliCompressSync(content, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }));
    writeFileSync(`${file}.gz`, gzipSync(content, { level: 9 }));
  }
  const template = readFileSync(path.join(root, 'console', 'index.html'), 'utf8');
  writeFileSync(path.join(out, 'index.html'), template.replace('%SCRIPT%', `/console/assets/${script}`).replace('%STYLESHEET%', `/console/assets/${stylesheet}`));
  return { script, stylesheet };
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  await buildConsole();
}
