import type { JSX } from 'preact';
import type { PageProps } from '../app.js';
import { PageHeading } from '../ui/page.js';

/** Overview (built by its part of issue 19). */
export function OverviewPage(_props: PageProps): JSX.Element {
  return <PageHeading>Overview</PageHeading>;
}
