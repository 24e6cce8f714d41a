import type { JSX } from 'preact';
import type { PageProps } from '../app.js';
import { PageHeading } from '../ui/page.js';

/** Upstream providers (built by its part of issue 19). */
export function ProvidersPage(_props: PageProps): JSX.Element {
  return <PageHeading>Upstream providers</PageHeading>;
}
