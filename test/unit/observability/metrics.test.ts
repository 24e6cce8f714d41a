import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../../src/observability/metrics.js';

/** Every client_id label value of gatehouse_tokens_issued_total, with its count. */
async function tokenSeries(metrics: ReturnType<typeof createMetrics>): Promise<Record<string, number>> {
  const metric = await metrics.registry.getSingleMetric('gatehouse_tokens_issued_total')?.get();
  return Object.fromEntries((metric?.values ?? []).map((value) => [`${value.labels.grant_type} ${value.labels.client_id}`, value.value]));
}

describe('createMetrics: the client_id label', () => {
  it('counts every client under client_id="other" by default: no client id becomes a label value', async () => {
    const metrics = createMetrics();
    for (let i = 0; i < 500; i += 1) metrics.tokenIssued('client_credentials', `dynamically-registered-${i}`);
    metrics.tokenIssued('refresh_token', 'web');
    expect(await tokenSeries(metrics)).toEqual({ 'client_credentials other': 500, 'refresh_token other': 1 });
  });

  it('labels only the clients it is given, the rest under "other", however many clients there are', async () => {
    const metrics = createMetrics({ clientIds: ['billing', 'web'] });
    metrics.tokenIssued('client_credentials', 'billing');
    metrics.tokenIssued('client_credentials', 'billing');
    metrics.tokenIssued('authorization_code', 'web');
    for (let i = 0; i < 500; i += 1) metrics.tokenIssued('client_credentials', `dynamically-registered-${i}`);
    expect(await tokenSeries(metrics)).toEqual({
      'client_credentials billing': 2,
      'authorization_code web': 1,
      'client_credentials other': 500,
    });
  });
});
