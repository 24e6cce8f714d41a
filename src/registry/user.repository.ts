import type { Kysely, Transaction } from 'kysely';
import { normaliseEmail } from './email.js';
import { containsPattern } from './like.js';
import { prepareQuery } from './prepared.js';
import { hasNul } from './text.js';
import type { Database, NewUserRow, UserRow, UserRowUpdate } from './tables.js';

type Db = Kysely<Database> | Transaction<Database>;

/** A person who signs in; the password only as an argon2id hash. */
export interface UserRecord {
  id: string;
  email: string;
  emailVerified: boolean;
  name: string | null;
  /** null for a person who came only through an upstream provider: no password signs them in. */
  passwordHash: string | null;
  disabled: boolean;
  lastLoginAt: Date | null;
  /** Browser sessions that signed in before this time are over (see users.service.ts). */
  sessionsValidAfter: Date | null;
  /** What the person may do beyond their own account: `admin` opens the console (users.service.ts ROLES). */
  roles: string[];
  createdAt: Date;
  updatedAt: Date;
}

export function toUserRecord(row: UserRow): UserRecord {
  return {
    id: row.id,
    email: row.email,
    emailVerified: row.email_verified,
    name: row.name,
    passwordHash: row.password_hash,
    disabled: row.disabled,
    lastLoginAt: row.last_login_at,
    sessionsValidAfter: row.sessions_valid_after,
    roles: row.roles,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** Inserts a person; the email is stored in its normalised form (normaliseEmail), whatever the caller gave. */
export async function insertUser(db: Db, row: NewUserRow): Promise<UserRecord> {
  const values = { ...row, email: normaliseEmail(row.email) };
  return toUserRecord(await db.insertInto('users').values(values).returningAll().executeTakeFirstOrThrow());
}

const userByIdQuery = (db: Db, id: string) => db.selectFrom('users').selectAll().where('id', '=', id);

export async function findUserById(db: Db, id: string): Promise<UserRecord | undefined> {
  if (hasNul(id)) return undefined;
  const row = await userByIdQuery(db, id).executeTakeFirst();
  return row && toUserRecord(row);
}

/** The person, their row locked for the rest of the transaction (a change's before); undefined when there is none. */
export async function findUserByIdForUpdate(db: Transaction<Database>, id: string): Promise<UserRecord | undefined> {
  if (hasNul(id)) return undefined;
  const row = await userByIdQuery(db, id).forUpdate().executeTakeFirst();
  return row && toUserRecord(row);
}

/** findUserById compiled once, for the token endpoint's account check on every refresh. */
export function prepareFindUserById(db: Kysely<Database>): (id: string) => Promise<UserRecord | undefined> {
  const query = prepareQuery(db, 1, (id: string) => userByIdQuery(db, id));
  return async (id) => {
    if (hasNul(id)) return undefined;
    const [row] = await query.execute(id);
    return row && toUserRecord(row);
  };
}

/**
 * Looks a person up by email: the stored email is already in normalised form (normaliseEmail), so
 * the given one is normalised the same way and compared with `=`, which the unique index serves.
 */
export async function findUserByEmail(db: Db, email: string): Promise<UserRecord | undefined> {
  if (hasNul(email)) return undefined;
  const row = await db.selectFrom('users').selectAll().where('email', '=', normaliseEmail(email)).executeTakeFirst();
  return row && toUserRecord(row);
}

export async function listUsers(db: Db): Promise<UserRecord[]> {
  const rows = await db.selectFrom('users').selectAll().orderBy('created_at').orderBy('id').execute();
  return rows.map(toUserRecord);
}

export async function updateUser(db: Db, id: string, update: UserRowUpdate): Promise<UserRecord | undefined> {
  const row = await db
    .updateTable('users')
    .set({ ...update, updated_at: new Date() })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
  return row && toUserRecord(row);
}

/**
 * Records a successful sign-in (not a change to the user: updated_at stays). With `rehash`, also
 * replaces the password hash, but only if it is still the one that was verified, so a password
 * changed meanwhile is never overwritten with the old one.
 */
export async function recordLogin(
  db: Db,
  id: string,
  at: Date,
  rehash?: { from: string; to: string },
): Promise<UserRecord | undefined> {
  const row = await db
    .updateTable('users')
    .set((eb) => ({
      last_login_at: at,
      ...(rehash
        ? { password_hash: eb.case().when('password_hash', '=', rehash.from).then(rehash.to).else(eb.ref('password_hash')).end() }
        : {}),
    }))
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
  return row && toUserRecord(row);
}

export async function deleteUser(db: Db, id: string): Promise<boolean> {
  const result = await db.deleteFrom('users').where('id', '=', id).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

/**
 * Deletes every durable oidc-provider row of an account: its Grants, its RefreshTokens and anything
 * else issued under one of those grants. Returns how many rows went.
 */
export async function deleteDurableRowsOfAccount(db: Db, accountId: string): Promise<number> {
  const result = await db
    .deleteFrom('oidc_durable')
    .where((eb) =>
      eb.or([
        eb('account_id', '=', accountId),
        eb(
          'grant_id',
          'in',
          eb.selectFrom('oidc_durable as g').select('g.id').where('g.model', '=', 'Grant').where('g.account_id', '=', accountId),
        ),
      ]),
    )
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** One page of users in id order, after a given id, optionally only emails containing a text. */
export async function listUsersPage(
  db: Db,
  options: { limit: number; after?: string | undefined; emailContains?: string | undefined },
): Promise<UserRecord[]> {
  if (hasNul(options.after) || hasNul(options.emailContains)) return [];
  let query = db.selectFrom('users').selectAll().orderBy('id').limit(options.limit);
  if (options.after) query = query.where('id', '>', options.after);
  const text = options.emailContains && normaliseEmail(options.emailContains);
  if (text) query = query.where('email', 'like', containsPattern(text));
  return (await query.execute()).map(toUserRecord);
}

/**
 * Stores the language of the pages a person last signed in on (mail is written in it). Not a change
 * to the person: updated_at stays, and an unchanged language writes nothing.
 */
export async function setUserLocale(db: Db, id: string, locale: string): Promise<void> {
  await db.updateTable('users').set({ locale }).where('id', '=', id).where((eb) => eb.or([eb('locale', 'is', null), eb('locale', '!=', locale)])).execute();
}

/** The language a person's mail is written in (users.locale: the page they last signed in or signed up on); null when unknown. */
export async function findUserLocale(db: Db, id: string): Promise<string | null> {
  if (hasNul(id)) return null;
  const row = await db.selectFrom('users').select('locale').where('id', '=', id).executeTakeFirst();
  return row?.locale ?? null;
}
