import type { ComponentType, JSX } from 'preact';
import { useEffect } from 'preact/hooks';
import { api, call, outage, Problem, retryAll } from './api.js';
import { authState, signIn, signOut } from './auth.js';
import { Link, match, useRoute } from './router.js';
import { useStore } from './store.js';
import { Loading, Notice, PageHeading } from './ui/page.js';
import { useLoad } from './ui/use-load.js';
import { OverviewPage } from './pages/overview.js';
import { ClientsPage } from './pages/clients.js';
import { NewClientPage } from './pages/client-new.js';
import { ClientPage } from './pages/client-detail.js';
import { ApiPage, ApisPage } from './pages/apis.js';
import { PeoplePage } from './pages/people.js';
import { PersonPage } from './pages/person.js';
import { ProvidersPage } from './pages/providers.js';
import { KeysPage } from './pages/keys.js';
import { AuditPage } from './pages/audit.js';

/** A page of the console: its parameters from the path (':id'). */
export type PageProps = { params: Record<string, string> };

/** The navigation, in order: the label is the page's heading. */
const NAV: ReadonlyArray<{ href: string; label: string }> = [
  { href: '/', label: 'Overview' },
  { href: '/clients', label: 'Clients' },
  { href: '/apis', label: 'APIs' },
  { href: '/people', label: 'People' },
  { href: '/providers', label: 'Upstream providers' },
  { href: '/keys', label: 'Signing keys' },
  { href: '/audit', label: 'Audit log' },
];

/** Path pattern → page. One line per page; more specific patterns first. */
const PAGES: ReadonlyArray<[string, ComponentType<PageProps>]> = [
  ['/', OverviewPage],
  ['/clients', ClientsPage],
  ['/clients/new', NewClientPage],
  ['/clients/:id', ClientPage],
  ['/apis/:id', ApiPage],
  ['/apis', ApisPage],
  ['/people', PeoplePage],
  ['/people/:id', PersonPage],
  ['/providers', ProvidersPage],
  ['/keys', KeysPage],
  ['/audit', AuditPage],
];

function NotFound(): JSX.Element {
  return (
    <>
      <PageHeading>Page not found</PageHeading>
      <p>
        There is no such page in the console. <Link href="/">Go to the overview</Link>.
      </p>
    </>
  );
}

/** The outage banner: the API cannot be reached; Retry loads the page's data again. Never a blank page. */
function OutageBanner(): JSX.Element | null {
  const message = useStore(outage);
  if (!message) return null;
  return (
    <Notice kind="alert" class="outage">
      <p>{message} What you see may be out of date; nothing you did was lost.</p>
      <button type="button" onClick={() => retryAll()}>
        Retry
      </button>
    </Notice>
  );
}

/** The header's "signed in as" and the sign-out button. */
function Account(props: { email: string | undefined }): JSX.Element {
  return (
    <div class="account">
      {props.email ? <span class="who">Signed in as {props.email}</span> : null}
      <button type="button" class="secondary" onClick={() => void signOut()}>
        Sign out
      </button>
    </div>
  );
}

/** 403: signed in, but without the admin role. */
function Forbidden(): JSX.Element {
  return (
    <main id="main" class="narrow">
      <PageHeading>No access to the console</PageHeading>
      <p>You are signed in, but you do not hold the admin role. An administrator can give it to you (People, or <code>gatehouse users set-roles ID --role admin</code>).</p>
      <button type="button" onClick={() => void signOut()}>
        Sign out
      </button>
    </main>
  );
}

function SignedOut(props: { reason: 'idle' | 'signed-out' | 'expired' }): JSX.Element {
  const message =
    props.reason === 'idle'
      ? 'You were signed out of the console after a while without activity.'
      : props.reason === 'expired'
        ? 'Your console session has ended.'
        : 'You are signed out of the console.';
  return (
    <main id="main" class="narrow">
      <PageHeading>Signed out</PageHeading>
      <p>{message}</p>
      <button type="button" onClick={() => void signIn('/console/', props.reason !== 'signed-out')}>
        Sign in again
      </button>
    </main>
  );
}

/** The signed-in console: skip link, header with the navigation, the page, the outage banner. */
function Shell(): JSX.Element {
  const route = useRoute();
  const me = useLoad(() => call(api.GET('/me')), []);
  useEffect(() => window.scrollTo(0, 0), [route.path]);
  if (me.error instanceof Problem && me.error.status === 403) return <Forbidden />;
  const found = PAGES.map(([pattern, page]) => ({ page, params: match(pattern, route.path) })).find((entry) => entry.params !== undefined);
  const Page = found?.page;
  const section = NAV.slice(1).find((item) => route.path === item.href || route.path.startsWith(`${item.href}/`))?.href ?? (route.path === '/' ? '/' : undefined);
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Gatehouse console</span>
        <Account email={me.data?.person?.email} />
      </header>
      <div class="layout">
        <nav aria-label="Console">
          <ul>
            {NAV.map((item) => (
              <li key={item.href}>
                <Link href={item.href} aria-current={section === item.href ? 'page' : undefined}>
                  {item.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <main id="main" tabIndex={-1}>
          <OutageBanner />
          {me.loading && !me.data ? <Loading /> : Page && found ? <Page params={found.params ?? {}} /> : <NotFound />}
        </main>
      </div>
    </>
  );
}

/** The console: signing in, then the shell; or why it cannot show anything. */
export function App(): JSX.Element {
  const state = useStore(authState);
  switch (state.status) {
    case 'starting':
      return (
        <main id="main" class="narrow">
          <Loading />
        </main>
      );
    case 'failed':
      return (
        <main id="main" class="narrow">
          <PageHeading>The sign-in did not work</PageHeading>
          <Notice kind="alert">{state.message}</Notice>
          <button type="button" onClick={() => void signIn('/console/')}>
            Try again
          </button>
        </main>
      );
    case 'signed-out':
      return <SignedOut reason={state.reason} />;
    case 'signed-in':
      return <Shell />;
  }
}
