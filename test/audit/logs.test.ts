import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LOG_DIR } from '../fixtures/log-capture.js';
import { TEST_COOKIE_KEY } from '../fixtures/server.js';

// Runs after the whole suite (vitest groupOrder 1): reads every log line that every test server
// wrote during this run and every secret the tests handled.
async function readAll(dir: string, suffix: string): Promise<Array<{ file: string; text: string }>> {
  if (!existsSync(dir)) return [];
  const names = (await readdir(dir)).filter((name) => name.endsWith(suffix));
  return Promise.all(names.map(async (name) => ({ file: name, text: await readFile(path.join(dir, name), 'utf8') })));
}

describe('the logs of the whole test run', () => {
  it('never contain a secret, password, token or code the tests used', async () => {
    const logs = await readAll(LOG_DIR, '.log');
    const secrets = [
      ...new Set(
        (await readAll(path.join(LOG_DIR, 'secrets'), '.txt')).flatMap(({ text }) => text.split('\n')).filter((s) => s.length >= 16),
      ),
      TEST_COOKIE_KEY,
    ];
    // A vacuous pass is a failure: the suite must have produced logs and secrets to look for.
    expect(logs.length).toBeGreaterThan(3);
    expect(secrets.length).toBeGreaterThan(10);
    // Tokens, codes and secrets are base64url runs: index every long run the logs contain once, and
    // look each secret's runs up there; only a secret whose runs all appear (or one with no long
    // run, such as a password with spaces) is then searched for in full. Linear in logs + secrets,
    // where a plain search would be their product (the soak alone records tens of thousands of tokens).
    const RUN = /[A-Za-z0-9_-]{16,}/g;
    const seen = new Set<string>();
    for (const { text } of logs) for (const [run] of text.matchAll(RUN)) seen.add(run);
    // (A secret glued to other base64url characters in a log would form a longer run and slip through
    // the index: logs write values as JSON strings, where quotes, spaces and separators delimit them.)
    const suspects = secrets.filter((secret) => {
      const runs = secret.match(RUN);
      return runs === null || runs.every((run) => seen.has(run));
    });
    const leaks = logs.flatMap(({ file, text }) =>
      suspects.filter((secret) => text.includes(secret)).map((secret) => `${file}: ${secret.slice(0, 8)}…`),
    );
    expect(leaks).toEqual([]);
  });

  it('are JSON, one object per line, and every request line carries a request id', async () => {
    const logs = await readAll(LOG_DIR, '.log');
    let requests = 0;
    for (const { file, text } of logs) {
      for (const line of text.split('\n').filter(Boolean)) {
        let entry: Record<string, unknown>;
        try {
          entry = JSON.parse(line) as Record<string, unknown>;
        } catch {
          throw new Error(`${file}: not a JSON log line: ${line.slice(0, 200)}`);
        }
        expect(typeof entry.level, `${file}: ${line}`).toBe('string');
        expect(typeof entry.time, `${file}: ${line}`).toBe('string');
        expect(typeof entry.msg, `${file}: ${line}`).toBe('string');
        if (entry.msg === 'request') {
          requests += 1;
          expect(typeof entry.requestId, `${file}: ${line}`).toBe('string');
          expect(String(entry.path)).not.toContain('?');
        }
      }
    }
    expect(requests).toBeGreaterThan(20);
  });
});
