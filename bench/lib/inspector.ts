import type { CpuProfile } from '../profile.js';

/**
 * A CPU profiler over the inspector protocol of a process started with --inspect=127.0.0.1:0,
 * so that the profile covers only the measured window (not start-up, not the scenario's setup).
 */
export async function connectProfiler(output: () => string, timeoutMs = 10_000): Promise<{ start(): Promise<void>; stop(): Promise<CpuProfile>; close(): void }> {
  const deadline = Date.now() + timeoutMs;
  let url: string | undefined;
  while (!url && Date.now() < deadline) {
    url = /Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/[\w-]+)/.exec(output())?.[1];
    if (!url) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  if (!url) throw new Error(`no inspector URL in the server's output:\n${output().slice(-2000)}`);
  const socket = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener('open', () => resolve(), { once: true });
    socket.addEventListener('error', () => reject(new Error(`cannot connect to ${url}`)), { once: true });
  });
  let nextId = 0;
  const pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: { message: string } };
    if (message.id === undefined) return;
    const waiter = pending.get(message.id);
    pending.delete(message.id);
    if (message.error) waiter?.reject(new Error(message.error.message));
    else waiter?.resolve(message.result);
  });
  const call = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<unknown>((resolve, reject) => {
      nextId += 1;
      pending.set(nextId, { resolve, reject });
      socket.send(JSON.stringify({ id: nextId, method, params }));
    });
  await call('Profiler.enable');
  await call('Profiler.setSamplingInterval', { interval: 250 });
  return {
    async start() {
      await call('Profiler.start');
    },
    async stop() {
      const { profile } = (await call('Profiler.stop')) as { profile: CpuProfile };
      return profile;
    },
    close() {
      socket.close();
    },
  };
}
