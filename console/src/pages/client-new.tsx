import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import type { PageProps } from '../app.js';
import { api, call, Problem } from '../api.js';
import { Link } from '../router.js';
import { ErrorNotice, Notice, PageHeading } from '../ui/page.js';
import { SecretOnce } from '../ui/secret-once.js';
import { useLoad } from '../ui/use-load.js';
import { asCreateBody, focusFirstError, problemsByField, unplaced } from './client-errors.js';
import { ClientFormFields, type FieldErrors } from './client-form.js';
import { PRESETS, emptyForm, formProblems, tidy, toCreateBody, type ClientForm, type Preset } from './client-form-rules.js';
import { NewGrants } from './client-grants.js';

/** Every API, for grants and may_act (one page of the most the API gives). */
export const loadApis = () => call(api.GET('/resources', { params: { query: { limit: 200 } } })).then((page) => page.data);

/** A new client: the kind of application first, then only the settings that go with it; its secret once. */
export function NewClientPage(_props: PageProps): JSX.Element {
  const [presetId, setPresetId] = useState<Preset['id']>('web');
  const [form, setForm] = useState<ClientForm>(() => PRESETS[0]!.apply(emptyForm()));
  const [errors, setErrors] = useState<FieldErrors>({});
  const [failure, setFailure] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<{ clientId: string; name: string; secret: string | undefined } | null>(null);
  const apis = useLoad(loadApis, []);

  if (created) {
    return (
      <>
        <PageHeading>Client created</PageHeading>
        <Notice kind="status">
          <p>
            {created.name} was created with the client ID <code>{created.clientId}</code>.
          </p>
        </Notice>
        {created.secret ? <SecretOnce label="Client secret" value={created.secret} /> : <p>This client authenticates without a client secret.</p>}
        <p>
          <Link href={`/clients/${encodeURIComponent(created.clientId)}`}>Open the client</Link>
        </p>
      </>
    );
  }

  const submit = async (event: Event) => {
    event.preventDefault();
    const sent = tidy(form);
    setForm(sent);
    setFailure(null);
    const own = formProblems(sent);
    if (own.length > 0) {
      setErrors(problemsByField(own));
      setFailure('Some fields need attention: see beside each.');
      focusFirstError();
      return;
    }
    setBusy(true);
    try {
      const data = await call(api.POST('/clients', { body: asCreateBody(toCreateBody(sent)) }));
      setCreated({ clientId: data.client_id, name: data.client_name, secret: data.client_secret });
    } catch (error) {
      const problem = error instanceof Problem ? error : undefined;
      setErrors(problem?.fields ?? {});
      setFailure(problem?.detail ?? 'The client could not be created.');
      focusFirstError();
    } finally {
      setBusy(false);
    }
  };

  const rest = unplaced(errors, form);
  return (
    <>
      <PageHeading>New client</PageHeading>
      <ErrorNotice error={apis.error} />
      <form class="stack" noValidate onSubmit={(event) => void submit(event)}>
        <fieldset class="group presets">
          <legend>Kind of application</legend>
          {PRESETS.map((preset) => (
            <div class="check" key={preset.id}>
              <input
                type="radio"
                name="preset"
                id={`preset-${preset.id}`}
                checked={presetId === preset.id}
                aria-describedby={`preset-${preset.id}-hint`}
                onChange={() => {
                  setPresetId(preset.id);
                  setForm(preset.apply(form));
                }}
              />
              <label for={`preset-${preset.id}`}>{preset.label}</label>
              <span class="hint" id={`preset-${preset.id}-hint`}>
                {preset.hint}
              </span>
            </div>
          ))}
        </fieldset>
        <ClientFormFields prefix="new" form={form} errors={errors} apis={apis.data ?? []} onChange={setForm} />
        <NewGrants
          apis={apis.data ?? []}
          grants={form.grants}
          defaultResource={form.defaultResource}
          errors={errors}
          onChange={(grants, defaultResource) => setForm({ ...form, grants, defaultResource })}
        />
        {failure ? (
          <Notice kind="alert">
            <p>{failure}</p>
            {rest.length > 0 ? (
              <ul>
                {rest.map(([field, message]) => (
                  <li key={field}>{`${field}: ${message}`}</li>
                ))}
              </ul>
            ) : null}
          </Notice>
        ) : null}
        <div class="actions">
          <button type="submit" disabled={busy}>
            Create
          </button>
          <Link href="/clients">Cancel</Link>
        </div>
      </form>
    </>
  );
}
