import type { KoaContextWithOIDC } from 'oidc-provider';
import { ACR_MFA, ACR_VALUES } from '../accounts/authentication-context.js';
import type { Config } from '../config/load-config.js';
import type { RegistryCache } from '../registry/registry-cache.js';
import { CONSOLE_CLIENT_ID } from '../services/built-in-clients.js';
import type { ConsoleActivity } from '../services/console-activity.js';
import { policyWithLoginCheck, type LoginCheck } from './upstream.js';

/** The login prompt's reason when a request needs a second factor the session does not have. */
export const MFA_REQUIRED = 'mfa_required';

/**
 * The login prompt's reason when the console asks to use a Gatehouse session after it was idle
 * longer than CONSOLE_IDLE_TIMEOUT_SECONDS (services/console-activity.ts): the person signs in again.
 */
export const CONSOLE_IDLE = 'console_idle';

/** Why a request needs a second factor: the server (MFA_REQUIRED), the client (require_mfa), or the request (acr_values). */
export type MfaReason = 'global' | 'client' | 'acr_values';

/**
 * Why this request needs a second factor, or undefined. `acr_values` is a list of preferences
 * (OpenID Connect Core §3.1.2.1): it forces a second factor only when the one value Gatehouse knows
 * in it is urn:gatehouse:acr:mfa; "…:mfa …:basic" takes a basic session as it is.
 */
export function mfaReason(input: { acrValues: unknown; clientRequiresMfa: boolean; mfaRequired: boolean }): MfaReason | undefined {
  if (input.mfaRequired) return 'global';
  if (input.clientRequiresMfa) return 'client';
  if (typeof input.acrValues === 'string') {
    const known = new Set(input.acrValues.split(' ').filter((value) => (ACR_VALUES as readonly string[]).includes(value)));
    if (known.size === 1 && known.has(ACR_MFA)) return 'acr_values';
  }
  return undefined;
}

/**
 * The interaction policy: oidc-provider's base policy, plus the `mfa_required` check on the login
 * prompt. It asks for a prompt when the request needs a second factor (mfaReason) and the browser
 * session's acr is not urn:gatehouse:acr:mfa; the reason goes to `prompt.details.mfa`. Under
 * prompt=none the client gets login_required: never a code at a lower acr than required.
 *
 * @example
 * interactions: { url, policy: mfaInteractionPolicy({ cache, config }) }
 */
export function mfaInteractionPolicy(deps: { cache: Pick<RegistryCache, 'getClient'>; config: Pick<Config, 'mfaRequired'>; consoleActivity?: ConsoleActivity | undefined }) {
  async function reasonFor(ctx: KoaContextWithOIDC): Promise<MfaReason | undefined> {
    const clientId = ctx.oidc.client?.clientId;
    const client = clientId ? await deps.cache.getClient(clientId) : undefined;
    return mfaReason({ acrValues: ctx.oidc.params?.acr_values, clientRequiresMfa: client?.requireMfa === true, mfaRequired: deps.config.mfaRequired });
  }
  const activity = deps.consoleActivity;
  const consoleIdle: LoginCheck[] = activity
    ? [
        {
          reason: CONSOLE_IDLE,
          description: 'the console was idle longer than CONSOLE_IDLE_TIMEOUT_SECONDS: sign in again',
          async check(ctx) {
            const session = ctx.oidc.session;
            if (ctx.oidc.client?.clientId !== CONSOLE_CLIENT_ID || !session?.accountId) return false;
            // A sign-in within the timeout stands; after it, only a console used within the timeout keeps the session.
            const signedInFor = Date.now() / 1000 - (session.authTime() ?? 0);
            if (signedInFor < activity.idleSeconds) return false;
            return !(await activity.isActive(session.accountId));
          },
          async details() {
            return {};
          },
        },
      ]
    : [];
  return policyWithLoginCheck(...consoleIdle, {
    reason: MFA_REQUIRED,
    description: 'a second factor is required',
    async check(ctx) {
      if (ctx.oidc.session?.acr === ACR_MFA) return false;
      return (await reasonFor(ctx)) !== undefined;
    },
    async details(ctx) {
      return { mfa: await reasonFor(ctx) };
    },
  });
}
