import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normaliseEmail } from '../../../src/registry/email.js';

describe('normaliseEmail', () => {
  it.each([
    { what: 'case and surrounding space', spellings: ['victim@example.test', ' Victim@Example.TEST ', 'VICTIM@EXAMPLE.TEST'] },
    { what: 'full-width letters', spellings: ['victim@example.test', 'ｖｉｃｔｉｍ@ｅｘａｍｐｌｅ．ｔｅｓｔ', 'ＶＩＣＴＩＭ@example.test'] },
    { what: 'ligatures and the Kelvin sign', spellings: ['finn.k@example.test', 'ﬁnn.\u212a@example.test'] },
    { what: 'a combining accent and the precomposed letter', spellings: ['josé@example.test', 'jose\u0301@example.test', 'JOSE\u0301@example.test', 'JOSÉ@example.test'] },
    { what: 'sharp s, small and capital', spellings: ['straße@example.test', 'STRAẞE@example.test', 'Straße@Example.test'] },
    { what: 'dotted capital I, and i with a combining dot', spellings: ['vi\u0307ctim@example.test', 'vİctim@example.test', 'VİCTIM@example.test'] },
  ])('gives one form for $what', ({ spellings }) => {
    const forms = new Set(spellings.map(normaliseEmail));
    expect([...forms]).toEqual([spellings[0]!.normalize('NFKC')]);
  });

  it('keeps apart what no fold merges: İ is not i, ß is not ss', () => {
    expect(normaliseEmail('vİctim@example.test')).not.toBe(normaliseEmail('victim@example.test'));
    expect(normaliseEmail('straße@example.test')).not.toBe(normaliseEmail('strasse@example.test'));
  });

  it('is idempotent: a stored (normalised) email is its own normal form', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (text) => {
        const once = normaliseEmail(text);
        expect(normaliseEmail(once)).toBe(once);
      }),
      { numRuns: 2000 },
    );
  });
});
