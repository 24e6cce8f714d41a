import { describe, expect, it } from 'vitest';
import { emailDomain } from '../../../src/services/upstream-links.service.js';
import { insecureAllowed } from '../../../src/services/upstream-oidc.js';
import { PROVIDER_ID, slugFromName } from '../../../src/services/upstream-providers.service.js';
import { UpstreamSignInError } from '../../../src/services/upstream-sign-in.js';

describe('upstream provider helpers', () => {
  it('makes an id from a display name that fits [a-z0-9-]{1,40}', () => {
    expect(slugFromName('Example SSO')).toBe('example-sso');
    expect(slugFromName('  Ünïcode  Corp. (EU) ')).toBe('unicode-corp-eu');
    expect(slugFromName('x'.repeat(60))).toHaveLength(40);
    expect(slugFromName('a'.repeat(39) + ' b')).toBe('a'.repeat(39));
    expect(slugFromName('日本')).toBe('');
    for (const name of ['Example SSO', 'a  b', '--x--', 'Ünïcode']) expect(slugFromName(name)).toMatch(PROVIDER_ID);
  });

  it('compares email domains lower-cased and IDNA-normalised', () => {
    expect(emailDomain('Ada@Example.COM')).toBe('example.com');
    expect(emailDomain('ada@bücher.example')).toBe('xn--bcher-kva.example');
    expect(emailDomain('weird@name@example.org')).toBe('example.org');
    expect(emailDomain('no-at-sign')).toBe('');
  });

  it('allows plain http only to a loopback issuer outside production', () => {
    expect(insecureAllowed('http://localhost:4000', false)).toBe(true);
    expect(insecureAllowed('http://127.0.0.1:4000', false)).toBe(true);
    expect(insecureAllowed('http://localhost:4000', true)).toBe(false);
    expect(insecureAllowed('http://sso.example.test', false)).toBe(false);
    expect(insecureAllowed('https://sso.example.test', false)).toBe(false);
  });

  it('answers 502 only when the provider could not be reached', () => {
    expect(new UpstreamSignInError('provider_unreachable', 'x').status).toBe(502);
    for (const kind of ['provider_error', 'invalid_response', 'expired', 'disabled_provider'] as const) expect(new UpstreamSignInError(kind, 'x').status).toBe(400);
  });
});
