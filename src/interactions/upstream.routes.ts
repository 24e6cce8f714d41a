import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type { Provider } from 'oidc-provider';
import type { AuditEntry, AuditSink } from '../audit/audit-log.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Pages } from '../oidc/pages.js';
import { pageCsp } from '../oidc/pages.js';
import { findUpstreamProvider } from '../registry/upstream.repository.js';
import type { RegistryServiceDeps } from '../services/changes.js';
import { ConflictError } from '../services/errors.js';
import {
  linkUpstream,
  resolveUpstreamIdentity,
  type UpstreamIdentity,
  type UpstreamRefusal,
} from '../services/upstream-links.service.js';
import { UpstreamSignInError, type UpstreamSignIn } from '../services/upstream-sign-in.js';
import { epochSeconds, type EphemeralStore } from '../store/ephemeral-store.js';
import type { RequestLimiter } from './login-limiter.js';
import type { MessageKey, Translate } from '../ui/i18n.js';
import { inMinutes, requestLocale, translatorOf } from './page-locale.js';

type Interaction = Awaited<ReturnType<Provider['interactionDetails']>>;

/**
 * The ephemeral-store model of an upstream identity whose verified email is an existing person's
 * (design §6.3 rule 2), keyed by the interaction's uid: the person must sign in with their own
 * method in this interaction; only then, and only as that same person, is the link written.
 */
const PENDING_LINK = 'UpstreamPendingLink';
const PENDING_LINK_TTL_SECONDS = 600;

/** What the interaction routes lend the upstream routes (one implementation of each, in interaction.routes.ts). */
export interface InteractionHelpers {
  forms: Middleware;
  details(ctx: Context): Promise<Interaction>;
  formStep(ctx: Context, atStep: (interaction: Interaction) => boolean): Promise<{ uid: string; interaction: Interaction } | undefined>;
  /**
   * The one place a sign-in without a password finishes (design §3.2, D6): asks for the second
   * factor when the person has one or the request needs one, else finishes with acr basic and no amr.
   * As a password sign-in, it waits out the second of the person's sessions_valid_after first.
   */
  signInWithout(
    ctx: Context,
    uid: string,
    interaction: Interaction,
    account: { id: string; sessionsValidAfter: Date | null },
    method: 'upstream',
    details: Record<string, unknown>,
  ): Promise<void>;
}

export interface UpstreamRouteDeps {
  upstream: UpstreamSignIn;
  registry: RegistryServiceDeps;
  store: EphemeralStore;
  pages: Pages;
  logger: Logger;
  audit?: AuditSink;
  /** Per client IP: how many sign-ins may be started (each keeps a state for 10 minutes); none when not given. */
  startLimiter?: RequestLimiter;
  /** Counts refused starts as `gatehouse_rate_limited_total{limiter="upstream_start"}`. */
  metrics?: Pick<Metrics, 'rateLimited'>;
}

/** The window of UPSTREAM_MAX_STARTS_PER_IP: the lifetime of a start's state. */
export const UPSTREAM_START_WINDOW_SECONDS = 600;

/** What the login page shows for providers: their buttons, and the notice of a link waiting for the person's own sign-in. */
export interface LoginExtras {
  providers: Array<{ id: string; name: string; action: string }>;
  formTargets: string[];
  linkNotice?: string;
  email?: string;
}

const REFUSALS: Record<UpstreamRefusal, MessageKey> = {
  no_email: 'upstream.no_email',
  email_not_verified: 'upstream.email_not_verified',
  email_domain_not_allowed: 'upstream.email_domain_not_allowed',
  signup_not_allowed: 'upstream.signup_not_allowed',
  account_disabled: 'upstream.account_disabled',
  already_linked: 'upstream.already_linked',
};

function failureMessage(t: Translate, error: UpstreamSignInError, name: string, brand: string): string {
  switch (error.kind) {
    case 'provider_unreachable':
      return t('upstream.unreachable', { provider: name });
    case 'provider_error':
      return t('upstream.provider_error', { provider: name, error: error.upstreamError ?? 'error' });
    case 'invalid_response':
      return t('upstream.invalid_response', { provider: name, brand });
    case 'expired':
      return t('upstream.expired');
    case 'disabled_provider':
      return t('upstream.disabled');
  }
}

const requestIdOf = (ctx: Context) => {
  const id = (ctx.state as { requestId?: unknown }).requestId;
  return typeof id === 'string' ? id : null;
};

