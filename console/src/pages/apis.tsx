import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, call, Problem } from '../api.js';
import type { PageProps } from '../app.js';
import type { components } from '../generated/admin-api.js';
import { Link, navigate } from '../router.js';
import { Confirm } from '../ui/confirm.js';
import { Field } from '../ui/field.js';
import { Pager } from '../ui/pager.js';
import { ErrorNotice, Loading, Notice, PageHeading } from '../ui/page.js';
import { useLoad } from '../ui/use-load.js';

type Resource = components['schemas']['Resource'];

/** What a number field holds, as the API takes it: a number when it reads as one, else the text (the API names what is wrong). */
function numberValue(text: string): number {
  const trimmed = text.trim();
  return (/^-?\d+(\.\d+)?$/.test(trimmed) ? Number(trimmed) : trimmed) as number;
}

/** "10 min", "1 h", "90 s": a token lifetime for people. */
function lifetime(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

const apiPath = (resource: Pick<Resource, 'id'>) => `/apis/${encodeURIComponent(resource.id)}`;

/** APIs (resource servers): search, page through, and register a new one. */
export function ApisPage(_props: PageProps): JSX.Element {
  const [filter, setFilter] = useState('');
  const [query, setQuery] = useState({ filter: '', cursors: [] as string[] });
  const cursor = query.cursors.at(-1);
  const list = useLoad(() => call(api.GET('/resources', { params: { query: { limit: 50, ...(query.filter ? { filter: query.filter } : {}), ...(cursor ? { cursor } : {}) } } })), [query]);
  const [form, setForm] = useState({ identifier: '', name: '', scope: '', access_token_ttl: '600' });
  const [problem, setProblem] = useState<Problem | undefined>();
  const [busy, setBusy] = useState(false);

  const create = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    try {
      const created = await call(
        api.POST('/resources', {
          body: {
            identifier: form.identifier.trim(),
            ...(form.name.trim() ? { name: form.name.trim() } : {}),
            scope: form.scope.trim().split(/\s+/).filter(Boolean).join(' '),
            ...(form.access_token_ttl.trim() ? { access_token_ttl: numberValue(form.access_token_ttl) } : {}),
          },
        }),
      );
      navigate(`${apiPath(created)}?created=1`);
    } catch (error) {
      setProblem(error instanceof Problem ? error : new Problem(0, 'error', 'The API could not be created.'));
    } finally {
      setBusy(false);
    }
  };
  const set = (name: keyof typeof form) => (event: Event) => setForm({ ...form, [name]: (event.currentTarget as HTMLInputElement).value });
  const fields = problem?.fields ?? {};

  return (
    <>
      <PageHeading>APIs</PageHeading>
      <p>The APIs (resource servers) Gatehouse issues access tokens for, the scopes each offers and how long its tokens live.</p>
      <form
        class="search"
        role="search"
        onSubmit={(event) => {
          event.preventDefault();
          setQuery({ filter: filter.trim(), cursors: [] });
        }}
      >
        <Field id="apis-filter" label="Search by identifier or name">
          {(input) => <input {...input} type="search" name="filter" value={filter} onInput={(event) => setFilter(event.currentTarget.value)} />}
        </Field>
        <button type="submit" class="secondary">
          Search
        </button>
      </form>
      <ErrorNotice error={list.error} />
      {list.loading && !list.data ? <Loading /> : null}
      {list.data && list.data.data.length === 0 ? <p>No API matches.</p> : null}
      {list.data && list.data.data.length > 0 ? (
        <div class="table-wrap">
          <table class="stack">
            <caption>APIs</caption>
            <thead>
              <tr>
                <th scope="col">API</th>
                <th scope="col">Scopes</th>
                <th scope="col">Token lifetime</th>
              </tr>
            </thead>
            <tbody>
              {list.data.data.map((resource) => (
                <tr key={resource.id}>
                  <td>
                    <Link href={apiPath(resource)}>{resource.name ?? resource.identifier}</Link>
                    {resource.name ? (
                      <>
                        <br />
                        <span class="mono">{resource.identifier}</span>
                      </>
                    ) : null}
                  </td>
                  <td class="mono" data-label="Scopes">
                    {resource.scope || '—'}
                  </td>
                  <td data-label="Token lifetime">{lifetime(resource.access_token_ttl)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <Pager
        label="APIs pages"
        next={list.data?.next_cursor}
        atStart={query.cursors.length === 0}
        onNext={(next) => setQuery({ ...query, cursors: [...query.cursors, next] })}
        onFirst={() => setQuery({ ...query, cursors: [] })}
      />

      <h2>New API</h2>
      {problem && Object.keys(fields).length === 0 ? <ErrorNotice error={problem} /> : null}
      <form noValidate onSubmit={(event) => void create(event)}>
        <Field id="api-identifier" label="Identifier" hint="The API's URL, as clients name it in the resource parameter (https://api.example.com)." error={fields.identifier}>
          {(input) => <input {...input} name="identifier" type="url" required autoComplete="off" value={form.identifier} onInput={set('identifier')} />}
        </Field>
        <Field id="api-name" label="Name (optional)" error={fields.name}>
          {(input) => <input {...input} name="name" autoComplete="off" value={form.name} onInput={set('name')} />}
        </Field>
        <Field id="api-scope" label="Scopes" hint="Separated by spaces: read:orders write:orders." error={fields.scope}>
          {(input) => <input {...input} name="scope" autoComplete="off" value={form.scope} onInput={set('scope')} />}
        </Field>
        <Field id="api-ttl" label="Access token lifetime (seconds)" hint="1 to 86400." error={fields.access_token_ttl}>
          {(input) => <input {...input} name="access_token_ttl" inputMode="numeric" autoComplete="off" value={form.access_token_ttl} onInput={set('access_token_ttl')} />}
        </Field>
        <button type="submit" disabled={busy}>
          Create
        </button>
      </form>
    </>
  );
}

/** One API: its facts, its scopes and token lifetime (editable), the grants clients hold there, and deleting it. */
export function ApiPage(props: PageProps): JSX.Element {
  const id = props.params.id ?? '';
  const resource = useLoad(() => call(api.GET('/resources/{id}', { params: { path: { id } } })), [id]);
  const [grantsCursors, setGrantsCursors] = useState<string[]>([]);
  const grantsCursor = grantsCursors.at(-1);
  const grants = useLoad(
    () => call(api.GET('/resources/{id}/grants', { params: { path: { id }, query: { limit: 50, ...(grantsCursor ? { cursor: grantsCursor } : {}) } } })),
    [id, grantsCursor],
  );
  const [form, setForm] = useState({ name: '', scope: '', access_token_ttl: '' });
  const [problem, setProblem] = useState<Problem | undefined>();
  const [done, setDone] = useState<string | undefined>(new URLSearchParams(location.search).has('created') ? 'The API was created.' : undefined);
  const [busy, setBusy] = useState(false);
  // One confirmation at a time: taking a client's grant away, or deleting the API.
  const [asking, setAsking] = useState<{ kind: 'grant'; grant: components['schemas']['ResourceGrantPage']['data'][number] } | { kind: 'delete' } | undefined>();
  const [actionError, setActionError] = useState<unknown>();

  // The "created" mark is said once: a reload or a shared link does not say it again.
  useEffect(() => {
    if (new URLSearchParams(location.search).has('created')) navigate(`/apis/${encodeURIComponent(id)}`, { replace: true });
  }, [id]);
  useEffect(() => {
    const loaded = resource.data;
    if (loaded) setForm({ name: loaded.name ?? '', scope: loaded.scope, access_token_ttl: String(loaded.access_token_ttl) });
  }, [resource.data]);

  const save = async (event: Event) => {
    event.preventDefault();
    const loaded = resource.data;
    if (!loaded) return;
    setBusy(true);
    setDone(undefined);
    try {
      const scope = form.scope.trim().split(/\s+/).filter(Boolean).join(' ');
      const body: components['schemas']['ResourceUpdate'] = {
        ...(form.name.trim() !== (loaded.name ?? '') ? { name: form.name.trim() || null } : {}),
        ...(scope !== loaded.scope ? { scope } : {}),
        ...(form.access_token_ttl.trim() !== String(loaded.access_token_ttl) ? { access_token_ttl: numberValue(form.access_token_ttl) } : {}),
      };
      await call(api.PATCH('/resources/{id}', { params: { path: { id } }, body }));
      setProblem(undefined);
      setDone('Saved.');
      resource.reload();
      grants.reload();
    } catch (error) {
      setProblem(error instanceof Problem ? error : new Problem(0, 'error', 'The API could not be saved.'));
    } finally {
      setBusy(false);
    }
  };

  const removeGrant = async (grant: components['schemas']['ResourceGrantPage']['data'][number]) => {
    const loaded = resource.data;
    if (!loaded) return;
    try {
      await call(api.DELETE('/clients/{client_id}/grants/{resource}', { params: { path: { client_id: grant.client_id, resource: loaded.id } } }));
      setActionError(undefined);
      setDone(`${grant.client_name} no longer holds a grant here.`);
      grants.reload();
    } catch (error) {
      setActionError(error);
    }
  };

  const remove = async () => {
    try {
      await call(api.DELETE('/resources/{id}', { params: { path: { id } } }));
      navigate('/apis');
    } catch (error) {
      setActionError(error);
    }
  };

  const set = (name: keyof typeof form) => (event: Event) => setForm({ ...form, [name]: (event.currentTarget as HTMLInputElement).value });
  const fields = problem?.fields ?? {};
  const loaded = resource.data;
  if (!loaded) {
    return (
      <>
        <PageHeading>API</PageHeading>
        <ErrorNotice error={resource.error} />
        {resource.loading ? <Loading /> : null}
        <p>
          <Link href="/apis">All APIs</Link>
        </p>
      </>
    );
  }
  return (
    <>
      <p>
        <Link href="/apis">All APIs</Link>
      </p>
      <PageHeading
        actions={
          <button type="button" class="danger" onClick={() => setAsking({ kind: 'delete' })}>
            Delete
          </button>
        }
      >
        {loaded.name ?? loaded.identifier}
      </PageHeading>
      {done ? <Notice kind="status">{done}</Notice> : null}
      <ErrorNotice error={actionError} />
      <dl class="facts">
        <dt>Identifier</dt>
        <dd class="mono">{loaded.identifier}</dd>
        <dt>ID</dt>
        <dd class="mono">{loaded.id}</dd>
        <dt>Created</dt>
        <dd>{new Date(loaded.created_at).toLocaleString()}</dd>
      </dl>

      <h2>Settings</h2>
      {problem && Object.keys(fields).length === 0 ? <ErrorNotice error={problem} /> : null}
      <form noValidate onSubmit={(event) => void save(event)}>
        <Field id="api-name" label="Name" error={fields.name}>
          {(input) => <input {...input} name="name" autoComplete="off" value={form.name} onInput={set('name')} />}
        </Field>
        <Field id="api-scope" label="Scopes" hint="Separated by spaces. A scope taken away here is taken from every client's grant too." error={fields.scope}>
          {(input) => <input {...input} name="scope" autoComplete="off" value={form.scope} onInput={set('scope')} />}
        </Field>
        <Field id="api-ttl" label="Access token lifetime (seconds)" hint="1 to 86400; tokens already issued keep theirs." error={fields.access_token_ttl}>
          {(input) => <input {...input} name="access_token_ttl" inputMode="numeric" autoComplete="off" value={form.access_token_ttl} onInput={set('access_token_ttl')} />}
        </Field>
        <button type="submit" disabled={busy}>
          Save
        </button>
      </form>

      <h2>Grants held by clients</h2>
      <ErrorNotice error={grants.error} />
      {grants.data && grants.data.data.length === 0 ? <p>No client holds a grant at this API.</p> : null}
      {grants.data && grants.data.data.length > 0 ? (
        <div class="table-wrap">
          <table class="stack">
            <caption>Clients that may get tokens for this API, and the scopes each may ask for</caption>
            <thead>
              <tr>
                <th scope="col">Client</th>
                <th scope="col">Scopes</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {grants.data.data.map((grant) => (
                <tr key={grant.client_id} data-client={grant.client_id}>
                  <td>
                    <Link href={`/clients/${encodeURIComponent(grant.client_id)}`}>{grant.client_name}</Link>
                    <br />
                    <span class="mono">{grant.client_id}</span>
                  </td>
                  <td class="mono" data-label="Scopes">
                    {grant.scope || '(audience only)'}
                  </td>
                  <td>
                    <button type="button" class="secondary" aria-label={`Remove the grant of ${grant.client_name}`} onClick={() => setAsking({ kind: 'grant', grant })}>
                      Remove
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <Pager
        label="Grants pages"
        next={grants.data?.next_cursor}
        atStart={grantsCursors.length === 0}
        onNext={(next) => setGrantsCursors([...grantsCursors, next])}
        onFirst={() => setGrantsCursors([])}
      />

      <Confirm
        open={asking !== undefined}
        title={asking?.kind === 'grant' ? `Remove the grant of ${asking.grant.client_name}?` : `Delete ${loaded.name ?? loaded.identifier}?`}
        confirmLabel={asking?.kind === 'grant' ? 'Remove' : 'Delete'}
        danger
        onConfirm={() => {
          const confirmed = asking;
          setAsking(undefined);
          if (confirmed?.kind === 'grant') void removeGrant(confirmed.grant);
          else if (confirmed?.kind === 'delete') void remove();
        }}
        onCancel={() => setAsking(undefined)}
      >
        <p>
          {asking?.kind === 'grant'
            ? 'The client gets no more tokens for this API; tokens already issued run out.'
            : 'The API and every grant clients hold there are deleted. Tokens already issued for it run out.'}
        </p>
      </Confirm>
    </>
  );
}
