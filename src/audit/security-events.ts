import { createHash } from 'node:crypto';
import { normaliseEmail } from '../registry/email.js';
import type { AuditSink } from './audit-log.js';

/**
 * What the audit log keeps of an email typed at sign-in: the first 16 hex digits of the SHA-256 of
 * the normalised address (normaliseEmail). Failed sign-ins are recorded without the address in clear, so
 * the log does not list which addresses were tried (nor a password typed into the email field), yet
 * failures against one account still share a target.
 */
export function emailFingerprint(email: string): string {
  return `email-sha256:${createHash('sha256').update(normaliseEmail(email)).digest('hex').slice(0, 16)}`;
}

/** What the listener reads from oidc-provider's context: a structural subset of KoaContextWithOIDC. */
interface GrantErrorContext {
  ip?: string;
  state?: { requestId?: unknown };
  oidc?: {
    client?: { clientId?: string } | undefined;
    entities?: { RefreshToken?: { grantId?: string; accountId?: string } | undefined; Account?: { accountId?: string } | undefined };
  };
}

interface GrantError {
  error?: unknown;
  error_detail?: unknown;
  message?: unknown;
}

/**
 * A listener for oidc-provider's `grant.error` event that records `refresh_token.reuse` when a
 * spent refresh token is presented (oidc-provider then revokes the whole grant; the durable adapter
 * says the same for two requests racing with one token). Which errors say so is oidc-provider's
 * wording, told by `isReuse` (oidc/upstream.ts, isRefreshTokenReuse). Never throws.
 *
 * @example
 * provider.on('grant.error', auditRefreshTokenReuse(audit, isRefreshTokenReuse));
 */
export function auditRefreshTokenReuse(
  sink: AuditSink,
  isReuse: (error: GrantError | undefined) => boolean,
): (ctx: GrantErrorContext | undefined, error: GrantError | undefined) => void {
  return (ctx, error) => {
    if (!isReuse(error)) return;
    const clientId = ctx?.oidc?.client?.clientId ?? null;
    const refreshToken = ctx?.oidc?.entities?.RefreshToken;
    const grantId = refreshToken?.grantId ?? null;
    const accountId = refreshToken?.accountId ?? ctx?.oidc?.entities?.Account?.accountId ?? null;
    const requestId = ctx?.state?.requestId;
    void sink.record({
      actor: clientId ? `client:${clientId}` : 'anonymous',
      action: 'refresh_token.reuse',
      target: grantId ? `grant:${grantId}` : null,
      requestId: typeof requestId === 'string' ? requestId : null,
      ip: ctx?.ip ?? null,
      details: { client_id: clientId, grant_id: grantId, account_id: accountId, outcome: 'grant revoked' },
    });
  };
}
