import { RETRY_AFTER_SECONDS } from '../services/dependency-outage.js';
import type { EdgeStep } from './edge-step.js';

/**
 * Every 503 says when to try again (RFC 9110 §10.2.3), whoever built it: Gatehouse's own answers
 * set Retry-After themselves, but oidc-provider renders a DependencyUnavailable thrown from an
 * adapter (the code exchange, refresh, an uncached client, /auth) without it. One rule at the
 * edge, on the way out, keeps a value already set.
 */
export const retryAfterOnUnavailable: EdgeStep = {
  after(ctx) {
    const { res } = ctx;
    if (res.statusCode === 503 && !res.hasHeader('Retry-After')) res.setHeader('Retry-After', RETRY_AFTER_SECONDS);
  },
};
