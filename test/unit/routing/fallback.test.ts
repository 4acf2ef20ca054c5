import { breakerKey, CircuitBreaker, storedKeyBreakerKey } from '../../../lambda/core/routing/circuit-breaker';
import { Cancellation, executeWithFallback, type AttemptOutcome, type CancelSignal, type FallbackOptions } from '../../../lambda/core/routing/fallback';
import { AllTargetsFailedError, NoRouteError, type Target } from '../../../lambda/core/routing/types';

const A: Target = { provider: 'openai', kind: 'openai', baseUrl: 'https://a.example', model: 'gpt-4o', secret: 'default' };
const B: Target = { provider: 'anthropic', kind: 'anthropic', baseUrl: 'https://b.example', model: 'claude-sonnet-4-5', secret: 'default' };
const C: Target = { provider: 'mistral', kind: 'mistral', baseUrl: 'https://c.example', model: 'mistral-large-latest', secret: 'default' };

const T0 = 1_000_000;
type Step = { ms?: number; r: AttemptOutcome<string> } | { ms?: number; throws: unknown };

const ok = (value: string, ms = 100): Step => ({ ms, r: { ok: true, value } });
const status = (s: number, ms = 50, retryAfterMs?: number): Step => ({
  ms,
  r: s >= 400 && s < 500 && s !== 429 && s !== 408 ? { ok: false, retryable: false, reason: 'status', status: s, value: `upstream ${s}` } : { ok: false, retryable: true, reason: 'status', status: s, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) },
});
const fail = (reason: 'timeout' | 'connection', ms = 50): Step => ({ ms, r: { ok: false, retryable: true, reason } });

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** A fake clock, a fake sleep that advances it, and attempts scripted per provider. */
function harness(scripts: Partial<Record<string, Step[]>>, over: Partial<FallbackOptions<string>> = {}) {
  const clock = { t: T0 };
  const sleeps: number[] = [];
  const calls: Array<{ provider: string; attemptNo: number; at: number; signal: CancelSignal }> = [];
  const breaker = over.breaker ?? new CircuitBreaker({ now: () => clock.t });
  const deadline = new AbortController();
  const opts: Mutable<FallbackOptions<string>> = {
    targets: [A, B, C],
    deadlineAt: T0 + 30_000,
    now: () => clock.t,
    sleep: async (ms) => {
      sleeps.push(ms);
      clock.t += ms;
    },
    random: () => 0.5,
    breaker,
    deadlineSignal: deadline.signal,
    attempt: async (target, signal, attemptNo) => {
      calls.push({ provider: target.provider, attemptNo, at: clock.t, signal });
      const step = scripts[target.provider]?.shift();
      if (!step) throw new Error(`unscripted attempt on ${target.provider}`);
      clock.t += step.ms ?? 0;
      if ('throws' in step) throw step.throws;
      return step.r;
    },
    ...over,
  };
  return { opts, clock, sleeps, calls, breaker, deadline, run: () => executeWithFallback(opts) };
}

async function failure(p: Promise<unknown>): Promise<AllTargetsFailedError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AllTargetsFailedError);
    return err as AllTargetsFailedError;
  }
  throw new Error('expected AllTargetsFailedError');
}

