import { z } from 'zod';
import { sessionEnded } from '../accounts/account-record.js';
import { listRecentSignIns } from '../registry/sign-in.repository.js';
import { listConnectedApps, removeConnectedApp, resetSecondFactors, secondFactorResetSchema, secondFactorsOf, signOutEverywhere } from '../services/person-access.service.js';
import { RECENT_SIGN_INS } from '../services/sign-ins.service.js';
import { RETRY_AFTER_SECONDS } from '../services/dependency-outage.js';
import { getUser } from '../services/users.service.js';
import { idParam } from './params.js';
import { ApiError } from './problem.js';
import { AUTH_ERRORS, BODY_ERRORS, defineRoute, type AdminRoute, type AdminRouteDeps, type PeopleAccessDeps } from './route.js';
import { browserSessionList, connectedAppList, secondFactorResetOut, secondFactorsOut, signInList, signOutEverywhereOut } from './schemas.js';

const userParams = z.object({ id: idParam("the user's id") });
const appParams = z.object({ id: idParam("the user's id"), clientId: idParam("the app's client_id, from the list") });

const iso = (at: Date | null | undefined) => at?.toISOString() ?? null;

/**
 * A person's access, as the console's People page shows and changes it (docs/console.md): second
 * factors (reset), browser sessions and sign-ins (sign out everywhere), connected apps (remove one).
 * Personal API keys are api-keys.routes.ts; disable and enable are PATCH /users/{id}.
 */
