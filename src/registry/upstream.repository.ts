import type { Kysely, Transaction } from 'kysely';
import { hasNul } from './text.js';
import type { Database, NewUpstreamProviderRow, UpstreamLinkRow, UpstreamProviderRow, UpstreamProviderRowUpdate } from './tables.js';

type Db = Kysely<Database> | Transaction<Database>;

/** An upstream OpenID provider, its client secret still sealed. */
export interface UpstreamProvider {
  id: string;
  name: string;
  issuer: string;
  clientId: string;
  clientSecretJwe: string | null;
  keyId: string | null;
  scopes: string[];
  allowSignup: boolean;
  allowedEmailDomains: string[];
  enabled: boolean;
  createdAt: Date;
  updatedAt: Date;
}

/** An upstream identity linked to a person. */
export interface UpstreamLink {
  providerId: string;
  issuer: string;
  subject: string;
  userId: string;
  emailAtLink: string | null;
  createdAt: Date;
  lastUsedAt: Date | null;
}

function toProvider(row: UpstreamProviderRow): UpstreamProvider {
  return {
    id: row.id,
    name: row.name,
    issuer: row.issuer,
    clientId: row.client_id,
    clientSecretJwe: row.client_secret_jwe,
    keyId: row.key_id,
    scopes: row.scopes,
    allowSignup: row.allow_signup,
    allowedEmailDomains: row.allowed_email_domains,
    enabled: row.enabled,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function toLink(row: UpstreamLinkRow): UpstreamLink {
  return {
    providerId: row.provider_id,
    issuer: row.issuer,
    subject: row.subject,
    userId: row.user_id,
    emailAtLink: row.email_at_link,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
  };
}

export async function insertUpstreamProvider(db: Db, row: NewUpstreamProviderRow): Promise<UpstreamProvider> {
  return toProvider(await db.insertInto('upstream_providers').values(row).returningAll().executeTakeFirstOrThrow());
}

export async function findUpstreamProvider(db: Db, id: string, options: { forUpdate?: boolean } = {}): Promise<UpstreamProvider | undefined> {
  if (hasNul(id)) return undefined;
  let query = db.selectFrom('upstream_providers').selectAll().where('id', '=', id);
  if (options.forUpdate) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row && toProvider(row);
}

export async function listUpstreamProviders(db: Db, options: { enabledOnly?: boolean } = {}): Promise<UpstreamProvider[]> {
  let query = db.selectFrom('upstream_providers').selectAll().orderBy('name').orderBy('id');
  if (options.enabledOnly) query = query.where('enabled', '=', true);
  return (await query.execute()).map(toProvider);
}

export async function updateUpstreamProvider(db: Db, id: string, update: UpstreamProviderRowUpdate): Promise<UpstreamProvider | undefined> {
  const row = await db
    .updateTable('upstream_providers')
    .set({ ...update, updated_at: new Date() })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
  return row && toProvider(row);
}

/** Deletes a provider (its links go with it, by the foreign key); the number of links removed, or undefined when there was none. */
export async function deleteUpstreamProvider(db: Db, id: string): Promise<number | undefined> {
  const links = await countLinksOfProvider(db, id);
  const result = await db.deleteFrom('upstream_providers').where('id', '=', id).executeTakeFirst();
  return result.numDeletedRows > 0n ? links : undefined;
}

async function countLinksOfProvider(db: Db, providerId: string): Promise<number> {
  const row = await db
    .selectFrom('upstream_links')
    .select((eb) => eb.fn.countAll<string | number>().as('n'))
    .where('provider_id', '=', providerId)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

export async function findUpstreamLink(db: Db, issuer: string, subject: string): Promise<UpstreamLink | undefined> {
  if (hasNul(issuer) || hasNul(subject)) return undefined;
  const row = await db.selectFrom('upstream_links').selectAll().where('issuer', '=', issuer).where('subject', '=', subject).executeTakeFirst();
  return row && toLink(row);
}

export async function listUpstreamLinksOfUser(db: Db, userId: string): Promise<UpstreamLink[]> {
  if (hasNul(userId)) return [];
  const rows = await db.selectFrom('upstream_links').selectAll().where('user_id', '=', userId).orderBy('created_at').execute();
  return rows.map(toLink);
}

export async function insertUpstreamLink(
  db: Db,
  link: { providerId: string; issuer: string; subject: string; userId: string; emailAtLink: string | null; at: Date },
): Promise<UpstreamLink> {
  const row = await db
    .insertInto('upstream_links')
    .values({
      provider_id: link.providerId,
      issuer: link.issuer,
      subject: link.subject,
      user_id: link.userId,
      email_at_link: link.emailAtLink,
      created_at: link.at,
      last_used_at: link.at,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toLink(row);
}

export async function touchUpstreamLink(db: Db, issuer: string, subject: string, at: Date): Promise<void> {
  await db.updateTable('upstream_links').set({ last_used_at: at }).where('issuer', '=', issuer).where('subject', '=', subject).execute();
}

/** Removes the person's link at a provider; the link removed, or undefined when there was none. */
export async function deleteUpstreamLink(db: Db, userId: string, providerId: string): Promise<UpstreamLink | undefined> {
  if (hasNul(userId) || hasNul(providerId)) return undefined;
  const row = await db.deleteFrom('upstream_links').where('user_id', '=', userId).where('provider_id', '=', providerId).returningAll().executeTakeFirst();
  return row && toLink(row);
}

/** Providers whose client secret is sealed under another data key than `currentKid` (for `keys reencrypt`). */
export async function listProvidersNotUnder(db: Db, currentKid: string): Promise<UpstreamProvider[]> {
  const rows = await db
    .selectFrom('upstream_providers')
    .selectAll()
    .where('client_secret_jwe', 'is not', null)
    .where((eb) => eb.or([eb('key_id', 'is', null), eb('key_id', '!=', currentKid)]))
    .orderBy('id')
    .execute();
  return rows.map(toProvider);
}

/** Replaces a provider's sealed secret, only if it is still the one that was read (a change meanwhile wins). */
export async function resealProviderSecret(db: Db, id: string, fromJwe: string, toJwe: string, keyId: string): Promise<boolean> {
  const result = await db
    .updateTable('upstream_providers')
    .set({ client_secret_jwe: toJwe, key_id: keyId })
    .where('id', '=', id)
    .where('client_secret_jwe', '=', fromJwe)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}
