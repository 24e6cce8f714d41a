/** What the server tells the console about itself (src/http/console.routes.ts, <meta name="gatehouse-console">). */
export interface Settings {
  issuer: string;
  client_id: string;
  redirect_uri: string;
  post_logout_redirect_uri: string;
  resource: string;
  idle_timeout_seconds: number;
}

/** The settings in the page; the console cannot run without them. */
export function readSettings(): Settings {
  const content = document.querySelector('meta[name="gatehouse-console"]')?.getAttribute('content');
  if (!content) throw new Error('this page carries no console settings');
  return JSON.parse(content) as Settings;
}

/** Where the console lives under the issuer: every page path is below it. */
export const BASE = '/console';
