/**
 * The rules of the console's client form (create and edit): which grant types, authentication
 * methods, profile, DPoP, PAR, keys and redirect URIs go together, so that the form offers only
 * combinations the admin API accepts, and says beside each field what is still missing.
 *
 * The server's rules are the source (src/services/clients.service.ts: checkClientRules and
 * checkProfileRules; src/services/validation.ts: redirectUriProblem; src/config/protocol.ts:
 * GRANT_TYPES). This module repeats them in a form the browser can run (no import from src/ at run
 * time), and test/unit/console/client-form-rules.test.ts holds the two to each other: every
 * combination the form offers is accepted by the server's checks, every one it withholds is
 * refused, and the problems it names are the fields the server names.
 *
 * Pure: no DOM, no I/O. The page keeps a ClientForm in its state, asks `choiceOf` whether each
 * control may be changed (a withheld one is disabled, with its reason beside it), changes it with
 * `applyChange` (which also drops what the change makes meaningless), shows `formProblems` beside
 * the fields, and sends `toCreateBody` or `toUpdateBody`.
 */

/** RFC 8628 device authorization grant. */
export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
/** RFC 8693 token exchange. */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** The grant types a client may register, in the server's order (src/config/protocol.ts GRANT_TYPES). */
export const GRANT_TYPES = ['authorization_code', 'client_credentials', 'refresh_token', DEVICE_CODE_GRANT, TOKEN_EXCHANGE_GRANT] as const;
export type GrantType = (typeof GRANT_TYPES)[number];

/** How a client authenticates at the token endpoint (src/services/clients.service.ts AUTH_METHODS). */
export const AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'] as const;
export type AuthMethod = (typeof AUTH_METHODS)[number];

/** The security profiles a client may be held to (src/registry/tables.ts CLIENT_PROFILES). */
export const PROFILES = ['fapi2'] as const;
export type Profile = (typeof PROFILES)[number];

/** The algorithms a FAPI 2.0 client's keys may name (FAPI2_CLIENT_ALGS). */
export const FAPI2_KEY_ALGS = ['PS256', 'ES256', 'EdDSA'] as const;

/** The OpenID Connect scopes a sign-in client may ask for (src/services/validation.ts OIDC_SCOPES). */
export const OIDC_SCOPES = ['openid', 'profile', 'email', 'offline_access'] as const;
export type OidcScope = (typeof OIDC_SCOPES)[number];

/** JWK members that hold private key material: a client's keys must be public (src/keys/jwk.ts). */
export const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/** The limits of the client body (clientFields in src/services/clients.service.ts). */
export const LIMITS = { clientName: 200, uris: 32, keys: 10, mayAct: 20 } as const;

/** The methods that authenticate with a client secret: such a client is shown a secret once. */
export const SECRET_METHODS: readonly AuthMethod[] = ['client_secret_basic', 'client_secret_post'];

export const GRANT_TYPE_LABELS: Readonly<Record<GrantType, string>> = {
  authorization_code: 'Authorization code (people sign in, with PKCE)',
  client_credentials: 'Client credentials (a service acting for itself)',
  refresh_token: 'Refresh tokens',
  [DEVICE_CODE_GRANT]: 'Device code (TVs, command-line tools)',
  [TOKEN_EXCHANGE_GRANT]: 'Token exchange (a service acting for a person)',
};

export const AUTH_METHOD_LABELS: Readonly<Record<AuthMethod, string>> = {
  client_secret_basic: 'Client secret, HTTP Basic',
  client_secret_post: 'Client secret, in the request body',
  private_key_jwt: 'Private key JWT (the client signs with its own key)',
  none: 'None: a public client (browser or native app)',
};

export const PROFILE_LABELS: Readonly<Record<Profile | 'none', string>> = {
  none: 'None',
  fapi2: 'FAPI 2.0 Security Profile',
};

/** The form's state: what the person has chosen and typed, before it becomes a request body. */
export interface ClientForm {
  clientName: string;
  /** Checked grant types, in GRANT_TYPES order. */
  grantTypes: GrantType[];
  authMethod: AuthMethod;
  profile: Profile | null;
  /** One input each; blank ones are dropped (see tidy). */
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  /** The client's public keys as JSON text (`{"keys": [...]}`); blank for none. */
  jwks: string;
  dpopBoundAccessTokens: boolean;
  requirePushedAuthorizationRequests: boolean;
  requireSignedRequestObject: boolean;
  /** Blank for none. */
  backchannelLogoutUri: string;
  backchannelLogoutSessionRequired: boolean;
  /** API identifiers whose tokens the client may exchange (token exchange only). */
  mayAct: string[];
  /** The OpenID scopes of a sign-in client. */
  oidcScopes: OidcScope[];
  firstParty: boolean;
  requireMfa: boolean;
  /** Blank for none. */
  logoUri: string;
  /** Create only: the APIs the client may get tokens for, with the scopes it may ask for there. */
  grants: FormGrant[];
  /** Create only (the edit form sets it among the grants held): one of `grants`' resources, or null. */
  defaultResource: string | null;
}

