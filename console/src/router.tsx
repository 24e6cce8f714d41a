import type { ComponentChildren, JSX } from 'preact';
import { BASE } from './settings.js';
import { createStore, useStore } from './store.js';

/** The page shown: its path under /console ('/', '/clients', '/clients/abc') and its query. */
export interface Route {
  path: string;
  query: URLSearchParams;
}

const read = (): Route => {
  const full = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : location.pathname;
  return { path: full === '' ? '/' : full, query: new URLSearchParams(location.search) };
};

const route = createStore<Route>(read());
addEventListener('popstate', () => route.set(read()));

/** Goes to a console page ('/clients?name=x'): pushed on the history, so Back works. `replace` replaces the entry instead. */
export function navigate(to: string, options: { replace?: boolean } = {}): void {
  const url = `${BASE}${to === '/' ? '/' : to}`;
  if (options.replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  route.set(read());
}

export function useRoute(): Route {
  return useStore(route);
}

/** Matches a pattern ('/clients/:id') against a path; answers its parameters or undefined. */
export function match(pattern: string, path: string): Record<string, string> | undefined {
  const want = pattern.split('/');
  const have = path.replace(/\/$/, '').split('/');
  if (pattern === '/' && (path === '/' || path === '')) return {};
  if (want.length !== have.length) return undefined;
  const params: Record<string, string> = {};
  for (const [index, part] of want.entries()) {
    const value = have[index] ?? '';
    if (part.startsWith(':')) {
      if (value === '') return undefined;
      try {
        params[part.slice(1)] = decodeURIComponent(value);
      } catch {
        // A malformed escape (/people/%E0%A4): no such page, never a blank console.
        return undefined;
      }
    } else if (part !== value) return undefined;
  }
  return params;
}

/** A link to a console page: a real <a href> (opens in a new tab, keyboard and screen readers as usual), followed in place. */
export function Link(props: { href: string; children: ComponentChildren; class?: string; 'aria-current'?: 'page' | undefined }): JSX.Element {
  const onClick = (event: MouseEvent) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(props.href);
  };
  return (
    <a href={`${BASE}${props.href}`} class={props.class} aria-current={props['aria-current']} onClick={onClick}>
      {props.children}
    </a>
  );
}
