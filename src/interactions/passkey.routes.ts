import coBody from 'co-body';
import type Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type { Provider } from 'oidc-provider';
import { ACR_MFA, type Amr } from '../accounts/authentication-context.js';
import { MAX_RESPONSE_BYTES } from '../accounts/passkeys.js';
import type { AuditEntry } from '../audit/audit-log.js';
import type { Metrics } from '../observability/metrics.js';
import type { SignInMethod } from '../registry/tables.js';
import { passkeySignInOptions, verifyPasskeySignIn, type PasskeyDeps, type PasskeySignIn, type PasskeySignInRefused } from '../services/passkeys.service.js';
import type { LoginLimiter } from './login-limiter.js';
import type { MessageKey, Translate } from '../ui/i18n.js';
import { translatorOf } from './page-locale.js';

/*
 * Passkey sign-in on the interaction pages (docs/design/sign-in-methods.md §4.2):
 *
 *   POST /interaction/:uid/passkey/options      JSON {csrf} → request options (discoverable)
 *   POST /interaction/:uid/passkey              form {csrf, response} → 303 resume, or the login page with why
 *   POST /interaction/:uid/mfa/passkey/options  JSON {csrf} → options listing the person's passkeys
 *   POST /interaction/:uid/mfa/passkey          form {csrf, response} → 303 resume (pwd + hwk|swk + mfa)
 *
 * The pieces of the interaction pages they share (the interaction, CSRF, pages, finish, audit) come
 * from interaction.routes.ts as an InteractionKit, so each rule is written once.
 */

type Interaction = Awaited<ReturnType<Provider['interactionDetails']>>;

/** What the passkey routes use of the interaction pages (built in createInteractionRoutes). */
export interface InteractionKit {
  /** Reads an urlencoded form into ctx.state.form (415/413/400 pages otherwise). */
  forms: Middleware;
  details(ctx: Context): Promise<Interaction>;
  formStep(ctx: Context, atStep: (interaction: Interaction) => boolean, options?: { countCsrf?: boolean; reload?: string }): Promise<{ uid: string; interaction: Interaction } | undefined>;
  verifyCsrf(uid: string, token: unknown): boolean;
  /** The error page: heading and message are catalogue keys. */
  errorPage(ctx: Context, status: number, heading: MessageKey, message: MessageKey, code?: string): void;
  renderLogin(ctx: Context, status: number, uid: string, interaction: Interaction, extra?: { error?: string; email?: string }): Promise<void>;
  renderSecondFactor(ctx: Context, status: number, uid: string, interaction: Interaction, accountId: string, error?: string): Promise<void>;
  /** Whom the second-factor page is for (a PendingSignIn after a password, or a step-up), or undefined. */
  secondFactorTarget(uid: string, interaction: Interaction): Promise<{ accountId: string; amr: Amr[]; stepUp: boolean; cutoffMs?: number } | undefined>;
  /** Takes the PendingSignIn once (true for exactly one caller). */
  takePendingSignIn(uid: string): Promise<boolean>;
  /** Forgets the state kept beside the interaction (PendingSignIn, an enrolment). */
  dropPending(uid: string): Promise<void>;
  finish(ctx: Context, result: Parameters<Provider['interactionResult']>[2]): Promise<void>;
  waitOutCutoffSecond(cutoff: Date | null | undefined): Promise<void>;
  audit(ctx: Context, entry: Omit<AuditEntry, 'requestId' | 'ip'>): Promise<void>;
  /** Adds the finished sign-in to the person's "Recent sign-ins" (never throws). */
  recordSignIn(ctx: Context, entry: { accountId: string; method: SignInMethod; acr: string; amr: readonly string[]; clientId: string | null }): Promise<void>;
  /** The lockout message (with Retry-After set) when wrong second factors locked this account or IP out. */
  mfaLockout(ctx: Context, accountId: string, method: 'passkey'): Promise<string | undefined>;
  mfaLimiter: LoginLimiter;
  metrics?: Metrics | undefined;
}

/** The largest options request: `{"csrf":"…"}`. */
const MAX_OPTIONS_BODY = 1024;

