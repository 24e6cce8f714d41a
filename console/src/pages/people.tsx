import type { JSX } from 'preact';
import type { PageProps } from '../app.js';
import { PageHeading } from '../ui/page.js';

/** People (built by its part of issue 19). */
export function PeoplePage(_props: PageProps): JSX.Element {
  return <PageHeading>People</PageHeading>;
}