export interface FormGrant {
  /** The API's identifier. */
  resource: string;
  scopes: string[];
}

/** Whether a control may be changed now; when not, why (shown beside it). */
export type Choice = { readonly offered: true } | { readonly offered: false; readonly reason: string };

const OFFERED: Choice = Object.freeze({ offered: true });
const withheld = (reason: string): Choice => Object.freeze({ offered: false, reason });

/** The flags the form shows as checkboxes whose availability depends on the rest. */
export type FormFlag = 'dpopBoundAccessTokens' | 'requirePushedAuthorizationRequests' | 'requireSignedRequestObject' | 'backchannelLogoutSessionRequired';
export const FORM_FLAGS: readonly FormFlag[] = ['dpopBoundAccessTokens', 'requirePushedAuthorizationRequests', 'requireSignedRequestObject', 'backchannelLogoutSessionRequired'];

/** One change a person makes to the choices that decide what goes together. */
export type FormChange =
  | { readonly kind: 'grantType'; readonly grantType: GrantType }
  | { readonly kind: 'authMethod'; readonly authMethod: AuthMethod }
  | { readonly kind: 'profile'; readonly profile: Profile | null }
  | { readonly kind: 'flag'; readonly flag: FormFlag; readonly value: boolean };

/** A problem the form (or the server) finds, by the field of the request body it concerns (`redirect_uris.0`). */
export interface FieldProblem {
  field: string;
  message: string;
}

/** What a kind of application starts from: the form's first question. */
export interface Preset {
  id: 'web' | 'spa' | 'service' | 'device' | 'fapi2';
  label: string;
  hint: string;
  apply: (form: ClientForm) => ClientForm;
}

const SIGN_IN_SCOPES: OidcScope[] = ['openid', 'profile', 'email'];

/** A new client's form: a web app that signs people in, authenticating with a secret. */
export function emptyForm(): ClientForm {
  return {
    clientName: '',
    grantTypes: ['authorization_code', 'refresh_token'],
    authMethod: 'client_secret_basic',
    profile: null,
    redirectUris: [''],
    postLogoutRedirectUris: [],
    jwks: '',
    dpopBoundAccessTokens: false,
    requirePushedAuthorizationRequests: false,
    requireSignedRequestObject: false,
    backchannelLogoutUri: '',
    backchannelLogoutSessionRequired: false,
    mayAct: [],
    oidcScopes: [...SIGN_IN_SCOPES],
    firstParty: false,
    requireMfa: false,
    logoUri: '',
    grants: [],
    defaultResource: null,
  };
}

const preset = (choices: Pick<ClientForm, 'grantTypes' | 'authMethod'> & Partial<ClientForm>) => (form: ClientForm): ClientForm =>
  normalize({
    ...form,
    profile: null,
    dpopBoundAccessTokens: false,
    requirePushedAuthorizationRequests: false,
    ...choices,
  });

export const PRESETS: readonly Preset[] = [
  {
    id: 'web',
    label: 'Web application',
    hint: 'A server-side app that signs people in and keeps a secret',
    apply: preset({ grantTypes: ['authorization_code', 'refresh_token'], authMethod: 'client_secret_basic', oidcScopes: [...SIGN_IN_SCOPES] }),
  },
  {
    id: 'spa',
    label: 'Single-page or native app',
    hint: 'Runs on the person’s device: no secret, PKCE only',
    apply: preset({ grantTypes: ['authorization_code', 'refresh_token'], authMethod: 'none', oidcScopes: [...SIGN_IN_SCOPES] }),
  },
  {
    id: 'service',
    label: 'Service',
    hint: 'Calls APIs for itself (client credentials)',
    apply: preset({ grantTypes: ['client_credentials'], authMethod: 'client_secret_basic' }),
  },
  {
    id: 'device',
    label: 'Device or command line',
    hint: 'Signs people in on another device (device code)',
    apply: preset({ grantTypes: [DEVICE_CODE_GRANT, 'refresh_token'], authMethod: 'none', oidcScopes: [...SIGN_IN_SCOPES] }),
  },
  {
    id: 'fapi2',
    label: 'FAPI 2.0 application',
    hint: 'Authorization code with PAR, DPoP and private key JWT',
    apply: (form) =>
      applyChange(preset({ grantTypes: ['authorization_code', 'refresh_token'], authMethod: 'private_key_jwt', oidcScopes: [...SIGN_IN_SCOPES] })(form), {
        kind: 'profile',
        profile: 'fapi2',
      }),
  },
];

