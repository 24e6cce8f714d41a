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

/** What the bench reports of the console's first load (see docs/performance.md, "The console's first load"). */
export interface ConsoleLoadResult {
  rounds: number;
  /**
   * The console's first load, signed in: a fresh browser context (nothing cached) holding only the
   * administrator's Gatehouse session cookie, from the navigation to /console until the Overview
   * shows its figures (the script loads, signs in again silently through /authorize, redeems the
   * code with DPoP, reads /me and /overview). Median of the rounds.
   */
  signed_in_ms: number;
  /** The same load until the Overview's heading shows (the shell signed in, the figures perhaps not yet). */
  heading_ms: number;
  /** The anonymous first load: /console until Gatehouse's sign-in page shows its password field. */
  anonymous_ms: number;
  /** The reference: the sign-in page itself (the console's /authorize URL, no script of the console), fresh context, until its password field shows. */
  login_page_ms: number;
  /** JavaScript + CSS the signed-in first load transferred (bytes on the wire, headers included, compressed as served). */
  js_css_transfer_bytes: number;
  /** The same files gzipped here (default level): what they weigh compressed whatever the server chose. */
  js_css_gzip_bytes: number;
  /** Content-Encoding the server chose for them (br, gzip, none). */
  js_css_encodings: string[];
  /** Every response of the signed-in first load, on the wire (documents, redirects, API calls). */
  total_transfer_bytes: number;
  requests: number;
  /** The login page's own JavaScript + CSS on the wire. */
  login_page_js_css_transfer_bytes: number;
  files: PageLoad['files'];
}

/**
 * Signs `person` in to the console in `page` for the first time: password, then the enrolment of an
 * authenticator app on the sign-in (the console requires a second factor), then its recovery codes'
 * Continue. Leaves the page on the Overview, with the Gatehouse session cookie in its context.
 */
export async function firstConsoleSignIn(page: Page, base: string, person: { email: string; password: string }, code: (secret: string) => Promise<string>): Promise<void> {
  await page.goto(`${base}/console/`);
  await page.locator('input[name="email"]').fill(person.email);
  await page.locator('input[name="password"]').fill(person.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  const uri = await page.locator('#totp-uri').textContent();
  const secret = uri ? new URL(uri.trim()).searchParams.get('secret') : null;
  if (!secret) throw new Error(`no #totp-uri with a secret on ${page.url()}`);
  await page.locator('input[name="code"]').fill(await code(secret));
  await page.locator('input[name="code"]').press('Enter');
  await page.locator('form[action$="/mfa/enrol/continue"] button[type="submit"]').click();
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
}

/**
 * The console's first load, `rounds` times each way in turn (console signed in, the login page,
 * the console anonymous), each in a fresh context: medians, and the files of the last signed-in load.
 */
export async function measureConsoleFirstLoad(options: {
  browser: Browser;
  base: string;
  /** The cookies of a context that signed in to the console (Gatehouse's session). */
  session: Awaited<ReturnType<BrowserContext['storageState']>>;
  /** An authorization request as the console makes it (for the reference: the sign-in page alone). */
  loginUrl: string;
  rounds: number;
}): Promise<ConsoleLoadResult> {
  const { browser, base, session, loginUrl, rounds } = options;
  const signedIn: PageLoad[] = [];
  const headings: number[] = [];
  const logins: PageLoad[] = [];
  const anonymous: number[] = [];
  const passwordField = (page: Page) => page.locator('input[name="password"]').waitFor({ state: 'visible' });
  const inFresh = async <T>(state: typeof session | undefined, run: (page: Page) => Promise<T>): Promise<T> => {
    const context = await freshContext(browser, state);
    try {
      return await run(await context.newPage());
    } finally {
      await context.close();
    }
  };
  for (let round = 0; round < rounds; round += 1) {
    signedIn.push(
      await inFresh(session, async (page) => {
        let headingAt = 0;
        const started = performance.now();
        const load = await measureLoad(page, `${base}/console/`, async (p) => {
          await p.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
          headingAt = performance.now() - started;
          await p.getByRole('list', { name: 'Registry' }).waitFor();
        });
        headings.push(headingAt);
        return load;
      }),
    );
    logins.push(await inFresh(undefined, (page) => measureLoad(page, loginUrl, passwordField)));
    anonymous.push((await inFresh(undefined, (page) => measureLoad(page, `${base}/console/`, passwordField))).ms);
  }
  const last = signedIn[signedIn.length - 1]!;
  const lastLogin = logins[logins.length - 1]!;
  return {
    rounds,
    signed_in_ms: Math.round(median(signedIn.map((load) => load.ms))),
    heading_ms: Math.round(median(headings)),
    anonymous_ms: Math.round(median(anonymous)),
    login_page_ms: Math.round(median(logins.map((load) => load.ms))),
    js_css_transfer_bytes: last.scriptCssTransferBytes,
    js_css_gzip_bytes: last.scriptCssGzipBytes,
    js_css_encodings: [...new Set(last.files.map((file) => file.encoding ?? 'none'))],
    total_transfer_bytes: last.totalTransferBytes,
    requests: last.requests,
    login_page_js_css_transfer_bytes: lastLogin.scriptCssTransferBytes,
    files: last.files,
  };
}
