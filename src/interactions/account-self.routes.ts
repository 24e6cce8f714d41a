import Router from '@koa/router';
import type { Context } from 'koa';
import type { Provider } from 'oidc-provider';
import { sessionEnded } from '../accounts/account-record.js';
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH } from '../accounts/passwords.js';
import type { Config } from '../config/load-config.js';
import { listAccountSessions } from '../oidc/adapters/session-index.js';
import type { SessionSignOut } from '../oidc/backchannel-logout.js';
import type { Pages } from '../oidc/pages.js';
import { grantScopes } from '../oidc/upstream.js';
import { listResourceServers } from '../registry/resource-server.repository.js';
import { listUpstreamProviders } from '../registry/upstream.repository.js';
import { findUserById } from '../registry/user.repository.js';
import {
  changeDisplayName,
  changeOwnPassword,
  checkCurrentPassword,
  DISPLAY_NAME_MAX,
  listAccountGrants,
  newPasswordProblem,
  recentSecurityEvents,
  recordSessionsEnded,
  removeAppAccess,
  type SecurityEventAction,
} from '../services/account-self.service.js';
import type { RegistryServiceDeps } from '../services/changes.js';
import { NotFoundError, ValidationError } from '../services/errors.js';
import { hasAnySecondFactor } from '../services/second-factors.service.js';
import type { EphemeralStore } from '../store/ephemeral-store.js';
import { createTranslator, negotiateLocale, type MessageKey } from '../ui/i18n.js';
import { createAccountSession, type AccountLookup, type SignedInPerson } from './account-session.js';
import { describeUserAgent } from './account.routes.js';
import type { LoginLimiter } from './login-limiter.js';

/*
 * The account page's own sections (docs/design/self-service.md §3): "Profile" (display name, the
 * email and whether it is verified), "Password", "Connected apps", "Sessions" and "Recent security
 * events" (views/account-profile.eta, account-apps.eta, account-sessions.eta, account-events.eta).
 * Every POST needs the signed-in session and its account CSRF token, then answers 303 back to its
 * section with `?self=<outcome>` (a fixed sentence of the catalogue, never text from the query);
 * a refused field gets `autofocus` and `aria-invalid` there, so focus lands on it.
 */

/** Outcomes a POST sends the page back with (`?self=`), each a sentence `account_self.outcome.<code>`. */
const OUTCOMES = [
  'name_saved',
  'name_too_long',
  'name_not_one_line',
  'password_changed',
  'password_set',
  'current_wrong',
  'current_required',
  'current_too_many',
  'new_too_short',
  'new_too_long',
  'new_breached',
  'app_removed',
  'others_ended',
  'one_ended',
] as const;
type Outcome = (typeof OUTCOMES)[number];

/** The section (its heading's id) each outcome is shown in, and the field it is about (autofocus). */
const OUTCOME_PLACE: Record<Outcome, { section: string; field?: string; error: boolean }> = {
  name_saved: { section: 'profile', error: false },
  name_too_long: { section: 'profile', field: 'display-name', error: true },
  name_not_one_line: { section: 'profile', field: 'display-name', error: true },
  password_changed: { section: 'password', error: false },
  password_set: { section: 'password', error: false },
  current_wrong: { section: 'password', field: 'current-password', error: true },
  current_required: { section: 'password', field: 'current-password', error: true },
  current_too_many: { section: 'password', field: 'current-password', error: true },
  new_too_short: { section: 'password', field: 'new-password', error: true },
  new_too_long: { section: 'password', field: 'new-password', error: true },
  new_breached: { section: 'password', field: 'new-password', error: true },
  app_removed: { section: 'connected-apps', error: false },
  others_ended: { section: 'sessions', error: false },
  one_ended: { section: 'sessions', error: false },
};

