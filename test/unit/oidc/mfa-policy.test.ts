import { describe, expect, it } from 'vitest';
import { ACR_BASIC, ACR_MFA } from '../../../src/accounts/authentication-context.js';
import { mfaReason } from '../../../src/oidc/mfa-policy.js';

describe('mfaReason', () => {
  const none = { acrValues: undefined, clientRequiresMfa: false, mfaRequired: false };

  it('needs nothing by default, nor for acr_values that accept basic or name nothing Gatehouse knows', () => {
    expect(mfaReason(none)).toBeUndefined();
    for (const acrValues of [ACR_BASIC, `${ACR_MFA} ${ACR_BASIC}`, `${ACR_BASIC} ${ACR_MFA}`, 'urn:example:gold', '', `${ACR_MFA}x`, 42]) {
      expect(mfaReason({ ...none, acrValues }), String(acrValues)).toBeUndefined();
    }
  });

  it('needs a second factor for acr_values whose only known value is mfa, for a require_mfa client, and under MFA_REQUIRED', () => {
    expect(mfaReason({ ...none, acrValues: ACR_MFA })).toBe('acr_values');
    expect(mfaReason({ ...none, acrValues: `urn:example:gold ${ACR_MFA}` })).toBe('acr_values');
    expect(mfaReason({ ...none, acrValues: `${ACR_MFA} ${ACR_MFA}` })).toBe('acr_values');
    expect(mfaReason({ ...none, clientRequiresMfa: true, acrValues: ACR_BASIC })).toBe('client');
    expect(mfaReason({ ...none, mfaRequired: true, clientRequiresMfa: true })).toBe('global');
  });
});