export function peopleRoutes(deps: AdminRouteDeps): AdminRoute[] {
  const { db, services, by } = deps;
  /** What the provider's side lends these routes: always there in a running server. */
  const people = (): PeopleAccessDeps => {
    if (!deps.people) throw new ApiError(503, 'temporarily_unavailable', 'sessions and connected apps cannot be read on this server', { headers: { 'Retry-After': RETRY_AFTER_SECONDS } });
    return deps.people;
  };
  return [
    defineRoute({
      method: 'get',
      path: '/users/:id/second-factors',
      operationId: 'getSecondFactors',
      tag: 'users',
      summary: "A person's second factors",
      description: 'Whether they have an authenticator app, how many recovery codes are left unused, and their passkeys (name, synced, when added and last used); never a secret, a code or a credential id.',
      params: userParams,
      responses: { 200: { description: 'Their second factors', body: secondFactorsOut }, 404: 'No such user', ...AUTH_ERRORS },
      async handler(ctx, { params }) {
        const found = await secondFactorsOf(db, params.id);
        ctx.body = {
          totp: found.totp,
          recovery_codes_left: found.recoveryCodesLeft,
          passkeys: found.passkeys.map((passkey) => ({
            id: passkey.id,
            name: passkey.name,
            synced: passkey.synced,
            created_at: passkey.createdAt.toISOString(),
            last_used_at: iso(passkey.lastUsedAt),
          })),
        };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/users/:id/second-factors/reset',
      operationId: 'resetSecondFactors',
      tag: 'users',
      summary: "Reset a person's second factor",
      description:
        "For someone who lost their authenticator app: removes it (and any enrolment not yet confirmed) and every recovery code; with include_passkeys, their passkeys too. Their sessions and tokens are not touched (DELETE /users/{id}/sessions does that). Their next sign-in asks for a password alone, or for a new authenticator where MFA_REQUIRED or the app requires one. Audited as totp.disable (reset: true) and passkey.remove; nothing to remove changes nothing.",
      params: userParams,
      body: secondFactorResetSchema,
      responses: {
        200: { description: 'What was removed', body: secondFactorResetOut },
        400: 'Invalid body: errors[] names each field',
        404: 'No such user',
        409: 'include_passkeys, and a passkey is the only way the person signs in (no password, no upstream account): nothing was changed',
        ...BODY_ERRORS,
        ...AUTH_ERRORS,
      },
      async handler(ctx, { params, body }) {
        const reset = await resetSecondFactors(services, by(ctx), params.id, body);
        ctx.body = { totp_removed: reset.totpRemoved, recovery_codes_removed: reset.recoveryCodesRemoved, passkeys_removed: reset.passkeysRemoved };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/users/:id/sessions',
      operationId: 'listBrowserSessions',
      tag: 'users',
      summary: "A person's browser sessions",
      description:
        'The sessions the person is signed in with at Gatehouse, newest sign-in first: when, from which browser and address, and the apps each signed in to. Sessions already ended by a sign-out everywhere, a disable or a new password are not listed.',
      params: userParams,
      responses: { 200: { description: 'Their live sessions', body: browserSessionList }, 404: 'No such user', ...AUTH_ERRORS },
      async handler(ctx, { params }) {
        const user = await getUser(db, params.id);
        const sessions = (await people().listSessions(user.id)).filter((session) => !sessionEnded(user, session.loginTs));
        ctx.body = {
          data: sessions.map((session) => ({
            uid: session.uid,
            signed_in_at: session.loginTs === undefined ? null : new Date(session.loginTs * 1000).toISOString(),
            user_agent: session.userAgent,
            ip: session.ip,
            client_ids: [...new Set(session.apps.map((app) => app.clientId))],
          })),
        };
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/users/:id/sessions',
      operationId: 'signOutEverywhere',
      tag: 'users',
      summary: 'Sign a person out everywhere',
      description:
        'Ends every browser session of the person (on every node: sessions that signed in before now are over) and revokes their refresh tokens, so every app must sign them in again; apps that registered a backchannel_logout_uri are told (Back-Channel Logout 1.0). Their consents stay. Audited as user.sessions_end.',
      params: userParams,
      responses: {
        200: { description: 'Signed out', body: signOutEverywhereOut },
        404: 'No such user',
        409: 'A console administrator may not sign themselves out everywhere (their account page signs out everywhere else): nothing was changed',
        ...AUTH_ERRORS,
      },
      async handler(ctx, { params }) {
        const { refreshTokensRevoked } = await signOutEverywhere(services, by(ctx), params.id);
        // The stored sessions end and their apps are told; a store that is down does not undo the change.
        await deps.sessionsEnded?.(params.id);
        ctx.body = { refresh_tokens_revoked: refreshTokensRevoked };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/users/:id/sign-ins',
      operationId: 'listSignIns',
      tag: 'users',
      summary: "A person's recent sign-ins",
      description: `Their ${RECENT_SIGN_INS} newest finished sign-ins (kept SIGN_IN_HISTORY_DAYS), newest first: how (method, amr, acr), to which app, from which address and browser.`,
      params: userParams,
      responses: { 200: { description: 'Their recent sign-ins', body: signInList }, 404: 'No such user', ...AUTH_ERRORS },
      async handler(ctx, { params }) {
        const user = await getUser(db, params.id);
        const signIns = await listRecentSignIns(db, user.id, RECENT_SIGN_INS);
        ctx.body = {
          data: signIns.map((signIn) => ({
            at: signIn.at.toISOString(),
            method: signIn.method,
            amr: signIn.amr,
            acr: signIn.acr,
            client_id: signIn.clientId,
            upstream_provider_id: signIn.upstreamProviderId,
            ip: signIn.ip,
            user_agent: signIn.userAgent,
          })),
        };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/users/:id/apps',
      operationId: 'listConnectedApps',
      tag: 'users',
      summary: "A person's connected apps",
      description: 'The apps the person has consented to, one entry per client, oldest first: the OpenID scopes and, per API, the scopes consented to, and how many refresh tokens the app holds for them.',
      params: userParams,
      responses: { 200: { description: 'Their connected apps', body: connectedAppList }, 404: 'No such user', ...AUTH_ERRORS },
      async handler(ctx, { params }) {
        const apps = await listConnectedApps(db, params.id);
        const { grantScopes } = people();
        ctx.body = {
          data: apps.map((app) => {
            const openid = new Set<string>();
            const apis = new Map<string, Set<string>>();
            for (const grant of app.grants) {
              const scopes = grantScopes(grant.payload);
              for (const scope of scopes.openid) openid.add(scope);
              for (const { resource, scopes: granted } of scopes.resources) {
                const held = apis.get(resource) ?? new Set<string>();
                for (const scope of granted) held.add(scope);
                apis.set(resource, held);
              }
            }
            return {
              client_id: app.clientId,
              client_name: app.clientName,
              since: app.since.toISOString(),
              scope: [...openid].join(' '),
              apis: [...apis].map(([resource, scopes]) => ({ resource, scope: [...scopes].join(' ') })),
              refresh_tokens: app.refreshTokens,
            };
          }),
        };
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/users/:id/apps/:clientId',
      docPath: '/users/{id}/apps/{client_id}',
      operationId: 'removeConnectedApp',
      tag: 'users',
      summary: "Remove an app's access to a person",
      description:
        "Deletes the person's consents to this app and every refresh token it holds for them, and revokes the codes and opaque access tokens issued under those consents; the app asks for consent again at its next sign-in. JWT access tokens already issued run out within their lifetime. Audited as account.app_remove.",
      params: appParams,
      responses: {
        204: { description: 'Removed' },
        404: 'No such user, or the person has not connected this app',
        409: "A console administrator may not remove the console's own access to themselves: nothing was changed",
        ...AUTH_ERRORS,
      },
      async handler(ctx, { params }) {
        const { revokeGrants } = people();
        const removed = await removeConnectedApp(services, by(ctx), params.id, params.clientId);
        await revokeGrants(removed.grantIds);
        ctx.status = 204;
      },
    }),
  ];
}