describe('executeWithFallback', () => {
  it('returns the first success with a one-step chain', async () => {
    const h = harness({ openai: [ok('hello', 120)] });
    const res = await h.run();
    expect(res).toEqual({ value: 'hello', target: A, chain: [{ provider: 'openai', model: 'gpt-4o', outcome: 'ok', latencyMs: 120 }] });
    expect(h.calls.map((c) => [c.provider, c.attemptNo])).toEqual([['openai', 1]]);
  });

  it.each([
    ['429', status(429), { outcome: 'status', status: 429 }],
    ['500', status(500), { outcome: 'status', status: 500 }],
    ['503', status(503), { outcome: 'status', status: 503 }],
    ['408', status(408), { outcome: 'status', status: 408 }],
    ['timeout', fail('timeout'), { outcome: 'timeout' }],
    ['connection', fail('connection'), { outcome: 'connection' }],
  ])('falls back on %s', async (_name, step, expected) => {
    const h = harness({ openai: [step], anthropic: [ok('from b')] }, { maxAttemptsPerTarget: 1 });
    const res = await h.run();
    expect(res.value).toBe('from b');
    expect(res.target).toBe(B);
    expect(res.chain).toEqual([
      { provider: 'openai', model: 'gpt-4o', latencyMs: 50, ...expected },
      { provider: 'anthropic', model: 'claude-sonnet-4-5', outcome: 'ok', latencyMs: 100 },
    ]);
    expect(h.sleeps).toEqual([]); // no waiting between targets
  });

  it.each([400, 401, 403, 404, 413, 422])('never falls back (or retries) on a client %i: the upstream answer is the result', async (s) => {
    const h = harness({ openai: [status(s, 30)] });
    const res = await h.run();
    expect(res).toEqual({ value: `upstream ${s}`, target: A, chain: [{ provider: 'openai', model: 'gpt-4o', outcome: 'client_error', status: s, latencyMs: 30 }] });
    expect(h.calls).toHaveLength(1);
  });

  it('retries a target with full-jitter backoff before falling back', async () => {
    const h = harness({ openai: [status(500), status(502)], anthropic: [status(503), ok('b')] }, { backoff: { baseMs: 200, capMs: 2000 } });
    const res = await h.run();
    expect(res.value).toBe('b');
    // random 0.5: attempt 1 → 0.5 * 200 = 100 ms, on each target; none between targets.
    expect(h.sleeps).toEqual([100, 100]);
    expect(h.calls.map((c) => [c.provider, c.attemptNo, c.at - T0])).toEqual([
      ['openai', 1, 0],
      ['openai', 2, 150],
      ['anthropic', 1, 200],
      ['anthropic', 2, 350],
    ]);
    expect(res.chain.map((s) => [s.provider, s.outcome, s.status, s.latencyMs])).toEqual([
      ['openai', 'status', 500, 50],
      ['openai', 'status', 502, 50],
      ['anthropic', 'status', 503, 50],
      ['anthropic', 'ok', undefined, 100],
    ]);
  });

  it('honours a short Retry-After on the same target', async () => {
    const h = harness({ openai: [status(429, 10, 1000), ok('a')] });
    expect((await h.run()).value).toBe('a');
    expect(h.sleeps).toEqual([1000]);
  });

  it('a Retry-After beyond the backoff cap moves on to the next target at once', async () => {
    const h = harness({ openai: [status(429, 10, 20_000)], anthropic: [ok('b')] });
    expect((await h.run()).target).toBe(B);
    expect(h.sleeps).toEqual([]);
  });

  it('does not sleep when the sleep would not end before the deadline', async () => {
    const h = harness({ openai: [status(500, 50)], anthropic: [ok('b')] }, { deadlineAt: T0 + 120, backoff: { baseMs: 1000, capMs: 2000 } });
    expect((await h.run()).target).toBe(B);
    expect(h.sleeps).toEqual([]);
  });

  it('stops everything with 504 once the deadline has passed', async () => {
    const h = harness({ openai: [fail('timeout', 10_000)] }, { deadlineAt: T0 + 10_000 });
    const err = await failure(h.run());
    expect(err.status).toBe(504);
    expect(err.chain).toEqual([
      { provider: 'openai', model: 'gpt-4o', outcome: 'timeout', latencyMs: 10_000 },
      // No retry sleep fits, so the step names the target that would have been tried next.
      { provider: 'anthropic', model: 'claude-sonnet-4-5', outcome: 'deadline', latencyMs: 0 },
    ]);
    expect(h.calls).toHaveLength(1);
  });

  it('a deadline already past means no attempt at all', async () => {
    const h = harness({}, { deadlineAt: T0 });
    const err = await failure(h.run());
    expect(err.status).toBe(504);
    expect(err.chain).toEqual([{ provider: 'openai', model: 'gpt-4o', outcome: 'deadline', latencyMs: 0 }]);
  });

  it('an aborted deadline signal stops before the next attempt', async () => {
    const h = harness({ openai: [status(500)] }, { maxAttemptsPerTarget: 1 });
    h.opts.attempt = async (target) => {
      h.deadline.abort();
      h.clock.t += 5;
      return target === A ? { ok: false, retryable: true, reason: 'status', status: 500 } : { ok: true, value: 'never' };
    };
    const err = await failure(h.run());
    expect(err.chain.map((s) => s.outcome)).toEqual(['status', 'deadline']);
    expect(err.status).toBe(504);
  });

  it('answers 429 when every failure was a 429', async () => {
    const h = harness({ openai: [status(429), status(429)], anthropic: [status(429), status(429)], mistral: [status(429), status(429)] });
    const err = await failure(h.run());
    expect(err.status).toBe(429);
    expect(err.chain).toHaveLength(6);
    expect(err.message).toMatch(/^All 6 attempt\(s\) failed: openai\/gpt-4o=429/);
  });

  it('answers 502 on mixed failures and 504 when the last one timed out', async () => {
    const mixed = harness({ openai: [status(429)], anthropic: [status(500)], mistral: [fail('connection')] }, { maxAttemptsPerTarget: 1 });
    expect((await failure(mixed.run())).status).toBe(502);
    const timedOut = harness({ openai: [status(429)], anthropic: [status(500)], mistral: [fail('timeout')] }, { maxAttemptsPerTarget: 1 });
    expect((await failure(timedOut.run())).status).toBe(504);
  });

  it('skips a target whose breaker is open, without calling it', async () => {
    const h = harness({ anthropic: [ok('b')] });
    for (let i = 0; i < 5; i++) h.breaker.onFailure(breakerKey(A));
    const res = await h.run();
    expect(res.chain).toEqual([
      { provider: 'openai', model: 'gpt-4o', outcome: 'breaker_open', latencyMs: 0 },
      { provider: 'anthropic', model: 'claude-sonnet-4-5', outcome: 'ok', latencyMs: 100 },
    ]);
    expect(h.calls.map((c) => c.provider)).toEqual(['anthropic']);
  });

  it('all breakers open → 502 with no attempt made', async () => {
    const h = harness({});
    for (const t of [A, B, C]) for (let i = 0; i < 5; i++) h.breaker.onFailure(breakerKey(t));
    const err = await failure(h.run());
    expect(err.status).toBe(502);
    expect(err.chain.map((s) => s.outcome)).toEqual(['breaker_open', 'breaker_open', 'breaker_open']);
  });

  it('feeds the breaker: retryable failures count, successes and client errors reset', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 3, now: () => T0 });
    const spyFail = jest.spyOn(breaker, 'onFailure');
    const spyOk = jest.spyOn(breaker, 'onSuccess');
    await harness({ openai: [status(500), status(503)], anthropic: [status(400)] }, { breaker }).run();
    expect(spyFail.mock.calls).toEqual([[breakerKey(A)], [breakerKey(A)]]);
    expect(spyOk.mock.calls).toEqual([[breakerKey(B)]]);
    // A third failure on A opens it; the retry on the same target then asks the breaker again.
    const h = harness({ openai: [fail('connection')], anthropic: [ok('b')] }, { breaker });
    expect((await h.run()).target).toBe(B);
    expect(breaker.state(breakerKey(A))).toBe('open');
    expect(h.calls.map((c) => c.provider)).toEqual(['openai', 'anthropic']);
  });

  it('a non-retryable failure without an answer (no secret) moves on and leaves the breaker alone', async () => {
    const h = harness({ openai: [{ r: { ok: false, retryable: false, reason: 'no_secret' } }], anthropic: [ok('b')] });
    const spy = jest.spyOn(h.breaker, 'onFailure');
    const res = await h.run();
    expect(res.chain.map((s) => s.outcome)).toEqual(['no_secret', 'ok']);
    expect(h.calls).toHaveLength(2);
    expect(spy).not.toHaveBeenCalled();
  });

  it('gives each attempt a signal that fires at the deadline, and aborts failed attempts', async () => {
    const h = harness({ openai: [status(500)], anthropic: [ok('b')] }, { maxAttemptsPerTarget: 1 });
    await h.run();
    const [first, second] = h.calls;
    expect(first.signal.aborted).toBe(true); // its leftovers are cancelled
    expect(second.signal.aborted).toBe(false); // the winner's stream keeps flowing
    h.deadline.abort();
    expect(second.signal.aborted).toBe(true);
  });

  it('an attempt that throws after its signal fired counts as a timeout; any other throw is a bug', async () => {
    const h = harness({ openai: [{ ms: 10, throws: new Error('aborted') }], anthropic: [ok('b')] }, { maxAttemptsPerTarget: 1 });
    const inner = h.opts.attempt;
    h.opts.attempt = async (t, signal, n) => {
      if (t === A) h.deadline.abort();
      return inner(t, signal, n);
    };
    const err = await failure(h.run());
    expect(err.chain.map((s) => s.outcome)).toEqual(['timeout', 'deadline']);

    const bug = harness({ openai: [{ throws: new TypeError('x is undefined') }] });
    await expect(bug.run()).rejects.toThrow(TypeError);
  });

  it('the default deadline signal fires on the real clock', async () => {
    let seen: CancelSignal | undefined;
    const res = executeWithFallback<string>({
      targets: [A],
      deadlineAt: Date.now() + 30,
      now: Date.now,
      sleep: async () => undefined,
      random: () => 0.5,
      breaker: new CircuitBreaker(),
      maxAttemptsPerTarget: 1,
      attempt: (_t, signal) => {
        seen = signal;
        return new Promise((resolve) => signal.addEventListener('abort', () => resolve({ ok: false, retryable: true, reason: 'timeout' })));
      },
    });
    const err = await failure(res);
    expect(seen?.aborted).toBe(true);
    expect(err.status).toBe(504);
  });

  it('refuses an empty target list', async () => {
    await expect(harness({}, { targets: [] }).run()).rejects.toThrow(NoRouteError);
  });
});

