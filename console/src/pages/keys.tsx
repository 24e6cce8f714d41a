import type { JSX } from 'preact';
import type { PageProps } from '../app.js';
import { PageHeading } from '../ui/page.js';

/** Signing keys (built by its part of issue 19). */
export function KeysPage(_props: PageProps): JSX.Element {
  return <PageHeading>Signing keys</PageHeading>;
}
