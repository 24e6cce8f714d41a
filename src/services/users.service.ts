import { randomUUID } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import { z } from 'zod';
import { hashPassword, passwordProblem } from '../accounts/passwords.js';
import { normaliseEmail } from '../registry/email.js';
import type { Database } from '../registry/tables.js';
import {
  deleteDurableRowsOfAccount,
  deleteUser as deleteUserRow,
  findUserByEmail,
  findUserById,
  findUserByIdForUpdate,
  insertUser,
  listUsers as listUserRows,
  listUsersPage as listUserPageRows,
  updateUser,
  type UserRecord,
} from '../registry/user.repository.js';
import { recordChange, type AuditActor, type RegistryServiceDeps } from './changes.js';
import { ConflictError, isUniqueViolation, NotFoundError } from './errors.js';
import { parseInput } from './validation.js';

/** The roles a person can hold: `admin` opens the console and, through it, the admin API (docs/console.md). */
export const ROLES = ['admin'] as const;
export type Role = (typeof ROLES)[number];

/** A set of roles: known names only, each once (stored sorted). */
const rolesSchema = z
  .array(z.enum(ROLES, { error: `must be one of: ${ROLES.join(', ')}` }), { error: 'must be an array of role names' })
  .max(ROLES.length * 4, 'lists too many roles')
  .transform((roles) => [...new Set(roles)].sort())
  .describe(`the person's roles (${ROLES.join(', ')}); admin opens the console`);

const requiredString = (what: string) =>
  z.string({ error: (issue) => (issue.input === undefined ? 'is required' : `must be ${what}`) });

export const userCreateSchema = z.strictObject({
  // Normalised first (normaliseEmail: NFKC, lower case), so what is checked is what is stored.
  email: requiredString('a string')
    .transform(normaliseEmail)
    .pipe(z.string().max(254, 'must be at most 254 characters').pipe(z.email('must be an email address, such as name@example.com'))),
  name: z.string().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters').optional(),
  password: requiredString('a string').superRefine((password, ctx) => {
    const problem = passwordProblem(password);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  }),
  roles: rolesSchema.optional(),
});
export type UserCreateInput = z.input<typeof userCreateSchema>;

/** The wire form of a user: never the password hash. */
export function userToJson(user: UserRecord) {
  return {
    id: user.id,
    email: user.email,
    email_verified: user.emailVerified,
    name: user.name,
    disabled: user.disabled,
    roles: user.roles,
    last_login_at: user.lastLoginAt?.toISOString() ?? null,
    created_at: user.createdAt.toISOString(),
    updated_at: user.updatedAt.toISOString(),
  };
}

export type UserJson = ReturnType<typeof userToJson>;

const emailTaken = (email: string) => new ConflictError('email', `a user with the email ${email} already exists`);

/**
 * Creates a user with an argon2id hash of the password. The email is stored normalised (normaliseEmail):
 * one that differs from a stored one only by case, width or composition is taken. Recorded as
 * `user.create` by `by`, in the same transaction.
 */
