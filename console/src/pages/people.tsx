import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import type { PageProps } from '../app.js';
import { api, call, Problem } from '../api.js';
import type { components } from '../generated/admin-api.js';
import { Link, navigate, useRoute } from '../router.js';
import { Field } from '../ui/field.js';
import { ErrorNotice, Loading, PageHeading } from '../ui/page.js';
import { Pager } from '../ui/pager.js';
import { useLoad } from '../ui/use-load.js';

type User = components['schemas']['User'];

/** How many people one page lists. */
const PAGE_SIZE = 20;

/** A time as the console shows it: UTC to the minute, the exact instant in <time datetime>. */
export function When(props: { at: string | null | undefined; never?: string }): JSX.Element {
  if (!props.at) return <span>{props.never ?? 'never'}</span>;
  return <time dateTime={props.at}>{`${props.at.slice(0, 16).replace('T', ' ')} UTC`}</time>;
}

/** The person's state in words: disabled, or active. */
export function statusOf(user: Pick<User, 'disabled'>): string {
  return user.disabled ? 'Disabled' : 'Active';
}

/** The form that creates a person: email, name, a first password, and whether they are an administrator. */
function NewPerson(props: { onCancel: () => void }): JSX.Element {
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [admin, setAdmin] = useState(false);
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<Problem | undefined>();
  const error = (field: string) => problem?.fields[field];

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setProblem(undefined);
    try {
      const body = { email, password, ...(name.trim() === '' ? {} : { name }), roles: admin ? ['admin' as const] : [] };
      const created = await call(api.POST('/users', { body }));
      navigate(`/people/${encodeURIComponent(created.id)}?created=1`);
    } catch (caught) {
      setProblem(caught instanceof Problem ? caught : new Problem(0, 'Error', 'Something went wrong.'));
      setBusy(false);
    }
  };

  const unplaced = problem && Object.keys(problem.fields).filter((field) => !['email', 'name', 'password', 'roles'].includes(field));
  return (
    <form class="new-person" onSubmit={(event) => void submit(event)} aria-labelledby="new-person-title" noValidate>
      <h2 id="new-person-title">New person</h2>
      {problem && (Object.keys(problem.fields).length === 0 || (unplaced && unplaced.length > 0)) ? <ErrorNotice error={problem} /> : null}
      <Field id="new-email" label="Email" error={error('email')}>
        {(input) => <input {...input} type="email" name="email" autoComplete="off" required value={email} onInput={(event) => setEmail(event.currentTarget.value)} />}
      </Field>
      <Field id="new-name" label="Name (optional)" error={error('name')}>
        {(input) => <input {...input} type="text" name="name" autoComplete="off" value={name} onInput={(event) => setName(event.currentTarget.value)} />}
      </Field>
      <Field id="new-password" label="Password" error={error('password')} hint="At least 12 characters, not a known breached password. The person can change it on their account page.">
        {(input) => <input {...input} type="password" name="password" autoComplete="new-password" required value={password} onInput={(event) => setPassword(event.currentTarget.value)} />}
      </Field>
      <div class={`field check${error('roles') ? ' field-invalid' : ''}`}>
        <input id="new-admin" type="checkbox" checked={admin} onChange={(event) => setAdmin(event.currentTarget.checked)} aria-describedby={error('roles') ? 'new-admin-error' : undefined} />{' '}
        <label for="new-admin">Administrator (the admin role: may use this console)</label>
        {error('roles') ? (
          <p class="field-error" id="new-admin-error">
            {error('roles')}
          </p>
        ) : null}
      </div>
      <div class="actions">
        <button type="submit" disabled={busy}>
          Create
        </button>
        <button type="button" class="secondary" onClick={() => props.onCancel()}>
          Cancel
        </button>
      </div>
    </form>
  );
}

/** People: everyone who can sign in, a page at a time, searched by email; a new person. */
export function PeoplePage(_props: PageProps): JSX.Element {
  const route = useRoute();
  const email = route.query.get('email') ?? '';
  const cursor = route.query.get('cursor') ?? '';
  const [search, setSearch] = useState(email);
  const [creating, setCreating] = useState(false);
  const list = useLoad(
    () => call(api.GET('/users', { params: { query: { limit: PAGE_SIZE, ...(email ? { email } : {}), ...(cursor ? { cursor } : {}) } } })),
    [email, cursor],
  );
  const go = (query: { email?: string; cursor?: string }) => {
    const params = new URLSearchParams();
    if (query.email) params.set('email', query.email);
    if (query.cursor) params.set('cursor', query.cursor);
    const text = params.toString();
    navigate(`/people${text ? `?${text}` : ''}`);
  };
  const searchError = list.error instanceof Problem ? list.error.fields.email : undefined;

  return (
    <>
      <PageHeading
        actions={
          creating ? null : (
            <button type="button" onClick={() => setCreating(true)}>
              New person
            </button>
          )
        }
      >
        People
      </PageHeading>
      {creating ? <NewPerson onCancel={() => setCreating(false)} /> : null}
      <form
        class="search"
        role="search"
        aria-label="People"
        onSubmit={(event) => {
          event.preventDefault();
          go({ email: search.trim() });
        }}
      >
        <Field id="people-search" label="Search by email" error={searchError}>
          {(input) => <input {...input} type="search" name="email" value={search} onInput={(event) => setSearch(event.currentTarget.value)} />}
        </Field>
        <button type="submit">Search</button>
      </form>
      {list.error && !searchError ? <ErrorNotice error={list.error} /> : null}
      {list.loading && !list.data ? <Loading /> : null}
      {list.data ? (
        list.data.data.length === 0 ? (
          <p>{email ? `Nobody's email contains “${email}”.` : 'Nobody can sign in yet.'}</p>
        ) : (
          <div class="table-wrap">
            <table class="stack">
              <caption>{email ? `People whose email contains “${email}”` : 'Everyone who can sign in'}</caption>
              <thead>
                <tr>
                  <th scope="col">Email</th>
                  <th scope="col">Name</th>
                  <th scope="col">Roles</th>
                  <th scope="col">Status</th>
                  <th scope="col">Last sign-in</th>
                </tr>
              </thead>
              <tbody>
                {list.data.data.map((user) => (
                  <tr key={user.id}>
                    <td data-label="Email">
                      <Link href={`/people/${encodeURIComponent(user.id)}`}>{user.email}</Link>
                    </td>
                    <td data-label="Name">{user.name ?? ''}</td>
                    <td data-label="Roles">{user.roles.join(', ') || 'none'}</td>
                    <td data-label="Status">{statusOf(user)}</td>
                    <td data-label="Last sign-in">
                      <When at={user.last_login_at} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )
      ) : null}
      <Pager label="Pages of people" next={list.data?.next_cursor} atStart={cursor === ''} onNext={(next) => go({ email, cursor: next })} onFirst={() => go({ email })} />
    </>
  );
}
