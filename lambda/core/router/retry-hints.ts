/**
 * The providers' own waits, for the client when the router gives up: if every target ended on a
 * 429 that carried Retry-After (or retry-after-ms), the client is told the shortest of them, the
 * earliest moment one of the targets said it would serve again. Any 429 without a hint makes the
 * wait unknown, and then no wait is announced.
 */
import type { Target } from '../routing/types';

export class RetryHints {
  /** Last 429 per target: its Retry-After in ms, or undefined when it gave none. */
  /** Made at the first retryable status (most requests see none: no Map per request). */
  private last?: Map<string, number | undefined>;

  note(target: Pick<Target, 'provider' | 'model'>, status: number, retryAfterMs: number | undefined): void {
    const key = `${target.provider}\u0000${target.model}`;
    if (status === 429) (this.last ??= new Map()).set(key, retryAfterMs);
    else this.last?.delete(key);
  }

  /** Whole seconds to wait, rounded up, or undefined when unknown. */
  waitSeconds(): number | undefined {
    const waits = this.last === undefined ? [] : [...this.last.values()];
    if (waits.length === 0 || waits.some((w) => w === undefined || !Number.isFinite(w) || w < 0)) return undefined;
    return Math.ceil(Math.min(...(waits as number[])) / 1000);
  }

  /** Error details for a give-up with this status: `retry_after_seconds` on a 429 whose wait is known. */
  details(status: number): Record<string, number> {
    const wait = status === 429 ? this.waitSeconds() : undefined;
    return wait === undefined ? {} : { retry_after_seconds: wait };
  }
}
