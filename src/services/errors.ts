/** One field's problem, named as the wire format names the field. */
export interface FieldError {
  field: string;
  message: string;
}

/** Input that breaks a registry rule; nothing was written. */
export class ValidationError extends Error {
  readonly errors: readonly FieldError[];

  constructor(errors: readonly FieldError[]) {
    super(errors.map((e) => `${e.field}: ${e.message}`).join('; '));
    this.name = 'ValidationError';
    this.errors = errors;
  }
}

export class NotFoundError extends Error {
  constructor(what: string) {
    super(`${what} not found`);
    this.name = 'NotFoundError';
  }
}

export class ConflictError extends Error {
  readonly field: string;

  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = 'ConflictError';
    this.field = field;
  }
}

/** True for PostgreSQL's unique_violation (23505), as both pg and PGlite report it. */
export function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === '23505';
}

/** The caller's copy is stale (If-Match did not match): nothing was written. */
export class PreconditionFailedError extends Error {
  constructor(what: string) {
    super(`${what} was changed by someone else since it was read`);
    this.name = 'PreconditionFailedError';
  }
}

/**
 * A change made outside the database (a key written to KEYS_DIR) whose audit row could not be
 * written afterwards: the change stays, the command fails, and this says which change it was.
 */
export class ChangeNotRecordedError extends Error {
  constructor(change: { action: string; target: string }, cause: unknown) {
    super(`${change.action} of ${change.target} was done, but its audit record could not be written: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'ChangeNotRecordedError';
  }
}

/** Removing this (an upstream link, a passkey) would leave the person no way to sign in: no password, no passkey, no upstream link. */
export class LastSignInMethodError extends Error {
  constructor() {
    super('this is the only way this person can sign in: add a password or a passkey first');
    this.name = 'LastSignInMethodError';
  }
}

/** PostgreSQL's undefined_table (42P01): the registry has not been migrated yet. */
export function isUndefinedTable(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === '42P01';
}
