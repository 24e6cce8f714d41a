import QRCode from 'qrcode';

/**
 * The one shape of SVG that `qrcode` 1.5 makes for `type: 'svg'` without width or colour options
 * (its lib/renderer/svg-tag.js): an <svg> with a fixed xmlns, a viewBox of two numbers and
 * shape-rendering, a background <path fill> and the modules as one <path stroke>, colours as
 * #rrggbb, path data of commands and numbers only. No text of the URI survives in it (the URI is
 * encoded into the modules), no style attribute (the CSP has no style-src 'unsafe-inline') and
 * nothing that runs. Anything else is refused, so a different library version cannot put markup
 * on the page unnoticed.
 */
const QR_SVG = /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" viewBox="0 0 \d{1,4} \d{1,4}" shape-rendering="crispEdges">(?:<path (?:fill|stroke)="#[0-9a-f]{6}" d="[MmHhVvZz0-9 .-]+"\/>){1,2}<\/svg>$/;

/** Whether `svg` is exactly the markup `qrcode` makes (QR_SVG): only then may a page print it unescaped. */
export function isQrSvg(svg: string): boolean {
  return QR_SVG.test(svg);
}

/**
 * The QR code of an `otpauth://` URI as inline SVG (docs/design/sign-in-methods.md §5.2), for
 * Eta's raw tag; undefined when the library's output is not of the one shape QR_SVG allows (then
 * the page shows the secret and the URI as text only).
 *
 * @example
 * const qrSvg = await totpQrSvg(enrolment.uri); // '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 49 49" …'
 */
export async function totpQrSvg(uri: string): Promise<string | undefined> {
  const svg = (await QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 })).trim();
  return isQrSvg(svg) ? svg : undefined;
}
