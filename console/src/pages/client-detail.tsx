import type { JSX } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import type { PageProps } from '../app.js';
import { api, onRetry, Problem } from '../api.js';
import { Link, navigate } from '../router.js';
import { Confirm } from '../ui/confirm.js';
import { ErrorNotice, Loading, Notice, PageHeading, Stale } from '../ui/page.js';
import { SecretOnce } from '../ui/secret-once.js';
import { useLoad } from '../ui/use-load.js';
import { asUpdateBody, callWithEtag, focusFirstError, problemsByField, unplaced } from './client-errors.js';
import { ClientFormFields, type FieldErrors } from './client-form.js';
import { SECRET_METHODS, formProblems, fromClient, rebase, tidy, toUpdateBody, type AuthMethod, type ClientForm, type ClientJson } from './client-form-rules.js';
import { ScopeChoices, apiLabel, scopesOf, type GrantableApi } from './client-grants.js';
import { loadApis } from './client-new.js';

type Client = ClientJson & { client_id: string; created_at: string; updated_at: string };

/** The client as read, its version (ETag) and the form over it. */
interface Loaded {
  client: Client;
  etag: string | null;
  form: ClientForm;
}

type Message = { kind: 'status' | 'alert'; text: string };

const problemText = (error: unknown, fallback: string) => (error instanceof Problem ? error.detail : fallback);

