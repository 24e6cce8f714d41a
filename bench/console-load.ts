// The console's first load in Chromium (Debian's /usr/bin/chromium through playwright-core): the
// JavaScript and CSS it transfers and the time until it is usable, beside the login page's load
// measured the same way in the same run. Used by run.ts (the console_first_load result).
import { existsSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** What one load transferred and how long it took until `ready`. */
export interface PageLoad {
  /** From the start of the navigation until `ready` resolved. */
  ms: number;
  /** JavaScript and CSS responses: bytes on the wire (headers and body, as DevTools' "transferred"). */
  scriptCssTransferBytes: number;
  /** The same responses' bodies, gzipped here at the default level (what they weigh compressed, whatever the server sent). */
  scriptCssGzipBytes: number;
  /** Every response of the load: all types, on the wire. */
  totalTransferBytes: number;
  /** The JavaScript and CSS files, each once. */
  files: Array<{ url: string; type: string; transferBytes: number; gzipBytes: number; encoding: string | null }>;
  requests: number;
}

/** Launches Chromium headless with the flags this machine needs. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium`);
  return chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'], timeout: 60_000 });
}

/** A fresh context (empty cache), phone-sized as the console's tests use, with the cookies of `storageState` if given. */
export async function freshContext(browser: Browser, storageState?: Awaited<ReturnType<BrowserContext['storageState']>>): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport: { width: 375, height: 812 }, locale: 'en-US', ...(storageState ? { storageState } : {}) });
  context.setDefaultTimeout(30_000);
  return context;
}

/**
 * Loads `url` in `page` (whose context should be fresh: a first load, nothing cached) and waits for
 * `ready`, counting every response on the wire through the DevTools protocol (redirects and the
 * documents they lead to included).
 */
export async function measureLoad(page: Page, url: string, ready: (page: Page) => Promise<void>): Promise<PageLoad> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  const responses = new Map<string, { url: string; type: string; encoding: string | null }>();
  const finished = new Map<string, number>();
  cdp.on('Network.responseReceived', (event: { requestId: string; type: string; response: { url: string; headers: Record<string, string> } }) => {
    const headers = Object.fromEntries(Object.entries(event.response.headers).map(([name, value]) => [name.toLowerCase(), value]));
    responses.set(event.requestId, { url: event.response.url, type: event.type, encoding: headers['content-encoding'] ?? null });
  });
  cdp.on('Network.loadingFinished', (event: { requestId: string; encodedDataLength: number }) => {
    finished.set(event.requestId, event.encodedDataLength);
  });
  const started = performance.now();
  await page.goto(url, { waitUntil: 'commit' });
  await ready(page);
  const ms = performance.now() - started;
  // Let the last loadingFinished events arrive.
  await page.waitForLoadState('load');
  await cdp.detach().catch(() => undefined);

  const files: PageLoad['files'] = [];
  const seen = new Set<string>();
  let totalTransferBytes = 0;
  for (const [id, transferBytes] of finished) {
    totalTransferBytes += transferBytes;
    const response = responses.get(id);
    if (!response || (response.type !== 'Script' && response.type !== 'Stylesheet') || seen.has(response.url)) continue;
    seen.add(response.url);
    // The body as it decodes, fetched again outside the page (no cookies needed for static files).
    const body = Buffer.from(await (await fetch(response.url, { headers: { 'accept-encoding': 'identity' } })).arrayBuffer());
    files.push({ url: response.url, type: response.type, transferBytes, gzipBytes: gzipSync(body).length, encoding: response.encoding });
  }
  const sum = (pick: (file: PageLoad['files'][number]) => number) => files.reduce((total, file) => total + pick(file), 0);
  return {
    ms,
    scriptCssTransferBytes: sum((file) => file.transferBytes),
    scriptCssGzipBytes: sum((file) => file.gzipBytes),
    totalTransferBytes,
    files,
    requests: finished.size,
  };
}

/** The median of some numbers (the middle one, or the mean of the middle two). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
