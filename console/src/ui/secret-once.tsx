import type { JSX } from 'preact';
import { useState } from 'preact/hooks';

/**
 * A secret shown this once (a new client secret, an API key): in an element whose accessible name is
 * `label` ("Client secret"), with a copy button; the console keeps it nowhere.
 */
export function SecretOnce(props: { label: string; value: string }): JSX.Element {
  const [copied, setCopied] = useState<'yes' | 'failed' | undefined>();
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.value);
      setCopied('yes');
    } catch {
      setCopied('failed');
    }
  };
  return (
    <div class="secret-once">
      <p>Copy it now: it is shown this once and cannot be read again.</p>
      <output class="secret" aria-label={props.label}>
        {props.value}
      </output>
      <button type="button" onClick={() => void copy()}>
        Copy {props.label.toLowerCase()}
      </button>
      <span role="status" class="copied">
        {copied === 'yes' ? 'Copied.' : copied === 'failed' ? 'Could not copy: select the text and copy it.' : ''}
      </span>
    </div>
  );
}
