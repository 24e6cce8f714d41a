import type Router from '@koa/router';
import type { Context } from 'koa';
import type { Kysely } from 'kysely';
import { ADMIN_RESOURCE_IDENTIFIER, listResourceServers } from '../registry/resource-server.repository.js';
import type { Database } from '../registry/tables.js';
import { createApiKey, listOwnApiKeys, MAX_KEYS_PER_PERSON, MAX_LABEL_LENGTH, regenerateApiKey, revokeApiKey } from '../services/api-keys.service.js';
import type { RegistryServiceDeps } from '../services/changes.js';
import { ConflictError, NotFoundError, ValidationError } from '../services/errors.js';
import type { MessageKey } from '../ui/messages/en.js';
import type { AccountSession, SignedInPerson } from './account-session.js';

/** Where the section is on the account page (its heading's id): re-authentication comes back here. */
const SECTION = '/account#api-keys';

/** A key id as the service makes them (a UUID); anything else is no key of anyone's. */
const KEY_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The expiry choices of the form, in days; `never` is none. */
export const EXPIRY_CHOICES = ['7', '30', '90', '365', 'never'] as const;
const DEFAULT_EXPIRY = '90';

/** A message of the catalogue with its parameters: the template translates it (views/account-api-keys.eta). */
export interface SectionMessage {
  key: MessageKey;
  params?: Record<string, string | number>;
}

/** What a POST of this section hands the page: the key made just now (shown once), what happened, and the form as typed when refused. */
export interface ApiKeysOutcome {
  created?: { apiKey: string; label: string };
  status?: SectionMessage;
  error?: SectionMessage;
  form?: { label: string; resource: string; scope: string; expires: string };
}

/** What the "API keys" section of the account page shows (views/account-api-keys.eta). */
export interface ApiKeysSection extends ApiKeysOutcome {
  keys: Array<{
    id: string;
    label: string;
    prefix: string;
    resource: string;
    scope: string;
    created: string;
    createdText: string;
    expires: string | null;
    expiresText: string | null;
    expired: boolean;
    lastUsed: string | null;
    lastUsedText: string | null;
  }>;
  /** The APIs a key may be made for: every registered one but the admin API. */
  apis: Array<{ identifier: string; label: string; scopes: string }>;
  expiryChoices: readonly string[];
  form: NonNullable<ApiKeysOutcome['form']>;
}