// ---------------------------------------------------------------------------------------------
// What goes together

const has = (form: Pick<ClientForm, 'grantTypes'>, grant: GrantType) => form.grantTypes.includes(grant);
/** A grant through which a person signs in: the ones a public client may use, and refresh tokens come with. */
const signsPeopleIn = (form: Pick<ClientForm, 'grantTypes'>) => has(form, 'authorization_code') || has(form, DEVICE_CODE_GRANT);
const blank = (value: string) => value.trim() === '';

/**
 * Drops what the choices make meaningless or invalid, so that a change never leaves a combination
 * the server refuses: refresh tokens without a sign-in grant, may_act without token exchange, the
 * session flag without a logout URI; and holds DPoP and PAR on under FAPI 2.0.
 */
export function normalize(form: ClientForm): ClientForm {
  let grantTypes = GRANT_TYPES.filter((grant) => form.grantTypes.includes(grant));
  if (!signsPeopleIn({ grantTypes })) grantTypes = grantTypes.filter((grant) => grant !== 'refresh_token');
  const fapi2 = form.profile === 'fapi2';
  return {
    ...form,
    grantTypes,
    mayAct: grantTypes.includes(TOKEN_EXCHANGE_GRANT) ? form.mayAct : [],
    backchannelLogoutSessionRequired: form.backchannelLogoutSessionRequired && !blank(form.backchannelLogoutUri),
    dpopBoundAccessTokens: fapi2 || form.dpopBoundAccessTokens,
    requirePushedAuthorizationRequests: fapi2 || form.requirePushedAuthorizationRequests,
  };
}

/** Whether the grant type's checkbox may be toggled now. */
export function grantTypeChoice(form: ClientForm, grant: GrantType): Choice {
  if (has(form, grant)) {
    const after = normalize({ ...form, grantTypes: form.grantTypes.filter((g) => g !== grant) });
    if (after.grantTypes.length === 0) {
      return withheld(
        after.grantTypes.length < form.grantTypes.length - 1
          ? 'Refresh tokens come only with it: choose another grant type first.'
          : 'A client needs at least one grant type.',
      );
    }
    if (form.authMethod === 'none' && !signsPeopleIn(after)) {
      return withheld('A public client needs authorization code or device code: choose another authentication method first.');
    }
    return OFFERED;
  }
  switch (grant) {
    case 'client_credentials':
      return form.authMethod === 'none' ? withheld('A public client cannot use client credentials: it has nothing to authenticate with.') : OFFERED;
    case TOKEN_EXCHANGE_GRANT:
      if (form.profile === 'fapi2') return withheld('FAPI 2.0 does not take token exchange.');
      return form.authMethod === 'none' ? withheld('A public client cannot use token exchange: the acting client must authenticate.') : OFFERED;
    case DEVICE_CODE_GRANT:
      return form.profile === 'fapi2' ? withheld('FAPI 2.0 does not take the device flow (no redirect, no PAR).') : OFFERED;
    case 'refresh_token':
      return signsPeopleIn(form) ? OFFERED : withheld('Refresh tokens come with authorization code or device code.');
    case 'authorization_code':
      return OFFERED;
  }
}

/** Whether the authentication method may be selected now. */
export function authMethodChoice(form: ClientForm, method: AuthMethod): Choice {
  if (form.profile === 'fapi2' && method !== 'private_key_jwt') return withheld('FAPI 2.0 needs private key JWT.');
  if (method === 'none') {
    if (has(form, 'client_credentials') || has(form, TOKEN_EXCHANGE_GRANT)) {
      return withheld('A public client cannot use client credentials or token exchange.');
    }
    if (!signsPeopleIn(form)) return withheld('A public client needs authorization code or device code.');
  }
  return OFFERED;
}

/** Whether the profile may be selected now (FAPI 2.0 then sets what it requires). */
export function profileChoice(form: ClientForm, profile: Profile | null): Choice {
  if (profile === 'fapi2' && !has(form, 'authorization_code') && !has(form, 'client_credentials')) {
    return withheld('FAPI 2.0 is the authorization code flow (and client credentials): choose one of them first.');
  }
  return OFFERED;
}