/** The sentence of each security event (account_self.event.<action>). */
const EVENT_SENTENCES: Record<SecurityEventAction, MessageKey> = {
  'account.password_change': 'account_self.event.password_change',
  'account.name_change': 'account_self.event.name_change',
  'account.app_remove': 'account_self.event.app_remove',
  'account.sessions_end': 'account_self.event.sessions_end',
  'user.sessions_end': 'account_self.event.signed_out_everywhere',
  'user.password_set': 'account_self.event.password_set',
  'user.disable': 'account_self.event.disable',
  'user.enable': 'account_self.event.enable',
  'totp.enable': 'account_self.event.totp_enable',
  'totp.disable': 'account_self.event.totp_disable',
  'recovery_codes.generate': 'account_self.event.recovery_codes',
  'passkey.register': 'account_self.event.passkey_register',
  'passkey.remove': 'account_self.event.passkey_remove',
  'upstream.link': 'account_self.event.upstream_link',
  'upstream.unlink': 'account_self.event.upstream_unlink',
  'mfa.lockout': 'account_self.event.mfa_lockout',
  'api_key.create': 'account_self.event.api_key_create',
  'api_key.regenerate': 'account_self.event.api_key_regenerate',
  'api_key.revoke': 'account_self.event.api_key_revoke',
  'user.password_reset': 'account_self.event.password_reset',
  'user.email_verify': 'account_self.event.email_verify',
  'user.email_change_requested': 'account_self.event.email_change_requested',
  'user.email_change': 'account_self.event.email_change',
};

/** How many security events the page shows. */
export const SECURITY_EVENTS_SHOWN = 10;
/** How many sessions the page lists (the newest). */
const SESSIONS_SHOWN = 50;

/** A client id in a path: what the registry could hold, else no app of anyone's. */
const CLIENT_ID = /^[\x21-\x7e]{1,255}$/;
/** A session uid in a path (oidc-provider's nanoid). */
const SESSION_UID = /^[\w-]{1,64}$/;

