/**
 * Runs one request over an ordered list of targets inside a single deadline: retries with
 * jittered backoff on the provider's trouble (429, 5xx, timeouts, connection errors), falls back
 * to the next target, and never falls back on the client's own 4xx.
 */
import { retryDelay } from './backoff';
import { blameOf, breakerKey, storedKeyBreakerKey, type CircuitBreaker } from './circuit-breaker';
import { AllTargetsFailedError, NoRouteError, type AttemptResult, type ChainStep, type FallbackSuccess, type Target } from './types';

/** An attempt's result, optionally carrying the provider's Retry-After (in ms from now). */
export type AttemptOutcome<T> = AttemptResult<T> & { readonly retryAfterMs?: number };

/**
 * A cancellation signal as attempts, the fallback loop and the provider transport read it:
 * AbortSignal's shape, so a real AbortSignal (AbortSignal.timeout, AbortSignal.any) fits too.
 */
export interface CancelSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** The request's deadline (and client-gone) signal. */
export type DeadlineSignal = CancelSignal;

/** Calls `fn` on every item, even when one call throws; then throws the first error, if any. */
export function callEach<T>(items: readonly T[], fn: (item: T) => void): void {
  let failed = false;
  let first: unknown;
  for (const item of items) {
    try {
      fn(item);
    } catch (err) {
      if (!failed) {
        failed = true;
        first = err;
      }
    }
  }
  if (failed) throw first;
}

/**
 * A CancelSignal with its own abort, without an AbortController: on node 20 a controller and its
 * signal cost about 3 µs to make and EventTarget listeners about 1 µs each way, on every request
 * and attempt. Listeners run once each, in the order added, as AbortSignal's `once` listeners;
 * the same listener added twice counts once; none is added once aborted (nor run), as with
 * AbortSignal; one that throws keeps none of the others from running.
 */
export class Cancellation implements CancelSignal {
  aborted = false;
  reason: unknown = undefined;
  private listeners: (() => void)[] = [];

  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason === undefined ? new DOMException('This operation was aborted', 'AbortError') : reason;
    const listeners = this.listeners;
    this.listeners = [];
    // Every listener runs even if one throws (as an AbortSignal's do): a later one may be what cuts
    // the upstream call. The first error then reaches the caller of abort.
    callEach(listeners, (l) => l());
  }

  /** Every listener runs at most once, with or without `{ once: true }` (a signal fires only once). */
  addEventListener(_type: 'abort', listener: () => void, _options?: { once?: boolean }): void {
    if (!this.aborted && !this.listeners.includes(listener)) this.listeners.push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const i = this.listeners.indexOf(listener);
    if (i >= 0) this.listeners.splice(i, 1);
  }
}

export interface FallbackOptions<T> {
  readonly targets: readonly Target[];
  /** Epoch ms, on the `now` clock. */
  readonly deadlineAt: number;
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
  readonly random: () => number;
  readonly breaker: CircuitBreaker;
  /**
   * Names the stored key a target uses (e.g. tenant, secret and version; never the key itself).
   * With it, 429s and 401/403s count against that key's own circuit and never against the
   * endpoint that other tenants share. Without it they count against nothing.
   */
  readonly keyOf?: (target: Target) => string;
  /** Default 2. */
  readonly maxAttemptsPerTarget?: number;
  /** Full-jitter backoff between attempts on one target. Defaults: base 200 ms, cap 2 s. */
  readonly backoff?: { readonly baseMs?: number; readonly capMs?: number };
  /**
   * Fires at the overall deadline (and, if the caller wishes, when the client goes away).
   * Defaults to AbortSignal.timeout(deadlineAt - now()), which does not hold the event loop.
   */
  readonly deadlineSignal?: DeadlineSignal;
  /**
   * The caller's own cancellation (the client went away), also part of `deadlineSignal`. An
   * attempt it cuts is not the endpoint's or the key's failure: the breaker is left alone (else a
   * tenant that disconnects on purpose could open a circuit other tenants share), and nothing
   * more is tried.
   */
  readonly cancelSignal?: AbortSignal;
  readonly attempt: (target: Target, signal: CancelSignal, attemptNo: number) => Promise<AttemptOutcome<T>>;
}