/** One client: its settings (saved only over the version read), its grants per API, its secret, and deletion. */
export function ClientPage(props: PageProps): JSX.Element {
  const id = props.params.id ?? '';
  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [message, setMessage] = useState<Message | null>(null);
  const [stale, setStale] = useState(false);
  const [secret, setSecret] = useState<string | null>(null);
  const [confirming, setConfirming] = useState<'rotate' | 'delete' | null>(null);
  const [busy, setBusy] = useState(false);
  const apis = useLoad(loadApis, []);

  /** Reads the client as stored now; the form starts over from it. */
  const load = useCallback(async () => {
    try {
      const { data, etag } = await callWithEtag(api.GET('/clients/{client_id}', { params: { path: { client_id: id } } }));
      setLoaded({ client: data, etag, form: fromClient(data) });
      setLoadError(null);
      setErrors({});
      setStale(false);
    } catch (error) {
      setLoadError(error);
    }
  }, [id]);
  useEffect(() => {
    void load();
    return onRetry(() => void load());
  }, [load]);

  if (!loaded) {
    const notFound = loadError instanceof Problem && loadError.status === 404;
    return (
      <>
        <PageHeading>{notFound ? 'Client not found' : 'Client'}</PageHeading>
        {notFound ? (
          <p>
            No client has the ID <code>{id}</code>. <Link href="/clients">Back to the clients</Link>
          </p>
        ) : loadError ? (
          <ErrorNotice error={loadError} />
        ) : (
          <Loading />
        )}
      </>
    );
  }

  const { client, etag, form } = loaded;
  const setForm = (next: ClientForm) => setLoaded({ ...loaded, form: next });

  const save = async (event: Event) => {
    event.preventDefault();
    setMessage(null);
    const sent = tidy(form);
    setForm(sent);
    const own = formProblems(sent);
    if (own.length > 0) {
      setErrors(problemsByField(own));
      setMessage({ kind: 'alert', text: 'Some fields need attention: see beside each.' });
      focusFirstError();
      return;
    }
    const body = toUpdateBody(client, sent);
    if (Object.keys(body).length === 0) {
      setErrors({});
      setMessage({ kind: 'status', text: 'Nothing to save: no setting changed.' });
      return;
    }
    // Never a save without the version read: it could overwrite someone else's change.
    if (!etag) {
      setStale(true);
      return;
    }
    setBusy(true);
    try {
      const answer = await callWithEtag(
        api.PATCH('/clients/{client_id}', { params: { path: { client_id: id }, header: { 'If-Match': etag } }, body: asUpdateBody(body) }),
      );
      setLoaded({ client: answer.data, etag: answer.etag, form: fromClient(answer.data) });
      setErrors({});
      setMessage({ kind: 'status', text: 'Saved.' });
      // A switch to a secret-based method issues a secret: shown this once.
      if (answer.data.client_secret) setSecret(answer.data.client_secret);
    } catch (error) {
      if (error instanceof Problem && error.status === 412) {
        // Someone changed the client since it was read: nothing was written; the person reloads.
        setStale(true);
      } else {
        setErrors(error instanceof Problem ? error.fields : {});
        setMessage({ kind: 'alert', text: problemText(error, 'The client could not be saved.') });
        focusFirstError();
      }
    } finally {
      setBusy(false);
    }
  };

  const rotate = async () => {
    setConfirming(null);
    setMessage(null);
    try {
      const answer = await callWithEtag(api.POST('/clients/{client_id}/secret', { params: { path: { client_id: id } } }));
      setSecret(answer.data.client_secret);
      setMessage({ kind: 'status', text: 'The secret was rotated: the old one no longer works.' });
    } catch (error) {
      setMessage({ kind: 'alert', text: problemText(error, 'The secret could not be rotated.') });
      return;
    }
    // The rotation made a new version of the client: read it, so that the next save goes over it
    // (and over nothing else someone changed meanwhile: that is carried into the form, or makes it stale).
    try {
      const now = await callWithEtag(api.GET('/clients/{client_id}', { params: { path: { client_id: id } } }));
      moveTo(now.data, now.etag);
    } catch {
      setStale(true);
    }
  };

  const remove = async () => {
    setConfirming(null);
    setMessage(null);
    try {
      await callWithEtag(api.DELETE('/clients/{client_id}', { params: { path: { client_id: id } } }));
      navigate('/clients');
    } catch (error) {
      setMessage({ kind: 'alert', text: problemText(error, 'The client could not be deleted.') });
    }
  };

  /**
   * A newer version of the client (a grant call's answer, or read after a rotation): the settings
   * being edited are carried over to it; if someone else changed one of them too, the page is stale.
   */
  const moveTo = (now: Client, etagNow: string | null) => {
    const carried = rebase(form, client, now);
    setLoaded({ client: now, etag: etagNow, form: carried ?? form });
    if (!carried) setStale(true);
  };

  const hasSecret = SECRET_METHODS.includes(client.token_endpoint_auth_method as AuthMethod);
  const rest = unplaced(errors, form, false).filter(([field]) => field !== 'default_resource');

  return (
    <>
      <PageHeading>{client.client_name}</PageHeading>
      <p>
        <Link href="/clients">All clients</Link>
      </p>
      <dl class="facts">
        <dt>Client ID</dt>
        <dd>
          <code>{client.client_id}</code>
        </dd>
        <dt>Created</dt>
        <dd>{new Date(client.created_at).toLocaleString('en')}</dd>
        <dt>Last changed</dt>
        <dd>{new Date(client.updated_at).toLocaleString('en')}</dd>
      </dl>
      {stale ? <Stale onReload={() => void load()} /> : null}
      {message ? (
        <Notice kind={message.kind}>
          <p>{message.text}</p>
        </Notice>
      ) : null}
      {secret ? <SecretOnce label="Client secret" value={secret} /> : null}

      <section aria-labelledby="settings-heading">
        <h2 id="settings-heading">Settings</h2>
        <form class="stack" noValidate onSubmit={(event) => void save(event)}>
          <ClientFormFields prefix="edit" form={form} errors={errors} apis={apis.data ?? []} onChange={setForm} />
          {client.grants.length > 0 ? (
            <div class={`field${errors.default_resource ? ' field-invalid' : ''}`}>
              <label for="edit-default-resource">Default API</label>
              <p class="hint" id="edit-default-resource-hint">
                The audience of a token request that names no API: one of the client’s grants.
              </p>
              <select
                id="edit-default-resource"
                value={form.defaultResource ?? ''}
                aria-invalid={errors.default_resource ? 'true' : undefined}
                aria-describedby={`edit-default-resource-hint${errors.default_resource ? ' edit-default-resource-error' : ''}`}
                onChange={(event) => setForm({ ...form, defaultResource: event.currentTarget.value || null })}
              >
                <option value="">None</option>
                {client.grants.map((grant) => (
                  <option key={grant.resource} value={grant.resource}>
                    {grant.resource}
                  </option>
                ))}
              </select>
              {errors.default_resource ? (
                <p class="field-error" id="edit-default-resource-error">
                  {errors.default_resource}
                </p>
              ) : null}
            </div>
          ) : null}
          {rest.length > 0 ? (
            <Notice kind="alert">
              <ul>
                {rest.map(([field, text]) => (
                  <li key={field}>{`${field}: ${text}`}</li>
                ))}
              </ul>
            </Notice>
          ) : null}
          <div class="actions">
            <button type="submit" disabled={busy || stale}>
              Save
            </button>
          </div>
        </form>
      </section>

      <Grants clientId={id} client={client} apis={apis.data ?? []} onChanged={moveTo} />

      <section aria-labelledby="secret-heading">
        <h2 id="secret-heading">Secret</h2>
        {hasSecret ? (
          <>
            <p>Rotating issues a new secret, shown once; the current one stops working at once.</p>
            <button type="button" onClick={() => setConfirming('rotate')}>
              Rotate secret
            </button>
          </>
        ) : (
          <p>This client authenticates without a client secret.</p>
        )}
      </section>

      <section aria-labelledby="delete-heading">
        <h2 id="delete-heading">Delete</h2>
        <p>Deleting the client takes its grants and refresh tokens with it; access tokens already issued run out.</p>
        <button type="button" class="danger" onClick={() => setConfirming('delete')}>
          Delete
        </button>
      </section>

      <Confirm
        open={confirming !== null}
        title={confirming === 'rotate' ? 'Rotate the secret?' : 'Delete this client?'}
        confirmLabel={confirming === 'rotate' ? 'Rotate secret' : 'Delete'}
        danger={confirming === 'delete'}
        onConfirm={() => void (confirming === 'rotate' ? rotate() : remove())}
        onCancel={() => setConfirming(null)}
      >
        <p>
          {confirming === 'rotate'
            ? `The current secret of ${client.client_name} stops working at once.`
            : `${client.client_name}, its grants and its refresh tokens are deleted. This cannot be undone.`}
        </p>
      </Confirm>
    </>
  );
}

