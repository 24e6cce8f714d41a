/**
 * The one form of an email address Gatehouse stores, looks up and counts sign-in failures under:
 * NFKC (full-width letters, ligatures and compatibility forms become their plain letters; `e` +
 * U+0301 becomes `é`), lower-cased with JavaScript's locale-independent `toLowerCase()`, normalised
 * again (lower-casing may leave a sequence NFKC writes otherwise), and trimmed.
 *
 * Every comparison of emails goes through this function, so two spellings either are the same
 * account for the lookup, the unique index and the sign-in limiter alike, or are different for all
 * three: `vİctim` (U+0130) lower-cases to `vi̇ctim` (i + U+0307), which is not `victim` anywhere,
 * and `ß` stays `ß` (not `ss`). No database function takes part (PostgreSQL's `lower()` depends on
 * the server's locale, and made `vİctim` a plain `victim`).
 *
 * @example
 * normaliseEmail(' Ｖｉｃｔｉｍ@Example.TEST ') // 'victim@example.test'
 */
export function normaliseEmail(email: string): string {
  return email.normalize('NFKC').toLowerCase().normalize('NFKC').trim();
}
