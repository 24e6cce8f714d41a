import type { ComponentChildren } from 'preact';
import { Field } from '../ui/field.js';
import {
  AUTH_METHODS,
  AUTH_METHOD_LABELS,
  GRANT_TYPES,
  GRANT_TYPE_LABELS,
  OIDC_SCOPES,
  PROFILES,
  PROFILE_LABELS,
  applyChange,
  choiceOf,
  editForm,
  layoutOf,
  resourceIdentifierProblem,
  type Choice,
  type ClientForm,
  type FormChange,
  type FormFlag,
} from './client-form-rules.js';

/** An API as the form offers it (may_act): its identifier, and its name if it has one. */
export interface ApiChoice {
  id: string;
  identifier: string;
  name: string | null;
}

/** Field errors by the request body's field name (`redirect_uris.0`), from the form's rules or the API's problem. */
export type FieldErrors = Readonly<Record<string, string>>;

/** The errors of a field and of everything under it (`jwks` holds `jwks.keys.0.alg`), joined. */
function errorsUnder(errors: FieldErrors, field: string, also: readonly string[] = []): string | undefined {
  const found = Object.entries(errors)
    .filter(([name]) => name === field || name.startsWith(`${field}.`) || also.includes(name))
    .map(([name, message]) => (name === field ? message : `${name.slice(field.length + 1) || name}: ${message}`));
  return found.length > 0 ? found.join('; ') : undefined;
}

/** "Redirect URI" → "redirect URI" (in the middle of a sentence). */
const lowerFirst = (text: string) => text.charAt(0).toLowerCase() + text.slice(1);

const idOf = (prefix: string, field: string) => `${prefix}-${field.replace(/[^a-zA-Z0-9]+/g, '-')}`;

/** A field's error, announced with it (aria-describedby) and shown beside it. */
function ErrorText({ id, message }: { id: string; message: string | undefined }) {
  return message ? (
    <p class="field-error" id={id}>
      {message}
    </p>
  ) : null;
}

/** Why a control is disabled, beside it. */
function Reason({ id, choice }: { id: string; choice: Choice }) {
  return choice.offered ? null : (
    <span class="hint" id={id}>
      {choice.reason}
    </span>
  );
}

function TextInput(props: {
  prefix: string;
  field: string;
  label: string;
  value: string;
  onInput: (value: string) => void;
  error: string | undefined;
  hint?: string;
  type?: 'text' | 'url';
  required?: boolean;
}) {
  return (
    <Field id={idOf(props.prefix, props.field)} label={props.label} error={props.error} hint={props.hint}>
      {(input) => (
        <input
          {...input}
          name={props.field}
          type="text"
          inputMode={props.type === 'url' ? 'url' : undefined}
          spellcheck={props.type === 'url' ? false : undefined}
          value={props.value}
          required={props.required}
          onInput={(event) => props.onInput(event.currentTarget.value)}
        />
      )}
    </Field>
  );
}

function Group(props: { legend: string; prefix: string; field: string; error: string | undefined; hint?: string; children: ComponentChildren }) {
  const id = idOf(props.prefix, props.field);
  const described = [props.hint ? `${id}-hint` : '', props.error ? `${id}-error` : ''].filter(Boolean).join(' ');
  return (
    <fieldset class="group" aria-describedby={described || undefined} aria-invalid={props.error ? 'true' : undefined}>
      <legend>{props.legend}</legend>
      {props.hint ? (
        <p class="hint" id={`${id}-hint`}>
          {props.hint}
        </p>
      ) : null}
      {props.children}
      <ErrorText id={`${id}-error`} message={props.error} />
    </fieldset>
  );
}

/** A list of URI inputs (one per URI), each with its own error (`redirect_uris.1`). */
function UriList(props: {
  prefix: string;
  field: 'redirect_uris' | 'post_logout_redirect_uris';
  legend: string;
  itemLabel: string;
  values: string[];
  errors: FieldErrors;
  required: boolean;
  onChange: (values: string[]) => void;
}) {
  const listError = props.errors[props.field];
  return (
    <Group legend={props.legend} prefix={props.prefix} field={props.field} error={listError} hint={props.required ? 'At least one is required.' : undefined}>
      {props.values.map((value, index) => {
        const field = `${props.field}.${index}`;
        const id = idOf(props.prefix, field);
        const error = props.errors[field];
        return (
          <div class={`field uri-row${error ? ' field-invalid' : ''}`} key={index}>
            <label for={id}>{`${props.itemLabel} ${index + 1}`}</label>
            <div class="row">
              <input
                id={id}
                type="text"
                inputMode="url"
                spellcheck={false}
                value={value}
                aria-invalid={error ? 'true' : undefined}
                aria-describedby={error ? `${id}-error` : undefined}
                onInput={(event) => props.onChange(props.values.map((old, at) => (at === index ? event.currentTarget.value : old)))}
              />
              <button
                type="button"
                class="secondary"
                aria-label={`Remove ${lowerFirst(props.itemLabel)} ${index + 1}`}
                onClick={() => props.onChange(props.values.filter((_, at) => at !== index))}
              >
                Remove
              </button>
            </div>
            <ErrorText id={`${id}-error`} message={error} />
          </div>
        );
      })}
      <button type="button" class="secondary" onClick={() => props.onChange([...props.values, ''])}>
        {`Add ${lowerFirst(props.itemLabel)}`}
      </button>
    </Group>
  );
}

