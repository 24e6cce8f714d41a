import { randomBytes, randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import {
  countApiKeysOfUser,
  deleteApiKey,
  findApiKeyOfUser,
  insertApiKey,
  listApiKeysOfUser,
  replaceApiKeySecret,
  type ApiKeyRecord,
} from '../registry/api-key.repository.js';
import { ADMIN_RESOURCE_IDENTIFIER, findResourceServer } from '../registry/resource-server.repository.js';
import type { Database } from '../registry/tables.js';
import { digestTokenValue } from '../registry/token-digest.js';
import { findUserById, findUserByIdForUpdate } from '../registry/user.repository.js';
import { recordChange, type AuditActor, type RegistryServiceDeps } from './changes.js';
import { ConflictError, NotFoundError, ValidationError } from './errors.js';
import { OIDC_SCOPES, parseInput, SCOPE_TOKEN } from './validation.js';

/*
 * Personal API keys (docs/api-keys.md): a person (on /account) or an administrator (CLI, admin API)
 * makes a key for one registered API and some of the scopes that API defines; the key is shown once
 * and stored as its SHA-256 digest; a script exchanges it at the token endpoint for a short-lived
 * access token (oidc/api-key-exchange.ts). Every change is audited in its own transaction.
 */

/** Every key starts with this, so secret scanners can find one that leaked. */
export const API_KEY_PREFIX = 'gk_';
/** A key: the prefix and 32 random bytes, base64url (43 characters). */
export const API_KEY_PATTERN = /^gk_[A-Za-z0-9_-]{43}$/;
/** How much of a key lists show: `gk_` and 8 characters (48 of its 256 random bits). */
export const API_KEY_SHOWN_PREFIX_LENGTH = API_KEY_PREFIX.length + 8;
export const MAX_LABEL_LENGTH = 100;
/** Keys one person may have at a time. */
export const MAX_KEYS_PER_PERSON = 50;
export const MIN_EXPIRES_IN_SECONDS = 60;
export const MAX_EXPIRES_IN_SECONDS = 366 * 24 * 3600;

/** A label as stored: NFKC, control characters removed, trimmed; 1–100 characters. */
const label = z
  .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') })
  // eslint-disable-next-line no-control-regex
  .transform((value) => value.normalize('NFKC').replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, '').trim())
  .pipe(z.string().min(1, 'must not be empty').refine((value) => [...value].length <= MAX_LABEL_LENGTH, `must be at most ${MAX_LABEL_LENGTH} characters`));

/** What a new key is made of; `scope` is space-separated, `expires_in` in seconds (none: it never expires). */
export const apiKeyCreateSchema = z.strictObject({
  label,
  resource: z.string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') }).max(2048, 'must be at most 2048 characters'),
  scope: z
    .string({ error: 'must be a string of space-separated scopes' })
    .max(4096, 'must be at most 4096 characters')
    .transform((value) => [...new Set(value.split(' ').filter(Boolean))])
    .optional(),
  expires_in: z
    .number({ error: 'must be a number of seconds' })
    .int('must be a whole number of seconds')
    .min(MIN_EXPIRES_IN_SECONDS, `must be at least ${MIN_EXPIRES_IN_SECONDS} seconds`)
    .max(MAX_EXPIRES_IN_SECONDS, `must be at most ${MAX_EXPIRES_IN_SECONDS} seconds (366 days)`)
    .optional(),
});
export type ApiKeyCreateInput = z.input<typeof apiKeyCreateSchema>;

/** The wire form of a key: its label, prefix, API, scopes and times; never the key or its digest. */
export function apiKeyToJson(key: ApiKeyRecord) {
  return {
    id: key.id,
    label: key.label,
    prefix: key.prefix,
    resource: key.resourceIdentifier,
    scope: key.scopes.join(' '),
    expires_at: key.expiresAt?.toISOString() ?? null,
    created_at: key.createdAt.toISOString(),
    last_used_at: key.lastUsedAt?.toISOString() ?? null,
  };
}

export type ApiKeyJson = ReturnType<typeof apiKeyToJson>;

/** A key just made: its record and the key itself, which is shown this once and stored nowhere. */
export interface IssuedApiKey {
  key: ApiKeyRecord;
  apiKey: string;
}

/** A new key and what is stored of it. */
function newSecret(): { apiKey: string; digest: string; prefix: string } {
  const apiKey = API_KEY_PREFIX + randomBytes(32).toString('base64url');
  return { apiKey, digest: digestTokenValue(apiKey), prefix: apiKey.slice(0, API_KEY_SHOWN_PREFIX_LENGTH) };
}

/** Whether `value` has the form of an API key (`gk_` and 43 base64url characters). */
export function looksLikeApiKey(value: unknown): value is string {
  return typeof value === 'string' && API_KEY_PATTERN.test(value);
}

/** The digest an API key is stored and looked up under. */
export function apiKeyDigest(apiKey: string): string {
  return digestTokenValue(apiKey);
}

function auditDetails(key: ApiKeyRecord) {
  return {
    user_id: key.userId,
    label: key.label,
    prefix: key.prefix,
    resource: key.resourceIdentifier,
    scope: key.scopes.join(' '),
    expires_at: key.expiresAt?.toISOString() ?? null,
  };
}

