import { domainToASCII } from 'node:url';
import type { Kysely, Transaction } from 'kysely';
import { z } from 'zod';
import { isLoopbackHostname } from '../config/protocol.js';
import type { DataKeyring } from '../keys/data-key.js';
import type { Database } from '../registry/tables.js';
import {
  deleteUpstreamProvider,
  findUpstreamProvider,
  insertUpstreamProvider,
  listUpstreamProviders,
  updateUpstreamProvider,
  type UpstreamProvider,
} from '../registry/upstream.repository.js';
import { recordChange, type AuditActor, type RegistryServiceDeps } from './changes.js';
import { ConflictError, isUniqueViolation, NotFoundError, ValidationError } from './errors.js';
import { sealSecret } from './sealed-secrets.js';
import { discoverUpstream, IssuerCheckError } from './upstream-oidc.js';
import { parseInput, scopeString } from './validation.js';

/** What the provider registry needs: the registry, the data keys secrets are sealed with, and whether this is production. */
export interface UpstreamProviderDeps extends RegistryServiceDeps {
  dataKeys: DataKeyring;
  production: boolean;
  /** How long discovery may take, in seconds (UPSTREAM_TIMEOUT_SECONDS; 5 unless given). */
  timeoutSeconds?: number;
  /**
   * Checks the issuer before it is stored (discovery: reachable, the same issuer, a code flow);
   * by default openid-client's discovery (discoverUpstream). Throws IssuerCheckError.
   */
  checkIssuer?: (issuer: string, clientId: string) => Promise<void>;
}

export const PROVIDER_ID = /^[a-z0-9-]{1,40}$/;
export const DEFAULT_UPSTREAM_SCOPES = ['openid', 'email', 'profile'];

/** The sealed secret's context: a ciphertext of one provider's row opens for that provider only. */
export const upstreamSecretContext = (providerId: string) => `upstream:${providerId}`;

const providerId = z.string().regex(PROVIDER_ID, 'must be 1–40 characters of a-z, 0-9 and -');
const name = z.string().trim().min(1, 'must not be empty').max(60, 'must be at most 60 characters');
const issuerUrl = z.string().max(2048).superRefine((value, ctx) => {
  const url = URL.parse(value);
  if (!url || !['https:', 'http:'].includes(url.protocol)) ctx.addIssue({ code: 'custom', message: 'must be an absolute https URL' });
  else if (url.search || url.hash || value.includes('#') || value.includes('?')) ctx.addIssue({ code: 'custom', message: 'must not contain a query or a fragment' });
  else if (url.username || url.password) ctx.addIssue({ code: 'custom', message: 'must not contain credentials' });
});
const clientId = z.string().min(1, 'must not be empty').max(255);
const clientSecret = z.string().min(1, 'must not be empty').max(1024);
const scopes = scopeString.superRefine((list, ctx) => {
  if (!list.includes('openid')) ctx.addIssue({ code: 'custom', message: 'must contain openid (an ID token is what identifies the person)' });
});
const emailDomain = z
  .string()
  .max(253)
  .transform((value) => domainToASCII(value.trim().toLowerCase().replace(/^@/, '')))
  .pipe(z.string().regex(/^(?=.{1,253}$)([a-z0-9-]{1,63}\.)+[a-z0-9-]{1,63}$/, 'must be a domain name, such as example.com'));
const emailDomains = z.array(emailDomain).max(100).transform((list) => [...new Set(list)]);

export const providerCreateSchema = z.strictObject({
  id: providerId.optional(),
  name,
  issuer: issuerUrl,
  client_id: clientId,
  client_secret: clientSecret.optional(),
  scope: scopes.optional(),
  allow_signup: z.boolean().optional(),
  allowed_email_domains: emailDomains.optional(),
  enabled: z.boolean().optional(),
});
export type ProviderCreateInput = z.input<typeof providerCreateSchema>;

export const providerUpdateSchema = z.strictObject({
  name: name.optional(),
  issuer: issuerUrl.optional(),
  client_id: clientId.optional(),
  /** A new secret, or null for a public (PKCE-only) registration. */
  client_secret: clientSecret.nullable().optional(),
  scope: scopes.optional(),
  allow_signup: z.boolean().optional(),
  allowed_email_domains: emailDomains.optional(),
  enabled: z.boolean().optional(),
});
export type ProviderUpdateInput = z.input<typeof providerUpdateSchema>;