/**
 * Sign-in with upstream OpenID providers (docs/design/sign-in-methods.md §6):
 * - POST /interaction/:uid/upstream/:id/start (CSRF): 303 to the provider, with PKCE, state, nonce;
 * - GET /upstream/callback: the code exchanged and the ID token checked, then 303 to
 * - GET /interaction/:uid/upstream: where the interaction cookie binds the result to this browser,
 *   and the linking rules decide: sign in, sign up, ask the person to sign in to link, or refuse.
 * Every failure is a page that says what to do (502 when the provider is unreachable, 400
 * otherwise) and an `upstream.failure` audit row; nothing is written then.
 *
 * @example
 * const upstream = createUpstreamRoutes({ upstream: createUpstreamSignIn(…), registry, store, pages, logger, audit });
 * createInteractionRoutes({ …, upstream });   // mounts the interaction part, asks loginExtras and onLogin
 * app routers: [interactions, upstream.callbackRouter, …]
 */
export function createUpstreamRoutes(deps: UpstreamRouteDeps) {
  const { upstream, store } = deps;

  async function audit(ctx: Context, entry: Omit<AuditEntry, 'requestId' | 'ip'>) {
    await deps.audit?.record({ ...entry, requestId: requestIdOf(ctx), ip: ctx.ip });
  }

  function page(ctx: Context, status: number, heading: string, message: string, code: string, back?: string) {
    ctx.status = status;
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Content-Security-Policy', pageCsp());
    ctx.body = deps.pages.render('error', { title: heading, heading, message, code, requestId: ctx.state.requestId, locale: requestLocale(ctx), ...(back ? { back } : {}) });
  }

  /** The page of a failed sign-in with a provider, and its audit row (the kind, and the provider's error if any). */
  async function failed(ctx: Context, error: UpstreamSignInError, fallbackUid?: string) {
    const t = translatorOf(ctx);
    const name = error.provider?.name ?? t('common.the_provider');
    const uid = error.uid ?? fallbackUid;
    ctx.state.log?.warn({ outcome: 'failure', kind: error.kind, provider: error.provider?.id, err: { message: error.message, cause: (error.cause as Error | undefined)?.message } }, 'upstream sign-in failed');
    await audit(ctx, {
      actor: 'anonymous',
      action: 'upstream.failure',
      target: error.provider ? `provider:${error.provider.id}` : null,
      details: { kind: error.kind, ...(error.upstreamError ? { error: error.upstreamError } : {}) },
    });
    page(ctx, error.status, t('upstream.failed_heading', { provider: name }), failureMessage(t, error, name, deps.pages.brand.name), error.kind, uid && error.kind !== 'expired' ? `/interaction/${uid}` : undefined);
  }

  const callbackRouter = new Router({ prefix: '/upstream' });
  callbackRouter.get('/callback', async (ctx) => {
    try {
      const { uid } = await upstream.callback(new URL(ctx.originalUrl, 'http://callback.invalid'));
      ctx.status = 303;
      ctx.redirect(`/interaction/${uid}/upstream`);
    } catch (error) {
      if (error instanceof UpstreamSignInError) {
        await failed(ctx, error);
        return;
      }
      throw error;
    }
  });

  /** Mounts the interaction's part on the interaction router (its cookie, its CSRF token, its pages). */
  function mount(router: Router, helpers: InteractionHelpers) {
    router.post('/:uid/upstream/:id/start', helpers.forms, async (ctx) => {
      const step = await helpers.formStep(ctx, (i) => i.prompt.name === 'login');
      if (!step) return;
      const { uid } = step;
      const limit = deps.startLimiter ? await deps.startLimiter.take(ctx.ip) : ({ allowed: true } as const);
      if (!limit.allowed) {
        deps.metrics?.rateLimited('upstream_start');
        // Not audited: refused requests would write rows at will. Nothing is stored for this one.
        ctx.state.log?.info({ outcome: 'rate_limited', retryAfterSeconds: limit.retryAfterSeconds }, 'upstream sign-in start refused: too many from this address');
        const t = translatorOf(ctx);
        ctx.set('Retry-After', String(limit.retryAfterSeconds));
        page(
          ctx,
          429,
          t('upstream.too_many_heading'),
          inMinutes(t, Math.ceil(limit.retryAfterSeconds / 60), 'upstream.too_many', 'upstream.too_many_one'),
          'rate_limited',
          `/interaction/${uid}`,
        );
        return;
      }
      try {
        const provider = await upstream.provider(String(ctx.params.id));
        const url = await upstream.start(provider, uid);
        ctx.state.log?.info({ provider: provider.id }, 'upstream sign-in started');
        ctx.status = 303;
        ctx.redirect(url.href);
      } catch (error) {
        if (error instanceof UpstreamSignInError) {
          await failed(ctx, error, uid);
          return;
        }
        throw error;
      }
    });

    router.get('/:uid/upstream', async (ctx) => {
      // The interaction cookie proves this browser started the sign-in (design §6.2, "why the callback hops").
      const interaction = await helpers.details(ctx);
      const uid = String(ctx.params.uid);
      const identity = interaction.prompt.name === 'login' ? await upstream.takeResult(uid) : undefined;
      if (!identity) {
        await failed(ctx, new UpstreamSignInError('expired', 'no upstream result for this interaction', { uid }));
        return;
      }
      const provider = await findUpstreamProvider(deps.registry.db, identity.providerId);
      if (!provider || !provider.enabled) {
        await failed(ctx, new UpstreamSignInError('disabled_provider', 'the provider was removed or turned off', { uid }));
        return;
      }
      const outcome = await resolveUpstreamIdentity(deps.registry, provider, identity, { requestId: requestIdOf(ctx), ip: ctx.ip });
      const who = { provider_id: provider.id, issuer: identity.iss, subject: identity.sub };
      if (outcome.kind === 'refused') {
        ctx.state.log?.info({ outcome: 'failure', reason: outcome.reason, provider: provider.id }, 'upstream identity refused');
        await audit(ctx, { actor: 'anonymous', action: 'upstream.failure', target: `provider:${provider.id}`, details: { kind: outcome.reason, ...who } });
        const t = translatorOf(ctx);
        page(ctx, 400, t('upstream.refused_heading', { provider: provider.name }), t(REFUSALS[outcome.reason], { provider: provider.name, brand: deps.pages.brand.name }), outcome.reason, `/interaction/${uid}`);
        return;
      }
      if (outcome.kind === 'confirm') {
        // An account has this (verified) email: its owner must sign in with their own method first.
        const remaining = typeof interaction.exp === 'number' ? interaction.exp - epochSeconds() : PENDING_LINK_TTL_SECONDS;
        const ttl = Math.max(1, Math.min(PENDING_LINK_TTL_SECONDS, remaining));
        await store.upsert(PENDING_LINK, uid, { ...identity, userId: outcome.user.id, providerName: provider.name, email: outcome.user.email }, ttl);
        ctx.state.log?.info({ outcome: 'link_pending', provider: provider.id, accountId: outcome.user.id }, 'upstream identity matches an account by email; its owner must sign in');
        ctx.status = 303;
        ctx.redirect(`/interaction/${uid}`);
        return;
      }
      await helpers.signInWithout(ctx, uid, interaction, outcome.user, 'upstream', { provider_id: provider.id, signed_up: outcome.kind === 'signed_up' });
    });
  }

  return {
    callbackRouter,
    mount,

    /** The providers' buttons for the login page, and the notice of a link waiting for this person's sign-in. */
    async loginExtras(uid: string, t: Translate): Promise<LoginExtras> {
      const providers = await upstream.enabledProviders();
      const pending = await store.find(PENDING_LINK, uid);
      const waiting = pending && !pending.consumed && typeof pending.email === 'string' && typeof pending.providerName === 'string';
      return {
        providers: providers.map((p) => ({ id: p.id, name: p.name, action: `/interaction/${uid}/upstream/${p.id}/start` })),
        formTargets: upstream.formTargets(providers),
        ...(waiting
          ? { linkNotice: t('login.link_notice', { email: String(pending.email), provider: String(pending.providerName) }), email: String(pending.email) }
          : {}),
      };
    },

    /**
     * Called as a sign-in of this interaction finishes (after every factor): writes the link that
     * waited for it, only when the person who signed in is the one the email named.
     */
    async onLogin(ctx: Context, uid: string, accountId: string): Promise<void> {
      const pending = await store.find(PENDING_LINK, uid);
      if (!pending || pending.consumed || (await store.consume(PENDING_LINK, uid)).result !== 'consumed') return;
      await store.destroy(PENDING_LINK, uid);
      const { providerId, iss, sub, email, name, userId } = pending;
      if (typeof providerId !== 'string' || typeof iss !== 'string' || typeof sub !== 'string') return;
      if (userId !== accountId) {
        ctx.state.log?.info({ provider: providerId, accountId }, 'signed in as another account than the upstream email named: nothing linked');
        return;
      }
      const identity: UpstreamIdentity = { providerId, iss, sub, email: typeof email === 'string' ? email : null, emailVerified: true, name: typeof name === 'string' ? name : null };
      try {
        await linkUpstream(deps.registry, { actor: `person:${accountId}`, requestId: requestIdOf(ctx), ip: ctx.ip }, accountId, identity);
        ctx.state.log?.info({ provider: providerId, accountId }, 'upstream identity linked');
      } catch (error) {
        if (!(error instanceof ConflictError)) throw error;
        // Linked meanwhile (another tab): the sign-in itself stands.
        ctx.state.log?.info({ provider: providerId, accountId }, 'upstream identity already linked');
      }
    },
  };
}

export type UpstreamRoutes = ReturnType<typeof createUpstreamRoutes>;
