import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordSecret } from '../fixtures/log-capture.js';
import { registerPersonAndApp, signInForTokens, startNodes, type NodeGroup } from '../fixtures/nodes.js';
import { tokenRequest } from '../fixtures/server.js';

// A bounded soak: SOAK_SECONDS of mixed traffic (120 in the suite; set it higher to soak longer).
const SOAK_SECONDS = Number(process.env.SOAK_SECONDS ?? '120');
const CONCURRENCY = 8;
/**
 * The warm-up: the server's heap grows to its working size over its first ~28,000 requests (RSS
 * 144 → 250 MB, flat after), so memory is measured from the end of the first 30,000 requests, not
 * from a fixed second: on a busy machine the server is slower, and a baseline taken at 24 s was still
 * on the ramp (218 → 250 MB measured, against 1–13 MB of growth when the baseline was warm). At most
 * half of the run warms up; the rest is measured.
 */
const WARM_REQUESTS = 30_000;
/** Stated bounds: from the first fifth of the measured part (after the warm-up) to its last fifth. */
const MAX_RSS_GROWTH_MB = 40;
const MAX_FD_GROWTH = 8;

function rssMb(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) / 1024;
}
const openFds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

describe('soak: mixed traffic against one server', { timeout: (SOAK_SECONDS + 120) * 1000 }, () => {
  let group: NodeGroup;

  beforeAll(async () => {
    group = await startNodes('soak', 1);
  });
  afterAll(async () => {
    await group?.close();
  });

  it(`stays within ${MAX_RSS_GROWTH_MB} MB of RSS growth and ${MAX_FD_GROWTH} open files over ${SOAK_SECONDS} s`, async () => {
    const [node] = group.nodes;
    const base = node!.base;
    const via = node!.fetch;
    const pid = node!.process.child.pid!;
    const { clientId, clientSecret } = await group.build.serviceClient({ scope: 'read', resourceScope: 'read' });
    const service = { clientId, clientSecret };
    const admin = await group.build.client({ client_name: 'soak admin', admin: true });
    const { email, web } = await registerPersonAndApp(group);
    const adminToken = async () =>
      String((await tokenRequest(base, { grant_type: 'client_credentials', scope: 'admin' }, admin, via)).body.access_token);

    const counts = new Map<string, number>();
    const failures: string[] = [];
    const count = (kind: string, ok: boolean, detail: string) => {
      counts.set(kind, (counts.get(kind) ?? 0) + 1);
      if (!ok && failures.length < 20) failures.push(`${kind}: ${detail}`);
    };
    const until = Date.now() + SOAK_SECONDS * 1000;
    let refreshToken = (await signInForTokens(node!, web, email)).refresh_token;
    let bearer = await adminToken();

    // One step of the mix: mostly service tokens, then reads, refreshes, admin reads and, now and then, a whole sign-in.
    async function step(worker: number, n: number) {
      const pick = (worker * 7 + n) % 20;
      if (pick < 9) {
        const { status } = await tokenRequest(base, { grant_type: 'client_credentials', scope: 'read' }, service, via);
        count('client_credentials', status === 200, String(status));
      } else if (pick < 12) {
        const response = await via(`${base}${pick === 9 ? '/jwks' : '/.well-known/openid-configuration'}`);
        await response.arrayBuffer();
        count('jwks/discovery', response.status === 200, String(response.status));
      } else if (pick < 14 && worker === 0) {
        // One refresh chain at a time, as one app would.
        const { status, body } = await tokenRequest(base, { grant_type: 'refresh_token', refresh_token: refreshToken }, web, via);
        count('refresh_token', status === 200, JSON.stringify(body));
        if (status === 200) {
          refreshToken = String(body.refresh_token);
          recordSecret(refreshToken);
          recordSecret(String(body.id_token));
        }
      } else if (pick < 16) {
        const response = await via(`${base}/token/introspection`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${web.clientId}:${web.clientSecret}`).toString('base64')}` },
          body: new URLSearchParams({ token: refreshToken, token_type_hint: 'refresh_token' }),
        });
        await response.arrayBuffer();
        count('introspection', response.status === 200, String(response.status));
      } else if (pick < 18) {
        let response = await via(`${base}/admin/v1/clients?limit=20`, { headers: { authorization: `Bearer ${bearer}` } });
        if (response.status === 401) {
          bearer = await adminToken();
          response = await via(`${base}/admin/v1/clients?limit=20`, { headers: { authorization: `Bearer ${bearer}` } });
        }
        await response.arrayBuffer();
        count('admin', response.status === 200, String(response.status));
      } else if (pick === 19 && n % 5 === 0) {
        const tokens = await signInForTokens(node!, web, email);
        count('sign-in', Boolean(tokens.id_token), 'no id_token');
      } else {
        const { status } = await tokenRequest(base, { grant_type: 'client_credentials', scope: 'read' }, service, via);
        count('client_credentials', status === 200, String(status));
      }
    }

    const served = () => [...counts.values()].reduce((sum, n) => sum + n, 0);
    const started = Date.now();
    const warmUntil = started + (SOAK_SECONDS * 1000) / 2;
    let warmRequests = 0;
    const samples: Array<{ at: number; rss: number; fds: number }> = [];
    const sampler = (async () => {
      while (served() < WARM_REQUESTS && Date.now() < warmUntil) await sleep(100);
      warmRequests = served();
      while (Date.now() < until) {
        samples.push({ at: Date.now() - started, rss: rssMb(pid), fds: openFds(pid) });
        await sleep(1000);
      }
    })();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async (_, worker) => {
        for (let n = 0; Date.now() < until; n += 1) {
          await step(worker, n).catch((error: unknown) => count('transport', false, (error as Error).message));
        }
      }),
    );
    await sampler;

    const fifth = Math.max(1, Math.floor(samples.length / 5));
    const warm = samples.slice(0, fifth);
    const last = samples.slice(-fifth);
    const rssGrowth = median(last.map((s) => s.rss)) - median(warm.map((s) => s.rss));
    const fdGrowth = median(last.map((s) => s.fds)) - median(warm.map((s) => s.fds));
    const total = served();
    const warmSeconds = ((samples[0]?.at ?? 0) / 1000).toFixed(0);
    process.stdout.write(
      `soak: ${total} requests in ${SOAK_SECONDS} s, the first ${warmRequests} (${warmSeconds} s) to warm up (${[...counts].map(([kind, n]) => `${kind} ${n}`).join(', ')}); ` +
        `RSS ${median(warm.map((s) => s.rss)).toFixed(0)} → ${median(last.map((s) => s.rss)).toFixed(0)} MB (peak ${Math.max(...samples.map((s) => s.rss)).toFixed(0)}), ` +
        `open files ${median(warm.map((s) => s.fds))} → ${median(last.map((s) => s.fds))}\n`,
    );

    expect(failures).toEqual([]);
    expect(total).toBeGreaterThan(SOAK_SECONDS * 50);
    expect(counts.get('sign-in') ?? 0).toBeGreaterThan(0);
    expect(rssGrowth).toBeLessThanOrEqual(MAX_RSS_GROWTH_MB);
    expect(fdGrowth).toBeLessThanOrEqual(MAX_FD_GROWTH);
  });
});