/** What the login page says for each refusal (never whether the person exists). */
function refusalMessage(t: Translate, reason: PasskeySignInRefused['reason']): string {
  switch (reason) {
    case 'malformed':
      return t('common.passkey_malformed');
    case 'stale_challenge':
    case 'replayed_challenge':
      return t('login.passkey_stale');
    case 'unknown_credential':
      return t('login.passkey_unknown');
    case 'user_verification':
      return t('common.passkey_user_verification');
    case 'rate_limited':
      return t('login.passkey_rate_limited');
    default:
      return t('login.passkey_failed');
  }
}

/**
 * Adds the passkey routes to the interaction router (after its error mapping, so an expired
 * interaction gets the same page as elsewhere).
 *
 * @example
 * registerPasskeyRoutes(router, kit, { passkeys, passkeyLimiter });
 */
export function registerPasskeyRoutes(router: Router, kit: InteractionKit, deps: { passkeys: PasskeyDeps; passkeyLimiter: LoginLimiter }): void {
  const { passkeys, passkeyLimiter } = deps;

  /** Reads the options request: JSON of at most 1 KiB with the interaction's CSRF token. Answers the refusal itself. */
  async function optionsRequest(ctx: Context): Promise<string | undefined> {
    ctx.set('Cache-Control', 'no-store');
    const { uid } = ctx.params as { uid: string };
    const refuse = (status: number, error: string) => {
      ctx.status = status;
      ctx.body = { error };
      return undefined;
    };
    if (!ctx.is('application/json')) return refuse(415, 'unsupported_media_type');
    let body: unknown;
    try {
      body = await coBody.json(ctx.req, { limit: MAX_OPTIONS_BODY, strict: true });
    } catch (error) {
      return refuse((error as { status?: number }).status === 413 ? 413 : 400, 'invalid_request');
    }
    const csrf = typeof body === 'object' && body !== null ? (body as { csrf?: unknown }).csrf : undefined;
    if (!kit.verifyCsrf(uid, csrf)) return refuse(403, 'csrf_token_invalid');
    return uid;
  }

  /** The `response` field: at most 16 KiB (413 page beyond), empty when the page had no script. */
  function responseField(ctx: Context): { value: string } | { tooLarge: true } {
    const value = (ctx.state as { form?: Record<string, unknown> }).form?.response;
    if (typeof value !== 'string') return { value: '' };
    return Buffer.byteLength(value) > MAX_RESPONSE_BYTES ? { tooLarge: true } : { value };
  }

  const clientIdOf = (interaction: Interaction) => (typeof interaction.params.client_id === 'string' ? interaction.params.client_id : null);

  /**
   * Refusals decided before the answer was checked against the person's passkey (an expired or
   * replayed challenge, an unreadable answer, a credential id sent for someone else): no guess at
   * anything, so they count per IP only, never toward the owner's lockout (else anyone who knows a
   * credential id could lock its owner out).
   */
  const NOT_A_GUESS: ReadonlySet<PasskeySignInRefused['reason']> = new Set(['wrong_user', 'stale_challenge', 'replayed_challenge', 'malformed']);

  /** A refusal's audit row and counts: per IP always, per account (its id) when the credential was known and its answer checked. */
  async function recordRefusal(ctx: Context, interaction: Interaction, refused: PasskeySignInRefused, limiter: LoginLimiter, stepUp?: boolean) {
    kit.metrics?.signIn('failure');
    ctx.state.log?.info({ outcome: 'failure', method: 'passkey', reason: refused.reason, ...(refused.accountId ? { accountId: refused.accountId } : {}) }, 'passkey refused');
    if (refused.reason === 'rate_limited') return;
    const counted = NOT_A_GUESS.has(refused.reason) ? undefined : refused.accountId;
    await limiter.recordFailure(counted, ctx.ip);
    const clientId = clientIdOf(interaction);
    if (stepUp === undefined) {
      await kit.audit(ctx, {
        actor: 'anonymous',
        action: 'signin.failure',
        target: refused.passkeyId ? `passkey:${refused.passkeyId}` : null,
        details: { method: 'passkey', reason: refused.reason, client_id: clientId },
      });
      // As for passwords: the failure that reaches the account's limit records the lockout, once.
      if (counted) {
        const after = await limiter.check(counted, ctx.ip);
        if (!after.allowed) {
          const who = `user:${refused.accountId}`;
          await kit.audit(ctx, { actor: 'anonymous', action: 'signin.lockout', target: who, details: { method: 'passkey', retry_after_seconds: after.retryAfterSeconds, client_id: clientId } });
        }
      }
    } else {
      const who = `user:${refused.accountId ?? 'unknown'}`;
      await kit.audit(ctx, { actor: who, action: 'mfa.failure', target: who, details: { method: 'passkey', reason: refused.reason, step_up: stepUp, client_id: clientId } });
    }
  }

  /**
   * The one place a passkey sign-in succeeds: counted, logged, audited (`signin.success` with
   * method, amr and acr), then finished with the provider. `before` is what the person already did
   * (['pwd'] after a password); a passkey with user verification is two factors in itself (§3.2).
   */
  async function signedIn(ctx: Context, interaction: Interaction, result: PasskeySignIn, before: readonly Amr[], stepUp: boolean) {
    const amr: Amr[] = [...before.filter((m) => m !== 'mfa' && m !== result.method), result.method, 'mfa'];
    const who = `user:${result.accountId}` as const;
    const clientId = clientIdOf(interaction);
    kit.metrics?.signIn('success');
    ctx.state.log?.info({ outcome: 'success', method: 'passkey', accountId: result.accountId, passkeyId: result.passkeyId }, 'signed in with a passkey');
    if (before.length > 0) {
      await kit.audit(ctx, { actor: who, action: 'mfa.success', target: who, details: { method: 'passkey', passkey_id: result.passkeyId, step_up: stepUp, client_id: clientId } });
    }
    const method: SignInMethod = before.length === 0 ? 'passkey' : stepUp ? 'step_up' : 'password';
    await kit.audit(ctx, { actor: who, action: 'signin.success', target: who, details: { client_id: clientId, method, passkey_id: result.passkeyId, acr: ACR_MFA, amr } });
    await kit.waitOutCutoffSecond(result.sessionsValidAfter);
    await kit.finish(ctx, { login: { accountId: result.accountId, acr: ACR_MFA, amr } });
    await kit.recordSignIn(ctx, { accountId: result.accountId, method, acr: ACR_MFA, amr, clientId });
  }

  router.post('/:uid/passkey/options', async (ctx) => {
    const interaction = await kit.details(ctx);
    if (interaction.prompt.name !== 'login') {
      ctx.set('Cache-Control', 'no-store');
      ctx.status = 400;
      ctx.body = { error: 'invalid_request' };
      return;
    }
    const uid = await optionsRequest(ctx);
    if (!uid) return;
    ctx.body = await passkeySignInOptions(passkeys, 'login', uid);
  });

  router.post('/:uid/passkey', kit.forms, async (ctx) => {
    const step = await kit.formStep(ctx, (i) => i.prompt.name === 'login', { countCsrf: true, reload: 'sign-in page' });
    if (!step) return;
    const { uid, interaction } = step;
    const field = responseField(ctx);
    if ('tooLarge' in field) {
      kit.errorPage(ctx, 413, 'error.passkey_too_large', 'error.go_back_try_again', 'request_too_large');
      return;
    }
    if (field.value === '') {
      // The form was posted without its script: nothing was tried, nothing is counted.
      await kit.renderLogin(ctx, 400, uid, interaction, { error: translatorOf(ctx)('login.passkey_needs_script') });
      return;
    }
    const limit = await passkeyLimiter.check(undefined, ctx.ip);
    if (!limit.allowed) {
      kit.metrics?.signIn('locked');
      kit.metrics?.rateLimited('sign_in');
      ctx.set('Retry-After', String(limit.retryAfterSeconds));
      await kit.renderLogin(ctx, 429, uid, interaction, { error: refusalMessage(translatorOf(ctx), 'rate_limited') });
      return;
    }
    const result = await verifyPasskeySignIn(passkeys, 'login', uid, field.value, {
      gate: async (accountId) => (await passkeyLimiter.check(accountId, ctx.ip)).allowed,
    });
    if (!result.ok) {
      if (result.reason === 'rate_limited') {
        const limited = await passkeyLimiter.check(result.accountId, ctx.ip);
        if (!limited.allowed) ctx.set('Retry-After', String(limited.retryAfterSeconds));
        kit.metrics?.rateLimited('sign_in');
      }
      await recordRefusal(ctx, interaction, result, passkeyLimiter);
      await kit.renderLogin(ctx, result.reason === 'malformed' ? 400 : result.reason === 'rate_limited' ? 429 : 401, uid, interaction, { error: refusalMessage(translatorOf(ctx), result.reason) });
      return;
    }
    await passkeyLimiter.recordSuccess(result.accountId);
    await kit.dropPending(uid);
    await signedIn(ctx, interaction, result, [], false);
  });

  router.post('/:uid/mfa/passkey/options', async (ctx) => {
    const interaction = await kit.details(ctx);
    const { uid } = ctx.params as { uid: string };
    const target = await kit.secondFactorTarget(uid, interaction);
    if (!target) {
      ctx.set('Cache-Control', 'no-store');
      ctx.status = 400;
      ctx.body = { error: 'invalid_request' };
      return;
    }
    if (!(await optionsRequest(ctx))) return;
    ctx.body = await passkeySignInOptions(passkeys, 'mfa', uid, target.accountId);
  });

  router.post('/:uid/mfa/passkey', kit.forms, async (ctx) => {
    const step = await kit.formStep(ctx, (i) => i.prompt.name === 'login', { countCsrf: true });
    if (!step) return;
    const { uid, interaction } = step;
    const target = await kit.secondFactorTarget(uid, interaction);
    if (!target) {
      kit.errorPage(ctx, 400, 'error.unexpected_step', 'error.start_again', 'invalid_request');
      return;
    }
    const { accountId } = target;
    const field = responseField(ctx);
    if ('tooLarge' in field) {
      kit.errorPage(ctx, 413, 'error.passkey_too_large', 'error.go_back_try_again', 'request_too_large');
      return;
    }
    if (field.value === '') {
      await kit.renderSecondFactor(ctx, 400, uid, interaction, accountId, translatorOf(ctx)('mfa.passkey_needs_script'));
      return;
    }
    const locked = await kit.mfaLockout(ctx, accountId, 'passkey');
    if (locked) {
      await kit.renderSecondFactor(ctx, 429, uid, interaction, accountId, locked);
      return;
    }
    const result = await verifyPasskeySignIn(passkeys, 'mfa', uid, field.value, { accountId });
    if (!result.ok) {
      await recordRefusal(ctx, interaction, { ...result, accountId }, kit.mfaLimiter, target.stepUp);
      // As for codes: input that could not be read is no attempt and adds nothing to the metric.
      if (result.reason !== 'malformed') kit.metrics?.secondFactor('passkey', 'failure');
      const after = await kit.mfaLimiter.check(accountId, ctx.ip);
      if (!after.allowed) {
        const who = `user:${accountId}` as const;
        await kit.audit(ctx, { actor: who, action: 'mfa.lockout', target: who, details: { retry_after_seconds: after.retryAfterSeconds, client_id: clientIdOf(interaction) } });
      }
      await kit.renderSecondFactor(ctx, result.reason === 'malformed' ? 400 : 401, uid, interaction, accountId, refusalMessage(translatorOf(ctx), result.reason));
      return;
    }
    // The password's PendingSignIn finishes one sign-in only, whoever races.
    if (!target.stepUp && !(await kit.takePendingSignIn(uid))) {
      kit.errorPage(ctx, 400, 'error.link_expired', 'error.start_again', 'session_not_found');
      return;
    }
    await kit.dropPending(uid);
    await kit.mfaLimiter.recordSuccess(accountId);
    kit.metrics?.secondFactor('passkey', 'success');
    await signedIn(ctx, interaction, { ...result, sessionsValidAfter: target.cutoffMs !== undefined ? new Date(target.cutoffMs) : result.sessionsValidAfter }, target.amr, target.stepUp);
  });
}
