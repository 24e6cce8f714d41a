import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ALL_CHANGES,
  AUTH_METHODS,
  DEVICE_CODE_GRANT,
  FAPI2_KEY_ALGS,
  GRANT_TYPES,
  OIDC_SCOPES,
  PRESETS,
  PRIVATE_JWK_MEMBERS,
  PROFILES,
  TOKEN_EXCHANGE_GRANT,
  applyChange,
  choiceOf,
  combinationProblems,
  editForm,
  emptyForm,
  fieldProblems,
  formProblems,
  fromClient,
  layoutOf,
  rebase,
  logoUriProblem,
  redirectUriProblem,
  resourceIdentifierProblem,
  tidy,
  toCreateBody,
  toUpdateBody,
  type ClientBody,
  type ClientForm,
  type FormChange,
} from '../../../console/src/pages/client-form-rules.js';
import { GRANT_TYPES as SERVER_GRANT_TYPES, DEVICE_CODE_GRANT_TYPE, TOKEN_EXCHANGE_GRANT_TYPE } from '../../../src/config/protocol.js';
import { PRIVATE_JWK_MEMBERS as SERVER_PRIVATE_JWK_MEMBERS } from '../../../src/keys/jwk.js';
import type { ClientRecord } from '../../../src/registry/client.repository.js';
import { CLIENT_PROFILES, type StoredJwks } from '../../../src/registry/tables.js';
import {
  AUTH_METHODS as SERVER_AUTH_METHODS,
  FAPI2_CLIENT_ALGS,
  checkClientUpdate,
  checkNewClient,
  clientToJson,
} from '../../../src/services/clients.service.js';
import { ValidationError } from '../../../src/services/errors.js';
import { OIDC_SCOPES as SERVER_OIDC_SCOPES, redirectUriProblem as serverRedirectUriProblem } from '../../../src/services/validation.js';

// Fixed, so that every run sees the same inputs; fast-check prints the seed and path of a failure.
const RUNS = { seed: 20_261_208, numRuns: 300 } as const;

// ---------------------------------------------------------------------------------------------
// The server's verdict

/** The fields the server's checks name for a body ([] when it accepts it). */
function serverFields(check: () => void): string[] {
  try {
    check();
    return [];
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    return fieldSet(error.errors);
  }
}

const fieldSet = (problems: ReadonlyArray<{ field: string }>) => [...new Set(problems.map((problem) => problem.field))].sort();
const createFields = (form: ClientForm) => serverFields(() => checkNewClient(toCreateBody(form)));

// ---------------------------------------------------------------------------------------------
// Inputs

