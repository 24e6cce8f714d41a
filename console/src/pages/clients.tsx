import type { JSX } from 'preact';
import type { PageProps } from '../app.js';
import { PageHeading } from '../ui/page.js';

/** Clients (built by its part of issue 19). */
export function ClientsPage(_props: PageProps): JSX.Element {
  return <PageHeading>Clients</PageHeading>;
}
