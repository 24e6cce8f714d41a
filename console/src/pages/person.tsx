import type { ComponentChildren, JSX } from 'preact';
import { useState } from 'preact/hooks';
import type { PageProps } from '../app.js';
import { api, call, Problem } from '../api.js';
import type { components } from '../generated/admin-api.js';
import { Link, useRoute } from '../router.js';
import { Confirm } from '../ui/confirm.js';
import { Field } from '../ui/field.js';
import { ErrorNotice, Loading, Notice, PageHeading } from '../ui/page.js';
import { SecretOnce } from '../ui/secret-once.js';
import { useLoad } from '../ui/use-load.js';
import { statusOf, When } from './people.js';

type User = components['schemas']['User'];

/** An action waiting for its confirmation in the page's one dialog; `run` answers what to say once done. */
interface Pending {
  title: string;
  body: ComponentChildren;
  confirmLabel: string;
  danger?: boolean;
  run: () => Promise<string>;
}

/** What the page's sections share: the person, how to ask for a confirmation, and how to report. */
interface SectionProps {
  user: User;
  /** Bumped after every change: the sections load again. */
  version: number;
  ask: (pending: Pending) => void;
  /** Runs a change at once (no confirmation), then reports it and reloads. */
  act: (run: () => Promise<string>) => Promise<Problem | undefined>;
}

const pathOf = (id: string) => ({ params: { path: { id } } });

/** A section of the person's page, labelled by its heading. */
function Section(props: { id: string; title: string; children: ComponentChildren }): JSX.Element {
  return (
    <section aria-labelledby={props.id}>
      <h2 id={props.id}>{props.title}</h2>
      {props.children}
    </section>
  );
}

function Account(props: SectionProps): JSX.Element {
  const { user } = props;
  const toggle = () =>
    props.ask(
      user.disabled
        ? {
            title: `Enable ${user.email}?`,
            body: <p>They can sign in again, and their apps work again with the consents they gave.</p>,
            confirmLabel: 'Enable',
            run: async () => {
              await call(api.PATCH('/users/{id}', { ...pathOf(user.id), body: { disabled: false } }));
              return `${user.email} is enabled.`;
            },
          }
        : {
            title: `Disable ${user.email}?`,
            body: <p>They cannot sign in any more, every browser session of theirs ends, their apps are told, and their refresh tokens are refused until they are enabled again.</p>,
            confirmLabel: 'Disable',
            danger: true,
            run: async () => {
              await call(api.PATCH('/users/{id}', { ...pathOf(user.id), body: { disabled: true } }));
              return `${user.email} is disabled.`;
            },
          },
    );
  return (
    <Section id="person-account" title="Account">
      <dl class="facts">
        <dt>Email</dt>
        <dd>
          {user.email} {user.email_verified ? <span class="badge">verified</span> : <span class="badge">not verified</span>}
        </dd>
        <dt>Name</dt>
        <dd>{user.name ?? '—'}</dd>
        <dt>Status</dt>
        <dd>{statusOf(user)}</dd>
        <dt>Last sign-in</dt>
        <dd>
          <When at={user.last_login_at} />
        </dd>
        <dt>Created</dt>
        <dd>
          <When at={user.created_at} />
        </dd>
      </dl>
      <div class="actions">
        <button type="button" class={user.disabled ? undefined : 'danger'} onClick={toggle}>
          {user.disabled ? 'Enable' : 'Disable'}
        </button>
      </div>
    </Section>
  );
}