export async function executeWithFallback<T>(opts: FallbackOptions<T>): Promise<FallbackSuccess<T>> {
  const { targets, deadlineAt, now, breaker } = opts;
  if (targets.length === 0) throw new NoRouteError('no targets to try');
  const maxAttempts = Math.max(1, Math.floor(opts.maxAttemptsPerTarget ?? 2));
  const baseMs = opts.backoff?.baseMs ?? 200;
  const capMs = opts.backoff?.capMs ?? 2_000;
  const deadlineSignal = opts.deadlineSignal ?? AbortSignal.timeout(Math.max(0, deadlineAt - now()));
  const chain: ChainStep[] = [];
  const step = (target: Target, outcome: ChainStep['outcome'], latencyMs: number, status?: number): void => {
    const s: { -readonly [K in keyof ChainStep]: ChainStep[K] } = { provider: target.provider, model: target.model, outcome, latencyMs };
    if (status !== undefined) s.status = status;
    chain.push(s);
  };

  for (const target of targets) {
    // The circuits' names, made only when a circuit exists or one must be opened: with no circuit
    // at all (the usual case) every key passes and a success changes nothing (isEmpty).
    let names: { readonly key: string; readonly stored?: string } | undefined;
    const circuitsOf = () => (names ??= { key: breakerKey(target), stored: opts.keyOf ? storedKeyBreakerKey(target, opts.keyOf(target)) : undefined });
    // The key's circuit is asked first, so a closed key does not use up the endpoint's half-open trial.
    const closedFor = (): 'ok' | 'key_breaker_open' | 'breaker_open' => {
      if (breaker.isEmpty()) return 'ok';
      const { key, stored } = circuitsOf();
      return stored !== undefined && !breaker.canPass(stored) ? 'key_breaker_open' : breaker.canPass(key) ? 'ok' : 'breaker_open';
    };
    const gate = closedFor();
    if (gate !== 'ok') {
      step(target, gate, 0);
      continue;
    }
    const succeeded = (): void => {
      if (breaker.isEmpty()) return;
      const { key, stored } = circuitsOf();
      breaker.onSuccess(key);
      if (stored !== undefined) breaker.onSuccess(stored);
    };
    for (let attemptNo = 1; attemptNo <= maxAttempts; attemptNo++) {
      // The first attempt already passed the breaker; a retry must ask again (it may have opened).
      if (attemptNo > 1 && closedFor() !== 'ok') break;
      if (opts.cancelSignal?.aborted) {
        step(target, 'cancelled', 0);
        throw new AllTargetsFailedError(chain, statusFor(chain));
      }
      if (now() >= deadlineAt || deadlineSignal.aborted) {
        step(target, 'deadline', 0);
        throw new AllTargetsFailedError(chain, statusFor(chain));
      }
      const controller = childController(deadlineSignal);
      const signal: CancelSignal = controller;
      const started = now();
      let result: AttemptOutcome<T>;
      try {
        result = await opts.attempt(target, signal, attemptNo);
      } catch (err) {
        // An attempt that throws after its signal fired was cut by the deadline; anything else is a bug.
        if (!signal.aborted) throw err;
        result = { ok: false, retryable: true, reason: now() >= deadlineAt ? 'deadline' : 'timeout' };
      }
      const latencyMs = Math.max(0, now() - started);

      if (result.ok) {
        succeeded();
        step(target, 'ok', latencyMs);
        return { value: result.value, target, chain };
      }
      if (opts.cancelSignal?.aborted) {
        step(target, 'cancelled', latencyMs);
        controller.abort();
        throw new AllTargetsFailedError(chain, statusFor(chain));
      }
      if (!result.retryable && result.value !== undefined) {
        // The provider answered and blamed the request (or rejected the stored key): hand its
        // answer back, never fall back. The endpoint works; a rejected key counts against itself.
        const { key, stored } = circuitsOf();
        if (stored !== undefined && blameOf(result) === 'key') {
          breaker.onSuccess(key);
          breaker.onFailure(stored);
        } else {
          succeeded();
        }
        step(target, 'client_error', latencyMs, result.status);
        return { value: result.value, target, chain };
      }
      step(target, result.reason, latencyMs, result.status);
      // Whatever the attempt still holds (a body, a socket) is of no use now.
      controller.abort();
      // Non-retryable without an answer (e.g. no secret for this provider): the endpoint is not
      // at fault, so the breaker is left alone and the next target is tried.
      if (!result.retryable) break;
      const { key, stored } = circuitsOf();
      if (blameOf(result) === 'endpoint') breaker.onFailure(key);
      else if (stored !== undefined) breaker.onFailure(stored);
      if (attemptNo === maxAttempts) break;
      const delay = retryDelay(attemptNo, { baseMs, capMs, random: opts.random, retryAfterMs: result.retryAfterMs, remainingMs: deadlineAt - now() });
      // A Retry-After longer than the backoff cap means "busy for a while": the next target is a
      // better use of the deadline than waiting. A sleep that would end at the deadline is useless.
      if ((result.retryAfterMs ?? 0) > capMs || now() + delay >= deadlineAt) break;
      if (delay > 0) await opts.sleep(delay);
    }
  }
  throw new AllTargetsFailedError(chain, statusFor(chain));
}

/**
 * The attempt's own cancellation, which also fires when the deadline signal does (a listener:
 * AbortSignal.any costs several times more per attempt). It stays linked after a success,
 * because the answer's body is read under the same deadline.
 */
function childController(parent: DeadlineSignal): Cancellation {
  const controller = new Cancellation();
  if (parent.aborted) controller.abort(parent.reason);
  else parent.addEventListener('abort', () => controller.abort(parent.reason), { once: true });
  return controller;
}

/**
 * 429 if every failure was a 429 (or a stored key's own circuit, opened by its 429s/401s/403s),
 * 504 if the last one was a timeout or the deadline, else 502.
 */
function statusFor(chain: readonly ChainStep[]): number {
  const failures = chain.filter((s) => s.outcome !== 'ok' && s.outcome !== 'client_error');
  if (failures.length > 0 && failures.every((s) => s.status === 429 || s.outcome === 'key_breaker_open')) return 429;
  const last = failures[failures.length - 1];
  if (last && (last.outcome === 'timeout' || last.outcome === 'deadline')) return 504;
  return 502;
}
