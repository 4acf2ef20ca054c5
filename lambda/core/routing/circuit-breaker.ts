/**
 * Per-execution-environment circuit breaker, one circuit per provider endpoint. It lives as long
 * as the Lambda instance, so a provider that keeps failing is skipped without spending the
 * request's deadline on it; each instance learns on its own (no shared state, no I/O).
 */
import type { Target } from './types';

export type BreakerState = 'closed' | 'open' | 'half_open';

export interface CircuitBreakerOptions {
  /** Consecutive retryable failures that open the circuit. Default 5. */
  readonly failureThreshold?: number;
  /** How long an open circuit rejects before letting one trial through. Default 30 s. */
  readonly coolDownMs?: number;
  /** Milliseconds clock. Default Date.now. */
  readonly now?: () => number;
}

interface Circuit {
  failures: number;
  openedAt?: number;
  /** When the half-open trial was let through; undefined when no trial is in flight. */
  trialAt?: number;
}

/** Circuits are per endpoint, not per model: one provider outage affects all its models. */
export function breakerKey(target: Pick<Target, 'provider' | 'baseUrl'>): string {
  return `${target.provider} ${target.baseUrl}`;
}

export class CircuitBreaker {
  private readonly circuits = new Map<string, Circuit>();
  private readonly threshold: number;
  private readonly coolDownMs: number;
  private readonly now: () => number;

  constructor(opts: CircuitBreakerOptions = {}) {
    this.threshold = Math.max(1, Math.floor(opts.failureThreshold ?? 5));
    this.coolDownMs = Math.max(0, opts.coolDownMs ?? 30_000);
    this.now = opts.now ?? Date.now;
  }

  state(key: string): BreakerState {
    const c = this.circuits.get(key);
    if (c?.openedAt === undefined) return 'closed';
    return this.now() - c.openedAt >= this.coolDownMs ? 'half_open' : 'open';
  }

  /** Whether a call may go out now. In half-open, true exactly once until the trial reports. */
  canPass(key: string): boolean {
    const state = this.state(key);
    if (state === 'closed') return true;
    if (state === 'open') return false;
    const c = this.circuits.get(key) as Circuit;
    // A trial that never reported (caller crashed or forgot) must not wedge the circuit for good.
    if (c.trialAt !== undefined && this.now() - c.trialAt < this.coolDownMs) return false;
    c.trialAt = this.now();
    return true;
  }

  onSuccess(key: string): void {
    this.circuits.delete(key);
  }

  onFailure(key: string): void {
    const c = this.circuits.get(key) ?? { failures: 0 };
    c.failures += 1;
    if (c.openedAt !== undefined) {
      // A failed half-open trial re-opens for a fresh cool-down; a straggler while open changes nothing.
      if (c.trialAt !== undefined) {
        c.openedAt = this.now();
        c.trialAt = undefined;
      }
    } else if (c.failures >= this.threshold) {
      c.openedAt = this.now();
    }
    this.circuits.set(key, c);
  }
}