function Roles(props: SectionProps): JSX.Element {
  const { user } = props;
  const [admin, setAdmin] = useState(user.roles.includes('admin'));
  const [problem, setProblem] = useState<Problem | undefined>();
  const save = async (event: Event) => {
    event.preventDefault();
    setProblem(
      await props.act(async () => {
        await call(api.PATCH('/users/{id}', { ...pathOf(user.id), body: { roles: admin ? ['admin'] : [] } }));
        return admin ? `${user.email} holds the admin role.` : `${user.email} holds no role.`;
      }),
    );
  };
  const error = problem?.fields.roles ?? (problem ? problem.detail : undefined);
  return (
    <Section id="person-roles" title="Roles">
      <form onSubmit={(event) => void save(event)}>
        <fieldset>
          <legend>Roles held</legend>
          <div class={`field check${error ? ' field-invalid' : ''}`}>
            <input id="role-admin" type="checkbox" checked={admin} onChange={(event) => setAdmin(event.currentTarget.checked)} aria-describedby={error ? 'role-admin-error' : undefined} aria-invalid={error ? 'true' : undefined} />{' '}
            <label for="role-admin">admin: may use this console (with a second factor)</label>
            {error ? (
              <p class="field-error" id="role-admin-error">
                {error}
              </p>
            ) : null}
          </div>
        </fieldset>
        <button type="submit">Save roles</button>
      </form>
    </Section>
  );
}

function SecondFactor(props: SectionProps): JSX.Element {
  const { user } = props;
  const factors = useLoad(() => call(api.GET('/users/{id}/second-factors', pathOf(user.id))), [user.id, props.version]);
  const [withPasskeys, setWithPasskeys] = useState(false);
  const data = factors.data;
  const reset = () =>
    props.ask({
      title: `Reset the second factor of ${user.email}?`,
      body: (
        <p>
          Their authenticator app and recovery codes are removed{withPasskeys ? ', and every passkey' : ''}. Their next sign-in asks for the password alone, or for a new authenticator where one is required.
        </p>
      ),
      confirmLabel: 'Reset second factor',
      danger: true,
      run: async () => {
        const done = await call(api.POST('/users/{id}/second-factors/reset', { ...pathOf(user.id), body: { include_passkeys: withPasskeys } }));
        setWithPasskeys(false);
        const parts = [done.totp_removed ? 'the authenticator app' : undefined, done.recovery_codes_removed > 0 ? `${done.recovery_codes_removed} recovery codes` : undefined, done.passkeys_removed > 0 ? `${done.passkeys_removed} passkeys` : undefined].filter(Boolean);
        return parts.length > 0 ? `Removed ${parts.join(', ')}.` : 'There was nothing to remove.';
      },
    });
  return (
    <Section id="person-second-factor" title="Second factor">
      <ErrorNotice error={factors.error} />
      {!data ? (
        factors.loading ? <Loading /> : null
      ) : (
        <>
          <dl class="facts">
            <dt>Authenticator app</dt>
            <dd>{data.totp === 'active' ? 'On' : data.totp === 'pending' ? 'Being set up (not confirmed)' : 'None'}</dd>
            <dt>Recovery codes left</dt>
            <dd>{data.recovery_codes_left}</dd>
            <dt>Passkeys</dt>
            <dd>
              {data.passkeys.length === 0 ? (
                'None'
              ) : (
                <ul class="plain">
                  {data.passkeys.map((passkey) => (
                    <li key={passkey.id}>
                      {passkey.name} ({passkey.synced ? 'synced' : 'this device only'}, added <When at={passkey.created_at} />, last used <When at={passkey.last_used_at} />)
                    </li>
                  ))}
                </ul>
              )}
            </dd>
          </dl>
          <div class="field check">
            <input id="reset-passkeys" type="checkbox" checked={withPasskeys} onChange={(event) => setWithPasskeys(event.currentTarget.checked)} />{' '}
            <label for="reset-passkeys">Also remove their passkeys</label>
          </div>
          <button type="button" class="danger" onClick={reset}>
            Reset second factor
          </button>
        </>
      )}
    </Section>
  );
}