/** The wire form of a provider: never the secret, only whether one is set. */
export function providerToJson(provider: UpstreamProvider) {
  return {
    id: provider.id,
    name: provider.name,
    issuer: provider.issuer,
    client_id: provider.clientId,
    client_secret_set: provider.clientSecretJwe !== null,
    scope: provider.scopes.join(' '),
    allow_signup: provider.allowSignup,
    allowed_email_domains: provider.allowedEmailDomains,
    enabled: provider.enabled,
    created_at: provider.createdAt.toISOString(),
    updated_at: provider.updatedAt.toISOString(),
  };
}
export type ProviderJson = ReturnType<typeof providerToJson>;

/** An id made from a display name: "Example SSO" → "example-sso". */
export function slugFromName(value: string): string {
  return value
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40)
    .replace(/-+$/, '');
}

/** https, or outside production http on a loopback address (a test provider on another local port). */
function issuerProblem(issuer: string, production: boolean): string | undefined {
  const url = new URL(issuer);
  if (url.protocol === 'https:') return undefined;
  if (!production && isLoopbackHostname(url.hostname)) return undefined;
  return production ? 'issuer must be an https URL' : 'issuer must be an https URL (http only on a loopback address outside production)';
}

async function checkIssuer(deps: UpstreamProviderDeps, issuer: string, clientId: string): Promise<void> {
  const problem = issuerProblem(issuer, deps.production);
  if (problem) throw new ValidationError([{ field: 'issuer', message: problem }]);
  try {
    if (deps.checkIssuer) await deps.checkIssuer(issuer, clientId);
    else await discoverUpstream(issuer, { clientId }, { production: deps.production, ...(deps.timeoutSeconds !== undefined ? { timeoutSeconds: deps.timeoutSeconds } : {}) });
  } catch (error) {
    if (error instanceof IssuerCheckError) throw new ValidationError([{ field: 'issuer', message: `${error.code}: ${error.message}` }]);
    throw error;
  }
}

/**
 * Registers an upstream OpenID provider: checks the issuer (https in production; its discovery
 * document answers, names this issuer and offers the code flow with S256), seals the client secret
 * under the newest data key for this provider's row, and records `provider.create` (without the
 * secret) by `by`, in the same transaction.
 *
 * @example
 * await createProvider({ ...registry, dataKeys, production }, cliActor(), {
 *   name: 'Example SSO', issuer: 'https://sso.example.com', client_id: 'gatehouse', client_secret,
 * });
 */