export async function createUser(deps: RegistryServiceDeps, by: AuditActor, input: unknown): Promise<UserRecord> {
  const data = parseInput(userCreateSchema, input);
  // Checked first so a taken email costs no hash; the unique index still decides a race.
  if (await findUserByEmail(deps.db, data.email)) throw emailTaken(data.email);
  // Hashed before the transaction: it holds the audit log's lock from its append to its commit only.
  const passwordHash = await hashPassword(data.password);
  const now = new Date();
  try {
    return await deps.db.transaction().execute(async (trx) => {
      const user = await insertUser(trx, {
        id: randomUUID(),
        email: data.email,
        name: data.name ?? null,
        password_hash: passwordHash,
        roles: data.roles ?? [],
        created_at: now,
        updated_at: now,
      });
      await recordChange(deps.audit, trx, by, { action: 'user.create', target: `user:${user.id}`, details: { after: userToJson(user) } });
      return user;
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw emailTaken(data.email);
    throw error;
  }
}

export async function getUser(db: Kysely<Database>, id: string): Promise<UserRecord> {
  const user = await findUserById(db, id);
  if (!user) throw new NotFoundError(`user ${id}`);
  return user;
}

export function listUsers(db: Kysely<Database>): Promise<UserRecord[]> {
  return listUserRows(db);
}

/** The user as the change starts, their row held until it commits: the before of its record. */
async function lockUser(trx: Transaction<Database>, id: string): Promise<UserRecord> {
  const user = await findUserByIdForUpdate(trx, id);
  if (!user) throw new NotFoundError(`user ${id}`);
  return user;
}

async function setDisabled(deps: RegistryServiceDeps, by: AuditActor, id: string, disabled: boolean): Promise<UserRecord> {
  return deps.db.transaction().execute(async (trx) => {
    const before = await lockUser(trx, id);
    // Disabling ends the person's browser sessions for good: enabling them again does not revive one.
    const user = await updateUser(trx, id, disabled ? { disabled, sessions_valid_after: new Date() } : { disabled });
    if (!user) throw new NotFoundError(`user ${id}`);
    await recordChange(deps.audit, trx, by, {
      action: disabled ? 'user.disable' : 'user.enable',
      target: `user:${id}`,
      details: { before: userToJson(before), after: userToJson(user) },
    });
    return user;
  });
}

/**
 * A disabled user cannot sign in, and their browser sessions end. Their grants are kept, so enabling
 * them restores their apps; the provider's findAccount treats a disabled user as unknown so their
 * refresh tokens stop working meanwhile. Recorded as `user.disable`.
 */
export function disableUser(deps: RegistryServiceDeps, by: AuditActor, id: string): Promise<UserRecord> {
  return setDisabled(deps, by, id, true);
}

/** Recorded as `user.enable`. */
export function enableUser(deps: RegistryServiceDeps, by: AuditActor, id: string): Promise<UserRecord> {
  return setDisabled(deps, by, id, false);
}

/**
 * Deletes the user and, in the same transaction, every grant and refresh token issued to them.
 * Recorded as `user.delete` with what the user was.
 */
export async function deleteUser(deps: RegistryServiceDeps, by: AuditActor, id: string): Promise<void> {
  if (by.actor === `person:${id}`) throw new ConflictError('id', 'you cannot delete yourself: another administrator can');
  await deps.db.transaction().execute(async (trx) => {
    const before = await lockUser(trx, id);
    await deleteDurableRowsOfAccount(trx, id);
    if (!(await deleteUserRow(trx, id))) throw new NotFoundError(`user ${id}`);
    await recordChange(deps.audit, trx, by, { action: 'user.delete', target: `user:${id}`, details: { before: userToJson(before) } });
  });
}

export const userUpdateSchema = z
  .strictObject({
    name: z.string().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters').nullable().optional(),
    disabled: z.boolean().optional(),
    email_verified: z.boolean().optional(),
    roles: rolesSchema.optional(),
    password: z
      .string()
      .superRefine((password, ctx) => {
        const problem = passwordProblem(password);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .optional(),
    keep_sessions: z
      .boolean()
      .optional()
      .describe(
        'With password or disabled: true, keep the person signed in: their browser sessions, consents and refresh tokens survive (by default a password change ends all three, disabling ends the sessions)',
      ),
  })
  .superRefine((data, ctx) => {
    if (data.keep_sessions !== undefined && data.password === undefined && data.disabled !== true) {
      ctx.addIssue({ code: 'custom', path: ['keep_sessions'], message: 'only goes with password or disabled: true' });
    }
  });
export type UserUpdateInput = z.input<typeof userUpdateSchema>;

/**
 * Changes a user's name, disabled flag, verified flag or password (hashed here, never stored in clear).
 * A password change ends the person's browser sessions (those signed in before it must sign in
 * again) and, in the same transaction, deletes their grants and refresh tokens; disabling ends their
 * sessions. `keep_sessions: true` keeps all of them. Recorded as `user.update` with the user before
 * and after (and `sessions_ended` when a password change ended them).
 */
export async function updateUserFields(deps: RegistryServiceDeps, by: AuditActor, id: string, input: unknown): Promise<UserRecord> {
  return changeUser(deps, by, id, parseInput(userUpdateSchema, input), 'user.update');
}

/**
 * Sets a user's password (`users set-password`): as updateUserFields with only a password, but
 * recorded as `user.password_set`, with `sessions_ended` always said.
 */
export async function setUserPassword(
  deps: RegistryServiceDeps,
  by: AuditActor,
  id: string,
  password: string,
  options: { keepSessions?: boolean } = {},
): Promise<UserRecord> {
  const data = parseInput(userUpdateSchema, { password, ...(options.keepSessions ? { keep_sessions: true } : {}) });
  return changeUser(deps, by, id, data, 'user.password_set');
}

/**
 * An administrator signed in to the console cannot take their own admin role away or disable
 * themselves: the console would lock them out mid-change. Another administrator (or the CLI) can.
 */
function refuseSelfLockout(by: AuditActor, before: UserRecord, data: z.output<typeof userUpdateSchema>): void {
  if (by.actor !== `person:${before.id}`) return;
  if (data.roles !== undefined && before.roles.includes('admin') && !data.roles.includes('admin')) {
    throw new ConflictError('roles', 'you cannot take away your own admin role: another administrator can');
  }
  if (data.disabled === true) throw new ConflictError('disabled', 'you cannot disable yourself: another administrator can');
}

async function changeUser(
  deps: RegistryServiceDeps,
  by: AuditActor,
  id: string,
  data: z.output<typeof userUpdateSchema>,
  action: 'user.update' | 'user.password_set',
): Promise<UserRecord> {
  const passwordHash = data.password !== undefined ? await hashPassword(data.password) : undefined;
  const keep = data.keep_sessions === true;
  const endsSessions = !keep && (passwordHash !== undefined || data.disabled === true);
  // A password change ends the person's sessions, consents and refresh tokens unless kept.
  const sessionsEnded = passwordHash !== undefined && !keep;
  return deps.db.transaction().execute(async (trx) => {
    const before = await lockUser(trx, id);
    refuseSelfLockout(by, before, data);
    const user = await updateUser(trx, id, {
      ...(data.name !== undefined ? { name: data.name } : {}),
      ...(data.disabled !== undefined ? { disabled: data.disabled } : {}),
      ...(data.email_verified !== undefined ? { email_verified: data.email_verified } : {}),
      ...(data.roles !== undefined ? { roles: data.roles } : {}),
      ...(passwordHash !== undefined ? { password_hash: passwordHash } : {}),
      ...(endsSessions ? { sessions_valid_after: new Date() } : {}),
    });
    if (!user) throw new NotFoundError(`user ${id}`);
    if (sessionsEnded) await deleteDurableRowsOfAccount(trx, id);
    const ended = action === 'user.password_set' ? { sessions_ended: sessionsEnded } : sessionsEnded ? { sessions_ended: true } : {};
    await recordChange(deps.audit, trx, by, { action, target: `user:${id}`, details: { before: userToJson(before), after: userToJson(user), ...ended } });
    return user;
  });
}

/** One page of users (cursor = the last id seen), optionally filtered by email. */
export async function listUsersPage(db: Kysely<Database>, options: { limit: number; cursor?: string | undefined; email?: string | undefined }) {
  const rows = await listUserPageRows(db, { limit: options.limit + 1, after: options.cursor, emailContains: options.email });
  const items = rows.slice(0, options.limit);
  return { items, nextCursor: rows.length > options.limit ? (items.at(-1)?.id ?? null) : null };
}
