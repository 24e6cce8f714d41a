import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { hashPassword, passwordProblem } from '../accounts/passwords.js';
import { normaliseEmail } from '../registry/email.js';
import type { Database } from '../registry/tables.js';
import {
  deleteDurableRowsOfAccount,
  deleteUser as deleteUserRow,
  findUserByEmail,
  findUserById,
  insertUser,
  listUsers as listUserRows,
  listUsersPage as listUserPageRows,
  updateUser,
  type UserRecord,
} from '../registry/user.repository.js';
import { ConflictError, isUniqueViolation, NotFoundError } from './errors.js';
import { parseInput } from './validation.js';

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
    last_login_at: user.lastLoginAt?.toISOString() ?? null,
    created_at: user.createdAt.toISOString(),
    updated_at: user.updatedAt.toISOString(),
  };
}

export type UserJson = ReturnType<typeof userToJson>;

const emailTaken = (email: string) => new ConflictError('email', `a user with the email ${email} already exists`);

/**
 * Creates a user with an argon2id hash of the password. The email is stored normalised (normaliseEmail):
 * one that differs from a stored one only by case, width or composition is taken.
 */
export async function createUser(db: Kysely<Database>, input: unknown): Promise<UserRecord> {
  const data = parseInput(userCreateSchema, input);
  // Checked first so a taken email costs no hash; the unique index still decides a race.
  if (await findUserByEmail(db, data.email)) throw emailTaken(data.email);
  const now = new Date();
  try {
    return await insertUser(db, {
      id: randomUUID(),
      email: data.email,
      name: data.name ?? null,
      password_hash: await hashPassword(data.password),
      created_at: now,
      updated_at: now,
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

async function setDisabled(db: Kysely<Database>, id: string, disabled: boolean): Promise<UserRecord> {
  // Disabling ends the person's browser sessions for good: enabling them again does not revive one.
  const user = await updateUser(db, id, disabled ? { disabled, sessions_valid_after: new Date() } : { disabled });
  if (!user) throw new NotFoundError(`user ${id}`);
  return user;
}

/**
 * A disabled user cannot sign in, and their browser sessions end. Their grants are kept, so enabling
 * them restores their apps; the provider's findAccount treats a disabled user as unknown so their
 * refresh tokens stop working meanwhile.
 */
export function disableUser(db: Kysely<Database>, id: string): Promise<UserRecord> {
  return setDisabled(db, id, true);
}

export function enableUser(db: Kysely<Database>, id: string): Promise<UserRecord> {
  return setDisabled(db, id, false);
}

/** Deletes the user and, in the same transaction, every grant and refresh token issued to them. */
export async function deleteUser(db: Kysely<Database>, id: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await deleteDurableRowsOfAccount(trx, id);
    if (!(await deleteUserRow(trx, id))) throw new NotFoundError(`user ${id}`);
  });
}

export const userUpdateSchema = z
  .strictObject({
    name: z.string().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters').nullable().optional(),
    disabled: z.boolean().optional(),
    email_verified: z.boolean().optional(),
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
 * sessions. `keep_sessions: true` keeps all of them.
 */
export async function updateUserFields(db: Kysely<Database>, id: string, input: unknown): Promise<UserRecord> {
  const data = parseInput(userUpdateSchema, input);
  const passwordHash = data.password !== undefined ? await hashPassword(data.password) : undefined;
  const keep = data.keep_sessions === true;
  const endsSessions = !keep && (passwordHash !== undefined || data.disabled === true);
  return db.transaction().execute(async (trx) => {
    const user = await updateUser(trx, id, {
      ...(data.name !== undefined ? { name: data.name } : {}),
      ...(data.disabled !== undefined ? { disabled: data.disabled } : {}),
      ...(data.email_verified !== undefined ? { email_verified: data.email_verified } : {}),
      ...(passwordHash !== undefined ? { password_hash: passwordHash } : {}),
      ...(endsSessions ? { sessions_valid_after: new Date() } : {}),
    });
    if (!user) throw new NotFoundError(`user ${id}`);
    if (passwordHash !== undefined && !keep) await deleteDurableRowsOfAccount(trx, id);
    return user;
  });
}

/** One page of users (cursor = the last id seen), optionally filtered by email. */
export async function listUsersPage(db: Kysely<Database>, options: { limit: number; cursor?: string | undefined; email?: string | undefined }) {
  const rows = await listUserPageRows(db, { limit: options.limit + 1, after: options.cursor, emailContains: options.email });
  const items = rows.slice(0, options.limit);
  return { items, nextCursor: rows.length > options.limit ? (items.at(-1)?.id ?? null) : null };
}
