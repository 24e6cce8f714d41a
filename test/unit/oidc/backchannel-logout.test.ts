import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { cliSignOutOf, createBackchannelLogoutQueue, type BackchannelOutcome, type BackchannelQueueDeps } from '../../../src/oidc/backchannel-logout.js';
import type { LogoutDelivery } from '../../../src/oidc/upstream.js';

/*
 * The delivery queue of back-channel logout (src/oidc/backchannel-logout.ts) with deliveries that
 * stand in for oidc-provider's (their `send` answers as each case says): retries, give-ups, the
 * per-attempt timeout, the bound, and close().
 */

/** An error as oidc-provider's Client#backchannelLogout rejects with for an answer other than 200/204. */
const answered = (status: number) => Object.assign(new Error(`expected 200 OK, got: ${status}`), { response: { status } });

function queueWith(deps: Partial<BackchannelQueueDeps> = {}) {
  const outcomes: BackchannelOutcome[] = [];
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const queue = createBackchannelLogoutQueue({ logger, retry: { baseMs: 5, maxMs: 20, timeoutMs: 1000, attempts: 3 }, onOutcome: (outcome) => outcomes.push(outcome), ...deps });
  return { queue, outcomes, lines };
}

/** A delivery whose attempts answer in turn from `answers` (a thrown error, or undefined: delivered); records the signal of each attempt. */
function delivery(clientId: string, answers: Array<Error | 'hang' | undefined>) {
  const signals: AbortSignal[] = [];
  const item: LogoutDelivery = {
    clientId,
    accountId: 'user-1',
    sid: 'sid-1',
    send(signal) {
      signals.push(signal);
      const answer = answers.shift();
      if (answer === 'hang') return new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error)));
      return answer ? Promise.reject(answer) : Promise.resolve();
    },
  };
  return { item, signals };
}

const until = async (done: () => boolean) => {
  await expect.poll(done, { timeout: 5000, interval: 5 }).toBe(true);
};

