/**
 * Colours of the pages, derived from one brand colour (BRAND_COLOR): a light and a dark palette in
 * which the accent (buttons, links, focus rings) and the text on it keep a WCAG contrast of at least
 * 4.5:1 against what they sit on, whatever colour was configured.
 */

/** The contrast every derived pair keeps (WCAG 2.x AA for normal text). */
export const MIN_CONTRAST = 4.5;

/** One theme's colours, as #rrggbb. */
export interface Palette {
  /** Page text. */
  fg: string;
  /** Page background. */
  bg: string;
  /** The card the content sits on. */
  card: string;
  /** Secondary text. */
  muted: string;
  error: string;
  /** Buttons, links, focus rings: the brand colour, darkened (light) or lightened (dark) until it reads on `card` and `bg`. */
  accent: string;
  /** Text on an accent-coloured button. */
  onAccent: string;
}

export interface Palettes {
  light: Palette;
  dark: Palette;
}

type Rgb = readonly [number, number, number];

function parseHex(hex: string): Rgb {
  const match = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!match) throw new TypeError(`not a #rrggbb colour: ${hex}`);
  return [parseInt(match[1]!, 16), parseInt(match[2]!, 16), parseInt(match[3]!, 16)];
}

function toHex(rgb: Rgb): string {
  return `#${rgb.map((channel) => Math.round(Math.min(255, Math.max(0, channel))).toString(16).padStart(2, '0')).join('')}`;
}

/** WCAG 2.x relative luminance. */
function luminance(hex: string): number {
  const [r, g, b] = parseHex(hex).map((channel) => {
    const c = channel / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  }) as [number, number, number];
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/** WCAG 2.x contrast ratio of two #rrggbb colours (1 to 21). */
export function contrastRatio(a: string, b: string): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x) as [number, number];
  return (hi + 0.05) / (lo + 0.05);
}

function mix(colour: string, toward: string, amount: number): string {
  const from = parseHex(colour);
  const to = parseHex(toward);
  return toHex([0, 1, 2].map((i) => from[i]! + (to[i]! - from[i]!) * amount) as unknown as Rgb);
}

/** The brand colour moved toward `toward` in small steps until it has MIN_CONTRAST against every one of `against`. */
function readableOn(colour: string, against: readonly string[], toward: string): string {
  for (let step = 0; step <= 50; step++) {
    const candidate = mix(colour, toward, step / 50);
    if (against.every((surface) => contrastRatio(candidate, surface) >= MIN_CONTRAST)) return candidate;
  }
  return toward;
}

/** Whichever of white or near-black reads better on `colour`. */
function textOn(colour: string): string {
  return contrastRatio('#ffffff', colour) >= contrastRatio('#111111', colour) ? '#ffffff' : '#111111';
}

const LIGHT = { fg: '#1b1f24', bg: '#f4f5f7', card: '#ffffff', muted: '#5b6470', error: '#b3261e' } as const;
const DARK = { fg: '#e8eaed', bg: '#15171a', card: '#1f2226', muted: '#a0a7b0', error: '#f2b8b5' } as const;

/**
 * The light and dark palettes for a brand colour.
 *
 * @example
 * derivePalettes('#ffcc00').light.accent; // a darker yellow that reads on white
 */
export function derivePalettes(brandColour: string): Palettes {
  const lightAccent = readableOn(brandColour.toLowerCase(), [LIGHT.card, LIGHT.bg], '#000000');
  const darkAccent = readableOn(brandColour.toLowerCase(), [DARK.card, DARK.bg], '#ffffff');
  // The accent reads on the white (light) or dark (dark) card, so white (light) or near-black (dark)
  // text reads on it too: textOn picks the better of the two, which is at least that good.
  return {
    light: { ...LIGHT, accent: lightAccent, onAccent: textOn(lightAccent) },
    dark: { ...DARK, accent: darkAccent, onAccent: textOn(darkAccent) },
  };
}

function declarations(palette: Palette): string {
  return `--fg: ${palette.fg}; --bg: ${palette.bg}; --card: ${palette.card}; --accent: ${palette.accent}; --on-accent: ${palette.onAccent}; --muted: ${palette.muted}; --error: ${palette.error};`;
}

/** The stylesheet's custom properties for both palettes (prepended to views/assets/gatehouse.css). */
export function paletteCss(palettes: Palettes): string {
  return `:root { color-scheme: light dark; ${declarations(palettes.light)} }\n@media (prefers-color-scheme: dark) { :root { ${declarations(palettes.dark)} } }\n`;
}
