import { describe, expect, it } from 'vitest';
import { isQrSvg, totpQrSvg } from '../../../src/interactions/totp-qr.js';

/*
 * The QR code is the only generated markup a page prints unescaped (docs/design/sign-in-methods.md
 * §5.2): only the one shape qrcode makes passes, and nothing of the URI (a person's email) is in it.
 */

const URI = 'otpauth://totp/Gatehouse:ada%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Gatehouse';

describe('totpQrSvg', () => {
  it('makes an inline SVG of two paths, no style, no script, none of the URI as text', async () => {
    const svg = await totpQrSvg(URI);
    expect(svg).toBeDefined();
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" viewBox="0 0 \d+ \d+" shape-rendering="crispEdges"><path fill="#ffffff" d="[^"]+"\/><path stroke="#000000" d="[^"]+"\/><\/svg>$/);
    expect(svg).not.toMatch(/style|script|href|on[a-z]+=|ada|example|JBSWY/i);
  });

  it('encodes hostile text of a label into the modules only', async () => {
    const svg = await totpQrSvg(`otpauth://totp/Gatehouse:${encodeURIComponent('"><script>alert(1)</script>@x.test')}?secret=JBSWY3DPEHPK3PXP&issuer=Gatehouse`);
    expect(svg).toBeDefined();
    expect(isQrSvg(svg!)).toBe(true);
    expect(svg).not.toContain('<script');
  });

  it('refuses any other markup', async () => {
    const svg = (await totpQrSvg(URI))!;
    for (const bad of [
      svg.replace('<path ', '<script>alert(1)</script><path '),
      svg.replace('<svg ', '<svg onload="alert(1)" '),
      svg.replace('<path ', '<path style="fill:red" '),
      svg.replace('d="M', 'd="M"/><image href="x'),
      svg.replace('#000000', 'url(#x)'),
      `${svg}<script>`,
      `<b>${svg}</b>`,
      svg.replace('</svg>', '<text>ada@example.com</text></svg>'),
      '',
    ]) {
      expect(isQrSvg(bad), bad.slice(0, 120)).toBe(false);
    }
  });
});
