import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { readStdinPassword, UsageError, type CliIo } from '../../../src/cli/output.js';
import { promptHidden, PromptInterruptedError } from '../../../src/cli/prompt.js';

/** A terminal in a test: records raw mode and what is written, and is typed on with type(). */
class FakeTerminal extends EventEmitter {
  readonly isTTY = true;
  raw = false;
  paused = true;
  written = '';
  /** Raw mode at the moment the prompt was written. */
  rawWhenPrompted: boolean | undefined;

  setRawMode(mode: boolean) {
    this.raw = mode;
    return this;
  }
  resume() {
    this.paused = false;
    return this;
  }
  pause() {
    this.paused = true;
    return this;
  }
  readonly output = {
    write: (text: string) => {
      this.rawWhenPrompted ??= this.raw;
      this.written += text;
    },
  };
  type(...chunks: Array<string | Buffer>) {
    for (const chunk of chunks) this.emit('data', typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  }
}

describe('promptHidden', () => {
  it('turns echo off before it prompts, shows nothing typed, and restores the terminal', async () => {
    const terminal = new FakeTerminal();
    const answer = promptHidden(terminal, terminal.output, 'Password (not shown): ');
    expect(terminal.rawWhenPrompted).toBe(true);
    expect(terminal.paused).toBe(false);
    terminal.type('correct horse', ' battery\r');
    expect(await answer).toBe('correct horse battery');
    expect(terminal.written).toBe('Password (not shown): \n');
    expect(terminal.raw).toBe(false);
    expect(terminal.paused).toBe(true);
    expect(terminal.listenerCount('data')).toBe(0);
  });

  it('edits: backspace deletes a character, Ctrl-U clears the line, escape sequences are ignored', async () => {
    const terminal = new FakeTerminal();
    const answer = promptHidden(terminal, terminal.output, '> ');
    terminal.type('wrong', '\u0015', 'pässwörd', '\u007f\u007f', 'rd', '\u001b[D', '\b', 'd!', '\n');
    expect(await answer).toBe('pässwörd!');
  });

  it('keeps a character whose bytes arrive in two chunks', async () => {
    const terminal = new FakeTerminal();
    const answer = promptHidden(terminal, terminal.output, '> ');
    const bytes = Buffer.from('ö');
    terminal.type(Buffer.from([0x61, bytes[0]!]), Buffer.from([bytes[1]!, 0x0d]));
    expect(await answer).toBe('aö');
  });

  it('ends on Ctrl-D or the end of input', async () => {
    const terminal = new FakeTerminal();
    const first = promptHidden(terminal, terminal.output, '> ');
    terminal.type('abc\u0004');
    expect(await first).toBe('abc');
    const second = promptHidden(terminal, terminal.output, '> ');
    terminal.type('xy');
    terminal.emit('end');
    expect(await second).toBe('xy');
  });

  it('rejects on Ctrl-C, with the terminal restored', async () => {
    const terminal = new FakeTerminal();
    const answer = promptHidden(terminal, terminal.output, '> ');
    terminal.type('secr', '\u0003', 'et\r');
    await expect(answer).rejects.toBeInstanceOf(PromptInterruptedError);
    expect(terminal.raw).toBe(false);
    expect(terminal.listenerCount('data')).toBe(0);
  });
});

describe('readStdinPassword on a terminal', () => {
  function io(answers: string[]): CliIo & { prompts: string[] } {
    const prompts: string[] = [];
    return {
      env: {},
      cwd: '/',
      stdout: () => undefined,
      stderr: () => undefined,
      readStdin: () => Promise.reject(new Error('standard input is a terminal: it is prompted, not read')),
      promptPassword: (prompt) => {
        prompts.push(prompt);
        return Promise.resolve(answers.shift() ?? '');
      },
      prompts,
    };
  }

  it('asks twice and returns the password typed', async () => {
    const terminal = io(['a long passphrase', 'a long passphrase']);
    expect(await readStdinPassword(terminal, '--password-stdin')).toBe('a long passphrase');
    expect(terminal.prompts).toEqual(['Password (not shown): ', 'Repeat the password: ']);
  });

  it('names what it asks for', async () => {
    const terminal = io(['x', 'x']);
    await readStdinPassword(terminal, '--runtime-password-stdin', "runtime role's password");
    expect(terminal.prompts).toEqual(["Runtime role's password (not shown): ", "Repeat the runtime role's password: "]);
  });

  it('refuses two different answers and an empty one, naming the flag', async () => {
    await expect(readStdinPassword(io(['one passphrase', 'another one']), '--password-stdin')).rejects.toThrow(
      new UsageError('--password-stdin: the password and its repetition differ'),
    );
    await expect(readStdinPassword(io(['']), '--password-stdin')).rejects.toThrow(new UsageError('--password-stdin: nothing was typed'));
  });
});