describe('the back-channel logout queue', () => {
  it('returns at once and sends after: nothing is sent within enqueue', async () => {
    const { queue, outcomes } = queueWith();
    const { item, signals } = delivery('app', [undefined]);
    queue.enqueue(item);
    expect(signals).toHaveLength(0);
    await until(() => outcomes.length === 1);
    expect(outcomes).toEqual(['delivered']);
    await queue.close();
  });

  it('retries a 500 and a network failure with a fresh signal each time, then delivers; logs client, outcome and status only', async () => {
    const { queue, outcomes, lines } = queueWith();
    const network = Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    const { item, signals } = delivery('app', [answered(500), network, undefined]);
    queue.enqueue(item);
    await until(() => outcomes.length === 3);
    expect(outcomes).toEqual(['retried', 'retried', 'delivered']);
    expect(new Set(signals).size).toBe(3);
    expect(lines.filter((line) => line.component === 'backchannel-logout').map(({ clientId, outcome, attempt, status, reason, code }) => ({ clientId, outcome, attempt, status, reason, code }))).toEqual([
      { clientId: 'app', outcome: 'retried', attempt: 1, status: 500, reason: undefined, code: undefined },
      { clientId: 'app', outcome: 'retried', attempt: 2, status: undefined, reason: 'network', code: 'ECONNREFUSED' },
      { clientId: 'app', outcome: 'delivered', attempt: 3, status: undefined, reason: undefined, code: undefined },
    ]);
    await queue.close();
  });

  it('gives up after the last attempt, and at once on an answer that says the token is refused (400); 408 and 429 are retried', async () => {
    const { queue, outcomes } = queueWith();
    const dead = delivery('dead', [answered(503), answered(503), answered(503), undefined]);
    const refused = delivery('refused', [answered(400), undefined]);
    const busy = delivery('busy', [answered(429), answered(408), undefined]);
    for (const { item } of [dead, refused, busy]) queue.enqueue(item);
    await until(() => outcomes.filter((outcome) => outcome !== 'retried').length === 3);
    expect(dead.signals).toHaveLength(3);
    expect(refused.signals).toHaveLength(1);
    expect(busy.signals).toHaveLength(3);
    expect(outcomes.filter((outcome) => outcome === 'failed')).toHaveLength(2);
    expect(outcomes.filter((outcome) => outcome === 'delivered')).toHaveLength(1);
    await queue.close();
  });

  it('cuts each attempt off after timeoutMs (its signal aborts), and counts it as a timeout', async () => {
    const { queue, outcomes, lines } = queueWith({ retry: { timeoutMs: 30, attempts: 2, baseMs: 5, maxMs: 5 } });
    const { item, signals } = delivery('slow', ['hang', 'hang']);
    queue.enqueue(item);
    await until(() => outcomes.length === 2);
    expect(outcomes).toEqual(['retried', 'failed']);
    expect(signals.every((signal) => signal.aborted)).toBe(true);
    expect(lines.filter((line) => line.clientId === 'slow').map((line) => line.reason)).toEqual(['timeout', 'timeout']);
    await queue.close();
  });

  it('refuses deliveries past its bound, and every delivery after close()', async () => {
    const { queue, outcomes } = queueWith({ maxQueued: 2 });
    const sent = [delivery('a', [undefined]), delivery('b', [undefined]), delivery('c', [undefined])];
    for (const { item } of sent) queue.enqueue(item);
    expect(outcomes).toEqual(['refused']);
    expect(sent[2]!.signals).toHaveLength(0);
    await until(() => outcomes.length === 3);
    await queue.close();
    const late = delivery('late', [undefined]);
    queue.enqueue(late.item);
    expect(outcomes.at(-1)).toBe('refused');
    expect(late.signals).toHaveLength(0);
  });

  it('close(): a delivery waiting out its backoff gets one last try at once; one that never answers is aborted at the deadline', async () => {
    const { queue, outcomes } = queueWith({ retry: { baseMs: 60_000, maxMs: 60_000, attempts: 5, timeoutMs: 60_000 }, closeGraceMs: 50 });
    const waiting = delivery('waiting', [answered(500), undefined]);
    queue.enqueue(waiting.item);
    await until(() => outcomes.length === 1);
    expect(outcomes).toEqual(['retried']);
    const hanging = delivery('hanging', ['hang']);
    queue.enqueue(hanging.item);
    await until(() => hanging.signals.length === 1);
    await queue.close();
    expect(waiting.signals).toHaveLength(2);
    expect(hanging.signals[0]!.aborted).toBe(true);
    expect(outcomes.slice(1).sort()).toEqual(['delivered', 'failed']);
  });
});

describe('sign-outs made with the CLI, as the audit log records them (cliSignOutOf)', () => {
  const row = (actor: string, action: string, details: Record<string, unknown> = {}, target: string | null = 'user:u-1') => ({ actor, action, target, details });
  it('names the person of a CLI disable, delete, and password change that ended the sessions', () => {
    expect(cliSignOutOf(row('cli:ops', 'user.disable'))).toBe('u-1');
    expect(cliSignOutOf(row('cli:ops', 'user.delete'))).toBe('u-1');
    expect(cliSignOutOf(row('cli:ops', 'user.password_set', { sessions_ended: true }))).toBe('u-1');
    expect(cliSignOutOf(row('cli:ops', 'user.update', { sessions_ended: true }))).toBe('u-1');
  });
  it('names nobody for a change that kept the sessions, another action, another target, or a change a node made (and told) itself', () => {
    expect(cliSignOutOf(row('cli:ops', 'user.password_set', { sessions_ended: false }))).toBeUndefined();
    expect(cliSignOutOf(row('cli:ops', 'user.enable'))).toBeUndefined();
    expect(cliSignOutOf(row('cli:ops', 'client.delete', {}, 'client:c-1'))).toBeUndefined();
    expect(cliSignOutOf(row('cli:ops', 'user.disable', {}, null))).toBeUndefined();
    expect(cliSignOutOf(row('admin:admin-client', 'user.disable'))).toBeUndefined();
    expect(cliSignOutOf(row('person:u-1', 'user.password_reset', { sessions_ended: true }))).toBeUndefined();
  });
});