/** A time as the page shows it: UTC to the minute (the <time> element carries the exact instant). */
function shortTime(at: Date): string {
  return `${at.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

const detailText = (value: unknown) => (typeof value === 'string' ? value : typeof value === 'number' ? String(value) : '');

/** What the four templates show (`it.self`). */
export type AccountSelfSections = {
  self: {
    outcome?: { code: Outcome; key: MessageKey; params: Record<string, number>; section: string; field?: string; error: boolean };
    profile: { name: string; email: string; emailVerified: boolean; nameMax: number };
    password: { hasPassword: boolean; recent: boolean; minLength: number };
    apps: Array<{
      clientId: string;
      name: string;
      action: string;
      since: string;
      sinceText: string;
      openid: string[];
      apis: Array<{ name: string; identifier: string; scopes: string[] }>;
    }>;
    sessions: Array<{ uid: string; current: boolean; signedIn?: string; signedInText?: string; browser: string; userAgent: string; ip: string | null; action: string }>;
    events: Array<{ at: string; atText: string; key: MessageKey; params: Record<string, string>; byAdministrator: boolean; ip: string | null }>;
  };
};

export interface AccountSelfDeps {
  provider: () => Provider;
  accounts: AccountLookup;
  pages: Pages;
  config: Config;
  registry: RegistryServiceDeps;
  store: EphemeralStore;
  /** The sign-in page's password limiter (createLoginLimiter kind 'login'): wrong current passwords count with wrong sign-ins. */
  passwordLimiter: LoginLimiter;
  /** Ends sessions of the person and tells their apps (back-channel logout): oidc/backchannel-logout.ts. */
  signOut: SessionSignOut;
}

/**
 * The account page's own sections: `routers` (POST /account/profile, /account/password,
 * /account/apps/:client/delete, /account/sessions/others/delete, /account/sessions/:uid/delete)
 * and `sections(ctx, person)`, the data the account page renders them with.
 *
 * @example
 * const self = createAccountSelf({ provider: () => host.provider, accounts, pages, config, registry, store, passwordLimiter });
 * createAccountRoutes({ …, sections: self.sections }); routers: [..., ...self.routers]
 */
export function createAccountSelf(deps: AccountSelfDeps): { routers: Router[]; sections: (ctx: Context, person: SignedInPerson) => Promise<AccountSelfSections> } {
  const { registry, store, config } = deps;
  const kit = createAccountSession({
    provider: deps.provider,
    accounts: deps.accounts,
    pages: deps.pages,
    config,
    hasSecondFactor: (userId) => hasAnySecondFactor(registry.db, userId),
  });

  // A refusal of a field goes back without a fragment: a page opened at a fragment gets no autofocus
  // (HTML: a document with a target element skips its autofocus candidates), and focus must land on
  // the field. Any other outcome goes back to its section.
  function back(ctx: Context, outcome: Outcome) {
    const place = OUTCOME_PLACE[outcome];
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 303;
    ctx.redirect(`/account?self=${outcome}${place.field ? '' : `#${place.section}`}`);
  }

  /** The 404 page of an app or a session the person does not have, in the page's language. */
  function notFoundPage(ctx: Context, what: 'apps' | 'sessions') {
    const t = createTranslator(negotiateLocale({ acceptLanguage: ctx.get('accept-language') }));
    kit.errorPage(ctx, 404, t(`account_self.${what}.not_found_heading`), t(`account_self.${what}.not_found_message`), 'not_found');
  }

  /** The start of every POST (the kit's beginPost): the signed-in person (else to sign-in), the form and its CSRF token. */
  async function postStep(ctx: Context): Promise<{ person: SignedInPerson; field: (name: string) => string } | undefined> {
    const step = await kit.beginPost(ctx);
    return step && { person: step.person, field: (name) => step.form.field(name) };
  }

  function router(prefix: string): Router {
    const made = new Router({ prefix });
    // Storage outages get the 503 page (the account pages' one guard); nothing else is caught.
    made.use((ctx, next) => kit.outageGuard(ctx, next));
    return made;
  }

  // Profile: the display name (one line, at most DISPLAY_NAME_MAX characters; empty clears it).
  const profile = router('/account/profile');
  profile.post('/', async (ctx) => {
    const step = await postStep(ctx);
    if (!step) return;
    const { person, field } = step;
    try {
      await changeDisplayName(registry, kit.actor(ctx, person), person.id, field('name'));
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      return back(ctx, error.errors[0]?.message === 'not_one_line' ? 'name_not_one_line' : 'name_too_long');
    }
    ctx.state.log?.info({ accountId: person.id }, 'display name changed from the account page');
    back(ctx, 'name_saved');
  });

  // Password: the current one, or a recent sign-in (ACCOUNT_REAUTH_SECONDS; with a second factor
  // when the person has one). Someone without a password (an upstream sign-up) sets one after a
  // recent sign-in. The other sessions end and the refresh tokens are revoked (changeOwnPassword).
  const password = router('/account/password');
  password.post('/', async (ctx) => {
    const step = await postStep(ctx);
    if (!step) return;
    const { person, field } = step;
    const user = await findUserById(registry.db, person.id);
    if (!user) return kit.toSignIn(ctx);
    const current = field('current_password');
    if (user.passwordHash === null) {
      if (!(await kit.requireRecentAuth(ctx, person, '/account#password'))) return;
    } else if (current === '') {
      if (!(await kit.isRecent(person))) return back(ctx, 'current_required');
    } else {
      // Guesses here count with the sign-in page's (per email and IP), and are refused as there.
      const limit = await deps.passwordLimiter.check(person.email, ctx.ip);
      if (!limit.allowed) {
        ctx.set('Retry-After', String(limit.retryAfterSeconds));
        return back(ctx, 'current_too_many');
      }
      if ((await checkCurrentPassword(registry.db, person.id, current)) !== 'right') {
        await deps.passwordLimiter.recordFailure(person.email, ctx.ip);
        ctx.state.log?.info({ accountId: person.id }, 'password change refused: wrong current password');
        return back(ctx, 'current_wrong');
      }
      await deps.passwordLimiter.recordSuccess(person.email);
    }
    const next = field('new_password');
    const problem = newPasswordProblem(next);
    if (problem) return back(ctx, `new_${problem}`);
    const changed = await changeOwnPassword(registry, kit.actor(ctx, person), person.id, next, { keepSessionLoginTs: person.loginTs });
    // Sessions that signed in at or after this one's sign-in survive the cutoff: ended here.
    const ended = await deps.signOut(person.id, (session) => session.uid !== person.sessionUid);
    ctx.state.log?.info({ accountId: person.id, sessionsEnded: ended, refreshTokensRevoked: changed.refreshTokensRevoked }, 'password changed from the account page');
    back(ctx, changed.hadPassword ? 'password_changed' : 'password_set');
  });

  // Connected apps: "Remove access" deletes the person's consents to the client and its refresh
  // tokens (registry), then the grants' codes and opaque tokens (store). It takes access away
  // only, so the signed-in session and its CSRF token are enough.
  const apps = router('/account/apps');
  apps.post('/:client/delete', async (ctx) => {
    const step = await postStep(ctx);
    if (!step) return;
    const { person } = step;
    const clientId = String(ctx.params.client);
    const notFound = () => notFoundPage(ctx, 'apps');
    if (!CLIENT_ID.test(clientId)) return notFound();
    let removed: { grantIds: string[]; refreshTokens: number };
    try {
      removed = await removeAppAccess(registry, kit.actor(ctx, person), person.id, clientId);
    } catch (error) {
      if (error instanceof NotFoundError) return notFound();
      throw error;
    }
    await Promise.all(removed.grantIds.map((grantId) => store.revokeByGrantId(grantId)));
    ctx.state.log?.info({ accountId: person.id, clientId, grants: removed.grantIds.length, refreshTokens: removed.refreshTokens }, 'app access removed from the account page');
    back(ctx, 'app_removed');
  });

  // Sessions: "Sign out everywhere else" (every other session of the person) and "Sign out" of one.
  const sessions = router('/account/sessions');
  sessions.post('/others/delete', async (ctx) => {
    const step = await postStep(ctx);
    if (!step) return;
    const { person } = step;
    const ended = await deps.signOut(person.id, (session) => session.uid !== person.sessionUid);
    // Sessions from before the index (or not in it) that signed in before this one end by the cutoff.
    await recordSessionsEnded(registry, kit.actor(ctx, person), person.id, { scope: 'others', ended, keepSessionLoginTs: person.loginTs });
    ctx.state.log?.info({ accountId: person.id, ended }, 'other sessions ended from the account page');
    back(ctx, 'others_ended');
  });
  sessions.post('/:uid/delete', async (ctx) => {
    const step = await postStep(ctx);
    if (!step) return;
    const { person } = step;
    const uid = String(ctx.params.uid);
    const notFound = () => notFoundPage(ctx, 'sessions');
    // This browser's own session ends with "Sign out" (#sign-out), which ends it at the provider.
    if (!SESSION_UID.test(uid) || uid === person.sessionUid) return notFound();
    const ended = await deps.signOut(person.id, (session) => session.uid === uid);
    if (ended === 0) return notFound();
    await recordSessionsEnded(registry, kit.actor(ctx, person), person.id, { scope: 'one', ended });
    back(ctx, 'one_ended');
  });

  async function sections(ctx: Context, person: SignedInPerson): Promise<AccountSelfSections> {
    const [user, grants, resources, browserSessions, events, recent, providers] = await Promise.all([
      findUserById(registry.db, person.id),
      listAccountGrants(registry.db, person.id),
      listResourceServers(registry.db),
      listAccountSessions(store, person.id),
      recentSecurityEvents(registry.db, person.id, SECURITY_EVENTS_SHOWN),
      kit.isRecent(person),
      listUpstreamProviders(registry.db),
    ]);
    const providerNames = new Map(providers.map((provider) => [provider.id, provider.name]));
    const apiNames = new Map(resources.map((resource) => [resource.identifier, resource.name ?? resource.identifier]));
    const byClient = new Map<string, AccountSelfSections['self']['apps'][number]>();
    for (const grant of grants) {
      const scopes = grantScopes(grant.payload);
      let app = byClient.get(grant.clientId);
      if (!app) {
        app = {
          clientId: grant.clientId,
          name: grant.clientName ?? grant.clientId,
          action: `/account/apps/${encodeURIComponent(grant.clientId)}/delete`,
          since: grant.createdAt.toISOString(),
          sinceText: shortTime(grant.createdAt),
          openid: [],
          apis: [],
        };
        byClient.set(grant.clientId, app);
      }
      for (const scope of scopes.openid) if (!app.openid.includes(scope)) app.openid.push(scope);
      for (const { resource, scopes: granted } of scopes.resources) {
        let api = app.apis.find((entry) => entry.identifier === resource);
        if (!api) {
          api = { name: apiNames.get(resource) ?? resource, identifier: resource, scopes: [] };
          app.apis.push(api);
        }
        for (const scope of granted) if (!api.scopes.includes(scope)) api.scopes.push(scope);
      }
    }
    const code = typeof ctx.query.self === 'string' ? OUTCOMES.find((known) => known === ctx.query.self) : undefined;
    const limits = { max: DISPLAY_NAME_MAX, min: MIN_PASSWORD_LENGTH, longest: MAX_PASSWORD_LENGTH };
    const outcome = code ? { code, key: `account_self.outcome.${code}` as MessageKey, params: limits, ...OUTCOME_PLACE[code] } : undefined;
    const account = { sessionsValidAfter: user?.sessionsValidAfter ?? null };
    return {
      self: {
        ...(outcome ? { outcome } : {}),
        profile: { name: user?.name ?? '', email: person.email, emailVerified: user?.emailVerified ?? false, nameMax: DISPLAY_NAME_MAX },
        password: { hasPassword: Boolean(user?.passwordHash), recent, minLength: MIN_PASSWORD_LENGTH },
        apps: [...byClient.values()],
        sessions: browserSessions
          // Sessions before the person's cutoff are over (the next request ends them): not listed.
          .filter((session) => session.uid === person.sessionUid || !sessionEnded(account, session.loginTs))
          .slice(0, SESSIONS_SHOWN)
          .map((session) => {
            const signedIn = session.loginTs === undefined ? undefined : new Date(session.loginTs * 1000);
            return {
              uid: session.uid,
              current: session.uid === person.sessionUid,
              ...(signedIn ? { signedIn: signedIn.toISOString(), signedInText: shortTime(signedIn) } : {}),
              browser: describeUserAgent(session.userAgent),
              userAgent: session.userAgent ?? '',
              ip: session.ip,
              action: `/account/sessions/${encodeURIComponent(session.uid)}/delete`,
            };
          })
          .sort((a, b) => Number(b.current) - Number(a.current)),
        events: events.map((event) => ({
          at: event.at.toISOString(),
          atText: shortTime(event.at),
          key: EVENT_SENTENCES[event.action],
          params: {
            app: detailText(event.details.client_name) || detailText(event.details.client_id),
            name: detailText(event.details.name),
            provider: providerNames.get(detailText(event.details.provider_id)) ?? detailText(event.details.provider_id),
            count: detailText(event.details.ended),
            label: detailText(event.details.label),
            to: detailText(event.details.to),
          },
          byAdministrator: event.byAdministrator,
          ip: event.ip,
        })),
      },
    };
  }

  return { routers: [profile, password, apps, sessions], sections };
}
