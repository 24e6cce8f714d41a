/**
 * PostgreSQL (and PGlite) text cannot hold U+0000: a query that carries one fails (SQLSTATE 22021).
 * No stored key has one, so a lookup by such a value finds nothing without asking, and validation
 * refuses to store one.
 */
export function hasNul(value: string | undefined): boolean {
  return value !== undefined && value.includes('\u0000');
}