function Sessions(props: SectionProps): JSX.Element {
  const { user } = props;
  const sessions = useLoad(() => call(api.GET('/users/{id}/sessions', pathOf(user.id))), [user.id, props.version]);
  const signIns = useLoad(() => call(api.GET('/users/{id}/sign-ins', pathOf(user.id))), [user.id, props.version]);
  const everywhere = () =>
    props.ask({
      title: `Sign ${user.email} out everywhere?`,
      body: <p>Every browser session of theirs ends and every app must sign them in again (their refresh tokens are revoked); apps that asked to be told are told. Their consents stay.</p>,
      confirmLabel: 'Sign out everywhere',
      danger: true,
      run: async () => {
        const done = await call(api.DELETE('/users/{id}/sessions', pathOf(user.id)));
        return `${user.email} is signed out everywhere (${done.refresh_tokens_revoked} refresh tokens revoked).`;
      },
    });
  return (
    <Section id="person-sessions" title="Sessions">
      <ErrorNotice error={sessions.error} />
      {sessions.data ? (
        sessions.data.data.length === 0 ? (
          <p>No browser is signed in as this person.</p>
        ) : (
          <div class="table-wrap">
            <table class="stack">
              <caption>Browser sessions</caption>
              <thead>
                <tr>
                  <th scope="col">Signed in</th>
                  <th scope="col">Browser</th>
                  <th scope="col">Address</th>
                  <th scope="col">Apps</th>
                </tr>
              </thead>
              <tbody>
                {sessions.data.data.map((session) => (
                  <tr key={session.uid}>
                    <td data-label="Signed in">
                      <When at={session.signed_in_at} never="unknown" />
                    </td>
                    <td data-label="Browser">{session.user_agent ?? 'unknown'}</td>
                    <td data-label="Address">{session.ip ?? 'unknown'}</td>
                    <td data-label="Apps">{session.client_ids.join(', ') || 'none'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )
      ) : sessions.loading ? (
        <Loading />
      ) : null}
      <button type="button" class="danger" onClick={everywhere}>
        Sign out everywhere
      </button>
      <h3>Recent sign-ins</h3>
      <ErrorNotice error={signIns.error} />
      {signIns.data ? (
        signIns.data.data.length === 0 ? (
          <p>No sign-in is on record.</p>
        ) : (
          <div class="table-wrap">
            <table class="stack">
              <caption>Recent sign-ins, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">How</th>
                  <th scope="col">App</th>
                  <th scope="col">Address</th>
                </tr>
              </thead>
              <tbody>
                {signIns.data.data.map((signIn) => (
                  <tr key={`${signIn.at}-${signIn.method}`}>
                    <td data-label="When">
                      <When at={signIn.at} />
                    </td>
                    <td data-label="How">
                      {signIn.method} ({signIn.amr.join(', ')})
                    </td>
                    <td data-label="App">{signIn.client_id ?? '—'}</td>
                    <td data-label="Address">{signIn.ip ?? 'unknown'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )
      ) : null}
    </Section>
  );
}

function ConnectedApps(props: SectionProps): JSX.Element {
  const { user } = props;
  const apps = useLoad(() => call(api.GET('/users/{id}/apps', pathOf(user.id))), [user.id, props.version]);
  const remove = (app: components['schemas']['ConnectedAppList']['data'][number]) =>
    props.ask({
      title: `Remove access for ${app.client_name ?? app.client_id}?`,
      body: <p>Its consents and refresh tokens for {user.email} are deleted; it asks for their consent again at its next sign-in.</p>,
      confirmLabel: 'Remove access',
      danger: true,
      run: async () => {
        await call(api.DELETE('/users/{id}/apps/{client_id}', { params: { path: { id: user.id, client_id: app.client_id } } }));
        return `Access removed for ${app.client_name ?? app.client_id}.`;
      },
    });
  return (
    <Section id="person-apps" title="Connected apps">
      <ErrorNotice error={apps.error} />
      {apps.data ? (
        apps.data.data.length === 0 ? (
          <p>No app holds a consent of this person.</p>
        ) : (
          <div class="table-wrap">
            <table class="stack">
              <caption>Apps this person has consented to</caption>
              <thead>
                <tr>
                  <th scope="col">App</th>
                  <th scope="col">Scopes</th>
                  <th scope="col">Since</th>
                  <th scope="col">Refresh tokens</th>
                  <th scope="col">
                    <span class="visually-hidden">Action</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {apps.data.data.map((app) => (
                  <tr key={app.client_id}>
                    <td data-label="App">
                      {app.client_name ?? <em>no longer registered</em>} <span class="mono">{app.client_id}</span>
                    </td>
                    <td data-label="Scopes">
                      {app.scope}
                      {app.apis.map((granted) => (
                        <div key={granted.resource}>
                          <span class="mono">{granted.resource}</span>: {granted.scope || 'no scope'}
                        </div>
                      ))}
                    </td>
                    <td data-label="Since">
                      <When at={app.since} />
                    </td>
                    <td data-label="Refresh tokens">{app.refresh_tokens}</td>
                    <td>
                      <button type="button" class="secondary" aria-label={`Remove access for ${app.client_name ?? app.client_id}`} onClick={() => remove(app)}>
                        Remove access
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )
      ) : apps.loading ? (
        <Loading />
      ) : null}
    </Section>
  );
}

function ApiKeys(props: SectionProps): JSX.Element {
  const { user } = props;
  const keys = useLoad(() => call(api.GET('/users/{id}/api-keys', pathOf(user.id))), [user.id, props.version]);
  const resources = useLoad(() => call(api.GET('/resources', { params: { query: { limit: 200 } } })), []);
  const [label, setLabel] = useState('');
  const [resource, setResource] = useState('');
  const [scope, setScope] = useState('');
  const [created, setCreated] = useState<string | undefined>();
  const [problem, setProblem] = useState<Problem | undefined>();
  const choices = (resources.data?.data ?? []).filter((entry) => !entry.identifier.endsWith('/admin/v1'));
  const chosen = resource || choices[0]?.identifier || '';

  const create = async (event: Event) => {
    event.preventDefault();
    setCreated(undefined);
    let key: string | undefined;
    const failed = await props.act(async () => {
      const made = await call(api.POST('/users/{id}/api-keys', { ...pathOf(user.id), body: { label, resource: chosen, ...(scope.trim() ? { scope: scope.trim() } : {}) } }));
      key = made.api_key;
      return `API key “${made.label}” created.`;
    });
    setProblem(failed);
    if (!failed) {
      setCreated(key);
      setLabel('');
      setScope('');
    }
  };
  const revoke = (key: components['schemas']['ApiKeyList']['data'][number]) =>
    props.ask({
      title: `Revoke the API key “${key.label}”?`,
      body: <p>The token endpoint refuses it from now on; tokens already issued with it run out within their lifetime.</p>,
      confirmLabel: 'Revoke',
      danger: true,
      run: async () => {
        await call(api.DELETE('/users/{id}/api-keys/{keyId}', { params: { path: { id: user.id, keyId: key.id } } }));
        return `API key “${key.label}” revoked.`;
      },
    });
  const error = (field: string) => problem?.fields[field];
  return (
    <Section id="person-api-keys" title="API keys">
      <ErrorNotice error={keys.error} />
      {created ? <SecretOnce label="API key" value={created} /> : null}
      {keys.data ? (
        keys.data.data.length === 0 ? (
          <p>This person has no API key.</p>
        ) : (
          <div class="table-wrap">
            <table class="stack">
              <caption>Personal API keys</caption>
              <thead>
                <tr>
                  <th scope="col">Label</th>
                  <th scope="col">Key</th>
                  <th scope="col">API and scopes</th>
                  <th scope="col">Expires</th>
                  <th scope="col">Last used</th>
                  <th scope="col">
                    <span class="visually-hidden">Action</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {keys.data.data.map((key) => (
                  <tr key={key.id}>
                    <td data-label="Label">{key.label}</td>
                    <td data-label="Key" class="mono">{key.prefix}…</td>
                    <td data-label="API and scopes">
                      <span class="mono">{key.resource}</span> {key.scope}
                    </td>
                    <td data-label="Expires">
                      <When at={key.expires_at} never="never" />
                    </td>
                    <td data-label="Last used">
                      <When at={key.last_used_at} />
                    </td>
                    <td>
                      <button type="button" class="secondary" aria-label={`Revoke ${key.label}`} onClick={() => revoke(key)}>
                        Revoke
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )
      ) : keys.loading ? (
        <Loading />
      ) : null}
      <form onSubmit={(event) => void create(event)} aria-labelledby="new-api-key-title" noValidate>
        <h3 id="new-api-key-title">New API key</h3>
        <Field id="key-label" label="Label" error={error('label')}>
          {(input) => <input {...input} type="text" name="label" required value={label} onInput={(event) => setLabel(event.currentTarget.value)} />}
        </Field>
        <Field id="key-resource" label="API" error={error('resource')}>
          {(input) => (
            <select {...input} name="resource" value={chosen} onChange={(event) => setResource(event.currentTarget.value)}>
              {choices.map((entry) => (
                <option key={entry.identifier} value={entry.identifier}>
                  {entry.name ? `${entry.name} (${entry.identifier})` : entry.identifier}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field id="key-scope" label="Scopes (optional, space-separated)" error={error('scope')}>
          {(input) => <input {...input} type="text" name="scope" value={scope} onInput={(event) => setScope(event.currentTarget.value)} />}
        </Field>
        {problem && Object.keys(problem.fields).length === 0 ? <ErrorNotice error={problem} /> : null}
        <button type="submit" disabled={choices.length === 0}>
          Create API key
        </button>
      </form>
    </Section>
  );
}

/** One person: account (disable, enable), roles, second factor (reset), sessions (sign out everywhere), connected apps, API keys. */
export function PersonPage(props: PageProps): JSX.Element {
  const id = props.params.id ?? '';
  const route = useRoute();
  const [version, setVersion] = useState(0);
  const [message, setMessage] = useState<string | undefined>(route.query.get('created') ? 'Created.' : undefined);
  const [failure, setFailure] = useState<Problem | undefined>();
  const [pending, setPending] = useState<Pending | undefined>();
  const person = useLoad(() => call(api.GET('/users/{id}', pathOf(id))), [id, version]);

  const report = async (run: () => Promise<string>): Promise<Problem | undefined> => {
    setMessage(undefined);
    setFailure(undefined);
    try {
      setMessage(await run());
      setVersion((n) => n + 1);
      return undefined;
    } catch (caught) {
      const problem = caught instanceof Problem ? caught : new Problem(0, 'Error', 'Something went wrong.');
      return problem;
    }
  };
  const confirm = async () => {
    const action = pending;
    setPending(undefined);
    if (!action) return;
    const problem = await report(action.run);
    if (problem) setFailure(problem);
  };

  if (person.error instanceof Problem && person.error.status === 404) {
    return (
      <>
        <PageHeading>No such person</PageHeading>
        <p>
          Nobody has this id. <Link href="/people">Back to People</Link>
        </p>
      </>
    );
  }
  const user = person.data;
  const shared = user ? { user, version, ask: setPending, act: report } : undefined;
  return (
    <>
      <PageHeading>{user ? user.email : 'Person'}</PageHeading>
      <p>
        <Link href="/people">All people</Link>
      </p>
      {message ? <Notice kind="status">{message}</Notice> : null}
      {failure ? <ErrorNotice error={failure} /> : null}
      {!shared ? (
        person.loading ? (
          <Loading />
        ) : (
          <ErrorNotice error={person.error} />
        )
      ) : (
        <>
          <Account {...shared} />
          <Roles key={`${user!.id}-${user!.roles.join()}`} {...shared} />
          <SecondFactor {...shared} />
          <Sessions {...shared} />
          <ConnectedApps {...shared} />
          <ApiKeys {...shared} />
        </>
      )}
      <Confirm open={pending !== undefined} title={pending?.title ?? ''} confirmLabel={pending?.confirmLabel ?? 'Confirm'} danger={pending?.danger ?? false} onConfirm={() => void confirm()} onCancel={() => setPending(undefined)}>
        {pending?.body ?? null}
      </Confirm>
    </>
  );
}
