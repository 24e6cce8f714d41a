import { sql, type Kysely, type Transaction } from 'kysely';
import { prepareQuery } from './prepared.js';
import { hasNul } from './text.js';
import type { Database, NewApiKeyRow } from './tables.js';

type Db = Kysely<Database> | Transaction<Database>;

/** A person's API key as the services see it: never the key, only its digest and prefix. */
export interface ApiKeyRecord {
  id: string;
  userId: string;
  label: string;
  prefix: string;
  digest: string;
  resourceId: string;
  /** The API's identifier (its `resource` at the token endpoint). */
  resourceIdentifier: string;
  scopes: string[];
  expiresAt: Date | null;
  createdAt: Date;
  secretIssuedAt: Date;
  lastUsedAt: Date | null;
}

/** What an exchange needs to know of a key, its person and its API, in one indexed read. */
export interface ApiKeyForExchange {
  id: string;
  userId: string;
  scopes: string[];
  expiresAt: Date | null;
  secretIssuedAt: Date;
  lastUsedAt: Date | null;
  userDisabled: boolean;
  sessionsValidAfter: Date | null;
  resourceIdentifier: string;
  /** The scopes the API defines now. */
  resourceScopes: string[];
  accessTokenTtl: number;
}

const toDate = (value: Date | string | null): Date | null => (value === null ? null : value instanceof Date ? value : new Date(value));

function keysWithResource(db: Db) {
  return db
    .selectFrom('api_keys')
    .innerJoin('resource_servers', 'resource_servers.id', 'api_keys.resource_id')
    .select([
      'api_keys.id',
      'api_keys.user_id',
      'api_keys.label',
      'api_keys.prefix',
      'api_keys.digest',
      'api_keys.resource_id',
      'resource_servers.identifier as resource_identifier',
      'api_keys.scopes',
      'api_keys.expires_at',
      'api_keys.created_at',
      'api_keys.secret_issued_at',
      'api_keys.last_used_at',
    ]);
}

type KeyWithResourceRow = Awaited<ReturnType<ReturnType<typeof keysWithResource>['executeTakeFirstOrThrow']>>;

function toApiKeyRecord(row: KeyWithResourceRow): ApiKeyRecord {
  return {
    id: row.id,
    userId: row.user_id,
    label: row.label,
    prefix: row.prefix,
    digest: row.digest,
    resourceId: row.resource_id,
    resourceIdentifier: row.resource_identifier,
    scopes: row.scopes,
    expiresAt: toDate(row.expires_at),
    createdAt: toDate(row.created_at) as Date,
    secretIssuedAt: toDate(row.secret_issued_at) as Date,
    lastUsedAt: toDate(row.last_used_at),
  };
}

export async function insertApiKey(db: Db, row: NewApiKeyRow): Promise<ApiKeyRecord> {
  await db.insertInto('api_keys').values(row).execute();
  return toApiKeyRecord(await keysWithResource(db).where('api_keys.id', '=', row.id).executeTakeFirstOrThrow());
}

/** The person's keys, oldest first. */
export async function listApiKeysOfUser(db: Db, userId: string): Promise<ApiKeyRecord[]> {
  if (hasNul(userId)) return [];
  const rows = await keysWithResource(db).where('api_keys.user_id', '=', userId).orderBy('api_keys.created_at').orderBy('api_keys.id').execute();
  return rows.map(toApiKeyRecord);
}

/** The person's key with our id `id`, or undefined (another person's is not found). */
export async function findApiKeyOfUser(db: Db, userId: string, id: string): Promise<ApiKeyRecord | undefined> {
  if (hasNul(userId) || hasNul(id)) return undefined;
  const row = await keysWithResource(db).where('api_keys.user_id', '=', userId).where('api_keys.id', '=', id).executeTakeFirst();
  return row && toApiKeyRecord(row);
}

/** How many keys the person has. */
export async function countApiKeysOfUser(db: Db, userId: string): Promise<number> {
  if (hasNul(userId)) return 0;
  const row = await db.selectFrom('api_keys').select((eb) => eb.fn.countAll<string | number>().as('n')).where('user_id', '=', userId).executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Puts a new key (its digest and prefix) in place of the old one; the old one is then found nowhere. */
export async function replaceApiKeySecret(db: Db, userId: string, id: string, secret: { digest: string; prefix: string; at: Date }): Promise<boolean> {
  const updated = await db
    .updateTable('api_keys')
    .set({ digest: secret.digest, prefix: secret.prefix, secret_issued_at: secret.at, last_used_at: null })
    .where('user_id', '=', userId)
    .where('id', '=', id)
    .executeTakeFirst();
  return updated.numUpdatedRows > 0n;
}

export async function deleteApiKey(db: Db, userId: string, id: string): Promise<boolean> {
  if (hasNul(userId) || hasNul(id)) return false;
  const deleted = await db.deleteFrom('api_keys').where('user_id', '=', userId).where('id', '=', id).executeTakeFirst();
  return deleted.numDeletedRows > 0n;
}

/**
 * The key with this digest, with its person's state and its API, compiled once: the token
 * endpoint runs it on every exchange (one read through the unique index on `digest`).
 */
export function prepareFindApiKeyForExchange(db: Kysely<Database>): (digest: string) => Promise<ApiKeyForExchange | undefined> {
  const query = prepareQuery(db, 1, (digest: string) =>
    db
      .selectFrom('api_keys')
      .innerJoin('users', 'users.id', 'api_keys.user_id')
      .innerJoin('resource_servers', 'resource_servers.id', 'api_keys.resource_id')
      .select([
        'api_keys.id',
        'api_keys.user_id',
        'api_keys.scopes',
        'api_keys.expires_at',
        'api_keys.secret_issued_at',
        'api_keys.last_used_at',
        'users.disabled',
        'users.sessions_valid_after',
        'resource_servers.identifier',
        'resource_servers.scopes as resource_scopes',
        'resource_servers.access_token_ttl',
      ])
      .where('api_keys.digest', '=', digest),
  );
  return async (digest) => {
    if (hasNul(digest)) return undefined;
    const [row] = await query.execute(digest);
    if (!row) return undefined;
    return {
      id: row.id,
      userId: row.user_id,
      scopes: row.scopes,
      expiresAt: toDate(row.expires_at),
      secretIssuedAt: toDate(row.secret_issued_at) as Date,
      lastUsedAt: toDate(row.last_used_at),
      userDisabled: row.disabled,
      sessionsValidAfter: toDate(row.sessions_valid_after),
      resourceIdentifier: row.identifier,
      resourceScopes: row.resource_scopes,
      accessTokenTtl: row.access_token_ttl,
    };
  };
}

/**
 * Records that the key was used at `at`, unless that was already recorded after `notBefore`: at most
 * one write per key per interval, however many exchanges there are.
 */
export async function touchApiKey(db: Db, id: string, at: Date, notBefore: Date): Promise<void> {
  await db
    .updateTable('api_keys')
    .set({ last_used_at: at })
    .where('id', '=', id)
    .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', notBefore)]))
    .execute();
}

/** How many keys there are, of everyone. */
export async function countApiKeys(db: Db): Promise<number> {
  const row = await db.selectFrom('api_keys').select(sql<string | number>`count(*)`.as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}