/** Whether the flag's checkbox may be toggled now. */
export function flagChoice(form: ClientForm, flag: FormFlag): Choice {
  switch (flag) {
    case 'dpopBoundAccessTokens':
    case 'requirePushedAuthorizationRequests':
      return form.profile === 'fapi2' ? withheld('Required by FAPI 2.0.') : OFFERED;
    case 'requireSignedRequestObject':
      return OFFERED;
    case 'backchannelLogoutSessionRequired':
      return form.backchannelLogoutSessionRequired || !blank(form.backchannelLogoutUri) ? OFFERED : withheld('Needs a back-channel logout URI.');
  }
}

/** Whether a change may be made now (its control enabled). */
export function choiceOf(form: ClientForm, change: FormChange): Choice {
  switch (change.kind) {
    case 'grantType':
      return grantTypeChoice(form, change.grantType);
    case 'authMethod':
      return authMethodChoice(form, change.authMethod);
    case 'profile':
      return profileChoice(form, change.profile);
    case 'flag':
      return form[change.flag] === change.value ? OFFERED : flagChoice(form, change.flag);
  }
}

/**
 * Makes a change the form offers, and what follows from it: FAPI 2.0 sets private key JWT, PAR and
 * DPoP and drops the grants it does not take. A change the form withholds leaves the form as it is.
 */
export function applyChange(form: ClientForm, change: FormChange): ClientForm {
  if (!choiceOf(form, change).offered) return form;
  switch (change.kind) {
    case 'grantType': {
      const on = has(form, change.grantType);
      return normalize({ ...form, grantTypes: on ? form.grantTypes.filter((g) => g !== change.grantType) : [...form.grantTypes, change.grantType] });
    }
    case 'authMethod':
      return normalize({ ...form, authMethod: change.authMethod });
    case 'profile':
      if (change.profile === 'fapi2') {
        return normalize({
          ...form,
          profile: 'fapi2',
          authMethod: 'private_key_jwt',
          grantTypes: form.grantTypes.filter((g) => g !== DEVICE_CODE_GRANT && g !== TOKEN_EXCHANGE_GRANT),
        });
      }
      return normalize({ ...form, profile: change.profile });
    case 'flag':
      return normalize({ ...form, [change.flag]: change.value });
  }
}

/** An edit of the form's inputs (text, lists, the flags no rule involves), with what follows from it (normalize). */
export function editForm(form: ClientForm, patch: Partial<Omit<ClientForm, 'grantTypes' | 'authMethod' | 'profile' | FormFlag>>): ClientForm {
  return normalize({ ...form, ...patch });
}

/** Every change a form might be asked to make (each checkbox both ways, each method, each profile). */
export const ALL_CHANGES: readonly FormChange[] = [
  ...GRANT_TYPES.map((grantType) => ({ kind: 'grantType', grantType }) as const),
  ...AUTH_METHODS.map((authMethod) => ({ kind: 'authMethod', authMethod }) as const),
  ...[null, ...PROFILES].map((profile) => ({ kind: 'profile', profile }) as const),
  ...FORM_FLAGS.flatMap((flag) => [true, false].map((value) => ({ kind: 'flag', flag, value }) as const)),
];

/** What the form shows, and what it requires, for the choices made. */
export function layoutOf(form: ClientForm) {
  const signIn = signsPeopleIn(form);
  const jwksRequired = form.authMethod === 'private_key_jwt' || form.requireSignedRequestObject;
  return {
    /** Redirect URIs: needed (at least one) with authorization code; shown also while any is set. */
    redirectUris: { shown: has(form, 'authorization_code') || form.redirectUris.some((uri) => !blank(uri)), required: has(form, 'authorization_code') },
    postLogoutRedirectUris: { shown: has(form, 'authorization_code') || form.postLogoutRedirectUris.some((uri) => !blank(uri)) },
    /** The client's public keys: needed for private key JWT and signed request objects; with FAPI 2.0 each names its alg. */
    jwks: { shown: jwksRequired || !blank(form.jwks), required: jwksRequired, algs: form.profile === 'fapi2' ? FAPI2_KEY_ALGS : null },
    /** What only a client people sign in to uses. */
    oidcScopes: { shown: signIn },
    requireMfa: { shown: signIn || form.requireMfa },
    firstParty: { shown: signIn || form.firstParty },
    par: { shown: has(form, 'authorization_code') || form.requirePushedAuthorizationRequests },
    signedRequestObject: { shown: has(form, 'authorization_code') || form.requireSignedRequestObject },
    backchannelLogout: { shown: signIn || !blank(form.backchannelLogoutUri) },
    mayAct: { shown: has(form, TOKEN_EXCHANGE_GRANT) },
    /** Whether the client authenticates with a secret (shown once on create). */
    secret: SECRET_METHODS.includes(form.authMethod),
  };
}

