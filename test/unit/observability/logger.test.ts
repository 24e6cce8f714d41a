import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, wantsPrettyLogs } from '../../../src/observability/logger.js';

function collect() {
  const lines: string[] = [];
  return { lines, stream: { write: (line: string) => void lines.push(line) } };
}

describe('logger', () => {
  it('writes one JSON object per line, with secrets redacted', () => {
    const out = collect();
    createLogger({ logLevel: 'info' }, out.stream).info({ client_secret: 'hunter2-hunter2-hunter2', clientId: 'abc' }, 'hello');
    const entry = JSON.parse(out.lines.join('')) as Record<string, unknown>;
    expect(entry).toMatchObject({ level: 'info', msg: 'hello', clientId: 'abc', client_secret: '[redacted]', service: 'gatehouse' });
  });

  it('writes readable lines instead when asked to be pretty, still redacted', () => {
    const out = collect();
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        out.stream.write(chunk.toString());
        done();
      },
    });
    createLogger({ logLevel: 'info', pretty: true }, stream).info({ client_secret: 'hunter2-hunter2-hunter2', clientId: 'abc' }, 'hello');
    const text = out.lines.join('');
    expect(text).toContain('INFO');
    expect(text).toContain('hello');
    expect(text).not.toContain('hunter2');
    expect(() => JSON.parse(text) as unknown).toThrow();
  });

  it('is pretty only in development on a terminal', () => {
    expect(wantsPrettyLogs('development', { isTTY: true })).toBe(true);
    expect(wantsPrettyLogs('development', { isTTY: false })).toBe(false);
    expect(wantsPrettyLogs('development', {})).toBe(false);
    expect(wantsPrettyLogs('production', { isTTY: true })).toBe(false);
    expect(wantsPrettyLogs('test', { isTTY: true })).toBe(false);
  });

  it('honours the level', () => {
    const out = collect();
    const logger = createLogger({ logLevel: 'warn' }, out.stream);
    logger.info('quiet');
    logger.warn('loud');
    expect(out.lines.join('')).not.toContain('quiet');
    expect(out.lines.join('')).toContain('loud');
  });
});
