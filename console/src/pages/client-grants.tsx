import type { FieldErrors } from './client-form.js';

/** An API as the grants editor offers it: its id, identifier, name and the scopes it offers. */
export interface GrantableApi {
  id: string;
  identifier: string;
  name: string | null;
  scope: string;
}

export const scopesOf = (api: Pick<GrantableApi, 'scope'>) => api.scope.split(' ').filter(Boolean);
export const apiLabel = (api: Pick<GrantableApi, 'identifier' | 'name'>) => (api.name ? `${api.name} (${api.identifier})` : api.identifier);
const slug = (value: string) => value.replace(/[^a-zA-Z0-9]+/g, '-');

/** The scope checkboxes of one API's grant. */
export function ScopeChoices(props: { prefix: string; api: GrantableApi; chosen: readonly string[]; onChange: (scopes: string[]) => void; legend?: string; error?: string | undefined }) {
  const { api, chosen, prefix } = props;
  const offered = scopesOf(api);
  const errorId = `${prefix}-${slug(api.identifier)}-scope-error`;
  return (
    <fieldset class="group scopes" aria-describedby={props.error ? errorId : undefined} aria-invalid={props.error ? 'true' : undefined}>
      <legend>{props.legend ?? `Scopes at ${apiLabel(api)}`}</legend>
      {offered.length === 0 ? <p class="hint">This API offers no scopes: the grant is for its audience only.</p> : null}
      {offered.map((scope) => {
        const id = `${prefix}-${slug(api.identifier)}-scope-${slug(scope)}`;
        return (
          <div class="check" key={scope}>
            <input
              type="checkbox"
              id={id}
              checked={chosen.includes(scope)}
              onChange={() => props.onChange(chosen.includes(scope) ? chosen.filter((s) => s !== scope) : offered.filter((s) => s === scope || chosen.includes(s)))}
            />
            <label for={id}>{scope}</label>
          </div>
        );
      })}
      {props.error ? (
        <p class="field-error" id={errorId}>
          {props.error}
        </p>
      ) : null}
    </fieldset>
  );
}

/**
 * The grants of a new client: for each API, whether the client may call it and with which scopes;
 * and which of them is its default API. Errors by the create body's field (`grants.0.scope`).
 */
export function NewGrants(props: {
  apis: readonly GrantableApi[];
  grants: ReadonlyArray<{ resource: string; scopes: string[] }>;
  defaultResource: string | null;
  errors: FieldErrors;
  onChange: (grants: Array<{ resource: string; scopes: string[] }>, defaultResource: string | null) => void;
}) {
  const { apis, grants, errors } = props;
  const indexOf = (identifier: string) => grants.findIndex((grant) => grant.resource === identifier);
  const set = (next: Array<{ resource: string; scopes: string[] }>) =>
    props.onChange(next, next.some((grant) => grant.resource === props.defaultResource) ? props.defaultResource : (next[0]?.resource ?? null));
  return (
    <fieldset class="group">
      <legend>APIs this client may call</legend>
      {apis.length === 0 ? <p class="hint">No API is registered yet.</p> : null}
      {apis.map((api) => {
        const index = indexOf(api.identifier);
        const id = `new-grant-${slug(api.identifier)}`;
        const resourceError = index >= 0 ? errors[`grants.${index}.resource`] : undefined;
        return (
          <div class="grant" key={api.id}>
            <div class="check">
              <input
                type="checkbox"
                id={id}
                checked={index >= 0}
                aria-invalid={resourceError ? 'true' : undefined}
                aria-describedby={resourceError ? `${id}-error` : undefined}
                onChange={() =>
                  set(index >= 0 ? grants.filter((grant) => grant.resource !== api.identifier) : [...grants, { resource: api.identifier, scopes: scopesOf(api) }])
                }
              />
              <label for={id}>{apiLabel(api)}</label>
            </div>
            {resourceError ? (
              <p class="field-error" id={`${id}-error`}>
                {resourceError}
              </p>
            ) : null}
            {index >= 0 ? (
              <ScopeChoices
                prefix="new-grant"
                api={api}
                chosen={grants[index]?.scopes ?? []}
                error={errors[`grants.${index}.scope`]}
                onChange={(scopes) => set(grants.map((grant) => (grant.resource === api.identifier ? { ...grant, scopes } : grant)))}
              />
            ) : null}
          </div>
        );
      })}
      {grants.length > 0 ? (
        <div class="field">
          <label for="new-default-resource">Default API</label>
          <span class="hint" id="new-default-resource-hint">
            The audience of a token request that names no API.
          </span>
          <select
            id="new-default-resource"
            value={props.defaultResource ?? ''}
            aria-describedby={`new-default-resource-hint${errors.default_resource ? ' new-default-resource-error' : ''}`}
            aria-invalid={errors.default_resource ? 'true' : undefined}
            onChange={(event) => props.onChange([...grants], event.currentTarget.value || null)}
          >
            <option value="">None</option>
            {grants.map((grant) => (
              <option key={grant.resource} value={grant.resource}>
                {grant.resource}
              </option>
            ))}
          </select>
          {errors.default_resource ? (
            <p class="field-error" id="new-default-resource-error">
              {errors.default_resource}
            </p>
          ) : null}
        </div>
      ) : null}
    </fieldset>
  );
}
