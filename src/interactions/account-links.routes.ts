import Router from '@koa/router';
import type { Context } from 'koa';
import type { ParsedUrlQuery } from 'node:querystring';
import type { Provider } from 'oidc-provider';
import type { Config } from '../config/load-config.js';
import type { Pages } from '../oidc/pages.js';
import type { Kysely } from 'kysely';
import type { Database } from '../registry/tables.js';
import { listUpstreamLinksOfUser, listUpstreamProviders } from '../registry/upstream.repository.js';
import type { RegistryServiceDeps } from '../services/changes.js';
import { NotFoundError } from '../services/errors.js';
import { hasAnySecondFactor } from '../services/second-factors.service.js';
import { LastSignInMethodError, unlinkUpstream } from '../services/upstream-links.service.js';
import { createAccountSession, type AccountLookup } from './account-session.js';
import type { Translate } from '../ui/i18n.js';

/** Where the section is on the account page (its heading's id). */
const SECTION = '/account#linked-accounts';

/** A provider id as the registry allows it ([a-z0-9-]{1,40}); anything else is no link of anyone's. */
const PROVIDER_ID = /^[a-z0-9-]{1,40}$/;

/** What the "Linked accounts" section of views/account.eta shows. */
export interface LinkedAccountsSection {
  links: Array<{
    providerId: string;
    name: string;
    emailAtLink: string | null;
    linkedAt: string;
    linkedAtText: string;
    lastUsedAt: string | null;
    lastUsedAtText: string | null;
    action: string;
  }>;
  /** After an unlink (the POST answers 303 to the page): what happened, in words. */
  status?: string;
  error?: string;
}

/** A time as the page shows it: UTC to the minute (the <time> element carries the exact instant). */
function shortTime(at: Date): string {
  return `${at.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/**
 * The "Linked accounts" section's data for the person (design §7.3): each link with its provider's
 * name, the email the provider gave when it was linked, when, and when it was last used; and the
 * outcome of an unlink the page was sent back with (`?links=unlinked&provider=<id>` or
 * `?links=last_way`; fixed sentences, never text from the query).
 *
 * @example
 * linkedAccounts: await linkedAccountsSection(db, person.id, ctx.query),   // in the /account render
 */
export async function linkedAccountsSection(db: Kysely<Database>, userId: string, t: Translate, query: ParsedUrlQuery = {}): Promise<LinkedAccountsSection> {
  const [links, providers] = await Promise.all([listUpstreamLinksOfUser(db, userId), listUpstreamProviders(db)]);
  const names = new Map(providers.map((provider) => [provider.id, provider.name]));
  const section: LinkedAccountsSection = {
    links: links.map((link) => ({
      providerId: link.providerId,
      name: names.get(link.providerId) ?? link.providerId,
      emailAtLink: link.emailAtLink,
      linkedAt: link.createdAt.toISOString(),
      linkedAtText: shortTime(link.createdAt),
      lastUsedAt: link.lastUsedAt ? link.lastUsedAt.toISOString() : null,
      lastUsedAtText: link.lastUsedAt ? shortTime(link.lastUsedAt) : null,
      action: `/account/links/${encodeURIComponent(link.providerId)}/delete`,
    })),
  };
  if (query.links === 'unlinked') {
    const name = typeof query.provider === 'string' ? names.get(query.provider) : undefined;
    section.status = name ? t('account.unlinked', { provider: name }) : t('account.unlinked_unnamed');
  } else if (query.links === 'last_way') {
    section.error = t('account.last_way');
  }
  return section;
}

/**
 * The "Linked accounts" part of the account page (docs/design/sign-in-methods.md §6.3, §7.3):
 * `POST /account/links/:provider/delete` ("Unlink"), with the account CSRF token and a recent sign-in
 * (else 303 to /account/reauth, nothing changed), through `unlinkUpstream` (audited `upstream.unlink`
 * by `person:<id>`; the person's passkeys count as a way in). The answer is 303 back to the section,
 * which says what happened; the last way to sign in is refused there (`?links=last_way`); a provider
 * the person has no link at is a 404 page. The section's data comes from linkedAccountsSection.
 *
 * @example
 * app routers: createAccountLinkRoutes({ provider: () => host.provider, accounts, pages, config, registry: { db, audit } })
 */
export function createAccountLinkRoutes(deps: {
  provider: () => Provider;
  accounts: AccountLookup;
  pages: Pages;
  config: Config;
  registry: RegistryServiceDeps;
}): Router {
  const { registry } = deps;
  // The same building blocks as the rest of /account (the CSRF token is an HMAC of the same keys and binding).
  const kit = createAccountSession({
    provider: deps.provider,
    accounts: deps.accounts,
    pages: deps.pages,
    config: deps.config,
    hasSecondFactor: (userId) => hasAnySecondFactor(registry.db, userId),
  });
  const router = new Router({ prefix: '/account/links' });

  // Storage outages get the 503 page (the account pages' one guard); nothing else is caught.
  router.use((ctx, next) => kit.outageGuard(ctx, next));

  const back = (ctx: Context, query: string) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 303;
    ctx.redirect(`/account?${query}#linked-accounts`);
  };

  router.post('/:provider/delete', async (ctx) => {
    const step = await kit.beginPost(ctx, SECTION);
    if (!step) return;
    const { person } = step;
    const providerId = String(ctx.params.provider);
    const notLinked = () => kit.errorPage(ctx, 404, kit.t(ctx)('account.no_such_link'), kit.t(ctx)('account.no_such_link_text'), 'not_found');
    if (!PROVIDER_ID.test(providerId)) return notLinked();
    try {
      await unlinkUpstream(registry, kit.actor(ctx, person), person.id, providerId);
    } catch (error) {
      if (error instanceof NotFoundError) return notLinked();
      if (error instanceof LastSignInMethodError) {
        ctx.state.log?.info({ accountId: person.id, provider: providerId }, 'unlink refused: the last way to sign in');
        return back(ctx, 'links=last_way');
      }
      throw error;
    }
    ctx.state.log?.info({ accountId: person.id, provider: providerId }, 'upstream account unlinked from the account page');
    back(ctx, `links=unlinked&provider=${encodeURIComponent(providerId)}`);
  });

  return router;
}