// ---------------------------------------------------------------------------------------------
// Each field (src/services/validation.ts and clientFields)

/** True for a loopback host name as URL.hostname gives it (src/config/protocol.ts isLoopbackHostname). */
export function isLoopbackHostname(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);
}

function parseUrl(value: string): URL | undefined {
  try {
    return new URL(value);
  } catch {
    return undefined;
  }
}

/** Why a redirect (or back-channel logout) URI is unacceptable, as the server words it; undefined when it is fine. */
export function redirectUriProblem(value: string): string | undefined {
  if (value.includes('*')) return 'must not contain a wildcard';
  const url = parseUrl(value);
  if (!url) return 'must be an absolute URI';
  if (value.includes('#')) return 'must not contain a fragment';
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:') {
    return isLoopbackHostname(url.hostname) ? undefined : 'must use https (http is allowed only for localhost, 127.0.0.1 and [::1])';
  }
  return 'must use https (or http on a loopback address)';
}

/** Why a logo URI is unacceptable (an absolute https URL); undefined when it is fine. */
export function logoUriProblem(value: string): string | undefined {
  const url = parseUrl(value.trim());
  return url && url.protocol === 'https:' ? undefined : 'must be an absolute https URL';
}

/** Why an API identifier cannot be named in may_act (an absolute http(s) URI without query or fragment). */
export function resourceIdentifierProblem(value: string): string | undefined {
  const url = parseUrl(value);
  if (!url || !['https:', 'http:'].includes(url.protocol)) return 'must be an absolute http(s) URI';
  if (value.includes('#')) return 'must not contain a fragment';
  if (url.search) return 'must not contain a query';
  return undefined;
}

/** The keys of a jwks text: undefined when blank, the parsed value otherwise, or a problem. */
export function parseJwks(text: string): { value: unknown } | { problem: string } | undefined {
  if (blank(text)) return undefined;
  try {
    return { value: JSON.parse(text) as unknown };
  } catch {
    return { problem: 'must be JSON: {"keys": [ … public keys … ]}' };
  }
}

const isPlainObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The problems of a parsed jwks value, by field, as the server's jwks schema finds them. */
function jwksProblems(value: unknown): FieldProblem[] {
  if (!isPlainObject(value)) return [{ field: 'jwks', message: 'must be {"keys": [ … public keys … ]}' }];
  if (!Array.isArray(value.keys)) return [{ field: 'jwks.keys', message: 'must be a list of public keys' }];
  const keys: unknown[] = value.keys;
  if (keys.length === 0) return [{ field: 'jwks.keys', message: 'must hold at least one key' }];
  if (keys.length > LIMITS.keys) return [{ field: 'jwks.keys', message: `must hold at most ${LIMITS.keys} keys` }];
  const problems: FieldProblem[] = [];
  keys.forEach((key, index) => {
    if (!isPlainObject(key)) {
      problems.push({ field: `jwks.keys.${index}`, message: 'must be a JSON Web Key (an object)' });
      return;
    }
    if (typeof key.kty !== 'string') problems.push({ field: `jwks.keys.${index}`, message: 'each key needs a kty' });
    const leaked = PRIVATE_JWK_MEMBERS.filter((member) => member in key);
    if (leaked.length > 0) problems.push({ field: `jwks.keys.${index}`, message: `must be a public key (found private member ${leaked.join(', ')})` });
  });
  return problems;
}

function uriListProblems(field: string, values: readonly string[], problemOf: (value: string) => string | undefined): FieldProblem[] {
  const list = kept(values);
  if (list.length > LIMITS.uris) return [{ field, message: `must hold at most ${LIMITS.uris} URIs` }];
  return list.flatMap((uri, index) => {
    const problem = uri.includes('\0') ? 'must not contain a NUL character' : problemOf(uri);
    return problem ? [{ field: `${field}.${index}`, message: problem }] : [];
  });
}

/** The inputs of a URI list that are sent: trimmed, blank ones dropped. */
const kept = (values: readonly string[]) => values.map((value) => value.trim()).filter((value) => value !== '');

