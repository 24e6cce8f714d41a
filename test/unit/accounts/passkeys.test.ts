import { describe, expect, it } from 'vitest';
import {
  accountIdOfUserHandle,
  parseAuthenticationResponse,
  passkeyMethod,
  PasskeyRejected,
  refusalOfLibraryError,
  relyingPartyOf,
} from '../../../src/accounts/passkeys.js';
import { defaultPasskeyName, normalisePasskeyName } from '../../../src/services/passkeys.service.js';
import { ValidationError } from '../../../src/services/errors.js';

describe('passkeys: the relying party, the refusals, names', () => {
  it('the RP ID is the issuer host, the origin its origin', () => {
    expect(relyingPartyOf('https://id.example.com/')).toEqual({ rpID: 'id.example.com', origin: 'https://id.example.com', rpName: 'Gatehouse' });
    expect(relyingPartyOf('http://localhost:3000')).toMatchObject({ rpID: 'localhost', origin: 'http://localhost:3000' });
  });

  it('maps @simplewebauthn/server 14 error messages to reasons (the message is never shown)', () => {
    const cases: Array<[string, string]> = [
      ['Response counter value 1 was lower than expected 1', 'counter_regression'],
      ['User verification required, but user could not be verified', 'user_verification'],
      ['Unexpected RP ID hash', 'wrong_rp_id'],
      ['Unexpected response origin "https://evil.example", expected one of: http://gatehouse.test', 'wrong_origin'],
      ['Unexpected authentication response challenge "a", expected "b"', 'wrong_challenge'],
      ['Credential response signature was not a base64url string', 'malformed'],
      ['something new', 'invalid'],
    ];
    for (const [message, reason] of cases) expect(refusalOfLibraryError(new Error(message)), message).toBe(reason);
    expect(refusalOfLibraryError(new SyntaxError('Unexpected token'))).toBe('malformed');
    // The values the library quotes come from the response: they never choose the reason.
    const chosen: Array<[string, string]> = [
      ['Unexpected response origin "https://x.example/Response counter value 1 was lower", expected one of: http://gatehouse.test', 'wrong_origin'],
      ['Unexpected authentication response type: user verification challenge origin counter value', 'invalid'],
      ['Unexpected authentication response challenge "RP ID hash User verification required", expected "b"', 'wrong_challenge'],
    ];
    for (const [message, reason] of chosen) expect(refusalOfLibraryError(new Error(message)), message).toBe(reason);
  });

  it('a response that is not JSON of the right shape, or too large, is malformed before the library sees it', () => {
    const good = { id: 'abc', rawId: 'abc', type: 'public-key', clientExtensionResults: {}, response: { clientDataJSON: 'e30', authenticatorData: 'AA', signature: 'AA' } };
    expect(parseAuthenticationResponse(JSON.stringify(good)).id).toBe('abc');
    for (const bad of ['', 'null', '[]', '{', JSON.stringify({ ...good, type: 'password' }), JSON.stringify({ ...good, id: 'a b' }), JSON.stringify({ ...good, response: {} }), 'x'.repeat(17 * 1024)]) {
      expect(() => parseAuthenticationResponse(bad), bad.slice(0, 30)).toThrow(PasskeyRejected);
    }
  });

  it('hwk for a device-bound passkey, swk for a synced one; the userHandle back to the account id', () => {
    expect(passkeyMethod(false)).toBe('hwk');
    expect(passkeyMethod(true)).toBe('swk');
    expect(accountIdOfUserHandle(Buffer.from('3f1c-uuid').toString('base64url'))).toBe('3f1c-uuid');
    expect(accountIdOfUserHandle(undefined)).toBeUndefined();
    expect(accountIdOfUserHandle('')).toBeUndefined();
  });

  it('passkey names: NFKC, control characters dropped, 1–64 characters', () => {
    expect(normalisePasskeyName('  Ｗork\u0000 key\n ')).toBe('Work key');
    expect(normalisePasskeyName('🔑'.repeat(64))).toHaveLength(128);
    for (const bad of ['', '   ', '\u0007', 'x'.repeat(65)]) expect(() => normalisePasskeyName(bad)).toThrow(ValidationError);
    expect(defaultPasskeyName(new Date('2026-12-08T10:00:00Z'))).toBe('Passkey 2026-12-08');
  });
});
