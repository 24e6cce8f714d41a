import type { JSX } from 'preact';
import type { PageProps } from '../app.js';
import { PageHeading } from '../ui/page.js';

/** APIs (built by its part of issue 19). */
export function ApisPage(_props: PageProps): JSX.Element {
  return <PageHeading>APIs</PageHeading>;
}
