import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { api, call, Problem } from '../api.js';
import type { PageProps } from '../app.js';
import type { components } from '../generated/admin-api.js';
import { Confirm } from '../ui/confirm.js';
import { Field } from '../ui/field.js';
import { ErrorNotice, Loading, Notice, PageHeading } from '../ui/page.js';
import { useLoad } from '../ui/use-load.js';

type Provider = components['schemas']['Provider'];

const EMPTY = { id: '', name: '', issuer: '', client_id: '', client_secret: '', allow_signup: false };

/** The form's fields as the API takes them: empty optional ones left out. */
function createBody(form: typeof EMPTY): components['schemas']['ProviderCreate'] {
  return {
    name: form.name,
    issuer: form.issuer.trim(),
    client_id: form.client_id,
    ...(form.id.trim() ? { id: form.id.trim() } : {}),
    ...(form.client_secret ? { client_secret: form.client_secret } : {}),
    allow_signup: form.allow_signup,
  };
}

/**
 * Upstream providers: the OpenID providers people may sign in with. Create one with its client
 * secret (sent once, never shown again: the API answers only whether one is stored); delete with
 * confirmation.
 */
export function ProvidersPage(_props: PageProps): JSX.Element {
  const providers = useLoad(() => call(api.GET('/providers')), []);
  const [form, setForm] = useState(EMPTY);
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<Problem | undefined>();
  const [done, setDone] = useState<string | undefined>();
  const [deleting, setDeleting] = useState<Provider | undefined>();
  const [deleteError, setDeleteError] = useState<unknown>();

  const set = (name: keyof typeof EMPTY) => (event: Event) => {
    const input = event.currentTarget as HTMLInputElement;
    setForm({ ...form, [name]: input.type === 'checkbox' ? input.checked : input.value });
  };

  const create = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setDone(undefined);
    try {
      const created = await call(api.POST('/providers', { body: createBody(form) }));
      setProblem(undefined);
      setForm(EMPTY);
      setDone(`Provider ${created.name} (${created.id}) was created. Register ${location.origin}/upstream/callback as its redirect URI there.`);
      providers.reload();
    } catch (error) {
      setProblem(error instanceof Problem ? error : new Problem(0, 'error', 'The provider could not be created.'));
    } finally {
      setBusy(false);
    }
  };

  const remove = async () => {
    const provider = deleting;
    setDeleting(undefined);
    if (!provider) return;
    try {
      await call(api.DELETE('/providers/{id}', { params: { path: { id: provider.id } } }));
      setDeleteError(undefined);
      setDone(`Provider ${provider.name} was deleted.`);
      providers.reload();
    } catch (error) {
      setDeleteError(error);
    }
  };

  const fields = problem?.fields ?? {};
  return (
    <>
      <PageHeading>Upstream providers</PageHeading>
      <p>OpenID providers people may sign in with (“Continue with …” on the login page).</p>
      {done ? <Notice kind="status">{done}</Notice> : null}
      <ErrorNotice error={deleteError} />
      <ErrorNotice error={providers.error} />
      {providers.loading && !providers.data ? <Loading /> : null}
      {providers.data && providers.data.data.length === 0 ? <p>No upstream provider yet.</p> : null}
      {providers.data && providers.data.data.length > 0 ? (
        <ul class="entries" aria-label="Upstream providers">
          {providers.data.data.map((provider) => (
            <li key={provider.id} data-provider={provider.id}>
              <h2 class="entry-title">{provider.name}</h2>
              <dl class="facts">
                <dt>ID</dt>
                <dd class="mono">{provider.id}</dd>
                <dt>Issuer</dt>
                <dd class="mono">{provider.issuer}</dd>
                <dt>Client ID</dt>
                <dd class="mono">{provider.client_id}</dd>
                <dt>Client secret</dt>
                <dd>{provider.client_secret_set ? 'Stored' : 'None (PKCE only)'}</dd>
                <dt>Sign-up</dt>
                <dd>{provider.allow_signup ? 'Allowed' : 'Not allowed'}</dd>
                <dt>On the login page</dt>
                <dd>{provider.enabled ? 'Yes' : 'No (disabled)'}</dd>
              </dl>
              <div class="actions">
                <button type="button" class="danger" aria-label={`Delete ${provider.name}`} onClick={() => setDeleting(provider)}>
                  Delete
                </button>
              </div>
            </li>
          ))}
        </ul>
      ) : null}

      <h2>New provider</h2>
      {problem && Object.keys(fields).length === 0 ? <ErrorNotice error={problem} /> : null}
      <form noValidate onSubmit={(event) => void create(event)}>
        <Field id="provider-name" label="Name" hint="Shown on the login page: “Continue with <name>”." error={fields.name}>
          {(input) => <input {...input} name="name" required value={form.name} onInput={set('name')} />}
        </Field>
        <Field id="provider-issuer" label="Issuer" hint="The provider's issuer URL (https); its discovery document must answer." error={fields.issuer}>
          {(input) => <input {...input} name="issuer" type="url" required autoComplete="off" value={form.issuer} onInput={set('issuer')} />}
        </Field>
        <Field id="provider-client-id" label="Client ID" hint="Gatehouse's client ID at the provider." error={fields.client_id}>
          {(input) => <input {...input} name="client_id" required autoComplete="off" value={form.client_id} onInput={set('client_id')} />}
        </Field>
        <Field id="provider-client-secret" label="Client secret" hint="Stored encrypted and never shown again. Leave empty for a public (PKCE only) registration." error={fields.client_secret}>
          {(input) => <input {...input} name="client_secret" type="password" autoComplete="new-password" value={form.client_secret} onInput={set('client_secret')} />}
        </Field>
        <Field id="provider-id" label="ID (optional)" hint="a-z, 0-9 and -; made from the name when empty." error={fields.id}>
          {(input) => <input {...input} name="id" autoComplete="off" value={form.id} onInput={set('id')} />}
        </Field>
        <div class="field check">
          <input id="provider-signup" name="allow_signup" type="checkbox" checked={form.allow_signup} onChange={set('allow_signup')} />{' '}
          <label for="provider-signup">Let people without an account sign up through it</label>
          {fields.allow_signup ? <p class="field-error">{fields.allow_signup}</p> : null}
        </div>
        <button type="submit" disabled={busy}>
          Create
        </button>
      </form>

      <Confirm open={deleting !== undefined} title={`Delete ${deleting?.name ?? 'provider'}?`} confirmLabel="Delete" danger onConfirm={() => void remove()} onCancel={() => setDeleting(undefined)}>
        <p>Every link of a person to it goes too. People who had no other way to sign in can no longer sign in.</p>
      </Confirm>
    </>
  );
}