describe('circuits per endpoint and per stored key (issue 9, point 7)', () => {
  const rejected = (s: 401 | 403): Step => ({ ms: 10, r: { ok: false, retryable: false, reason: 'status', status: s, value: `upstream ${s}` } });
  /** One tenant's run against openai only, sharing `breaker` with the other tenants. */
  const tenantRun = (breaker: CircuitBreaker, tenant: string, steps: Step[]) =>
    harness({ openai: steps }, { breaker, targets: [A], keyOf: (t) => `${tenant}/${t.secret}/v1` });

  it("429s of one tenant's key open that key's circuit only: the endpoint and other tenants' keys stay closed", async () => {
    const breaker = new CircuitBreaker({ now: () => T0 });
    for (let i = 0; i < 3; i++) {
      const err = await failure(tenantRun(breaker, 'tenant-a', [status(429), status(429)]).run());
      expect(err.status).toBe(429);
    }
    expect(breaker.state(breakerKey(A))).toBe('closed');
    expect(breaker.state(storedKeyBreakerKey(A, 'tenant-a/default/v1'))).toBe('open');
    // Tenant A is now refused without a call; tenant B on the same endpoint is served.
    const a = tenantRun(breaker, 'tenant-a', []);
    const errA = await failure(a.run());
    expect([errA.status, errA.chain.map((s) => s.outcome)]).toEqual([429, ['key_breaker_open']]);
    expect(a.calls).toEqual([]);
    const b = tenantRun(breaker, 'tenant-b', [ok('b')]);
    expect((await b.run()).value).toBe('b');
  });

  it("401/403 count against the stored key (answer still handed back), never against the endpoint", async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 3, now: () => T0 });
    for (const s of [401, 403, 401] as const) {
      const res = await tenantRun(breaker, 'tenant-a', [rejected(s)]).run();
      expect(res.chain.map((c) => [c.outcome, c.status])).toEqual([['client_error', s]]);
    }
    expect(breaker.state(storedKeyBreakerKey(A, 'tenant-a/default/v1'))).toBe('open');
    expect(breaker.state(breakerKey(A))).toBe('closed');
    expect((await tenantRun(breaker, 'tenant-b', [ok('b')]).run()).value).toBe('b');
    // A rotated key (next version) has a fresh circuit.
    const rotated = harness({ openai: [ok('a2')] }, { breaker, targets: [A], keyOf: () => 'tenant-a/default/v2' });
    expect((await rotated.run()).value).toBe('a2');
  });

  it('5xx, timeouts and connection errors still count against the endpoint, for every tenant', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 4, now: () => T0 });
    await failure(tenantRun(breaker, 'tenant-a', [status(503), fail('timeout')]).run());
    await failure(tenantRun(breaker, 'tenant-b', [fail('connection'), status(500)]).run());
    expect(breaker.state(breakerKey(A))).toBe('open');
    const c = tenantRun(breaker, 'tenant-c', []);
    const err = await failure(c.run());
    expect([err.status, err.chain.map((s) => s.outcome)]).toEqual([502, ['breaker_open']]);
    expect(c.calls).toEqual([]);
  });

  it('without keyOf, 429s do not count against the endpoint', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 2, now: () => T0 });
    for (let i = 0; i < 3; i++) await failure(harness({ openai: [status(429), status(429)] }, { breaker, targets: [A] }).run());
    expect(breaker.state(breakerKey(A))).toBe('closed');
  });

  it('keeps at most maxCircuits circuits (per-key circuits grow with tenants)', () => {
    const breaker = new CircuitBreaker({ maxCircuits: 3, failureThreshold: 1, now: () => T0 });
    for (const k of ['a', 'b', 'c', 'd']) breaker.onFailure(k);
    expect(['a', 'b', 'c', 'd'].map((k) => breaker.state(k))).toEqual(['closed', 'open', 'open', 'open']);
  });
});

