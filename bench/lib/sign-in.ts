import { generate } from 'otplib';
import { AuthenticatorEmulator, deserializeCredential, serializeCredential, WebAuthnEmulator, type PasskeyDiscoverableCredential, type PasskeysCredentialsRepository } from 'nid-webauthn-emulator';
import type { Agent } from './flow.js';

// How a bench flow signs in (docs/design/sign-in-methods.md §11). `codeFlow` follows the redirects
// and finds each page's form; a strategy says what to post there. A new sign-in method is a new
// strategy plus a preparation step that gives each person what the strategy needs (a password, a
// TOTP secret, later a passkey), never a second redirect loop.

/** A page of the sign-in, as `codeFlow` found it: its first POST form's action and CSRF token. */
export interface SignInPage {
  url: string;
  status: number;
  html: string;
  action: string;
  csrf: string;
}

/** What to post at a page: the form's action (or another one of the interaction's) and its fields. */
export interface SignInStep {
  action: string;
  form: Record<string, string>;
}

/**
 * A sign-in method: the step for a page of the sign-in, or undefined for a page it does not sign in
 * at (the consent page: `codeFlow` allows it). It may make requests of its own on `agent` first
 * (counted as the flow's): a passkey strategy fetches the assertion options
 * (`POST /interaction/:uid/passkey/options`), answers them with its emulator, and returns
 * `{ action: '/interaction/:uid/passkey', form: { csrf, response } }` for the login page.
 */
export type SignIn = (page: SignInPage, agent: Agent) => Promise<SignInStep | undefined>;

/** A person the bench made, with the password it gave them. */
export interface BenchPerson {
  email: string;
  password: string;
}

/** A person with an authenticator app: the TOTP secret, and the last 30 s step a code of theirs was used for (-1: none). */
export interface TotpPerson extends BenchPerson {
  secret: string;
  lastStep: number;
}

/**
 * The people of an authorization-code scenario and how they sign in, as the harness hands them to
 * the load generator (JSON). A passkey scenario adds `{ method: 'passkey'; people: … }`, each person
 * with the state of their emulated authenticator (its credential and counter) made in preparation.
 */
export type SignInSpec = { method: 'password'; people: BenchPerson[] } | { method: 'totp'; people: TotpPerson[] } | { method: 'passkey'; people: PasskeyPerson[] };

/**
 * A person with one passkey, registered on /account in preparation: the emulated authenticator's
 * credentials as nid-webauthn-emulator serialises them (its private key and sign counter), so the
 * harness can hand them to the load generator as JSON.
 */
export interface PasskeyPerson extends BenchPerson {
  credentials: string[];
}

export const TOTP_STEP_SECONDS = 30;
/** Time left in a step below which the enrolment's previous-step code waits for the next step (the code, its POST and the server's check fit in it). */
const ENROLMENT_MARGIN_MS = 5_000;

/** The TOTP step (RFC 6238 counter) of `epochSeconds`. */
export const totpStep = (epochSeconds: number) => Math.floor(epochSeconds / TOTP_STEP_SECONDS);

/** A code refused at the second-factor page: a bench of TOTP sign-ins must never measure the replay guard. */
export class SecondFactorRefusedError extends Error {
  constructor(status: number, action: string) {
    super(`the second factor was refused (${status} at ${action}): a TOTP measurement must not reach the replay guard or a wrong code`);
    this.name = 'SecondFactorRefusedError';
  }
}

/** The login form with the person's email and password. */
export function passwordSignIn(person: BenchPerson): SignIn {
  return async (page) => (page.action.endsWith('/login') ? { action: page.action, form: { csrf: page.csrf, email: person.email, password: person.password } } : undefined);
}

/**
 * The code of the person's authenticator app at `epoch` (seconds), for a step after the last one
 * they used (throws rather than send a code the server must refuse as a replay); records the step as used.
 */
async function codeAt(person: TotpPerson, epoch: number): Promise<string> {
  const step = totpStep(epoch);
  if (step <= person.lastStep) throw new Error(`a TOTP code of step ${step} for a person who used step ${person.lastStep}: the person pool is not sized for this rate`);
  person.lastStep = step;
  return generate({ secret: person.secret, epoch });
}