/** Each field on its own, as the server's schema checks it (names as the request body has them). */
export function fieldProblems(form: ClientForm): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const name = form.clientName.trim();
  if (name === '') problems.push({ field: 'client_name', message: 'must not be empty' });
  else if (name.length > LIMITS.clientName) problems.push({ field: 'client_name', message: `must be at most ${LIMITS.clientName} characters` });
  else if (name.includes('\0')) problems.push({ field: 'client_name', message: 'must not contain a NUL character' });
  if (form.grantTypes.length === 0) problems.push({ field: 'grant_types', message: 'choose at least one grant type' });
  problems.push(...uriListProblems('redirect_uris', form.redirectUris, redirectUriProblem));
  problems.push(...uriListProblems('post_logout_redirect_uris', form.postLogoutRedirectUris, redirectUriProblem));
  const jwks = parseJwks(form.jwks);
  if (jwks && 'problem' in jwks) problems.push({ field: 'jwks', message: jwks.problem });
  else if (jwks) problems.push(...jwksProblems(jwks.value));
  if (!blank(form.logoUri)) {
    const problem = logoUriProblem(form.logoUri);
    if (problem) problems.push({ field: 'logo_uri', message: problem });
  }
  if (!blank(form.backchannelLogoutUri)) {
    const problem = redirectUriProblem(form.backchannelLogoutUri.trim());
    if (problem) problems.push({ field: 'backchannel_logout_uri', message: problem });
  }
  if (form.mayAct.length > LIMITS.mayAct) problems.push({ field: 'may_act', message: `must name at most ${LIMITS.mayAct} APIs` });
  form.mayAct.forEach((identifier, index) => {
    const problem = resourceIdentifierProblem(identifier);
    if (problem) problems.push({ field: `may_act.${index}`, message: problem });
  });
  return problems;
}

/** The keys of the form's jwks, when it holds a key set (for the rules between fields). */
function keysOf(form: ClientForm): unknown[] | null {
  const jwks = parseJwks(form.jwks);
  if (!jwks || 'problem' in jwks || !isPlainObject(jwks.value) || !Array.isArray(jwks.value.keys)) return null;
  return jwks.value.keys;
}

/**
 * The rules between fields, in the server's order and with its field names (checkClientRules, then
 * checkProfileRules). Reached only through a change the form withholds, or while a required
 * input is still empty (redirect URIs, keys): the form shows each beside its field.
 */
export function combinationProblems(form: ClientForm): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const code = has(form, 'authorization_code');
  const device = has(form, DEVICE_CODE_GRANT);
  const exchange = has(form, TOKEN_EXCHANGE_GRANT);
  const keys = keysOf(form);
  if (code && kept(form.redirectUris).length === 0) problems.push({ field: 'redirect_uris', message: 'authorization code needs at least one redirect URI' });
  if (has(form, 'refresh_token') && !code && !device) {
    problems.push({ field: 'grant_types', message: 'refresh tokens come with authorization code or device code' });
  }
  if (form.authMethod === 'none') {
    if (has(form, 'client_credentials')) problems.push({ field: 'token_endpoint_auth_method', message: 'a public client cannot use client credentials' });
    if (exchange) problems.push({ field: 'token_endpoint_auth_method', message: 'a public client cannot use token exchange' });
    if (!code && !device) problems.push({ field: 'token_endpoint_auth_method', message: 'a public client needs authorization code or device code' });
  }
  if (form.authMethod === 'private_key_jwt' && !keys) problems.push({ field: 'jwks', message: 'private key JWT needs the client’s public keys' });
  if (form.backchannelLogoutSessionRequired && blank(form.backchannelLogoutUri)) {
    problems.push({ field: 'backchannel_logout_session_required', message: 'needs a back-channel logout URI' });
  }
  if (form.requireSignedRequestObject && !keys) {
    problems.push({ field: 'require_signed_request_object', message: 'needs the client’s public keys to verify request objects with' });
  }
  if (form.mayAct.length > 0 && !exchange) problems.push({ field: 'may_act', message: 'needs the token exchange grant' });
  if (form.profile === 'fapi2') {
    if (form.authMethod !== 'private_key_jwt') problems.push({ field: 'token_endpoint_auth_method', message: 'FAPI 2.0 needs private key JWT' });
    if (!form.requirePushedAuthorizationRequests) problems.push({ field: 'require_pushed_authorization_requests', message: 'must be on for FAPI 2.0' });
    if (!form.dpopBoundAccessTokens) problems.push({ field: 'dpop_bound_access_tokens', message: 'must be on for FAPI 2.0' });
    if (device || exchange) problems.push({ field: 'grant_types', message: 'FAPI 2.0 takes neither device code nor token exchange' });
    keys?.forEach((key, index) => {
      const alg = isPlainObject(key) ? key.alg : undefined;
      if (!(FAPI2_KEY_ALGS as readonly unknown[]).includes(alg)) {
        problems.push({ field: `jwks.keys.${index}.alg`, message: `FAPI 2.0 needs each key to name its alg: ${FAPI2_KEY_ALGS.join(', ')}` });
      }
    });
  }
  return problems;
}

