import { StringDecoder } from 'node:string_decoder';

/** The terminal a password is typed on: process.stdin when it is a TTY, or a fake in tests. */
export interface TerminalInput {
  isTTY?: boolean;
  setRawMode(mode: boolean): unknown;
  on(event: 'data', listener: (chunk: Buffer | string) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  removeListener(event: 'data', listener: (chunk: Buffer | string) => void): unknown;
  removeListener(event: 'end', listener: () => void): unknown;
  removeListener(event: 'error', listener: (error: Error) => void): unknown;
  resume(): unknown;
  pause(): unknown;
}

/** Where the prompt goes: standard error, so that standard output stays the command's result. */
export interface PromptOutput {
  write(text: string): unknown;
}

/** The person pressed Ctrl-C at a prompt. */
export class PromptInterruptedError extends Error {
  constructor() {
    super('interrupted');
    this.name = 'PromptInterruptedError';
  }
}

/** As long as a password piped to standard input may be. */
const MAX_TYPED_CHARACTERS = 64 * 1024;

/**
 * Asks on a terminal for something that must not be seen (a password): writes `prompt`, turns the
 * terminal's echo off (raw mode) before anything can be typed, and reads one line. Backspace
 * deletes, Ctrl-U clears, Enter (or Ctrl-D) ends the line, Ctrl-C rejects with
 * PromptInterruptedError, escape sequences (arrow keys) are ignored. The terminal is restored on
 * every path.
 *
 * @example
 * const password = await promptHidden(process.stdin, process.stderr, 'Password: ');
 */
export function promptHidden(input: TerminalInput, output: PromptOutput, prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const decoder = new StringDecoder('utf8');
    let typed: string[] = [];
    const finish = (error?: Error) => {
      input.removeListener('data', onData);
      input.removeListener('end', onEnd);
      input.removeListener('error', onError);
      input.setRawMode(false);
      input.pause();
      output.write('\n');
      if (error) reject(error);
      else resolve(typed.join(''));
    };
    const onData = (chunk: Buffer | string) => {
      const text = typeof chunk === 'string' ? chunk : decoder.write(chunk);
      // A key that sends an escape sequence (arrows, function keys) arrives as one chunk: ignore it whole.
      if (text.startsWith('\u001b')) return;
      for (const char of text) {
        if (char === '\r' || char === '\n' || char === '\u0004') return finish();
        if (char === '\u0003') return finish(new PromptInterruptedError());
        if (char === '\u007f' || char === '\b') typed = typed.slice(0, -1);
        else if (char === '\u0015') typed = [];
        else if (char >= ' ' && typed.length < MAX_TYPED_CHARACTERS) typed.push(char);
      }
    };
    const onEnd = () => finish();
    const onError = (error: Error) => finish(error);
    input.setRawMode(true);
    input.on('data', onData);
    input.on('end', onEnd);
    input.on('error', onError);
    input.resume();
    output.write(prompt);
  });
}
