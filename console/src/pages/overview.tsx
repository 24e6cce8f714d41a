import type { JSX } from 'preact';
import { api, call } from '../api.js';
import type { PageProps } from '../app.js';
import { Link } from '../router.js';
import { AuditChain, formatAge, formatTime, unlessOutage } from '../ui/audit-chain.js';
import { ErrorNotice, Loading, PageHeading } from '../ui/page.js';
import { useLoad } from '../ui/use-load.js';

/** One figure of the overview: the number and what it counts, with a link to its page. */
function Figure(props: { value: number; label: string; href?: string; note?: string }): JSX.Element {
  return (
    <li>
      <span class="figure">{props.value.toLocaleString()}</span> {props.href ? <Link href={props.href}>{props.label}</Link> : props.label}
      {props.note ? <span class="hint block">{props.note}</span> : null}
    </li>
  );
}

/** Overview: the registry's counts, the signing keys' ages, tokens issued in the last hour, the audit chain's status. */
export function OverviewPage(_props: PageProps): JSX.Element {
  const { data, error, loading } = useLoad(() => call(api.GET('/overview')), []);
  const keys = data?.signing_keys;
  const tokens = data?.tokens_last_hour;
  return (
    <>
      <PageHeading>Overview</PageHeading>
      <ErrorNotice error={unlessOutage(error)} />
      {loading && !data ? <Loading /> : null}
      {data && keys && tokens ? (
        <>
          <h2>Registry</h2>
          <ul class="cards" aria-label="Registry">
            <Figure value={data.counts.clients} label="Clients" href="/clients" />
            <Figure value={data.counts.apis} label="APIs" href="/apis" />
            <Figure value={data.counts.people} label="People" href="/people" note={data.counts.people_disabled > 0 ? `${data.counts.people_disabled.toLocaleString()} disabled` : undefined} />
            <Figure value={data.counts.upstream_providers} label="Upstream providers" href="/providers" />
          </ul>

          <h2>Tokens issued</h2>
          <ul class="cards" aria-label="Tokens issued">
            <Figure
              value={tokens.count}
              label={tokens.window_seconds >= 3600 ? 'in the last hour' : `since the server started, ${formatAge(tokens.window_seconds)} ago`}
              note="Counted by the server that answered, from its metrics: with several servers, each counts its own."
            />
          </ul>

          <h2>Signing keys</h2>
          <dl class="facts">
            <dt>Signing with</dt>
            <dd>
              {keys.newest_active ? (
                <>
                  <code>{keys.newest_active.kid}</code> ({keys.newest_active.alg}), made {formatAge(keys.newest_active.age_seconds)} ago, {formatTime(keys.newest_active.created_at)}
                </>
              ) : (
                'no active key'
              )}
            </dd>
            <dt>Oldest active key</dt>
            <dd>{keys.oldest_active_age_seconds === null ? '–' : `${formatAge(keys.oldest_active_age_seconds)} old`}</dd>
            <dt>Keys</dt>
            <dd>
              {keys.active} active, {keys.pending} waiting to sign, {keys.retired} retired · <Link href="/keys">Signing keys</Link>
            </dd>
          </dl>

          <h2>Audit log</h2>
          <AuditChain verification={data.audit_chain} />
          <p>
            <Link href="/audit">Read the audit log</Link>
          </p>
        </>
      ) : null}
    </>
  );
}
