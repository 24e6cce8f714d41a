/*
 * How a person signed in, as ID tokens say it: `acr` (the level, one of ACR_VALUES) and `amr` (the
 * methods, RFC 8176 names). docs/design/sign-in-methods.md §3.2 lists every combination.
 */

/** A sign-in with one factor (a password). */
export const ACR_BASIC = 'urn:gatehouse:acr:basic';
/** A sign-in with a second factor, or a passkey with user verification. */
export const ACR_MFA = 'urn:gatehouse:acr:mfa';
/** Every acr value Gatehouse issues and advertises (`acr_values_supported`), weakest first. */
export const ACR_VALUES = [ACR_BASIC, ACR_MFA] as const;

export type Acr = (typeof ACR_VALUES)[number];

/** An authentication method reference (RFC 8176). */
export type Amr = 'pwd' | 'otp' | 'hwk' | 'swk' | 'mfa';

/** What a finished sign-in says about how it was made. */
export interface AuthenticationContext {
  acr: Acr;
  amr: Amr[];
}

/** A sign-in with a password alone. */
export function passwordSignIn(): AuthenticationContext {
  return { acr: ACR_BASIC, amr: ['pwd'] };
}
