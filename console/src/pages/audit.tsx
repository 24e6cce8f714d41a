import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, call, Problem } from '../api.js';
import type { PageProps } from '../app.js';
import { Link, navigate, useRoute } from '../router.js';
import { AuditChain, formatTime, unlessOutage } from '../ui/audit-chain.js';
import { Field } from '../ui/field.js';
import { ErrorNotice, Loading, PageHeading } from '../ui/page.js';
import { Pager } from '../ui/pager.js';
import { useLoad } from '../ui/use-load.js';

/** The filters, as the API names them: the page's URL carries them, so a filtered page can be shared, reloaded and gone back to. */
const FILTERS = ['actor', 'action', 'entity_type', 'entity_id', 'since', 'until'] as const;
type Filter = (typeof FILTERS)[number];
type Filters = Record<Filter, string>;

const LABELS: Record<Filter, { label: string; hint: string }> = {
  actor: { label: 'Actor', hint: 'person:<id>, admin:<client id>, cli:<user>; person:* for every person' },
  action: { label: 'Action', hint: 'client.create, or client.* for every client action' },
  entity_type: { label: 'Entity type', hint: 'client, user, resource, provider…' },
  entity_id: { label: 'Entity id', hint: 'the id of the client, person, API…' },
  since: { label: 'Since', hint: 'from this time on: 2026-12-01 or 2026-12-01T09:30:00Z' },
  until: { label: 'Until', hint: 'before this time (same forms)' },
};

const PAGE_SIZE = 50;

function filtersOf(query: URLSearchParams): Filters {
  return Object.fromEntries(FILTERS.map((name) => [name, query.get(name) ?? ''])) as Filters;
}

/** The page's URL for these filters, order and cursor (empty ones left out). */
function hrefOf(filters: Filters, order: 'asc' | 'desc', cursor?: string): string {
  const query = new URLSearchParams();
  for (const name of FILTERS) if (filters[name].trim()) query.set(name, filters[name].trim());
  if (order === 'asc') query.set('order', 'asc');
  if (cursor) query.set('cursor', cursor);
  const text = query.toString();
  return text ? `/audit?${text}` : '/audit';
}

const NO_FILTERS = filtersOf(new URLSearchParams());

/** The log filtered to an entry's entity (`client:abc` → type client, id abc), or to its target as an id. */
function entityHref(target: string, order: 'asc' | 'desc'): string {
  const match = /^([a-z][a-z0-9_-]{0,63}):(.+)$/.exec(target);
  return hrefOf(match ? { ...NO_FILTERS, entity_type: match[1]!, entity_id: match[2]! } : { ...NO_FILTERS, entity_id: target }, order);
}

/** Audit log: filtered by actor, action, entity and time, newest first by default, paged; with the chain's verification. */
export function AuditPage(_props: PageProps): JSX.Element {
  const route = useRoute();
  const applied = filtersOf(route.query);
  const order = route.query.get('order') === 'asc' ? 'asc' : 'desc';
  const cursor = route.query.get('cursor') ?? undefined;
  const [form, setForm] = useState<Filters>(applied);
  const key = route.query.toString();
  // The form follows the URL (Back, a link to a filter).
  useEffect(() => setForm(filtersOf(route.query)), [key]);

  const verification = useLoad(() => call(api.GET('/audit/verification')), []);
  // Each page of rows remembers the query it answers (data-for below: what is shown is known to be current).
  const page = useLoad(async () => {
    const query: Record<string, string | number> = { order, limit: PAGE_SIZE };
    for (const name of FILTERS) if (applied[name]) query[name] = applied[name];
    if (cursor) query.cursor = cursor;
    return { key, ...(await call(api.GET('/audit', { params: { query } }))) };
  }, [key]);
  const fields = page.error instanceof Problem && page.error.status === 400 ? page.error.fields : {};

  const onSubmit = (event: Event) => {
    event.preventDefault();
    navigate(hrefOf(form, order));
  };
  const set = (name: Filter) => (event: Event) => setForm({ ...form, [name]: (event.currentTarget as HTMLInputElement).value });
  const rows = page.data?.data ?? [];

  return (
    <>
      <PageHeading>Audit log</PageHeading>
      {verification.data ? <AuditChain verification={verification.data} /> : <ErrorNotice error={unlessOutage(verification.error)} />}

      <form class="filters" onSubmit={onSubmit} aria-label="Filter the audit log" noValidate>
        <div class="filter-grid">
          {FILTERS.map((name) => (
            <Field key={name} id={`audit-${name}`} label={LABELS[name].label} hint={LABELS[name].hint} error={fields[name]}>
              {(input) => <input {...input} name={name} type="text" autocomplete="off" spellcheck={false} value={form[name]} onInput={set(name)} />}
            </Field>
          ))}
        </div>
        <div class="actions">
          <button type="submit">Filter</button>
          <button type="button" class="secondary" onClick={() => navigate(hrefOf(NO_FILTERS, order))}>
            Clear filters
          </button>
          <button type="button" class="secondary" onClick={() => navigate(hrefOf(applied, order === 'desc' ? 'asc' : 'desc'))}>
            {order === 'desc' ? 'Oldest first' : 'Newest first'}
          </button>
        </div>
      </form>

      <ErrorNotice error={unlessOutage(page.error)} />
      {page.loading && !page.data ? <Loading /> : null}
      <div class="results" aria-live="polite" aria-busy={page.loading ? 'true' : 'false'} data-for={page.data?.key ?? ''}>
      {page.data && !page.error ? (
        rows.length === 0 ? (
          <p role="status">No entries match{FILTERS.some((name) => applied[name]) ? ' these filters' : ''}.</p>
        ) : (
          <div class="table-wrap">
            <table class="audit">
              <caption>
                {rows.length} {rows.length === 1 ? 'entry' : 'entries'}, {order === 'desc' ? 'newest' : 'oldest'} first{cursor ? ' (a later page)' : ''}
              </caption>
              <thead>
                <tr>
                  <th scope="col">Entry</th>
                  <th scope="col">Actor and action</th>
                  <th scope="col">Entity</th>
                  <th scope="col">Details</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((row) => {
                  return (
                    <tr key={row.seq}>
                      <td>
                        <span class="seq">{row.seq}</span>
                        <time class="block" dateTime={row.at}>
                          {formatTime(row.at)}
                        </time>
                      </td>
                      <td class="mono">
                        <Link class="actor" href={hrefOf({ ...NO_FILTERS, actor: row.actor }, order)}>
                          {row.actor}
                        </Link>
                        <span class="action block">{row.action}</span>
                      </td>
                      <td class="mono target">{row.target ? <Link href={entityHref(row.target, order)}>{row.target}</Link> : '–'}</td>
                      <td>
                        <details>
                          <summary>
                            Details<span class="visually-hidden"> of entry {row.seq}</span>
                          </summary>
                          <dl class="facts">
                            <dt>From</dt>
                            <dd>{row.ip ?? '–'}</dd>
                            <dt>Request</dt>
                            <dd class="mono">{row.request_id ?? '–'}</dd>
                          </dl>
                          <pre class="json">{JSON.stringify(row.details, null, 2)}</pre>
                        </details>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )
      ) : null}
      </div>
      <Pager
        label="Audit log pages"
        next={page.error ? null : page.data?.next_cursor}
        atStart={!cursor}
        onNext={(next) => navigate(hrefOf(applied, order, next))}
        onFirst={() => navigate(hrefOf(applied, order))}
      />
    </>
  );
}