export async function createProvider(deps: UpstreamProviderDeps, by: AuditActor, input: unknown): Promise<UpstreamProvider> {
  const data = parseInput(providerCreateSchema, input);
  const id = data.id ?? slugFromName(data.name);
  if (!PROVIDER_ID.test(id)) throw new ValidationError([{ field: 'id', message: 'cannot be made from the name: give one (a-z, 0-9 and -)' }]);
  if (await findUpstreamProvider(deps.db, id)) throw new ConflictError('id', `a provider ${id} is already registered`);
  await checkIssuer(deps, data.issuer, data.client_id);
  const sealed = data.client_secret !== undefined ? await sealSecret(deps.dataKeys, data.client_secret, upstreamSecretContext(id)) : undefined;
  const now = new Date();
  try {
    return await deps.db.transaction().execute(async (trx) => {
      const created = await insertUpstreamProvider(trx, {
        id,
        name: data.name,
        issuer: data.issuer,
        client_id: data.client_id,
        client_secret_jwe: sealed?.jwe ?? null,
        key_id: sealed?.kid ?? null,
        scopes: data.scope ?? DEFAULT_UPSTREAM_SCOPES,
        allow_signup: data.allow_signup ?? false,
        allowed_email_domains: data.allowed_email_domains ?? [],
        enabled: data.enabled ?? true,
        created_at: now,
        updated_at: now,
      });
      await recordChange(deps.audit, trx, by, { action: 'provider.create', target: `provider:${id}`, details: { after: providerToJson(created) } });
      return created;
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw new ConflictError('id', `a provider ${id} is already registered`);
    throw error;
  }
}

export async function getProvider(db: Kysely<Database> | Transaction<Database>, id: string): Promise<UpstreamProvider> {
  const found = await findUpstreamProvider(db, id);
  if (!found) throw new NotFoundError(`provider ${id}`);
  return found;
}

export function listProviders(db: Kysely<Database>): Promise<UpstreamProvider[]> {
  return listUpstreamProviders(db);
}

/**
 * Changes the fields given; a new issuer or client id is checked as at registration, a new secret
 * sealed. Recorded as `provider.update` with the provider before and after (never the secret;
 * `client_secret_set` says whether one is set).
 */
export async function updateProvider(deps: UpstreamProviderDeps, by: AuditActor, id: string, input: unknown): Promise<UpstreamProvider> {
  const data = parseInput(providerUpdateSchema, input);
  const current = await getProvider(deps.db, id);
  if (data.issuer !== undefined || data.client_id !== undefined) await checkIssuer(deps, data.issuer ?? current.issuer, data.client_id ?? current.clientId);
  const sealed = typeof data.client_secret === 'string' ? await sealSecret(deps.dataKeys, data.client_secret, upstreamSecretContext(current.id)) : undefined;
  return deps.db.transaction().execute(async (trx) => {
    const before = await findUpstreamProvider(trx, id, { forUpdate: true });
    if (!before) throw new NotFoundError(`provider ${id}`);
    const updated = await updateUpstreamProvider(trx, before.id, {
      ...(data.name !== undefined ? { name: data.name } : {}),
      ...(data.issuer !== undefined ? { issuer: data.issuer } : {}),
      ...(data.client_id !== undefined ? { client_id: data.client_id } : {}),
      ...(sealed ? { client_secret_jwe: sealed.jwe, key_id: sealed.kid } : {}),
      ...(data.client_secret === null ? { client_secret_jwe: null, key_id: null } : {}),
      ...(data.scope !== undefined ? { scopes: data.scope } : {}),
      ...(data.allow_signup !== undefined ? { allow_signup: data.allow_signup } : {}),
      ...(data.allowed_email_domains !== undefined ? { allowed_email_domains: data.allowed_email_domains } : {}),
      ...(data.enabled !== undefined ? { enabled: data.enabled } : {}),
    });
    if (!updated) throw new NotFoundError(`provider ${id}`);
    await recordChange(deps.audit, trx, by, {
      action: 'provider.update',
      target: `provider:${updated.id}`,
      details: { before: providerToJson(before), after: providerToJson(updated), ...(data.client_secret !== undefined ? { secret_changed: true } : {}) },
    });
    return updated;
  });
}

/** Lets people sign in with the provider again (`provider.update`). */
export function enableProvider(deps: UpstreamProviderDeps, by: AuditActor, id: string): Promise<UpstreamProvider> {
  return updateProvider(deps, by, id, { enabled: true });
}

/** Takes the provider off the login page; its links stay (`provider.update`). */
export function disableProvider(deps: UpstreamProviderDeps, by: AuditActor, id: string): Promise<UpstreamProvider> {
  return updateProvider(deps, by, id, { enabled: false });
}

/** Deletes a provider and every link to it; recorded as `provider.delete` with what it was and `links_removed`. */
export async function deleteProvider(deps: RegistryServiceDeps, by: AuditActor, id: string): Promise<{ linksRemoved: number }> {
  return deps.db.transaction().execute(async (trx) => {
    const before = await findUpstreamProvider(trx, id, { forUpdate: true });
    if (!before) throw new NotFoundError(`provider ${id}`);
    const linksRemoved = await deleteUpstreamProvider(trx, before.id);
    if (linksRemoved === undefined) throw new NotFoundError(`provider ${id}`);
    await recordChange(deps.audit, trx, by, { action: 'provider.delete', target: `provider:${before.id}`, details: { before: providerToJson(before), links_removed: linksRemoved } });
    return { linksRemoved };
  });
}