/** Every problem the form knows of before it sends: each field's, then the rules between fields. */
export function formProblems(form: ClientForm): FieldProblem[] {
  return [...fieldProblems(form), ...combinationProblems(form)];
}

// ---------------------------------------------------------------------------------------------
// From and to the admin API

/** The members of the admin API's client (the generated `Client` type has these and more). */
export interface ClientJson {
  client_name: string;
  redirect_uris: string[];
  post_logout_redirect_uris: string[];
  grant_types: string[];
  token_endpoint_auth_method: string;
  scope: string;
  default_resource: string | null;
  grants: Array<{ resource: string; scope: string }>;
  jwks: { keys: Array<Record<string, unknown>> } | null;
  logo_uri: string | null;
  first_party: boolean;
  require_mfa: boolean;
  backchannel_logout_uri: string | null;
  backchannel_logout_session_required: boolean;
  dpop_bound_access_tokens: boolean;
  require_pushed_authorization_requests: boolean;
  require_signed_request_object: boolean;
  profile: string | null;
  may_act: string[];
}

const isAuthMethod = (value: string): value is AuthMethod => (AUTH_METHODS as readonly string[]).includes(value);
const isProfile = (value: string | null): value is Profile => value !== null && (PROFILES as readonly string[]).includes(value);
const words = (scope: string) => scope.split(' ').filter(Boolean);

/** The edit form of a stored client. */
export function fromClient(client: ClientJson): ClientForm {
  return {
    clientName: client.client_name,
    grantTypes: GRANT_TYPES.filter((grant) => client.grant_types.includes(grant)),
    authMethod: isAuthMethod(client.token_endpoint_auth_method) ? client.token_endpoint_auth_method : 'client_secret_basic',
    profile: isProfile(client.profile) ? client.profile : null,
    redirectUris: [...client.redirect_uris],
    postLogoutRedirectUris: [...client.post_logout_redirect_uris],
    jwks: client.jwks ? JSON.stringify(client.jwks, null, 2) : '',
    dpopBoundAccessTokens: client.dpop_bound_access_tokens,
    requirePushedAuthorizationRequests: client.require_pushed_authorization_requests,
    requireSignedRequestObject: client.require_signed_request_object,
    backchannelLogoutUri: client.backchannel_logout_uri ?? '',
    backchannelLogoutSessionRequired: client.backchannel_logout_session_required,
    mayAct: [...client.may_act],
    oidcScopes: OIDC_SCOPES.filter((scope) => words(client.scope).includes(scope)),
    firstParty: client.first_party,
    requireMfa: client.require_mfa,
    logoUri: client.logo_uri ?? '',
    grants: client.grants.map((grant) => ({ resource: grant.resource, scopes: words(grant.scope) })),
    defaultResource: client.default_resource,
  };
}

/**
 * The form with blank URI inputs dropped and text trimmed: what is sent, so that `redirect_uris.N`
 * names input N. A required list left empty keeps one empty input, to be filled in.
 */
export function tidy(form: ClientForm): ClientForm {
  const redirectUris = kept(form.redirectUris);
  return {
    ...form,
    clientName: form.clientName.trim(),
    redirectUris: redirectUris.length === 0 && layoutOf(form).redirectUris.required ? [''] : redirectUris,
    postLogoutRedirectUris: kept(form.postLogoutRedirectUris),
    backchannelLogoutUri: form.backchannelLogoutUri.trim(),
    logoUri: form.logoUri.trim(),
  };
}

/** A client body (ClientCreate; ClientUpdate without `grants`). */
export interface ClientBody {
  client_name?: string;
  redirect_uris?: string[];
  post_logout_redirect_uris?: string[];
  grant_types?: GrantType[];
  token_endpoint_auth_method?: AuthMethod;
  scope?: string;
  /** The parsed key set (or, when the text is not JSON, the text, for the server to refuse). */
  jwks?: unknown;
  logo_uri?: string | null;
  first_party?: boolean;
  require_mfa?: boolean;
  backchannel_logout_uri?: string | null;
  backchannel_logout_session_required?: boolean;
  dpop_bound_access_tokens?: boolean;
  require_pushed_authorization_requests?: boolean;
  require_signed_request_object?: boolean;
  profile?: Profile | null;
  may_act?: string[];
  grants?: Array<{ resource: string; scope: string }>;
  default_resource?: string | null;
}