describe('a caller that goes away (cancelSignal, issue 14 point 6)', () => {
  it('an attempt cut by the client is not the endpoint failing: no breaker count, no retry, no fallback', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 1, now: () => T0 });
    const spy = jest.spyOn(breaker, 'onFailure');
    for (let i = 0; i < 5; i++) {
      const client = new AbortController();
      const h = harness({}, { breaker, cancelSignal: client.signal });
      h.opts.deadlineSignal = AbortSignal.any([h.deadline.signal, client.signal]);
      h.opts.attempt = async (target, signal) => {
        h.calls.push({ provider: target.provider, attemptNo: 1, at: T0, signal });
        // The client leaves while the provider is thinking; the attempt fails because of the abort.
        client.abort();
        expect(signal.aborted).toBe(true);
        throw Object.assign(new Error('aborted'), { name: 'AbortError' });
      };
      const err = await failure(h.run());
      expect(err.chain.map((s) => s.outcome)).toEqual(['cancelled']);
      expect(h.calls.map((c) => c.provider)).toEqual(['openai']);
    }
    expect(spy).not.toHaveBeenCalled();
    expect(breaker.state(breakerKey(A))).toBe('closed');
  });

  it('a client already gone: nothing is attempted', async () => {
    const client = new AbortController();
    client.abort();
    const h = harness({}, { cancelSignal: client.signal });
    const err = await failure(h.run());
    expect(err.chain.map((s) => s.outcome)).toEqual(['cancelled']);
    expect(h.calls).toEqual([]);
  });
});

