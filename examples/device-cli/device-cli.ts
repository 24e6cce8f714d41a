/**
 * A command-line tool signing a person in with the device authorization grant (RFC 8628): it asks
 * Gatehouse for a code, prints where to enter it, polls until the person has signed in on another
 * device (a phone, a laptop), then prints who signed in and how long its access token lasts.
 *
 *     ISSUER=http://localhost:3000 CLIENT_ID=… npx node examples/device-cli/device-cli.ts
 *
 * See README.md beside this file.
 */
import { fileURLToPath } from 'node:url';
import * as client from 'openid-client';

export interface DeviceSignInOptions {
  /** Gatehouse's issuer URL (its discovery document names the device authorization endpoint). */
  issuer: string;
  clientId: string;
  /** Only for a confidential client; a command-line tool is usually public (no secret). */
  clientSecret?: string | undefined;
  /** Space-separated scopes; `openid` for an ID token. */
  scope?: string | undefined;
  /** Where to tell the person what to do (stdout unless given). */
  print?: (line: string) => void;
  /** Gives up polling (Ctrl-C, a timeout); the code's own expiry ends it otherwise. */
  signal?: AbortSignal;
}

export interface DeviceSignInResult {
  /** The ID token's claims (with scope openid), or undefined. */
  claims: Record<string, unknown> | undefined;
  accessToken: string;
  /** Seconds the access token is valid for, as the token response says. */
  expiresIn: number | undefined;
}

/**
 * Runs the device flow: the device authorization request, the instructions, the polls (at the
 * `interval` Gatehouse gives, slower after a slow_down), the tokens. Throws the OAuth error when the
 * person cancels (access_denied) or the code expires (expired_token).
 *
 * @example
 * ```ts
 * const { claims } = await deviceSignIn({ issuer: 'http://localhost:3000', clientId: 'tv-app', scope: 'openid email' });
 * ```
 */
export async function deviceSignIn(options: DeviceSignInOptions): Promise<DeviceSignInResult> {
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const issuer = new URL(options.issuer);
  const auth = options.clientSecret ? client.ClientSecretBasic(options.clientSecret) : client.None();
  // http only for a Gatehouse on this machine (development); anything else must be https.
  const loopback = issuer.hostname === 'localhost' || issuer.hostname === '127.0.0.1' || issuer.hostname === '[::1]';
  const config = await client.discovery(issuer, options.clientId, undefined, auth, loopback ? { execute: [client.allowInsecureRequests] } : undefined);

  const started = await client.initiateDeviceAuthorization(config, { scope: options.scope ?? 'openid' });
  print(`To sign in, open ${started.verification_uri} and enter the code ${started.user_code}`);
  if (started.verification_uri_complete) print(`(or open ${started.verification_uri_complete})`);
  print(`The code is valid for ${Math.round(started.expires_in / 60)} minutes. Waiting…`);

  const tokens = await client.pollDeviceAuthorizationGrant(config, started, undefined, options.signal ? { signal: options.signal } : undefined);
  return { claims: tokens.claims() as Record<string, unknown> | undefined, accessToken: tokens.access_token, expiresIn: tokens.expiresIn() };
}

/** Reads ISSUER, CLIENT_ID, CLIENT_SECRET (optional) and SCOPE (optional, "openid" by default), signs in, prints the result. */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const { ISSUER, CLIENT_ID } = env;
  if (!ISSUER || !CLIENT_ID) throw new Error('set ISSUER and CLIENT_ID (CLIENT_SECRET and SCOPE are optional)');
  const result = await deviceSignIn({ issuer: ISSUER, clientId: CLIENT_ID, clientSecret: env.CLIENT_SECRET, scope: env.SCOPE });
  // Never the tokens themselves: who signed in, and for how long the access token is good.
  process.stdout.write(`Signed in. ID token claims: ${JSON.stringify(result.claims ?? null)}\n`);
  process.stdout.write(`Access token expires in ${result.expiresIn ?? 'an unknown number of'} seconds\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    const oauth = error as { error?: unknown; error_description?: unknown };
    const message = typeof oauth.error === 'string' ? `${oauth.error}${typeof oauth.error_description === 'string' ? `: ${oauth.error_description}` : ''}` : error instanceof Error ? error.message : String(error);
    process.stderr.write(`${message}\n`);
    process.exitCode = 1;
  });
}
