import { call } from '../api.js';
import type { components } from '../generated/admin-api.js';
import { layoutOf, type ClientBody, type ClientForm, type FieldProblem } from './client-form-rules.js';
import type { FieldErrors } from './client-form.js';

/**
 * As `call` (the data, or a thrown Problem; an outage raises the banner), with the answer's ETag:
 * the version of the client the answer shows, for the next If-Match.
 */
export async function callWithEtag<T>(request: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<{ data: T; etag: string | null }> {
  let etag: string | null = null;
  const data = await call(
    request.then((result) => {
      etag = result.response.headers.get('ETag');
      return result;
    }),
  );
  return { data, etag };
}

/** Problems as the form shows them: the first message of each field. */
export function problemsByField(problems: readonly FieldProblem[]): FieldErrors {
  const byField: Record<string, string> = {};
  for (const problem of problems) byField[problem.field] ??= problem.message;
  return byField;
}

/** Moves the focus to the first field marked invalid, once the page has shown the errors. */
export function focusFirstError(): void {
  requestAnimationFrame(() => {
    const first = document.querySelector<HTMLElement>('main [aria-invalid="true"]');
    if (first instanceof HTMLFieldSetElement) first.querySelector<HTMLElement>('input, select, textarea, button')?.focus();
    else first?.focus();
  });
}

/** Whether a field's error is shown beside an input the form shows now. */
function placed(field: string, form: ClientForm, grants: boolean): boolean {
  const layout = layoutOf(form);
  const group = field.split('.')[0] ?? field;
  switch (group) {
    case 'client_name':
    case 'grant_types':
    case 'token_endpoint_auth_method':
    case 'profile':
    case 'logo_uri':
      return true;
    case 'redirect_uris':
      return layout.redirectUris.shown;
    case 'post_logout_redirect_uris':
      return layout.postLogoutRedirectUris.shown;
    case 'scope':
      return layout.oidcScopes.shown;
    case 'jwks':
    case 'require_signed_request_object':
      return layout.jwks.shown;
    case 'backchannel_logout_uri':
    case 'backchannel_logout_session_required':
      return layout.backchannelLogout.shown;
    case 'may_act':
      return layout.mayAct.shown;
    case 'grants':
    case 'default_resource':
      return grants;
    default:
      return false;
  }
}

/** The errors no input of the form shows (listed in the notice above the form's buttons). */
export function unplaced(errors: FieldErrors, form: ClientForm, grants = true): Array<[string, string]> {
  return Object.entries(errors).filter(([field]) => !placed(field, form, grants));
}

type ClientCreate = components['schemas']['ClientCreate'];
type ClientUpdate = components['schemas']['ClientUpdate'];
/** The form's body with `jwks` as the form holds it (a key set, once formProblems found none in its text). */
type AsSent<T> = Omit<T, 'jwks'> & { jwks?: unknown };
/** Members the form would send that the API does not declare: none (else this fails `tsc -p console`). */
const NO_UNDECLARED_MEMBERS: [Exclude<keyof ClientBody, keyof ClientCreate | keyof ClientUpdate>] extends [never] ? true : never = true;
void NO_UNDECLARED_MEMBERS;

/**
 * The form's bodies as the API's own types (generated from its OpenAPI document): each member the
 * form sends is one the API declares, with a type it takes. `jwks` is sent only once formProblems
 * found the text to be a key set.
 */
export const asCreateBody = (body: ClientBody & { client_name: string }): ClientCreate => (body satisfies AsSent<ClientCreate>) as ClientCreate;
export const asUpdateBody = (body: ClientBody): ClientUpdate => (body satisfies AsSent<ClientUpdate>) as ClientUpdate;
