import { describe, expect, it } from 'vitest';
import { DISPLAY_NAME_MAX, displayNameProblem, newPasswordProblem } from '../../../src/services/account-self.service.js';

describe('the account page rules (services/account-self.service.ts)', () => {
  it('a display name is one line of at most DISPLAY_NAME_MAX characters (counted as code points, after trimming)', () => {
    expect(displayNameProblem('Ada Lovelace')).toBeUndefined();
    expect(displayNameProblem('')).toBeUndefined();
    expect(displayNameProblem(`  ${'a'.repeat(DISPLAY_NAME_MAX)}  `)).toBeUndefined();
    expect(displayNameProblem('😀'.repeat(DISPLAY_NAME_MAX))).toBeUndefined();
    expect(displayNameProblem('a'.repeat(DISPLAY_NAME_MAX + 1))).toBe('too_long');
    expect(displayNameProblem('x'.repeat(10_000))).toBe('too_long');
    for (const broken of ['a\nb', 'a\rb', 'a\tb', 'a\u0000b', 'a\u007fb', 'a\u0085b', 'a\u2028b', 'a\u2029b']) {
      expect(displayNameProblem(broken), JSON.stringify(broken)).toBe('not_one_line');
    }
    // Markup is a name like any other: it is escaped on output, not refused.
    expect(displayNameProblem('<b>Ada</b> & "Co"')).toBeUndefined();
  });

  it('a new password follows the rules of every other password: length, then the breached list', () => {
    expect(newPasswordProblem('a perfectly fine passphrase 4711')).toBeUndefined();
    expect(newPasswordProblem('short')).toBe('too_short');
    expect(newPasswordProblem('')).toBe('too_short');
    expect(newPasswordProblem('x'.repeat(1025))).toBe('too_long');
    expect(newPasswordProblem('password1234')).toBe('breached');
  });
});
