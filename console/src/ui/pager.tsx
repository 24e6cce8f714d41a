import type { JSX } from 'preact';

/**
 * Paging by cursor: "Next page" follows `next` (the API's next_cursor), "First page" starts again.
 * The admin API pages forwards only, so the console keeps no page numbers.
 */
export function Pager(props: { next: string | null | undefined; atStart: boolean; onNext: (cursor: string) => void; onFirst: () => void; label: string }): JSX.Element | null {
  if (!props.next && props.atStart) return null;
  return (
    <nav class="pager" aria-label={props.label}>
      <button type="button" class="secondary" disabled={props.atStart} onClick={() => props.onFirst()}>
        First page
      </button>
      <button type="button" class="secondary" disabled={!props.next} onClick={() => props.next && props.onNext(props.next)}>
        Next page
      </button>
    </nav>
  );
}
