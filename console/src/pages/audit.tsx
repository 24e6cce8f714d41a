import type { JSX } from 'preact';
import type { PageProps } from '../app.js';
import { PageHeading } from '../ui/page.js';

/** Audit log (built by its part of issue 19). */
export function AuditPage(_props: PageProps): JSX.Element {
  return <PageHeading>Audit log</PageHeading>;
}
