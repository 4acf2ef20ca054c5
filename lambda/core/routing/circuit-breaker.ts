/**
 * Per-execution-environment circuit breaker. It lives as long as the Lambda instance, so a
 * provider that keeps failing is skipped without spending the request's deadline on it; each
 * instance learns on its own (no shared state, no I/O).
 *
 * Two kinds of circuit, so that one tenant's trouble never becomes another's:
 * - per provider endpoint: 5xx, 408, redirects, timeouts and connection errors (the endpoint's fault);
 * - per stored key (tenant, provider, secret, version): 429 and 401/403, which say something about
 *   that key (its rate limit, its validity), not about the endpoint other tenants share.
 */
import type { FailureReason, Target } from './types';

export type BreakerState = 'closed' | 'open' | 'half_open';

export interface CircuitBreakerOptions {
  /** Consecutive retryable failures that open the circuit. Default 5. */
  readonly failureThreshold?: number;
  /** How long an open circuit rejects before letting one trial through. Default 30 s. */
  readonly coolDownMs?: number;
  /** Milliseconds clock. Default Date.now. */
  readonly now?: () => number;
  /** Circuits kept at most (per-key circuits grow with tenants); the oldest is dropped. Default 10,000. */
  readonly maxCircuits?: number;
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

/** The circuit of one stored key at one endpoint; `storedKey` names it (tenant, secret, version), never its value. */
export function storedKeyBreakerKey(target: Pick<Target, 'provider' | 'baseUrl'>, storedKey: string): string {
  return `${breakerKey(target)} key:${storedKey}`;
}

/**
 * Whose failure an attempt is: a rate limit (429) or a rejection (401/403) belongs to the stored
 * key that was used; anything else that is retryable belongs to the endpoint.
 */
export function blameOf(result: { readonly reason: FailureReason; readonly status?: number }): 'key' | 'endpoint' {
  const s = result.status;
  return result.reason === 'status' && (s === 429 || s === 401 || s === 403) ? 'key' : 'endpoint';
}

export class CircuitBreaker {
  private readonly circuits = new Map<string, Circuit>();
  private readonly threshold: number;
  private readonly coolDownMs: number;
  private readonly now: () => number;
  private readonly maxCircuits: number;

  constructor(opts: CircuitBreakerOptions = {}) {
    this.maxCircuits = Math.max(1, Math.floor(opts.maxCircuits ?? 10_000));
    this.threshold = Math.max(1, Math.floor(opts.failureThreshold ?? 5));
    this.coolDownMs = Math.max(0, opts.coolDownMs ?? 30_000);
    this.now = opts.now ?? Date.now;
  }

  state(key: string): BreakerState {
    const c = this.circuits.get(key);
    if (c?.openedAt === undefined) return 'closed';
    return this.now() - c.openedAt >= this.coolDownMs ? 'half_open' : 'open';
  }

  /**
   * No circuit at all (nothing failed lately): every key passes and a success changes nothing, so
   * a caller need not even name its keys (routing/fallback.ts builds them only when this is false).
   */
  isEmpty(): boolean {
    return this.circuits.size === 0;
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
    if (!this.circuits.has(key) && this.circuits.size >= this.maxCircuits) {
      // Maps iterate in insertion order: forget the oldest circuit (a closed one is a count).
      const oldest = this.circuits.keys().next().value;
      if (oldest !== undefined) this.circuits.delete(oldest);
    }
    this.circuits.set(key, c);
  }
}
