import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordSecret } from '../fixtures/log-capture.js';
import { registerPersonAndApp, signInForTokens, startNodes, type NodeGroup } from '../fixtures/nodes.js';
import { tokenRequest } from '../fixtures/server.js';

/** Where a request that got no answer failed: refused at connect (never accepted) or dropped after being sent. */
function failureKind(error: unknown): 'refused' | 'dropped' {
  const cause = (error as { cause?: { code?: string } }).cause;
  return cause?.code === 'ECONNREFUSED' ? 'refused' : 'dropped';
}

describe('graceful shutdown under load', { timeout: 120_000 }, () => {
  let group: NodeGroup;

  beforeAll(async () => {
    group = await startNodes('shutdown', 1);
  });
  afterAll(async () => {
    await group?.close();
  });

  it('answers every request it accepted, refuses new connections, and exits 0', async () => {
    const [node] = group.nodes;
    const { clientId, clientSecret } = await group.build.serviceClient({ scope: 'read', resourceScope: 'read' });
    const client = { clientId, clientSecret };
    const { email, web } = await registerPersonAndApp(group);
    const refreshTokens = await Promise.all([1, 2, 3, 4].map(async () => (await signInForTokens(node!, web, email)).refresh_token));

    const answered: number[] = [];
    const refused: string[] = [];
    const dropped: string[] = [];
    const until = (kind: 'refused' | 'dropped', error: unknown) => {
      (kind === 'refused' ? refused : dropped).push((error as Error).message);
    };
    // Keep-alive connections (fetch reuses them), as a load balancer or SDK would.
    const serviceLoops = Array.from({ length: 12 }, async () => {
      for (;;) {
        try {
          answered.push((await tokenRequest(node!.base, { grant_type: 'client_credentials', scope: 'read' }, client, node!.fetch)).status);
        } catch (error) {
          until(failureKind(error), error);
          return;
        }
      }
    });
    const refreshLoops = refreshTokens.map(async (first) => {
      let token = first;
      for (;;) {
        try {
          const { status, body } = await tokenRequest(node!.base, { grant_type: 'refresh_token', refresh_token: token }, web, node!.fetch);
          answered.push(status);
          if (status !== 200) return;
          recordSecret(String(body.refresh_token));
          recordSecret(String(body.id_token));
          token = String(body.refresh_token);
        } catch (error) {
          until(failureKind(error), error);
          return;
        }
      }
    });

    await sleep(1000);
    const signalled = Date.now();
    const exit = await node!.stop('SIGTERM');
    const exitMs = Date.now() - signalled;
    await Promise.all([...serviceLoops, ...refreshLoops]);

    expect(answered.length).toBeGreaterThan(100);
    expect(answered.filter((status) => status !== 200)).toEqual([]);
    expect(dropped).toEqual([]);
    expect(refused.length).toBe(16);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(exitMs).toBeLessThan(10_000);
    expect(node!.process.output()).toContain('"msg":"stopped"');
    process.stdout.write(`shutdown: ${answered.length} answered, ${dropped.length} dropped, exit ${exit.code} in ${exitMs} ms\n`);
  });
});