describe('Cancellation (the attempts\u2019 and the deadline\u2019s signal, without an AbortController)', () => {
  it('listeners run once each, in order; a removed one never; the same one twice counts once; none after it fired', () => {
    const c = new Cancellation();
    const ran: string[] = [];
    const a = () => ran.push('a');
    const b = () => ran.push('b');
    const d = () => ran.push('d');
    c.addEventListener('abort', a, { once: true });
    c.addEventListener('abort', b);
    c.addEventListener('abort', d);
    c.addEventListener('abort', d);
    c.removeEventListener('abort', b);
    expect(c.aborted).toBe(false);
    const reason = new Error('cut');
    c.abort(reason);
    c.abort(new Error('again'));
    expect(ran).toEqual(['a', 'd']);
    expect(c.aborted).toBe(true);
    expect(c.reason).toBe(reason);
    const late = jest.fn();
    c.addEventListener('abort', late);
    c.abort();
    expect(late).not.toHaveBeenCalled();
  });

  it('an abort without a reason has an AbortError as its reason, as AbortController gives', () => {
    const c = new Cancellation();
    c.abort();
    expect((c.reason as DOMException).name).toBe(new AbortController().signal.reason?.name ?? 'AbortError');
    expect((c.reason as DOMException).name).toBe('AbortError');
  });

  // With an AbortSignal a listener that throws keeps no other listener from running (EventTarget
  // reports the error on its own). Here the rest must run too, or a bug in one listener would leave
  // the upstream call that a later listener cuts hanging past the deadline.
  it('a listener that throws keeps no later listener from running; the first error reaches the caller of abort once all ran', () => {
    const c = new Cancellation();
    const ran: string[] = [];
    const boom = new Error('listener bug');
    c.addEventListener('abort', () => {
      ran.push('a');
      throw boom;
    });
    c.addEventListener('abort', () => {
      ran.push('b');
      throw new Error('second');
    });
    c.addEventListener('abort', () => ran.push('c'));
    expect(() => c.abort()).toThrow(boom);
    expect(ran).toEqual(['a', 'b', 'c']);
    expect(c.aborted).toBe(true);
    expect(() => c.abort()).not.toThrow();
    expect(ran).toEqual(['a', 'b', 'c']);
  });

  it('a listener that aborts another cancellation (the attempt under the deadline) passes the reason on', async () => {
    const deadline = new Cancellation();
    let seen: CancelSignal | undefined;
    const run = executeWithFallback<string>({
      targets: [A],
      deadlineAt: Date.now() + 60_000,
      now: Date.now,
      sleep: async () => undefined,
      random: () => 0.5,
      breaker: new CircuitBreaker(),
      maxAttemptsPerTarget: 1,
      deadlineSignal: deadline,
      attempt: (_t, signal) => {
        seen = signal;
        return new Promise((resolve) => signal.addEventListener('abort', () => resolve({ ok: false, retryable: true, reason: 'timeout' })));
      },
    });
    const reason = new DOMException('The request deadline passed', 'TimeoutError');
    deadline.abort(reason);
    await expect(run).rejects.toThrow();
    expect(seen?.aborted).toBe(true);
    expect(seen?.reason).toBe(reason);
    expect(seen).not.toBe(deadline);
  });
});

