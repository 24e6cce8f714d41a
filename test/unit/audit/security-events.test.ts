import { errors, type Provider } from 'oidc-provider';
import { describe, expect, it } from 'vitest';
import type { AuditEntry, AuditSink } from '../../../src/audit/audit-log.js';
import { auditRefreshTokenReuse, emailFingerprint } from '../../../src/audit/security-events.js';
import { isRefreshTokenReuse } from '../../../src/oidc/upstream.js';

function fakeSink() {
  const entries: AuditEntry[] = [];
  const sink: AuditSink = {
    record(entry) {
      entries.push(entry);
      return Promise.resolve();
    },
  };
  return { sink, entries };
}

const ctx = {
  ip: '203.0.113.9',
  state: { requestId: 'req-1' },
  oidc: {
    client: { clientId: 'app-1' },
    entities: { RefreshToken: { grantId: 'grant-1', accountId: 'user-1' } },
  },
};

describe('auditRefreshTokenReuse', () => {
  it('records refresh_token.reuse for a spent refresh token, as oidc-provider reports it', () => {
    const { sink, entries } = fakeSink();
    auditRefreshTokenReuse(sink, isRefreshTokenReuse)(ctx, new errors.InvalidGrant('refresh token already used'));
    expect(entries).toEqual([
      {
        actor: 'client:app-1',
        action: 'refresh_token.reuse',
        target: 'grant:grant-1',
        requestId: 'req-1',
        ip: '203.0.113.9',
        details: { client_id: 'app-1', grant_id: 'grant-1', account_id: 'user-1', outcome: 'grant revoked' },
      },
    ]);
  });

  it('ignores every other grant error', () => {
    const { sink, entries } = fakeSink();
    const listener = auditRefreshTokenReuse(sink, isRefreshTokenReuse);
    listener(ctx, new errors.InvalidGrant('refresh token not found'));
    listener(ctx, new errors.InvalidGrant('grant request is invalid'));
    listener(ctx, new errors.InvalidClient('client authentication failed'));
    listener(undefined, undefined);
    expect(entries).toEqual([]);
  });

  it('records what it can when the context lacks the client or the token', () => {
    const { sink, entries } = fakeSink();
    auditRefreshTokenReuse(sink, isRefreshTokenReuse)({}, { error: 'invalid_grant', error_detail: 'refresh token already used' });
    expect(entries).toMatchObject([{ actor: 'anonymous', action: 'refresh_token.reuse', target: null, requestId: null, ip: null }]);
  });

  it('fits the provider grant.error event', () => {
    // Compile-time: the listener is accepted where oidc-provider's typings expect one.
    const attach = (provider: Provider, sink: AuditSink) => provider.on('grant.error', auditRefreshTokenReuse(sink, isRefreshTokenReuse));
    expect(typeof attach).toBe('function');
  });
});

describe('emailFingerprint', () => {
  it('is a short SHA-256 prefix of the normalised address, never the address', () => {
    const print = emailFingerprint('  Ada@Example.com ');
    expect(print).toMatch(/^email-sha256:[0-9a-f]{16}$/);
    expect(print).toBe(emailFingerprint('ada@example.com'));
    // Every spelling the lookup and the limiter take for this address shares its fingerprint.
    expect(emailFingerprint('ａｄａ@ｅｘａｍｐｌｅ．ｃｏｍ')).toBe(print);
    expect(print).not.toContain('ada');
    expect(emailFingerprint('grace@example.com')).not.toBe(print);
  });
});
