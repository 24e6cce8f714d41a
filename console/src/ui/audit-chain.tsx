import type { JSX } from 'preact';
import { Problem } from '../api.js';
import type { components } from '../generated/admin-api.js';
import { Notice } from './page.js';

type Verification = components['schemas']['AuditVerification'];

/** A load's error to show on the page: none when the outage banner already says it (unreachable, 502/503/504). */
export function unlessOutage(error: unknown): unknown {
  return error instanceof Problem && [0, 502, 503, 504].includes(error.status) ? undefined : error;
}

/** A time as people read it here: the browser's locale and zone, to the second. */
export function formatTime(iso: string): string {
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

/** An age in words: "4 minutes", "3 hours", "12 days". */
export function formatAge(seconds: number): string {
  const units: Array<[number, string]> = [
    [86_400, 'day'],
    [3600, 'hour'],
    [60, 'minute'],
  ];
  for (const [size, name] of units) {
    if (seconds >= size) {
      const n = Math.floor(seconds / size);
      return `${n} ${name}${n === 1 ? '' : 's'}`;
    }
  }
  return 'less than a minute';
}

/**
 * The audit chain's verification as the server last made it: verified (how many rows, up to which),
 * broken (where and why: an alert), or still running (this node's first check).
 */
export function AuditChain(props: { verification: Verification }): JSX.Element {
  const v = props.verification;
  const checked = (
    <p class="hint">
      Checked {formatTime(v.checked_at)} ({v.mode === 'full' ? 'every row recomputed' : `rows since the last check; every row recomputed ${formatTime(v.full_check_at)}`}), on the server that answered.
    </p>
  );
  if (v.ok === true) {
    return (
      <Notice kind="status" class="chain chain-ok">
        <p>
          <strong>Audit chain verified.</strong>{' '}
          {v.head ? `All ${v.rows.toLocaleString()} entries check out, up to entry ${v.head.seq} of ${formatTime(v.head.at)}.` : 'The log is empty.'}
        </p>
        {checked}
      </Notice>
    );
  }
  if (v.ok === false) {
    return (
      <Notice kind="alert" class="chain chain-broken">
        <p>
          <strong>Audit chain broken at entry {v.broken_at}.</strong> {v.reason}
        </p>
        {checked}
      </Notice>
    );
  }
  return (
    <Notice kind="status" class="chain">
      <p>The audit chain is still being verified (the first check since the server started). Reload the page in a moment.</p>
    </Notice>
  );
}
