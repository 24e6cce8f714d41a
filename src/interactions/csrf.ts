import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * CSRF tokens bound to one interaction: HMAC of its uid under the cookie keys. The interaction
 * itself is bound to the browser by its signed cookie, so a form from elsewhere cannot carry a
 * valid token for this browser's interaction.
 */
export function createCsrf(keys: readonly string[]) {
  const sign = (key: string, uid: string) => createHmac('sha256', key).update(`csrf:${uid}`).digest();
  return {
    token: (uid: string) => sign(keys[0] ?? '', uid).toString('base64url'),
    verify(uid: string, presented: unknown): boolean {
      if (typeof presented !== 'string' || presented.length === 0 || presented.length > 128) return false;
      const actual = Buffer.from(presented, 'base64url');
      // Any of the cookie keys: a key rotation does not break a form that is already open.
      return keys.some((key) => {
        const expected = sign(key, uid);
        return expected.length === actual.length && timingSafeEqual(expected, actual);
      });
    },
  };
}