/** The client's grants, one API at a time: change the scopes, remove the grant, or add one. */
function Grants(props: { clientId: string; client: Client; apis: readonly GrantableApi[]; onChanged: (client: Client, etag: string | null) => void }): JSX.Element {
  const { client, apis } = props;
  const [edits, setEdits] = useState<Record<string, string[]>>({});
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [adding, setAdding] = useState<{ resource: string; scopes: string[] } | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const apiOf = (identifier: string): GrantableApi => apis.find((api) => api.identifier === identifier) ?? { id: identifier, identifier, name: null, scope: '' };
  const addable = apis.filter((api) => !client.grants.some((grant) => grant.resource === api.identifier));

  const put = async (resource: string, scopes: string[]): Promise<boolean> => {
    setStatus(null);
    try {
      const answer = await callWithEtag(
        api.PUT('/clients/{client_id}/grants/{resource}', { params: { path: { client_id: props.clientId, resource: apiOf(resource).id } }, body: { scope: scopes.join(' ') } }),
      );
      setErrors({});
      setEdits((all) => Object.fromEntries(Object.entries(all).filter(([name]) => name !== resource)));
      props.onChanged(answer.data, answer.etag);
      setStatus(`The grant at ${resource} was saved.`);
      return true;
    } catch (error) {
      const problem = error instanceof Problem ? error : undefined;
      setErrors({ [resource]: problem?.fields.scope ?? problem?.fields.resource ?? problemText(error, 'The grant could not be saved.') });
      return false;
    }
  };
  const revoke = async (resource: string) => {
    setStatus(null);
    try {
      const answer = await callWithEtag(api.DELETE('/clients/{client_id}/grants/{resource}', { params: { path: { client_id: props.clientId, resource: apiOf(resource).id } } }));
      setErrors({});
      props.onChanged(answer.data, answer.etag);
      setStatus(`The grant at ${resource} was removed.`);
    } catch (error) {
      const problem = error instanceof Problem ? error : undefined;
      setErrors({ [resource]: problem?.fields.resource ?? problemText(error, 'The grant could not be removed.') });
    }
  };

  return (
    <section aria-labelledby="grants-heading">
      <h2 id="grants-heading">Grants</h2>
      <p>The APIs this client may get tokens for, and the scopes it may ask for at each.</p>
      <p role="status" class="status">
        {status ?? ''}
      </p>
      {client.grants.length === 0 ? <p>No grants yet.</p> : null}
      {client.grants.map((grant) => {
        const resource = grant.resource;
        const known = apiOf(resource);
        const offered = known.scope ? known : { ...known, scope: grant.scope };
        const chosen = edits[resource] ?? scopesOf(grant);
        return (
          <div class="card" key={resource}>
            <h3>{apiLabel(known)}</h3>
            {client.default_resource === resource ? <p class="hint">The client’s default API.</p> : null}
            <ScopeChoices prefix="grant" api={offered} chosen={chosen} error={errors[resource]} onChange={(scopes) => setEdits({ ...edits, [resource]: scopes })} />
            <div class="actions">
              <button type="button" aria-label={`Save scopes at ${resource}`} onClick={() => void put(resource, chosen)}>
                Save scopes
              </button>
              <button type="button" class="secondary" aria-label={`Remove grant at ${resource}`} onClick={() => void revoke(resource)}>
                Remove grant
              </button>
            </div>
          </div>
        );
      })}
      {addable.length > 0 ? (
        <div class="card">
          <h3>Add a grant</h3>
          <div class="field">
            <label for="add-grant-api">API</label>
            <select
              id="add-grant-api"
              value={adding?.resource ?? ''}
              onChange={(event) => {
                const picked = addable.find((api) => api.identifier === event.currentTarget.value);
                setAdding(picked ? { resource: picked.identifier, scopes: scopesOf(picked) } : null);
              }}
            >
              <option value="">Choose an API</option>
              {addable.map((api) => (
                <option key={api.id} value={api.identifier}>
                  {apiLabel(api)}
                </option>
              ))}
            </select>
          </div>
          {adding ? (
            <ScopeChoices prefix="add-grant" api={apiOf(adding.resource)} chosen={adding.scopes} error={errors[adding.resource]} onChange={(scopes) => setAdding({ ...adding, scopes })} />
          ) : null}
          <button
            type="button"
            disabled={!adding}
            onClick={() => {
              if (adding) void put(adding.resource, adding.scopes).then((done) => done && setAdding(null));
            }}
          >
            Add grant
          </button>
        </div>
      ) : null}
    </section>
  );
}