describe('circuit names are made only when a circuit exists or must be opened', () => {
  test('no circuit: a success names no key (keyOf is not asked) and leaves the breaker empty', async () => {
    const keyOf = jest.fn((t: Target) => `acme/${t.secret}/v1`);
    const h = harness({ openai: [ok('a')] }, { keyOf });
    expect((await h.run()).value).toBe('a');
    expect(keyOf).not.toHaveBeenCalled();
    expect(h.breaker.isEmpty()).toBe(true);
  });

  test('a 429 opens the stored key circuit by its full name; the next request then asks it, and its success closes it', async () => {
    const keyOf = jest.fn((t: Target) => `acme/${t.secret}/v1`);
    const breaker = new CircuitBreaker({ failureThreshold: 1, now: () => T0 });
    const first = harness({ openai: [status(429)], anthropic: [ok('b')] }, { keyOf, breaker, maxAttemptsPerTarget: 1 });
    expect((await first.run()).value).toBe('b');
    const storedA = storedKeyBreakerKey(A, 'acme/default/v1');
    expect(breaker.state(storedA)).toBe('open');
    expect(breaker.state(breakerKey(A))).toBe('closed');
    // The key's circuit is open: A is skipped as key_breaker_open, B serves.
    const second = harness({ anthropic: [ok('b2')] }, { keyOf, breaker });
    const out = await second.run();
    expect(out.value).toBe('b2');
    expect(out.chain.map((s) => s.outcome)).toEqual(['key_breaker_open', 'ok']);
  });
});
