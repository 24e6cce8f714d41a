import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import { Problem } from '../api.js';

/**
 * The page's one h1. It takes the focus when the page opens (tabindex -1), so a screen reader
 * announces the new page and the keyboard starts from it, and sets the document title.
 */
export function PageHeading(props: { children: string; actions?: ComponentChildren }): JSX.Element {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${props.children} · Gatehouse console`;
    ref.current?.focus({ preventScroll: true });
  }, [props.children]);
  return (
    <div class="page-heading">
      <h1 ref={ref} tabIndex={-1}>
        {props.children}
      </h1>
      {props.actions ? <div class="actions">{props.actions}</div> : null}
    </div>
  );
}

/** A message: `status` is polite (a change done), `alert` interrupts (a failure). */
export function Notice(props: { kind: 'status' | 'alert'; children: ComponentChildren; class?: string }): JSX.Element {
  return (
    <div role={props.kind} class={`notice notice-${props.kind === 'alert' ? 'error' : 'ok'} ${props.class ?? ''}`}>
      {props.children}
    </div>
  );
}

/** What went wrong with a call, in words (the API's problem detail); nothing for no error. */
export function ErrorNotice(props: { error: unknown }): JSX.Element | null {
  if (!props.error) return null;
  const message = props.error instanceof Problem ? props.error.detail : 'Something went wrong.';
  return <Notice kind="alert">{message}</Notice>;
}

/** Shown while a page loads its data. */
export function Loading(): JSX.Element {
  return (
    <p class="loading" role="status">
      Loading…
    </p>
  );
}

/**
 * An edit refused because someone else changed the entity first (412 on If-Match): nothing was
 * overwritten; Reload reads the current version (the form's own changes are dropped).
 */
export function Stale(props: { onReload: () => void }): JSX.Element {
  return (
    <Notice kind="alert" class="stale">
      <p>This was changed by someone else since you opened it. Nothing was saved.</p>
      <button type="button" onClick={props.onReload}>
        Reload
      </button>
    </Notice>
  );
}
