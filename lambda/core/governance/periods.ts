/**
 * Time buckets of governance, all in UTC: calendar months for budgets, fixed one-minute windows
 * for RPM/TPM. Keys are strings that sort in time order.
 */

export const WINDOW_MS = 60_000;

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

// Every request asks for the current month and window: the last answer is kept with its bounds.
let lastMonth = { from: 0, to: 0, key: '' };
let lastWindow = { start: NaN, key: '' };

/** `YYYY-MM` of the UTC month holding `ms`. */
export function monthKey(ms: number): string {
  if (ms >= lastMonth.from && ms < lastMonth.to) return lastMonth.key;
  const d = new Date(ms);
  const key = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}`;
  if (Number.isFinite(ms)) lastMonth = { from: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1), to: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1), key };
  return key;
}

const MONTH_KEY = /^(\d{4})-(0[1-9]|1[0-2])$/;

export function isMonthKey(s: string): boolean {
  return MONTH_KEY.test(s);
}

/** First instant (epoch ms) of the month after `key`. */
export function monthEndMs(key: string): number {
  const m = MONTH_KEY.exec(key);
  if (!m) throw new Error(`not a month key: ${key}`);
  return Date.UTC(Number(m[1]), Number(m[2]), 1);
}

/** Start (epoch ms) of the one-minute window holding `ms`. */
export function windowStartMs(ms: number): number {
  return Math.floor(ms / WINDOW_MS) * WINDOW_MS;
}

/** `YYYY-MM-DDTHH:MMZ` of the one-minute window holding `ms`. */
export function windowKey(ms: number): string {
  const start = windowStartMs(ms);
  if (start !== lastWindow.start) lastWindow = { start, key: new Date(start).toISOString().slice(0, 16) + 'Z' };
  return lastWindow.key;
}

/** Seconds until the end of the window holding `ms` (at least 1): a client's Retry-After. */
export function secondsToNextWindow(ms: number): number {
  return Math.max(1, Math.ceil((windowStartMs(ms) + WINDOW_MS - ms) / 1000));
}

/** Epoch seconds, rounded up: the unit of DynamoDB TTL attributes. */
export const epochSeconds = (ms: number) => Math.ceil(ms / 1000);