const FLAG_LABELS: Record<FormFlag, string> = {
  dpopBoundAccessTokens: 'DPoP-bound access tokens (RFC 9449)',
  requirePushedAuthorizationRequests: 'Pushed authorization requests only (PAR, RFC 9126)',
  requireSignedRequestObject: 'Signed request objects only (JAR, RFC 9101)',
  backchannelLogoutSessionRequired: 'Logout tokens carry the session id',
};

/**
 * The client's settings, offering only what goes together (client-form-rules.ts): a control the
 * rules withhold is disabled, with the reason beside it; a change carries what follows from it.
 */
export function ClientFormFields(props: { form: ClientForm; onChange: (form: ClientForm) => void; errors: FieldErrors; apis: readonly ApiChoice[]; prefix: string }) {
  const { form, errors, prefix } = props;
  const layout = layoutOf(form);
  const change = (what: FormChange) => props.onChange(applyChange(form, what));
  const edit = (patch: Parameters<typeof editForm>[1]) => props.onChange(editForm(form, patch));

  const checkbox = (key: string, label: string, checked: boolean, choice: Choice, onToggle: () => void) => {
    const id = idOf(prefix, key);
    return (
      <div class="check" key={key}>
        <input
          type="checkbox"
          id={id}
          checked={checked}
          disabled={!choice.offered}
          aria-describedby={choice.offered ? undefined : `${id}-why`}
          onChange={onToggle}
        />
        <label for={id}>{label}</label>
        <Reason id={`${id}-why`} choice={choice} />
      </div>
    );
  };
  const radio = (group: string, key: string, label: string, checked: boolean, choice: Choice, onSelect: () => void) => {
    const id = idOf(prefix, `${group}-${key}`);
    return (
      <div class="check" key={key}>
        <input
          type="radio"
          name={`${prefix}-${group}`}
          id={id}
          checked={checked}
          disabled={!choice.offered && !checked}
          aria-describedby={choice.offered ? undefined : `${id}-why`}
          onChange={onSelect}
        />
        <label for={id}>{label}</label>
        <Reason id={`${id}-why`} choice={choice} />
      </div>
    );
  };
  const flag = (name: FormFlag) =>
    checkbox(name, FLAG_LABELS[name], form[name], choiceOf(form, { kind: 'flag', flag: name, value: !form[name] }), () =>
      change({ kind: 'flag', flag: name, value: !form[name] }),
    );
  const mayActApis = props.apis.filter((api) => api.id !== 'admin' && resourceIdentifierProblem(api.identifier) === undefined);

  return (
    <div class="client-form">
      <TextInput prefix={prefix} field="client_name" label="Name" value={form.clientName} required error={errors.client_name} onInput={(clientName) => edit({ clientName })} />

      <Group legend="Security profile" prefix={prefix} field="profile" error={errors.profile}>
        {[null, ...PROFILES].map((profile) =>
          radio('profile', profile ?? 'none', PROFILE_LABELS[profile ?? 'none'], form.profile === profile, choiceOf(form, { kind: 'profile', profile }), () =>
            change({ kind: 'profile', profile }),
          ),
        )}
      </Group>

      <Group legend="Grant types" prefix={prefix} field="grant_types" error={errorsUnder(errors, 'grant_types')}>
        {GRANT_TYPES.map((grantType) =>
          checkbox(`grant-${grantType}`, GRANT_TYPE_LABELS[grantType], form.grantTypes.includes(grantType), choiceOf(form, { kind: 'grantType', grantType }), () =>
            change({ kind: 'grantType', grantType }),
          ),
        )}
      </Group>

      <Group legend="Authentication at the token endpoint" prefix={prefix} field="token_endpoint_auth_method" error={errors.token_endpoint_auth_method}>
        {AUTH_METHODS.map((authMethod) =>
          radio('auth', authMethod, AUTH_METHOD_LABELS[authMethod], form.authMethod === authMethod, choiceOf(form, { kind: 'authMethod', authMethod }), () =>
            change({ kind: 'authMethod', authMethod }),
          ),
        )}
      </Group>

      {layout.redirectUris.shown ? (
        <UriList
          prefix={prefix}
          field="redirect_uris"
          legend="Redirect URIs"
          itemLabel="Redirect URI"
          values={form.redirectUris}
          errors={errors}
          required={layout.redirectUris.required}
          onChange={(redirectUris) => edit({ redirectUris })}
        />
      ) : null}
      {layout.postLogoutRedirectUris.shown ? (
        <UriList
          prefix={prefix}
          field="post_logout_redirect_uris"
          legend="Post-logout redirect URIs"
          itemLabel="Post-logout redirect URI"
          values={form.postLogoutRedirectUris}
          errors={errors}
          required={false}
          onChange={(postLogoutRedirectUris) => edit({ postLogoutRedirectUris })}
        />
      ) : null}

      {layout.oidcScopes.shown ? (
        <Group legend="OpenID scopes" prefix={prefix} field="scope" error={errors.scope}>
          {OIDC_SCOPES.map((scope) =>
            checkbox(`scope-${scope}`, scope, form.oidcScopes.includes(scope), { offered: true }, () =>
              edit({ oidcScopes: form.oidcScopes.includes(scope) ? form.oidcScopes.filter((s) => s !== scope) : [...form.oidcScopes, scope] }),
            ),
          )}
        </Group>
      ) : null}

      <Group legend="Security" prefix={prefix} field="security" error={undefined}>
        {flag('dpopBoundAccessTokens')}
        {layout.par.shown ? flag('requirePushedAuthorizationRequests') : null}
        {layout.signedRequestObject.shown ? flag('requireSignedRequestObject') : null}
        {layout.requireMfa.shown
          ? checkbox('require_mfa', 'Sign-ins need a second factor', form.requireMfa, { offered: true }, () => edit({ requireMfa: !form.requireMfa }))
          : null}
        {layout.firstParty.shown
          ? checkbox('first_party', 'First-party (no consent page)', form.firstParty, { offered: true }, () => edit({ firstParty: !form.firstParty }))
          : null}
      </Group>

      {layout.jwks.shown ? (
        <div class={`field${errorsUnder(errors, 'jwks', ['require_signed_request_object']) ? ' field-invalid' : ''}`}>
          <label for={idOf(prefix, 'jwks')}>Public keys (JWKS)</label>
          <span class="hint" id={idOf(prefix, 'jwks-hint')}>
            {`{"keys": [ … ]}, public keys only${layout.jwks.algs ? `; each names its alg (${layout.jwks.algs.join(', ')})` : ''}.`}
            {layout.jwks.required ? ' Required.' : ''}
          </span>
          <textarea
            id={idOf(prefix, 'jwks')}
            rows={6}
            spellcheck={false}
            value={form.jwks}
            aria-invalid={errorsUnder(errors, 'jwks', ['require_signed_request_object']) ? 'true' : undefined}
            aria-describedby={`${idOf(prefix, 'jwks-hint')} ${idOf(prefix, 'jwks-error')}`}
            onInput={(event) => edit({ jwks: event.currentTarget.value })}
          />
          <ErrorText id={idOf(prefix, 'jwks-error')} message={errorsUnder(errors, 'jwks', ['require_signed_request_object'])} />
        </div>
      ) : null}

      {layout.backchannelLogout.shown ? (
        <Group legend="Back-channel logout" prefix={prefix} field="backchannel" error={undefined}>
          <TextInput
            prefix={prefix}
            field="backchannel_logout_uri"
            label="Back-channel logout URI"
            type="url"
            value={form.backchannelLogoutUri}
            error={errors.backchannel_logout_uri}
            onInput={(backchannelLogoutUri) => edit({ backchannelLogoutUri })}
          />
          {flag('backchannelLogoutSessionRequired')}
          <ErrorText id={idOf(prefix, 'backchannel_logout_session_required-error')} message={errors.backchannel_logout_session_required} />
        </Group>
      ) : null}

      {layout.mayAct.shown ? (
        <Group
          legend="May exchange tokens of these APIs"
          prefix={prefix}
          field="may_act"
          error={errorsUnder(errors, 'may_act')}
          hint={mayActApis.length === 0 ? 'No API can be named here yet.' : undefined}
        >
          {mayActApis.map((api) =>
            checkbox(`may-act-${api.id}`, api.name ? `${api.name} (${api.identifier})` : api.identifier, form.mayAct.includes(api.identifier), { offered: true }, () =>
              edit({ mayAct: form.mayAct.includes(api.identifier) ? form.mayAct.filter((id) => id !== api.identifier) : [...form.mayAct, api.identifier] }),
            ),
          )}
        </Group>
      ) : null}

      <TextInput
        prefix={prefix}
        field="logo_uri"
        label="Logo URL"
        type="url"
        hint="Optional; https."
        value={form.logoUri}
        error={errors.logo_uri}
        onInput={(logoUri) => edit({ logoUri })}
      />
    </div>
  );
}