/** The code the person's authenticator app shows now. */
const nextCode = (person: TotpPerson) => codeAt(person, Math.floor(Date.now() / 1000));

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Password, then the current TOTP code at the second-factor page (the person must have a step left: see TotpPool). */
export function totpSignIn(person: TotpPerson): SignIn {
  const password = passwordSignIn(person);
  return async (page, agent) => {
    if (page.action.endsWith('/mfa')) return { action: page.action, form: { csrf: page.csrf, code: await nextCode(person) } };
    return password(page, agent);
  };
}

const unescapeHtml = (text: string) => text.replaceAll('&quot;', '"').replaceAll('&#39;', "'").replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&');

/**
 * Sets up an authenticator app through the pages, as a person would at a client with require_mfa
 * (design §3.6): the password, then the enrolment page's `#totp-uri`, a confirming code made from
 * its secret, then Continue. `enrolled` receives the person with the secret and the step of that code.
 * The confirming code is the previous step's (the server accepts ±1 step, as for an app whose code
 * just turned), so the person's current step stays unused and the measured flows can use it at once
 * rather than wait up to 30 s for the next one; near the end of a step it waits for the next one
 * first, so that the code is still inside the window when the server checks it.
 */
export function totpEnrolmentSignIn(person: BenchPerson, enrolled: (person: TotpPerson) => void): SignIn {
  const password = passwordSignIn(person);
  return async (page, agent) => {
    if (page.action.endsWith('/mfa/enrol')) {
      const uri = /<code id="totp-uri">([^<]+)<\/code>/.exec(page.html)?.[1];
      const secret = uri ? new URL(unescapeHtml(uri)).searchParams.get('secret') : null;
      if (!secret) throw new Error(`no #totp-uri with a secret on the enrolment page at ${page.url}`);
      const withSecret: TotpPerson = { ...person, secret, lastStep: -1 };
      const left = TOTP_STEP_SECONDS * 1000 - (Date.now() % (TOTP_STEP_SECONDS * 1000));
      if (left < ENROLMENT_MARGIN_MS) await delay(left + 50);
      const code = await codeAt(withSecret, Math.floor(Date.now() / 1000) - TOTP_STEP_SECONDS);
      enrolled(withSecret);
      return { action: page.action, form: { csrf: page.csrf, code } };
    }
    if (page.action.endsWith('/mfa/enrol/continue')) return { action: page.action, form: { csrf: page.csrf } };
    return password(page, agent);
  };
}

/**
 * The people of a TOTP scenario, each lent to one flow at a time and only while a code of theirs is
 * still unused in the current step (the server accepts one code per person per 30 s step): a flow
 * that finds nobody waits for the next step, and is counted as having waited.
 */
export class TotpPool {
  readonly #free: TotpPerson[];
  /** How many people the pool holds. */
  readonly size: number;
  /** Flows that waited for a new step before they found a person (since the last reset). */
  waited = 0;

  constructor(people: TotpPerson[]) {
    this.#free = [...people];
    this.size = people.length;
  }

  /**
   * A person whose code of the current step is unused, lent until give(); when there is none, waits
   * for the next step, but not past `deadline` (ms since the epoch): then undefined.
   */
  async take(deadline = Number.POSITIVE_INFINITY): Promise<TotpPerson | undefined> {
    let waited = false;
    for (;;) {
      const step = totpStep(Date.now() / 1000);
      const index = this.#free.findIndex((person) => person.lastStep < step);
      if (index >= 0) {
        if (waited) this.waited += 1;
        return this.#free.splice(index, 1)[0]!;
      }
      const nextStep = (step + 1) * TOTP_STEP_SECONDS * 1000 + 20;
      if (nextStep >= deadline) return undefined;
      waited = true;
      await delay(nextStep - Date.now());
    }
  }

  give(person: TotpPerson): void {
    this.#free.push(person);
  }
}