const EC_KEY = { kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' };
const keySet = (...keys: object[]) => JSON.stringify({ keys });
const KEYS_FAPI = keySet({ ...EC_KEY, alg: 'ES256' });
const KEYS_NO_ALG = keySet(EC_KEY);
const KEYS_RS256 = keySet({ ...EC_KEY, alg: 'RS256' });
const API = 'https://api.example.test/orders';
const VALID_REDIRECTS = ['https://app.example.test/callback', 'http://localhost:8080/cb', 'http://127.0.0.1/cb', ' https://app.example.test/padded ', ''];
const HOSTILE_REDIRECTS = [
  'javascript:alert(1)',
  'http://app.example.test/cb',
  'https://app.example.test/cb#x',
  'https://*.example.test/cb',
  'not a uri',
  'data:text/html,<script>alert(1)</script>',
  'https://app.example.test/\u0000',
];

/** A form whose every input is well formed: only the rules between fields can refuse it. */
const wellFormedForm: fc.Arbitrary<ClientForm> = fc.record({
  clientName: fc.constantFrom('Orders', '<img src=x onerror=alert(1)>', ' padded '),
  grantTypes: fc.subarray([...GRANT_TYPES], { minLength: 1 }),
  authMethod: fc.constantFrom(...AUTH_METHODS),
  profile: fc.constantFrom(null, ...PROFILES),
  redirectUris: fc.subarray(VALID_REDIRECTS),
  postLogoutRedirectUris: fc.subarray(VALID_REDIRECTS.slice(0, 2)),
  jwks: fc.constantFrom('', KEYS_FAPI, KEYS_NO_ALG, KEYS_RS256, keySet({ ...EC_KEY, alg: 'PS256' }, EC_KEY)),
  dpopBoundAccessTokens: fc.boolean(),
  requirePushedAuthorizationRequests: fc.boolean(),
  requireSignedRequestObject: fc.boolean(),
  backchannelLogoutUri: fc.constantFrom('', 'https://app.example.test/backchannel', 'http://localhost/bc'),
  backchannelLogoutSessionRequired: fc.boolean(),
  mayAct: fc.subarray([API, 'http://localhost:9000/api']),
  oidcScopes: fc.subarray([...OIDC_SCOPES]),
  firstParty: fc.boolean(),
  requireMfa: fc.boolean(),
  logoUri: fc.constantFrom('', 'https://app.example.test/logo.png'),
  grants: fc.constantFrom([], [{ resource: API, scopes: ['read'] }]),
  defaultResource: fc.constantFrom(null, API),
});

/** Any form: inputs hostile or malformed too. */
const anyForm: fc.Arbitrary<ClientForm> = fc
  .tuple(
    wellFormedForm,
    fc.record({
      clientName: fc.constantFrom('', '   ', 'a'.repeat(200), 'a'.repeat(201), ' name\u0000 '),
      grantTypes: fc.constant([]),
      redirectUris: fc.subarray([...VALID_REDIRECTS, ...HOSTILE_REDIRECTS], { maxLength: 3 }),
      postLogoutRedirectUris: fc.subarray(HOSTILE_REDIRECTS, { maxLength: 2 }),
      jwks: fc.constantFrom(
        '{not json',
        '{"keys": []}',
        '{}',
        '[]',
        '"keys"',
        keySet({ ...EC_KEY, d: 'private' }),
        keySet({ crv: 'P-256' }),
        JSON.stringify({ keys: ['x'] }),
        JSON.stringify({ keys: Array.from({ length: 11 }, () => EC_KEY) }),
      ),
      backchannelLogoutUri: fc.constantFrom('javascript:alert(1)', 'http://app.example.test/bc', 'https://app.example.test/bc#f'),
      mayAct: fc.constantFrom(['urn:gatehouse:admin-api'], ['https://api.example.test/x?y=1'], ['https://api.example.test/x#f'], ['ftp://api.example.test/']),
      logoUri: fc.constantFrom('http://app.example.test/logo.png', 'javascript:alert(1)', 'logo.png', ' https://app.example.test/logo.png '),
    }),
    // Which of the malformed inputs replace the well-formed ones.
    fc.subarray(['clientName', 'grantTypes', 'redirectUris', 'postLogoutRedirectUris', 'jwks', 'backchannelLogoutUri', 'mayAct', 'logoUri'] as const),
  )
  .map(([form, bad, which]) => ({ ...form, ...Object.fromEntries(which.map((key) => [key, bad[key]])) }));

/** An edit the page makes through an input (only while the layout shows that input). */
type TextEdit = { kind: 'text'; patch: Partial<ClientForm>; when: (form: ClientForm) => boolean };
const textEdits: TextEdit[] = [
  { kind: 'text', patch: { backchannelLogoutUri: 'https://app.example.test/backchannel' }, when: (form) => layoutOf(form).backchannelLogout.shown },
  { kind: 'text', patch: { backchannelLogoutUri: '' }, when: () => true },
  { kind: 'text', patch: { jwks: KEYS_NO_ALG }, when: (form) => layoutOf(form).jwks.shown },
  { kind: 'text', patch: { jwks: KEYS_FAPI }, when: (form) => layoutOf(form).jwks.shown },
  { kind: 'text', patch: { jwks: '' }, when: (form) => layoutOf(form).jwks.shown },
  { kind: 'text', patch: { mayAct: [API] }, when: (form) => layoutOf(form).mayAct.shown },
  { kind: 'text', patch: { redirectUris: [''] }, when: (form) => layoutOf(form).redirectUris.shown },
  { kind: 'text', patch: { redirectUris: ['https://app.example.test/callback', ''] }, when: (form) => layoutOf(form).redirectUris.shown },
  { kind: 'text', patch: { requireMfa: true, firstParty: true }, when: (form) => layoutOf(form).requireMfa.shown },
];
type Action = FormChange | TextEdit;
const nameEdits: TextEdit[] = ['Renamed', 'Renamed again'].map((clientName) => ({ kind: 'text', patch: { clientName }, when: () => true }));

function act(form: ClientForm, action: Action): ClientForm {
  if (action.kind !== 'text') return applyChange(form, action);
  return action.when(form) ? editForm(form, action.patch) : form;
}

/** Fills what the layout asks for and is still empty, as a person completing the form would: redirect URI, keys, key algs. */
function complete(form: ClientForm): ClientForm {
  let filled = { ...form, clientName: form.clientName.trim() === '' ? 'Completed' : form.clientName };
  const layout = layoutOf(filled);
  if (layout.redirectUris.required && filled.redirectUris.every((uri) => uri.trim() === '')) {
    filled = { ...filled, redirectUris: ['https://app.example.test/callback'] };
  }
  if (layout.jwks.required && filled.jwks.trim() === '') filled = { ...filled, jwks: KEYS_FAPI };
  if (layout.jwks.algs && filled.jwks.trim() !== '') {
    const keys = (JSON.parse(filled.jwks) as { keys: Array<Record<string, unknown>> }).keys;
    filled = { ...filled, jwks: keySet(...keys.map((key) => ((FAPI2_KEY_ALGS as readonly unknown[]).includes(key.alg) ? key : { ...key, alg: 'ES256' }))) };
  }
  return filled;
}

/** The problems completing the form takes care of: required inputs still empty (not a choice the form let through). */
const COMPLETION_FIELDS = /^(redirect_uris|jwks|require_signed_request_object|jwks\.keys\.\d+\.alg)$/;

/** Changes and edits a person makes, in any order. */
const actionList = fc.array(fc.oneof(fc.constantFrom<Action>(...ALL_CHANGES), fc.constantFrom<Action>(...textEdits), fc.constantFrom<Action>(...nameEdits)), { maxLength: 6 });

/** Forms a person reaches: a preset, then changes and edits the form offers, in any order. */
const reachedForm: fc.Arbitrary<ClientForm> = fc
  .tuple(
    fc.constantFrom(...PRESETS),
    fc.array(fc.oneof(fc.constantFrom<Action>(...ALL_CHANGES), fc.constantFrom<Action>(...textEdits)), { maxLength: 15 }),
  )
  .map(([preset, actions]) => actions.reduce(act, preset.apply(emptyForm())));

/** A change made without the form's leave: the control's value set, nothing else. */
function forced(form: ClientForm, change: FormChange): ClientForm {
  switch (change.kind) {
    case 'grantType':
      return {
        ...form,
        grantTypes: form.grantTypes.includes(change.grantType) ? form.grantTypes.filter((grant) => grant !== change.grantType) : [...form.grantTypes, change.grantType],
      };
    case 'authMethod':
      return { ...form, authMethod: change.authMethod };
    case 'profile':
      return { ...form, profile: change.profile };
    case 'flag':
      return { ...form, [change.flag]: change.value };
  }
}

/** A stored client as the server would keep the body (the registry's part of the checks aside). */
function recordOf(body: ClientBody): ClientRecord {
  const at = new Date('2026-12-08T00:00:00Z');
  return {
    clientId: 'client-1',
    clientName: body.client_name ?? '',
    secretDigest: null,
    tokenEndpointAuthMethod: body.token_endpoint_auth_method ?? 'client_secret_basic',
    grantTypes: body.grant_types ?? [],
    redirectUris: body.redirect_uris ?? [],
    postLogoutRedirectUris: body.post_logout_redirect_uris ?? [],
    scopes: (body.scope ?? '').split(' ').filter(Boolean),
    defaultResource: body.default_resource ?? null,
    grants: (body.grants ?? []).map((grant) => ({ resourceId: grant.resource, resource: grant.resource, scopes: grant.scope.split(' ').filter(Boolean) })),
    jwks: (body.jwks ?? null) as StoredJwks | null,
    logoUri: body.logo_uri ?? null,
    firstParty: body.first_party ?? false,
    requireMfa: body.require_mfa ?? false,
    backchannelLogoutUri: body.backchannel_logout_uri ?? null,
    backchannelLogoutSessionRequired: body.backchannel_logout_session_required ?? false,
    dpopBoundAccessTokens: body.dpop_bound_access_tokens ?? false,
    requirePushedAuthorizationRequests: body.require_pushed_authorization_requests ?? false,
    requireSignedRequestObject: body.require_signed_request_object ?? false,
    profile: body.profile ?? null,
    mayAct: body.may_act ?? [],
    admin: false,
    version: 1,
    secretRotatedAt: null,
    createdAt: at,
    updatedAt: at,
  };
}

// ---------------------------------------------------------------------------------------------

describe('the form rules name what the server names', () => {
  it('has the server’s grant types, auth methods, profiles, FAPI 2.0 algorithms, OpenID scopes and private JWK members', () => {
    expect(GRANT_TYPES).toEqual(SERVER_GRANT_TYPES);
    expect([DEVICE_CODE_GRANT, TOKEN_EXCHANGE_GRANT]).toEqual([DEVICE_CODE_GRANT_TYPE, TOKEN_EXCHANGE_GRANT_TYPE]);
    expect(AUTH_METHODS).toEqual(SERVER_AUTH_METHODS);
    expect(PROFILES).toEqual(CLIENT_PROFILES);
    expect(FAPI2_KEY_ALGS).toEqual(FAPI2_CLIENT_ALGS);
    expect(OIDC_SCOPES).toEqual(SERVER_OIDC_SCOPES);
    expect(new Set(PRIVATE_JWK_MEMBERS)).toEqual(SERVER_PRIVATE_JWK_MEMBERS);
  });

  it('judges a redirect URI as the server does, word for word', () => {
    const uri = fc.oneof(
      fc.webUrl({ withQueryParameters: true, withFragments: true }),
      fc.constantFrom(...VALID_REDIRECTS, ...HOSTILE_REDIRECTS, 'http://[::1]:9000/cb', 'http://127.0.0.1.nip.io/cb', 'HTTPS://APP.EXAMPLE.TEST/', 'http://localhost.example.com/'),
      fc.string(),
      fc.string().map((rest) => `http://${rest}`),
    );
    fc.assert(
      fc.property(uri, (value) => {
        expect(redirectUriProblem(value)).toBe(serverRedirectUriProblem(value));
      }),
      RUNS,
    );
  });

  it('judges a logo URI and an API identifier (may_act) as the server’s schema does', () => {
    const text = fc.oneof(
      fc.webUrl({ withQueryParameters: true, withFragments: true }),
      fc.constantFrom('javascript:alert(1)', ' https://x.example/ ', 'https:x.example', 'http://x.example/', 'urn:gatehouse:admin-api', 'ftp://x.example/'),
      fc.string({ unit: 'grapheme-ascii' }),
    );
    fc.assert(
      fc.property(text, (value) => {
        const logoFields = serverFields(() => checkNewClient({ client_name: 'x', grant_types: ['client_credentials'], logo_uri: value }));
        expect(logoFields).toEqual(logoUriProblem(value) ? ['logo_uri'] : []);
        const mayActFields = serverFields(() =>
          checkNewClient({ client_name: 'x', grant_types: ['client_credentials', TOKEN_EXCHANGE_GRANT], may_act: [value] }),
        );
        expect(mayActFields).toEqual(resourceIdentifierProblem(value) ? ['may_act.0'] : []);
      }),
      RUNS,
    );
  });

  it('finds in any form the problems the server finds in its body, by field', () => {
    fc.assert(
      fc.property(anyForm, (form) => {
        const server = createFields(form);
        const own = fieldProblems(form);
        // The server checks each field first and stops there; then the rules between fields.
        expect(server).toEqual(fieldSet(own.length > 0 ? own : combinationProblems(form)));
        expect(server.length === 0).toBe(formProblems(form).length === 0);
      }),
      RUNS,
    );
  });

  it('finds in well-formed forms exactly the rules between fields the server finds', () => {
    fc.assert(
      fc.property(wellFormedForm, (form) => {
        expect(fieldProblems(form)).toEqual([]);
        expect(createFields(form)).toEqual(fieldSet(combinationProblems(form)));
      }),
      RUNS,
    );
  });
});

describe('the form offers only what the server accepts', () => {
  it('starts every preset from a combination the server accepts once its required inputs are filled', () => {
    for (const preset of PRESETS) {
      const form = preset.apply(emptyForm());
      expect(combinationProblems(form).filter((problem) => !COMPLETION_FIELDS.test(problem.field))).toEqual([]);
      expect(createFields(complete(form))).toEqual([]);
    }
  });

  it('leads, through any sequence of the changes it offers, only to combinations the server accepts', () => {
    fc.assert(
      fc.property(reachedForm, (form) => {
        // What remains is an input to fill (a redirect URI, keys), never a combination of choices.
        expect(combinationProblems(form).filter((problem) => !COMPLETION_FIELDS.test(problem.field))).toEqual([]);
        const completed = complete(form);
        expect(formProblems(completed)).toEqual([]);
        expect(createFields(completed)).toEqual([]);
      }),
      RUNS,
    );
  });

  it('offers a change only when the server accepts its result, and withholds it only when the server refuses it', () => {
    fc.assert(
      fc.property(reachedForm.map(complete), (form) => {
        for (const change of ALL_CHANGES) {
          const choice = choiceOf(form, change);
          if (choice.offered) {
            const after = complete(applyChange(form, change));
            expect(createFields(after), JSON.stringify(change)).toEqual([]);
          } else {
            expect(choice.reason).toMatch(/\w/);
            // The control's value set anyway, the form completed as it asks: the server refuses it.
            const after = complete(forced(form, change));
            expect(createFields(after), JSON.stringify(change)).not.toEqual([]);
            expect(formProblems(after).length).toBeGreaterThan(0);
            expect(applyChange(form, change)).toEqual(form);
          }
        }
      }),
      RUNS,
    );
  });

  it('withholds what FAPI 2.0 forbids and sets what it requires', () => {
    const fapi = applyChange({ ...emptyForm(), grantTypes: ['authorization_code', 'refresh_token', DEVICE_CODE_GRANT] }, { kind: 'profile', profile: 'fapi2' });
    expect(fapi).toMatchObject({
      profile: 'fapi2',
      authMethod: 'private_key_jwt',
      grantTypes: ['authorization_code', 'refresh_token'],
      dpopBoundAccessTokens: true,
      requirePushedAuthorizationRequests: true,
    });
    expect(choiceOf(fapi, { kind: 'grantType', grantType: DEVICE_CODE_GRANT }).offered).toBe(false);
    expect(choiceOf(fapi, { kind: 'authMethod', authMethod: 'client_secret_basic' }).offered).toBe(false);
    expect(choiceOf(fapi, { kind: 'flag', flag: 'dpopBoundAccessTokens', value: false }).offered).toBe(false);
    expect(layoutOf(fapi).jwks).toEqual({ shown: true, required: true, algs: FAPI2_KEY_ALGS });
    const device = { ...emptyForm(), grantTypes: [DEVICE_CODE_GRANT, 'refresh_token'], authMethod: 'none' } satisfies ClientForm;
    expect(choiceOf(device, { kind: 'profile', profile: 'fapi2' })).toMatchObject({ offered: false, reason: expect.stringMatching(/authorization code/) });
  });

  it('withholds client credentials from a public client, and refresh tokens from a client nobody signs in to', () => {
    const spa = PRESETS.find((preset) => preset.id === 'spa')!.apply(emptyForm());
    expect(choiceOf(spa, { kind: 'grantType', grantType: 'client_credentials' })).toMatchObject({ offered: false });
    expect(choiceOf(spa, { kind: 'grantType', grantType: 'authorization_code' })).toMatchObject({ offered: false });
    const service = PRESETS.find((preset) => preset.id === 'service')!.apply(emptyForm());
    expect(choiceOf(service, { kind: 'grantType', grantType: 'refresh_token' })).toMatchObject({ offered: false });
    expect(choiceOf(service, { kind: 'authMethod', authMethod: 'none' })).toMatchObject({ offered: false });
    expect(layoutOf(service)).toMatchObject({ redirectUris: { shown: false, required: false }, oidcScopes: { shown: false }, secret: true });
    // Unchecking the sign-in grant takes the refresh tokens that came with it.
    const web = PRESETS.find((preset) => preset.id === 'web')!.apply(emptyForm());
    const withService = applyChange(web, { kind: 'grantType', grantType: 'client_credentials' });
    expect(applyChange(withService, { kind: 'grantType', grantType: 'authorization_code' }).grantTypes).toEqual(['client_credentials']);
  });

  it('sends hostile text as text: the name as typed, a javascript: URI for the server to refuse', () => {
    const form = complete({ ...emptyForm(), clientName: '<img src=x onerror=alert(1)>', redirectUris: ['javascript:alert(1)'] });
    expect(toCreateBody(form)).toMatchObject({ client_name: '<img src=x onerror=alert(1)>', redirect_uris: ['javascript:alert(1)'] });
    expect(fieldProblems(form)).toEqual([{ field: 'redirect_uris.0', message: 'must use https (or http on a loopback address)' }]);
    expect(createFields(form)).toEqual(['redirect_uris.0']);
  });
});

describe('the edit form sends only what changed', () => {
  it('sends a change the server accepts for every pair of forms it accepts, and the client becomes what the form says', () => {
    fc.assert(
      fc.property(reachedForm.map(complete), reachedForm.map(complete), (before, edited) => {
        const stored = recordOf(toCreateBody(before));
        const original = clientToJson(stored);
        const form = { ...edited, grants: fromClient(original).grants, defaultResource: original.default_resource };
        const body = toUpdateBody(original, form);
        expect(body).not.toHaveProperty('grants');
        expect(serverFields(() => checkClientUpdate(stored, body))).toEqual([]);
        // The stored client with the body over it is the edited form (what the form hides is kept).
        const merged = fromClient({ ...original, ...body, jwks: (body.jwks === undefined ? original.jwks : body.jwks) as typeof original.jwks, scope: body.scope ?? original.scope });
        const expected = fromClient(clientToJson(recordOf(toCreateBody(form))));
        // OpenID scopes the form hides (a client nobody signs in to) are kept as they were.
        const oidcScopes = layoutOf(form).oidcScopes.shown ? expected.oidcScopes : fromClient(original).oidcScopes;
        expect({ ...merged, jwks: JSON.parse(merged.jwks || 'null') }).toEqual({ ...expected, oidcScopes, jwks: JSON.parse(expected.jwks || 'null') });
      }),
      { ...RUNS, numRuns: 150 },
    );
  });

  it('sends nothing for a form left as it was read', () => {
    fc.assert(
      fc.property(reachedForm.map(complete), (form) => {
        const original = clientToJson(recordOf(toCreateBody(form)));
        expect(toUpdateBody(original, fromClient(original))).toEqual({});
      }),
      RUNS,
    );
  });

  it('is refused by the server when a withheld change is forced into it', () => {
    fc.assert(
      fc.property(reachedForm.map(complete), fc.constantFrom(...ALL_CHANGES), (form, change) => {
        fc.pre(!choiceOf(form, change).offered);
        const stored = recordOf(toCreateBody(form));
        const original = clientToJson(stored);
        const body = toUpdateBody(original, complete(forced(fromClient(original), change)));
        expect(serverFields(() => checkClientUpdate(stored, body))).not.toEqual([]);
      }),
      RUNS,
    );
  });

  it('keeps the default resource’s grant when the OpenID scopes change (scope carries both)', () => {
    const original = clientToJson(
      recordOf({
        ...toCreateBody(complete(emptyForm())),
        scope: 'openid profile email',
        grants: [
          { resource: API, scope: 'read write' },
          { resource: 'https://api.example.test/billing', scope: 'pay' },
        ],
        default_resource: API,
      }),
    );
    expect(original.scope).toBe('openid profile email read write');
    const form = fromClient(original);
    expect(form.oidcScopes).toEqual(['openid', 'profile', 'email']);
    expect(toUpdateBody(original, { ...form, oidcScopes: ['openid'] })).toEqual({ scope: 'openid read write' });
    expect(toUpdateBody(original, { ...form, defaultResource: 'https://api.example.test/billing' })).toEqual({ default_resource: 'https://api.example.test/billing' });
    expect(toUpdateBody(original, { ...form, oidcScopes: ['openid', 'offline_access'], defaultResource: 'https://api.example.test/billing' })).toEqual({
      default_resource: 'https://api.example.test/billing',
      scope: 'openid offline_access pay',
    });
    expect(toUpdateBody(original, { ...form, oidcScopes: ['openid'], defaultResource: null })).toEqual({ default_resource: null, scope: 'openid' });
  });

  it('carries the person’s edits over to a newer version of the client, or says it is stale when both changed a setting', () => {
    let clashes = 0;
    let carriedOver = 0;
    fc.assert(
      fc.property(reachedForm.map(complete), actionList, actionList, (readForm, theirActions, myActions) => {
        // Both start from the client as read: someone else saves their changes, the person edits the form.
        const read = clientToJson(recordOf(toCreateBody(readForm)));
        const theirForm = complete(theirActions.reduce(act, fromClient(read)));
        const theirs = { ...clientToJson(recordOf(toCreateBody(theirForm))), grants: read.grants, default_resource: read.default_resource };
        const edited = complete(myActions.reduce(act, fromClient(read)));
        const before = fromClient(read);
        const now = fromClient(theirs);
        const keys = Object.keys(before) as Array<keyof ClientForm>;
        const changed = (a: unknown, b: unknown) => JSON.stringify(a) !== JSON.stringify(b);
        const clash = keys.some((key) => changed(edited[key], before[key]) && changed(now[key], before[key]) && changed(edited[key], now[key]));
        const carried = rebase(edited, read, theirs);
        if (clash) {
          expect(carried).toBeUndefined();
          clashes += 1;
          return;
        }
        carriedOver += 1;
        expect(carried).toBeDefined();
        for (const key of keys) expect(carried![key], key).toEqual(changed(edited[key], before[key]) ? edited[key] : now[key]);
        // Saved over the newer version, it sends only what the person changed: nothing of theirs is undone.
        const body = toUpdateBody(theirs, carried!) as Record<string, unknown>;
        expect(toUpdateBody(read, edited)).toMatchObject(body);
      }),
      RUNS,
    );
    // Both outcomes were seen, many times.
    expect(Math.min(clashes, carriedOver)).toBeGreaterThan(30);
    const read = clientToJson(recordOf(toCreateBody(complete(emptyForm()))));
    const renamed = { ...read, client_name: 'Renamed elsewhere' };
    expect(rebase({ ...fromClient(read), requireMfa: true }, read, renamed)).toMatchObject({ clientName: 'Renamed elsewhere', requireMfa: true });
    expect(rebase({ ...fromClient(read), clientName: 'Renamed here' }, read, renamed)).toBeUndefined();
    expect(rebase({ ...fromClient(read), clientName: 'Renamed elsewhere' }, read, renamed)).toMatchObject({ clientName: 'Renamed elsewhere' });
  });

  it('drops blank URI inputs before sending, so that redirect_uris.N names input N', () => {
    const form = tidy({ ...emptyForm(), redirectUris: ['', ' https://a.example.test/cb ', '  ', 'javascript:x'] });
    expect(form.redirectUris).toEqual(['https://a.example.test/cb', 'javascript:x']);
    expect(fieldProblems(form).map((problem) => problem.field)).toContain('redirect_uris.1');
    // A required list left blank keeps one input to fill in (the body still sends none).
    const blankForm = tidy({ ...emptyForm(), redirectUris: ['', '  '] });
    expect(blankForm.redirectUris).toEqual(['']);
    expect(toCreateBody(blankForm).redirect_uris).toEqual([]);
    expect(tidy({ ...emptyForm(), grantTypes: ['client_credentials'], redirectUris: [' '] }).redirectUris).toEqual([]);
  });
});
