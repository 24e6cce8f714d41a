import { describe, expect, it } from 'vitest';
import { createCounterWindow } from '../../../src/observability/counter-window.js';

const MINUTE = 60_000;

describe('counter window (tokens issued in the last hour)', () => {
  function setup() {
    let clock = Date.parse('2026-12-08T00:00:00Z');
    let counter = 0;
    const window = createCounterWindow({ read: () => counter, now: () => clock });
    return {
      window,
      add: (n: number) => (counter += n),
      /** Advances the clock by whole minutes, sampling at each as the timer would. */
      minutes(n: number) {
        for (let i = 0; i < n; i += 1) {
          clock += MINUTE;
          window.sample();
        }
      },
      /** Advances the clock without sampling (a stalled timer). */
      jump: (ms: number) => (clock += ms),
      at: () => clock,
    };
  }

  it('counts what the counter grew by since the process started while it is younger than the window', () => {
    const { window, add, minutes } = setup();
    add(5);
    minutes(10);
    add(2);
    expect(window.read()).toMatchObject({ count: 7, windowSeconds: 600 });
  });

  it('forgets growth older than an hour, to within one minute', () => {
    const { window, add, minutes, at } = setup();
    add(100); // in the first minute
    minutes(30);
    add(20); // half an hour in
    minutes(45);
    add(3); // now, an hour and a quarter in
    const reading = window.read();
    expect(reading.count).toBe(23);
    expect(reading.windowSeconds).toBe(3600);
    expect(at() - reading.since.getTime()).toBe(3600 * 1000);
    minutes(31);
    // The half-hour growth is now more than an hour old too.
    expect(window.read()).toMatchObject({ count: 3, windowSeconds: 3600 });
  });

  it('keeps at most an hour of samples', () => {
    const { window, add, minutes } = setup();
    minutes(200);
    add(4);
    expect(window.read()).toMatchObject({ count: 4, windowSeconds: 3600 });
  });

  it('says what it covers when sampling stalled: the newest sample, however old', () => {
    const { window, add, minutes, jump } = setup();
    minutes(5);
    add(9);
    jump(2 * 3600 * 1000);
    expect(window.read()).toMatchObject({ count: 9, windowSeconds: 7200 });
  });

  it('reads 0 when nothing was issued', () => {
    const { window, minutes } = setup();
    minutes(90);
    expect(window.read().count).toBe(0);
  });
});
