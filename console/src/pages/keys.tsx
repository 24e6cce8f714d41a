import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { api, call, Problem } from '../api.js';
import type { PageProps } from '../app.js';
import type { components } from '../generated/admin-api.js';
import { Confirm } from '../ui/confirm.js';
import { Field } from '../ui/field.js';
import { ErrorNotice, Loading, Notice, PageHeading } from '../ui/page.js';
import { useLoad } from '../ui/use-load.js';

type SigningKey = components['schemas']['SigningKey'];

/** A key's age for people: "3 d 4 h", "2 h 5 min", "5 min", "40 s". */
export function formatAge(seconds: number): string {
  const days = Math.floor(seconds / 86_400);
  const hours = Math.floor((seconds % 86_400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  if (days > 0) return `${days} d ${hours} h`;
  if (hours > 0) return `${hours} h ${minutes} min`;
  if (minutes > 0) return `${minutes} min`;
  return `${seconds} s`;
}

const when = (iso: string | null): string => (iso ? new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' }) : '—');

const STATUS: Record<SigningKey['status'], string> = { active: 'Active', pending: 'Pending', retired: 'Retired' };

/** What the delay field holds, as the API takes it: a number when it reads as one, else the text (the API names what is wrong). */
function delayValue(text: string): number {
  const trimmed = text.trim();
  return (/^-?\d+(\.\d+)?$/.test(trimmed) ? Number(trimmed) : trimmed) as number;
}

/**
 * Signing keys: every key published in the JWKS with its state, whether it signs now and its age;
 * rotating makes a new key that is published at once and signs after the activation delay.
 */
export function KeysPage(_props: PageProps): JSX.Element {
  const keys = useLoad(() => call(api.GET('/keys')), []);
  const [delay, setDelay] = useState('300');
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<Problem | undefined>();
  const [done, setDone] = useState<string | undefined>();

  const rotate = async () => {
    setAsking(false);
    setBusy(true);
    setDone(undefined);
    try {
      const rotated = await call(api.POST('/keys/rotate', { body: { activate_in: delayValue(delay) } }));
      setProblem(undefined);
      const from = rotated.key.activates_at ?? rotated.key.created_at;
      setDone(`New signing key ${rotated.key.kid} is published now; it signs from ${when(from)}.`);
      keys.reload();
    } catch (error) {
      setProblem(error instanceof Problem ? error : new Problem(0, 'error', 'The keys could not be rotated.'));
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <PageHeading>Signing keys</PageHeading>
      <p>
        Every key here is published in the JWKS. Tokens are signed with the active key marked “signing”; a pending key signs from its activation time, and a
        retired key stays published for 48 hours so tokens it signed can still be verified.
      </p>
      {done ? <Notice kind="status">{done}</Notice> : null}
      {problem && Object.keys(problem.fields).length === 0 ? <ErrorNotice error={problem} /> : null}
      <ErrorNotice error={keys.error} />
      {keys.loading && !keys.data ? <Loading /> : null}
      {keys.data ? (
        <>
          <p>{keys.data.data.length === 1 ? '1 key' : `${keys.data.data.length} keys`}</p>
          <ul class="entries" aria-label="Signing keys">
            {keys.data.data.map((key) => (
              <li key={key.kid} data-kid={key.kid}>
                <h2 class="entry-title mono">{key.kid}</h2>
                <dl class="facts">
                  <dt>Status</dt>
                  <dd>
                    {STATUS[key.status]}
                    {key.signing ? ', signing now' : ''}
                  </dd>
                  <dt>Algorithm</dt>
                  <dd>{key.alg}</dd>
                  <dt>Used for</dt>
                  <dd>{key.profile === 'fapi2' ? 'FAPI 2.0 clients' : 'All tokens'}</dd>
                  <dt>Age</dt>
                  <dd>{formatAge(key.age_seconds)}</dd>
                  <dt>Signs from</dt>
                  <dd>{when(key.activates_at ?? key.created_at)}</dd>
                  <dt>Retires</dt>
                  <dd>{when(key.retired_at)}</dd>
                </dl>
              </li>
            ))}
          </ul>
        </>
      ) : null}

      <h2>Rotate</h2>
      <form
        noValidate
        onSubmit={(event) => {
          event.preventDefault();
          setAsking(true);
        }}
      >
        <Field
          id="activate-in"
          label="Activation delay (seconds)"
          hint="The new key is published at once and signs after this delay, so every node and every API that caches the JWKS knows it first. 300 is usual; 0 switches at once (after a leak)."
          error={problem?.fields.activate_in ?? problem?.fields.body}
        >
          {(input) => <input {...input} name="activate_in" inputMode="numeric" autoComplete="off" value={delay} onInput={(event) => setDelay(event.currentTarget.value)} />}
        </Field>
        <button type="submit" disabled={busy}>
          Rotate
        </button>
      </form>
      <Confirm open={asking} title="Rotate the signing keys?" confirmLabel="Rotate" onConfirm={() => void rotate()} onCancel={() => setAsking(false)}>
        <p>
          A new key is published now and signs from {delay.trim() === '' ? 'the default delay' : `${delay.trim()} seconds`} on; the current key then retires.
        </p>
      </Confirm>
    </>
  );
}
