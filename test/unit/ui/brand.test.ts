import { describe, expect, it } from 'vitest';
import { contrastRatio, derivePalettes, MIN_CONTRAST, paletteCss } from '../../../src/ui/brand.js';

// Pale, dark, saturated and grey brand colours, including the worst cases for each theme.
const COLOURS = ['#2952cc', '#ffffff', '#000000', '#ffcc00', '#00ff00', '#ff0000', '#777777', '#1a1a1a', '#e6e6fa', '#0000ff', '#00ffff', '#8a2be2'];

describe('derivePalettes', () => {
  it('matches the WCAG contrast of known pairs', () => {
    expect(contrastRatio('#000000', '#ffffff')).toBeCloseTo(21, 5);
    expect(contrastRatio('#777777', '#ffffff')).toBeCloseTo(4.48, 2);
  });

  it.each(COLOURS)('keeps every text pair at 4.5:1 or more in both palettes for %s', (colour) => {
    const { light, dark } = derivePalettes(colour);
    for (const palette of [light, dark]) {
      expect(contrastRatio(palette.accent, palette.card)).toBeGreaterThanOrEqual(MIN_CONTRAST);
      expect(contrastRatio(palette.accent, palette.bg)).toBeGreaterThanOrEqual(MIN_CONTRAST);
      expect(contrastRatio(palette.onAccent, palette.accent)).toBeGreaterThanOrEqual(MIN_CONTRAST);
      expect(contrastRatio(palette.fg, palette.card)).toBeGreaterThanOrEqual(MIN_CONTRAST);
      expect(contrastRatio(palette.muted, palette.card)).toBeGreaterThanOrEqual(MIN_CONTRAST);
      expect(contrastRatio(palette.error, palette.card)).toBeGreaterThanOrEqual(MIN_CONTRAST);
    }
  });

  it('keeps a brand colour that already reads as it is', () => {
    expect(derivePalettes('#2952cc').light.accent).toBe('#2952cc');
  });

  it('writes both palettes as custom properties, the dark one under prefers-color-scheme', () => {
    const css = paletteCss(derivePalettes('#ffcc00'));
    expect(css).toMatch(/^:root \{ color-scheme: light dark; --fg: #1b1f24;.*--accent: #[0-9a-f]{6};.*--on-accent: #[0-9a-f]{6};/);
    expect(css).toMatch(/@media \(prefers-color-scheme: dark\) \{ :root \{ --fg: #e8eaed;/);
    // Yellow reads on the dark card as it is, but not on white: the light accent is darkened.
    expect(css.split('\n')[0]).not.toContain('--accent: #ffcc00;');
    expect(css.split('\n')[1]).toContain('--accent: #ffcc00;');
  });
});