/** The fields both bodies carry, every one explicit (a profile's implications are never left to the server). */
function commonBody(form: ClientForm) {
  const jwks = parseJwks(form.jwks);
  return {
    client_name: form.clientName.trim(),
    redirect_uris: kept(form.redirectUris),
    post_logout_redirect_uris: kept(form.postLogoutRedirectUris),
    grant_types: [...form.grantTypes],
    token_endpoint_auth_method: form.authMethod,
    jwks: jwks === undefined ? null : 'problem' in jwks ? form.jwks : jwks.value,
    logo_uri: blank(form.logoUri) ? null : form.logoUri.trim(),
    first_party: form.firstParty,
    require_mfa: form.requireMfa,
    backchannel_logout_uri: blank(form.backchannelLogoutUri) ? null : form.backchannelLogoutUri.trim(),
    backchannel_logout_session_required: form.backchannelLogoutSessionRequired,
    dpop_bound_access_tokens: form.dpopBoundAccessTokens,
    require_pushed_authorization_requests: form.requirePushedAuthorizationRequests,
    require_signed_request_object: form.requireSignedRequestObject,
    profile: form.profile,
    may_act: [...form.mayAct],
  } satisfies ClientBody;
}

/** The OpenID scopes sent: the chosen ones for a client people sign in to, none otherwise. */
const oidcScopesOf = (form: ClientForm) => (layoutOf(form).oidcScopes.shown ? OIDC_SCOPES.filter((scope) => form.oidcScopes.includes(scope)) : []);

/**
 * The body of POST /clients: every field explicit. `scope` holds only OpenID scopes; API scopes go
 * in `grants`, and the default resource is one of them.
 */
export function toCreateBody(form: ClientForm): ClientBody & { client_name: string } {
  const resources = form.grants.map((grant) => grant.resource);
  return {
    ...commonBody(form),
    scope: oidcScopesOf(form).join(' '),
    grants: form.grants.map((grant) => ({ resource: grant.resource, scope: grant.scopes.join(' ') })),
    default_resource: form.defaultResource !== null && resources.includes(form.defaultResource) ? form.defaultResource : null,
  };
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * The body of PATCH /clients/{id}: only what changed from the client as read (sent with its ETag in
 * If-Match). Grants change through their own calls, never here. `scope` says the OpenID scopes and
 * the grant at the default resource together (the API's rule), so when the OpenID scopes change it
 * carries the scopes of that grant as read, unchanged; OpenID scopes the form hides are left as
 * they are.
 */
export function toUpdateBody(original: ClientJson, form: ClientForm): ClientBody {
  const before = commonBody(fromClient(original));
  const after = commonBody(form);
  const body: Record<string, unknown> = {};
  for (const key of Object.keys(after) as Array<keyof typeof after>) {
    if (!same(before[key], after[key])) body[key] = after[key];
  }
  const defaultResource = form.defaultResource;
  if (defaultResource !== original.default_resource) body.default_resource = defaultResource;
  const oidcBefore = OIDC_SCOPES.filter((scope) => words(original.scope).includes(scope));
  const oidcAfter = layoutOf(form).oidcScopes.shown ? OIDC_SCOPES.filter((scope) => form.oidcScopes.includes(scope)) : oidcBefore;
  if (!same(oidcBefore, oidcAfter)) {
    const atDefault = original.grants.find((grant) => grant.resource === defaultResource);
    body.scope = [...oidcAfter, ...(atDefault ? words(atDefault.scope) : [])].join(' ');
  }
  return body as ClientBody;
}

/**
 * The form carried over to a newer version of the client (after a grant change or a secret
 * rotation, someone else's change may be in it too): what the person changed stays, every other
 * setting follows the client. Undefined when the person and the newer version changed the same
 * setting differently: then the person must reload, never overwrite.
 */
export function rebase(form: ClientForm, before: ClientJson, after: ClientJson): ClientForm | undefined {
  const read = fromClient(before);
  const now = fromClient(after);
  const result: Record<string, unknown> = { ...form };
  for (const key of Object.keys(form) as Array<keyof ClientForm>) {
    const theirs = !same(now[key], read[key]);
    if (!theirs) continue;
    const mine = !same(form[key], read[key]);
    if (mine && !same(form[key], now[key])) return undefined;
    result[key] = now[key];
  }
  return result as unknown as ClientForm;
}
