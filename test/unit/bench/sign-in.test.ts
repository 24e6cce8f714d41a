import { generate } from 'otplib';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { passwordSignIn, SecondFactorRefusedError, totpEnrolmentSignIn, totpSignIn, totpStep, TotpPool, type SignInPage, type TotpPerson } from '../../../bench/lib/sign-in.js';
import { Agent as BenchAgent, codeFlow, type Agent } from '../../../bench/lib/flow.js';

// The bench's sign-in strategies and the TOTP person pool (docs/design/sign-in-methods.md §11): the
// pool never lends a person whose code of the current 30 s step was used, and counts the flows that
// had to wait for the next step. The clock is vitest's fake one, so no test waits 30 s.

const SECRET = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP';
const agent = {} as Agent;
const page = (action: string): SignInPage => ({ url: 'http://bench.test/interaction/u1', status: 200, html: '', action, csrf: 'c' });
const person = (email: string, lastStep = -1): TotpPerson => ({ email, password: 'pw', secret: SECRET, lastStep });

afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

describe('bench sign-in strategies', () => {
  it('password: the login form only; consent and other pages are left to codeFlow', async () => {
    const signIn = passwordSignIn({ email: 'a@example.test', password: 'pw' });
    expect(await signIn(page('/interaction/u1/login'), agent)).toEqual({ action: '/interaction/u1/login', form: { csrf: 'c', email: 'a@example.test', password: 'pw' } });
    expect(await signIn(page('/interaction/u1/confirm'), agent)).toBeUndefined();
    expect(await signIn(page('/interaction/u1/mfa'), agent)).toBeUndefined();
  });

  it("totp: the password, then the current step's code, which marks the step used; a second code in the same step is refused before it is sent", async () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 11, 7, 12, 0, 10), toFake: ['Date'] });
    const someone = person('b@example.test');
    const signIn = totpSignIn(someone);
    expect((await signIn(page('/interaction/u1/login'), agent))?.form).toMatchObject({ email: 'b@example.test', password: 'pw' });
    const step = await signIn(page('/interaction/u1/mfa'), agent);
    const epoch = Math.floor(Date.now() / 1000);
    expect(step).toEqual({ action: '/interaction/u1/mfa', form: { csrf: 'c', code: await generate({ secret: SECRET, epoch }) } });
    expect(someone.lastStep).toBe(totpStep(epoch));
    await expect(signIn(page('/interaction/u1/mfa'), agent)).rejects.toThrow(/not sized/);
  });
});

describe('enrolment at sign-in (the bench preparation)', () => {
  it("confirms with the previous step's code, read from #totp-uri, so the person's current step stays free for the measured flows; then Continue", async () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 11, 7, 12, 0, 10), toFake: ['Date'] });
    let enrolled: TotpPerson | undefined;
    const signIn = totpEnrolmentSignIn({ email: 'd@example.test', password: 'pw' }, (made) => (enrolled = made));
    const html = `<p class="hint">Setup link: <code id="totp-uri">otpauth://totp/Gatehouse:d%40example.test?secret=${SECRET}&amp;issuer=Gatehouse</code></p>`;
    const step = await signIn({ ...page('/interaction/u1/mfa/enrol'), html }, agent);
    const now = Math.floor(Date.now() / 1000);
    expect(step?.form.code).toBe(await generate({ secret: SECRET, epoch: now - 30 }));
    expect(enrolled).toEqual({ email: 'd@example.test', password: 'pw', secret: SECRET, lastStep: totpStep(now) - 1 });
    expect(await signIn(page('/interaction/u1/mfa/enrol/continue'), agent)).toEqual({ action: '/interaction/u1/mfa/enrol/continue', form: { csrf: 'c' } });
    await expect(signIn({ ...page('/interaction/u1/mfa/enrol'), html: '<p>no uri</p>' }, agent)).rejects.toThrow(/#totp-uri/);
  });
});

describe('TotpPool', () => {
  it('lends each person to one flow at a time, never twice within a step, and counts the flows that waited for the next one', async () => {
    const start = Date.UTC(2026, 11, 7, 12, 0, 0);
    vi.useFakeTimers({ now: start, toFake: ['Date', 'setTimeout'] });
    const current = totpStep(start / 1000);
    const pool = new TotpPool([person('used@example.test', current), person('fresh@example.test', current - 1)]);
    expect(pool.size).toBe(2);

    const first = (await pool.take())!;
    expect(first.email).toBe('fresh@example.test');
    first.lastStep = current;
    pool.give(first);
    // Both used in this step: the next flow waits for the step after it.
    let second: TotpPerson | undefined;
    const taking = pool.take().then((taken) => (second = taken));
    await vi.advanceTimersByTimeAsync(29_000);
    expect(second).toBeUndefined();
    await vi.advanceTimersByTimeAsync(2_000);
    await taking;
    expect(second?.lastStep).toBe(current);
    expect(totpStep(Date.now() / 1000)).toBe(current + 1);
    expect(pool.waited).toBe(1);
    // The other one is free at once in this new step: no wait counted.
    expect((await pool.take())?.email).not.toBe(second?.email);
    expect(pool.waited).toBe(1);
  });

  it('gives nobody, at once, when the next step begins after the deadline: a flow never waits past the end of its phase', async () => {
    const start = Date.UTC(2026, 11, 7, 12, 0, 10);
    vi.useFakeTimers({ now: start, toFake: ['Date', 'setTimeout'] });
    const pool = new TotpPool([person('used@example.test', totpStep(start / 1000))]);
    expect(await pool.take(start + 5_000)).toBeUndefined();
    expect(Date.now()).toBe(start);
    expect(pool.waited).toBe(0);
    // With the next step before the deadline, it waits for it.
    const taking = pool.take(start + 25_000);
    await vi.advanceTimersByTimeAsync(20_100);
    expect((await taking)?.email).toBe('used@example.test');
    expect(pool.waited).toBe(1);
  });
});

describe('codeFlow with a second factor', () => {
  it('stops with SecondFactorRefusedError when the second-factor page refuses the code (the replay guard is never measured)', async () => {
    const base = 'http://bench.test';
    const form = (action: string) => new Response(`<form method="post" action="${action}"><input type="hidden" name="csrf" value="t">`, { status: 200, headers: { 'content-type': 'text/html' } });
    const seen: string[] = [];
    vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
      const { pathname } = new URL(url);
      seen.push(`${init.method ?? 'GET'} ${pathname}`);
      if (pathname === '/auth') return new Response(null, { status: 303, headers: { location: '/interaction/u1' } });
      if (pathname === '/interaction/u1/login') return new Response(null, { status: 303, headers: { location: '/interaction/u1' } });
      if (pathname === '/interaction/u1/mfa') return new Response('That code was already used.', { status: 401 });
      return seen.includes('POST /interaction/u1/login') ? form('/interaction/u1/mfa') : form('/interaction/u1/login');
    });
    const flow = codeFlow(new BenchAgent(base), { clientId: 'c', clientSecret: 's', redirectUri: 'https://app.test/cb', scope: 'openid' }, totpSignIn(person('c@example.test')));
    await expect(flow).rejects.toBeInstanceOf(SecondFactorRefusedError);
    await expect(flow).rejects.toThrow('401 at /interaction/:uid/mfa');
    expect(seen).toEqual(['GET /auth', 'GET /interaction/u1', 'POST /interaction/u1/login', 'GET /interaction/u1', 'POST /interaction/u1/mfa']);
  });
});