/** A time as the page shows it: UTC to the minute (the <time> element carries the exact instant). */
function shortTime(at: Date): string {
  return `${at.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/**
 * The section's data for the person: their keys by label and prefix (never a key), the APIs a key
 * may be for, and what the POST just done says (the new key, once; a status; an error with the form
 * as it was typed).
 *
 * @example
 * apiKeys: await apiKeysSection(db, person.id, extras.apiKeys),   // in the /account render
 */
export async function apiKeysSection(db: Kysely<Database>, userId: string, outcome: ApiKeysOutcome = {}, now: Date = new Date()): Promise<ApiKeysSection> {
  const [keys, resources] = await Promise.all([listOwnApiKeys(db, userId), listResourceServers(db)]);
  return {
    ...outcome,
    keys: keys.map((key) => ({
      id: key.id,
      label: key.label,
      prefix: key.prefix,
      resource: key.resourceIdentifier,
      scope: key.scopes.join(' '),
      created: key.createdAt.toISOString(),
      createdText: shortTime(key.createdAt),
      expires: key.expiresAt?.toISOString() ?? null,
      expiresText: key.expiresAt ? shortTime(key.expiresAt) : null,
      expired: key.expiresAt !== null && key.expiresAt.getTime() <= now.getTime(),
      lastUsed: key.lastUsedAt?.toISOString() ?? null,
      lastUsedText: key.lastUsedAt ? shortTime(key.lastUsedAt) : null,
    })),
    apis: resources
      .filter((resource) => resource.identifier !== ADMIN_RESOURCE_IDENTIFIER)
      .map((resource) => ({ identifier: resource.identifier, label: resource.name ? `${resource.name} (${resource.identifier})` : resource.identifier, scopes: resource.scopes.join(' ') })),
    expiryChoices: EXPIRY_CHOICES,
    form: outcome.form ?? { label: '', resource: '', scope: '', expires: DEFAULT_EXPIRY },
  };
}

/** The message for a refused creation, by the field the service named. */
function refusal(error: ValidationError): SectionMessage {
  const fields = new Set(error.errors.map((entry) => entry.field));
  if (fields.has('label')) return { key: 'apikeys.error.label', params: { max: MAX_LABEL_LENGTH } };
  if (fields.has('resource')) return { key: 'apikeys.error.resource' };
  if (fields.has('scope')) return { key: 'apikeys.error.scope' };
  return { key: 'apikeys.error.expiry' };
}

/** What the section's routes need: the account kit, the registry, and the account page's renderer. */
export interface AccountApiKeyDeps {
  kit: AccountSession;
  registry: RegistryServiceDeps;
  /** Renders the whole account page with this section's outcome (account.routes.ts renderAccount). */
  render(ctx: Context, status: number, person: SignedInPerson, outcome: ApiKeysOutcome): Promise<void>;
}

/**
 * The "API keys" section's routes on the account router (docs/api-keys.md): `POST /account/api-keys`
 * ("Create API key"), `POST /account/api-keys/:id/regenerate` and `POST /account/api-keys/:id/delete`.
 * Each checks the account CSRF token; creating and regenerating (each shows a working key) first need
 * a recent sign-in (else 303 to /account/reauth, nothing changed); deleting only takes access away,
 * so it does not. A new key is shown on the page this POST answers, in `#new-api-key`, once: it is
 * never stored, so no later page can show it. These routes sit on the account router, not a router
 * of their own as /account/links does, because that answer is the account page itself.
 *
 * @example
 * addAccountApiKeyRoutes(router, { kit, registry: { db, audit }, render: (ctx, status, person, apiKeys) => renderAccount(ctx, status, person, { apiKeys }) });
 */
export function addAccountApiKeyRoutes(router: Router, deps: AccountApiKeyDeps): void {
  const { kit, registry, render } = deps;

  /** The start of every POST (the kit's beginPost); `sensitive`: a recent sign-in first, coming back to this section. */
  const start = (ctx: Context, sensitive: boolean) => kit.beginPost(ctx, sensitive ? SECTION : undefined);

  const keyIdOf = (ctx: Context) => {
    const id = String(ctx.params.id ?? '');
    return KEY_ID.test(id) ? id : undefined;
  };
  const notFound = (ctx: Context, person: SignedInPerson) => render(ctx, 404, person, { error: { key: 'apikeys.error.not_found' } });

  router.post('/api-keys', async (ctx) => {
    const step = await start(ctx, true);
    if (!step) return;
    const { person, form } = step;
    const typed = { label: form.field('label'), resource: form.field('resource'), scope: form.field('scope'), expires: form.field('expires') || DEFAULT_EXPIRY };
    if (!(EXPIRY_CHOICES as readonly string[]).includes(typed.expires)) {
      return render(ctx, 400, person, { error: { key: 'apikeys.error.expiry' }, form: { ...typed, expires: DEFAULT_EXPIRY } });
    }
    const input = {
      label: typed.label,
      resource: typed.resource,
      ...(typed.scope.trim() ? { scope: typed.scope } : {}),
      ...(typed.expires === 'never' ? {} : { expires_in: Number(typed.expires) * 86_400 }),
    };
    try {
      const { key, apiKey } = await createApiKey(registry, kit.actor(ctx, person), person.id, input);
      ctx.state.log?.info({ accountId: person.id, apiKeyId: key.id }, 'API key created on the account page');
      await render(ctx, 200, person, { created: { apiKey, label: key.label }, status: { key: 'apikeys.status.created' } });
    } catch (error) {
      // The label as typed, at most as long as a label may be: nothing longer is sent back.
      if (error instanceof ValidationError) return render(ctx, 400, person, { error: refusal(error), form: { ...typed, label: [...typed.label].slice(0, MAX_LABEL_LENGTH).join('') } });
      if (error instanceof ConflictError) return render(ctx, 409, person, { error: { key: 'apikeys.error.too_many', params: { max: MAX_KEYS_PER_PERSON } }, form: typed });
      throw error;
    }
  });

  router.post('/api-keys/:id/regenerate', async (ctx) => {
    const step = await start(ctx, true);
    if (!step) return;
    const { person } = step;
    const id = keyIdOf(ctx);
    if (!id) return notFound(ctx, person);
    try {
      const { key, apiKey } = await regenerateApiKey(registry, kit.actor(ctx, person), person.id, id);
      ctx.state.log?.info({ accountId: person.id, apiKeyId: key.id }, 'API key regenerated on the account page');
      await render(ctx, 200, person, { created: { apiKey, label: key.label }, status: { key: 'apikeys.status.regenerated' } });
    } catch (error) {
      if (error instanceof NotFoundError) return notFound(ctx, person);
      if (error instanceof ConflictError) return render(ctx, 409, person, { error: { key: 'apikeys.error.expired' } });
      throw error;
    }
  });

  router.post('/api-keys/:id/delete', async (ctx) => {
    const step = await start(ctx, false);
    if (!step) return;
    const { person } = step;
    const id = keyIdOf(ctx);
    if (!id) return notFound(ctx, person);
    try {
      await revokeApiKey(registry, kit.actor(ctx, person), person.id, id);
    } catch (error) {
      if (error instanceof NotFoundError) return notFound(ctx, person);
      throw error;
    }
    ctx.state.log?.info({ accountId: person.id, apiKeyId: id }, 'API key deleted on the account page');
    await render(ctx, 200, person, { status: { key: 'apikeys.status.deleted' } });
  });
}