/** The emulator's credential store, kept as its own serialised strings (what crosses to the load generator). */
class SerialisedCredentials implements PasskeysCredentialsRepository {
  readonly #byId = new Map<string, string>();
  constructor(initial: readonly string[] = []) {
    for (const text of initial) this.saveCredential(deserializeCredential(text));
  }
  #id(credential: PasskeyDiscoverableCredential): string {
    return Buffer.from(credential.publicKeyCredentialDescriptor.id).toString('base64url');
  }
  saveCredential(credential: PasskeyDiscoverableCredential): void {
    this.#byId.set(this.#id(credential), serializeCredential(credential));
  }
  deleteCredential(credential: PasskeyDiscoverableCredential): void {
    this.#byId.delete(this.#id(credential));
  }
  loadCredentials(): PasskeyDiscoverableCredential[] {
    return [...this.#byId.values()].map(deserializeCredential);
  }
  exported(): string[] {
    return [...this.#byId.values()];
  }
}

/** An emulated browser and authenticator holding `credentials` (from PasskeyPerson); `exported()` gives them back. */
export function passkeyEmulator(credentials: readonly string[] = []): { emulator: WebAuthnEmulator; exported(): string[] } {
  const store = new SerialisedCredentials(credentials);
  return { emulator: new WebAuthnEmulator(new AuthenticatorEmulator({ credentialsRepository: store })), exported: () => store.exported() };
}

async function postJson(agent: Agent, url: string, body: unknown): Promise<unknown> {
  const answer = await agent.request(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify(body) });
  const text = await answer.text();
  if (answer.status !== 200) throw new Error(`${url.replace(/\/interaction\/[^/]+/, '/interaction/:uid')} answered ${answer.status}: ${text.slice(0, 200)}`);
  return JSON.parse(text) as unknown;
}

/**
 * The login page's passkey button, as passkey.js drives it: the discoverable options
 * (`POST /interaction/:uid/passkey/options` with the page's CSRF token), the emulator's answer for
 * `origin` (the issuer's), and the form post `{csrf, response}`; no password. Other pages: undefined.
 */
export function passkeySignIn(emulator: WebAuthnEmulator, origin: string): SignIn {
  return async (page, agent) => {
    const form = /<form id="passkey-form"[^>]*action="([^"]+)"[^>]*data-options="([^"]+)"/.exec(page.html);
    if (!form || !page.action.endsWith('/login')) return undefined;
    const options = await postJson(agent, form[2]!, { csrf: page.csrf });
    const response = emulator.getJSON(origin, options as Parameters<WebAuthnEmulator['getJSON']>[1]);
    return { action: form[1]!, form: { csrf: page.csrf, response: JSON.stringify(response) } };
  };
}

/**
 * Registers one passkey for `person` through the account page, as a person does: /account → the
 * login page → the password → /account, then `POST /account/passkeys/options`, the emulator's new
 * credential for `origin`, and `POST /account/passkeys` (303 to the list). Gives the person with
 * the emulator's credentials.
 */
export async function registerPasskeyOnAccount(agent: Agent, person: BenchPerson, origin: string): Promise<PasskeyPerson> {
  const csrfOf = (html: string) => /name="csrf" value="([^"]*)"/.exec(html)?.[1] ?? '';
  let { response, url } = await agent.follow('/account');
  let html = await response.text();
  const login = /<form method="post" action="([^"]+\/login)"/.exec(html)?.[1];
  if (!login) throw new Error(`no login form at ${url} (${response.status})`);
  ({ response, url } = await agent.follow(login, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrf: csrfOf(html), email: person.email, password: person.password }),
  }));
  html = await response.text();
  if (!url.endsWith('/account') || response.status !== 200) throw new Error(`${person.email}: the password sign-in ended at ${url} (${response.status})`);
  const { emulator, exported } = passkeyEmulator();
  const options = await postJson(agent, '/account/passkeys/options', { csrf: csrfOf(html) });
  const created = emulator.createJSON(origin, options as Parameters<WebAuthnEmulator['createJSON']>[1]);
  const posted = await agent.request('/account/passkeys', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrf: csrfOf(html), name: 'Bench', response: JSON.stringify(created) }),
  });
  await posted.arrayBuffer();
  if (posted.status !== 303) throw new Error(`${person.email}: POST /account/passkeys answered ${posted.status}`);
  return { ...person, credentials: exported() };
}