/**
 * Makes a key for the person `userId` (design: docs/api-keys.md, "What a key may be for"): for one
 * registered API, never the admin API, and only scopes that API defines (none given: none; a token
 * then carries the audience only). Recorded as `api_key.create` by `by` in the same transaction.
 * ValidationError (label, resource, scope, expires_in), NotFoundError (the person), ConflictError
 * (MAX_KEYS_PER_PERSON reached); nothing is written then.
 *
 * @example
 * const { key, apiKey } = await createApiKey(deps, by, person.id, { label: 'CI', resource: 'https://api.example.com', scope: 'read' });
 */
export async function createApiKey(deps: RegistryServiceDeps, by: AuditActor, userId: string, input: unknown, now: Date = new Date()): Promise<IssuedApiKey> {
  const data = parseInput(apiKeyCreateSchema, input);
  // The admin API is for admin clients: a person's key never reaches it (docs/api-keys.md).
  if (data.resource === ADMIN_RESOURCE_IDENTIFIER) {
    throw new ValidationError([{ field: 'resource', message: 'API keys cannot be made for the admin API' }]);
  }
  const resource = await findResourceServer(deps.db, data.resource);
  // Only by identifier: the registry's internal id is no API's name.
  if (!resource || resource.identifier !== data.resource) {
    throw new ValidationError([{ field: 'resource', message: `no API is registered as ${data.resource}` }]);
  }
  const scopes = data.scope ?? [];
  const wrong = scopes.filter((scope) => !SCOPE_TOKEN.test(scope) || (OIDC_SCOPES as readonly string[]).includes(scope) || !resource.scopes.includes(scope));
  if (wrong.length > 0) {
    throw new ValidationError(
      wrong.map((scope) => ({
        field: 'scope',
        message: SCOPE_TOKEN.test(scope) ? `"${scope}" is not a scope of ${resource.identifier}` : 'contains a character a scope cannot have',
      })),
    );
  }
  const secret = newSecret();
  const id = randomUUID();
  return deps.db.transaction().execute(async (trx) => {
    // The person's row is locked: two creations at once cannot both pass the count.
    const person = await findUserByIdForUpdate(trx, userId);
    if (!person) throw new NotFoundError(`user ${userId}`);
    if ((await countApiKeysOfUser(trx, userId)) >= MAX_KEYS_PER_PERSON) {
      throw new ConflictError('api_keys', `a person has at most ${MAX_KEYS_PER_PERSON} API keys: delete one first`);
    }
    const key = await insertApiKey(trx, {
      id,
      user_id: userId,
      label: data.label,
      prefix: secret.prefix,
      digest: secret.digest,
      resource_id: resource.id,
      scopes,
      expires_at: data.expires_in === undefined ? null : new Date(now.getTime() + data.expires_in * 1000),
      created_at: now,
      secret_issued_at: now,
    });
    await recordChange(deps.audit, trx, by, { action: 'api_key.create', target: `api_key:${key.id}`, details: auditDetails(key) });
    return { key, apiKey: secret.apiKey };
  });
}

/** The person's keys, oldest first; NotFoundError for an unknown person. */
export async function listApiKeys(db: Kysely<Database>, userId: string): Promise<ApiKeyRecord[]> {
  if (!(await findUserById(db, userId))) throw new NotFoundError(`user ${userId}`);
  return listApiKeysOfUser(db, userId);
}

/** The person's keys, oldest first, for their own page (the person is known to exist). */
export async function listOwnApiKeys(db: Kysely<Database>, userId: string): Promise<ApiKeyRecord[]> {
  return listApiKeysOfUser(db, userId);
}

/**
 * A new key in place of the key `keyId` of the person: same label, API, scopes and expiry; the old
 * key stops working at once. Recorded as `api_key.regenerate`. NotFoundError (no such key of this
 * person), ConflictError (the key has expired: make a new one).
 */
export async function regenerateApiKey(deps: RegistryServiceDeps, by: AuditActor, userId: string, keyId: string, now: Date = new Date()): Promise<IssuedApiKey> {
  const secret = newSecret();
  return deps.db.transaction().execute(async (trx) => {
    const before = await findApiKeyOfUser(trx, userId, keyId);
    if (!before) throw new NotFoundError(`API key ${keyId}`);
    if (before.expiresAt && before.expiresAt.getTime() <= now.getTime()) {
      throw new ConflictError('expires_at', 'this API key has expired: create a new one');
    }
    if (!(await replaceApiKeySecret(trx, userId, keyId, { digest: secret.digest, prefix: secret.prefix, at: now }))) throw new NotFoundError(`API key ${keyId}`);
    const key = { ...before, digest: secret.digest, prefix: secret.prefix, secretIssuedAt: now, lastUsedAt: null };
    await recordChange(deps.audit, trx, by, { action: 'api_key.regenerate', target: `api_key:${keyId}`, details: { ...auditDetails(key), previous_prefix: before.prefix } });
    return { key, apiKey: secret.apiKey };
  });
}

/** Deletes the key `keyId` of the person: it stops working at once. Recorded as `api_key.revoke`. NotFoundError otherwise. */
export async function revokeApiKey(deps: RegistryServiceDeps, by: AuditActor, userId: string, keyId: string): Promise<ApiKeyRecord> {
  return deps.db.transaction().execute(async (trx) => {
    const before = await findApiKeyOfUser(trx, userId, keyId);
    if (!before || !(await deleteApiKey(trx, userId, keyId))) throw new NotFoundError(`API key ${keyId}`);
    await recordChange(deps.audit, trx, by, { action: 'api_key.revoke', target: `api_key:${keyId}`, details: auditDetails(before) });
    return before;
  });
}
