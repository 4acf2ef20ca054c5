/**
 * Retry delays: full-jitter exponential backoff (spreads retries of many callers uniformly, see
 * the AWS Architecture Blog "Exponential Backoff And Jitter"), and Retry-After parsing.
 */

export interface BackoffOptions {
  readonly baseMs: number;
  readonly capMs: number;
  /** Uniform in [0, 1). */
  readonly random: () => number;
}

/**
 * Delay before the retry that follows failed attempt number `attempt` (1-based): uniform in
 * [0, min(capMs, baseMs * 2^(attempt-1))).
 */
export function backoffDelay(attempt: number, opts: BackoffOptions): number {
  const n = Number.isFinite(attempt) && attempt >= 1 ? Math.floor(attempt) : 1;
  // 2^(n-1) overflows to Infinity for large n; min() with the cap keeps the ceiling finite.
  const ceiling = Math.max(0, Math.min(opts.capMs, opts.baseMs * 2 ** Math.min(n - 1, 1023)));
  const r = opts.random();
  const unit = Number.isFinite(r) ? Math.min(Math.max(r, 0), 1) : 0;
  return Math.floor(unit * ceiling);
}

/**
 * Milliseconds to wait before retrying: the jittered backoff, or the provider's Retry-After when
 * that is longer, never past the remaining deadline.
 */
export function retryDelay(attempt: number, opts: BackoffOptions & { readonly retryAfterMs?: number; readonly remainingMs: number }): number {
  const jitter = backoffDelay(attempt, opts);
  const wanted = opts.retryAfterMs !== undefined && opts.retryAfterMs > jitter ? opts.retryAfterMs : jitter;
  return Math.max(0, Math.min(wanted, opts.remainingMs));
}

/** Longest Retry-After taken at face value (one day); anything beyond is nonsense, not a hint. */
const MAX_RETRY_AFTER_MS = 86_400_000;

/**
 * A Retry-After header value (delay-seconds or an HTTP-date, RFC 9110 §10.2.3) in milliseconds
 * from `nowMs`; undefined when absent or unparseable. A date in the past means "now" (0).
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const v = value.trim();
  if (v === '' || v.length > 64) return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return bounded(Number(v) * 1000);
  if (!/[A-Za-z]/.test(v)) return undefined; // "-1" or "1e3" are not dates either
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : bounded(at - nowMs);
}

/** OpenAI's `retry-after-ms` header: milliseconds, possibly fractional. */
export function parseRetryAfterMs(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined) return undefined;
  const v = value.trim();
  return /^\d{1,12}(\.\d+)?$/.test(v) ? bounded(Number(v)) : undefined;
}

function bounded(ms: number): number | undefined {
  if (!Number.isFinite(ms)) return undefined;
  return Math.min(Math.max(0, Math.ceil(ms)), MAX_RETRY_AFTER_MS);
}
