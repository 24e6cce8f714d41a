/** What a counter grew by over (about) the last window, on this node. */
export interface CounterWindowReading {
  /** How much the counter grew from `since` to now. */
  count: number;
  /** The seconds the figure covers: the window, or less when this process has not run that long. */
  windowSeconds: number;
  /** The sample the figure is measured from (the process start when it is younger than the window). */
  since: Date;
}

/** A ring of a counter's samples: how much it grew over the last window, read without touching the counter's path. */
export interface CounterWindow {
  /** Takes one sample now (the timer calls it once a bucket; tests call it with a fake clock). */
  sample(): void;
  /** The counter's growth from the oldest sample within the window to now. */
  read(): CounterWindowReading;
  /** Starts sampling once a bucket (an unref'd timer). */
  start(): void;
  stop(): void;
}

/**
 * Keeps one sample of a monotonic counter per bucket (a minute by default) in a ring that covers the
 * window (an hour): the growth over the last hour is counter(now) − counter(about an hour ago),
 * to within one bucket. Nothing is written on the counter's own path (the token endpoint increments
 * a number, as before); the ring is in this process, so the figure is this node's alone.
 *
 * @example
 * const tokens = createCounterWindow({ read: () => metrics.tokensIssuedTotal() });
 * tokens.start();
 * tokens.read(); // → { count: 42, windowSeconds: 3600, since }
 */
export function createCounterWindow(options: { read: () => number; bucketMs?: number; windowMs?: number; now?: () => number }): CounterWindow {
  const bucketMs = options.bucketMs ?? 60_000;
  const windowMs = options.windowMs ?? 3_600_000;
  const now = options.now ?? Date.now;
  // Samples oldest first; one more than the window holds, so the oldest is at least a window old once the ring is full.
  const capacity = Math.ceil(windowMs / bucketMs) + 1;
  const samples: Array<{ at: number; value: number }> = [{ at: now(), value: options.read() }];
  let timer: NodeJS.Timeout | undefined;

  const sample = () => {
    samples.push({ at: now(), value: options.read() });
    while (samples.length > capacity) samples.shift();
  };
  return {
    sample,
    read() {
      const at = now();
      // The oldest sample no older than the window (to within one bucket); the first sample is never dropped before the window is full.
      const from = samples.find((s) => at - s.at <= windowMs) ?? samples[samples.length - 1]!;
      return { count: options.read() - from.value, windowSeconds: Math.round((at - from.at) / 1000), since: new Date(from.at) };
    },
    start() {
      timer ??= setInterval(sample, bucketMs).unref();
    },
    stop() {
      clearInterval(timer);
      timer = undefined;
    },
  };
}
