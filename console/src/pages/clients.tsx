import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import type { PageProps } from '../app.js';
import { api, call } from '../api.js';
import { Link, navigate, useRoute } from '../router.js';
import { Field } from '../ui/field.js';
import { ErrorNotice, Loading, PageHeading } from '../ui/page.js';
import { Pager } from '../ui/pager.js';
import { useLoad } from '../ui/use-load.js';
import { AUTH_METHOD_LABELS, GRANT_TYPE_LABELS, type AuthMethod, type GrantType } from './client-form-rules.js';

const PAGE_SIZE = 20;

/** A grant type's short name (its label without the explanation in brackets). */
const grantLabel = (grant: string) => (GRANT_TYPE_LABELS[grant as GrantType] ?? grant).replace(/ \(.*\)$/, '');
const methodLabel = (method: string) => (AUTH_METHOD_LABELS[method as AuthMethod] ?? method).replace(/ \(.*\)$/, '');

/** Clients: a search box (part of a name, or a whole client ID), one page at a time, and "New client". */
export function ClientsPage(_props: PageProps): JSX.Element {
  const route = useRoute();
  const search = route.query.get('q') ?? '';
  const [typed, setTyped] = useState(search);
  const [cursor, setCursor] = useState<string | undefined>(undefined);
  const page = useLoad(
    () => call(api.GET('/clients', { params: { query: { limit: PAGE_SIZE, ...(search ? { q: search } : {}), ...(cursor ? { cursor } : {}) } } })),
    [search, cursor],
  );
  // Rows of the previous search stay hidden while this one loads: what is listed always matches the caption.
  const shown = page.loading ? undefined : page.data;
  const clients = shown?.data ?? [];

  return (
    <>
      <PageHeading
        actions={
          <button type="button" onClick={() => navigate('/clients/new')}>
            New client
          </button>
        }
      >
        Clients
      </PageHeading>
      <form
        class="search"
        role="search"
        aria-label="Clients"
        onSubmit={(event) => {
          event.preventDefault();
          setCursor(undefined);
          const q = typed.trim();
          navigate(q ? `/clients?q=${encodeURIComponent(q)}` : '/clients', { replace: true });
        }}
      >
        <Field id="clients-search" label="Search by name or client ID">
          {(input) => <input {...input} type="search" name="q" value={typed} onInput={(event) => setTyped(event.currentTarget.value)} />}
        </Field>
        <button type="submit">Search</button>
      </form>
      <ErrorNotice error={page.error} />
      {page.loading ? <Loading /> : null}
      {shown && clients.length === 0 ? <p>{search ? `No client matches “${search}”.` : 'No clients yet.'}</p> : null}
      {clients.length > 0 ? (
        <div class="table-wrap">
          <table class="clients-table">
            <caption>{search ? `Clients matching “${search}”` : 'All clients, by client ID'}</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Client ID</th>
                <th scope="col" class="wide-only">
                  Grant types
                </th>
                <th scope="col" class="wide-only">
                  Authentication
                </th>
              </tr>
            </thead>
            <tbody>
              {clients.map((client) => (
                <tr key={client.client_id}>
                  <td>
                    <Link href={`/clients/${encodeURIComponent(client.client_id)}`}>{client.client_name}</Link>
                    {client.profile === 'fapi2' ? <span class="badge">FAPI 2.0</span> : null}
                  </td>
                  <td>
                    <code>{client.client_id}</code>
                  </td>
                  <td class="wide-only">{client.grant_types.map(grantLabel).join(', ')}</td>
                  <td class="wide-only">{methodLabel(client.token_endpoint_auth_method)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <Pager label="Pages of clients" next={shown?.next_cursor} atStart={cursor === undefined} onNext={setCursor} onFirst={() => setCursor(undefined)} />
    </>
  );
}
