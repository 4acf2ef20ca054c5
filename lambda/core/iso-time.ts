/**
 * `new Date(ms).toISOString()` for the router's per-request timestamps (the usage record's `at`,
 * each key use's `at`), which V8 formats in C++ through its date cache: about half a microsecond
 * hot and several on a cold request path, twice per request. The date part is made once per UTC
 * day (one entry, keyed by the day number: a number, nothing secret) and the time of day is
 * written with arithmetic. Outside whole milliseconds of years 1970-9999 it is toISOString itself.
 */
const DAY_MS = 86_400_000;
/** 9999-12-31T23:59:59.999Z: beyond it toISOString writes a six-digit, signed year. */
const MAX_MS = 253_402_300_799_999;

let memoDay = Number.NaN;
let memoPrefix = '';

export function isoTime(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0 || ms > MAX_MS) return new Date(ms).toISOString();
  const day = Math.floor(ms / DAY_MS);
  if (day !== memoDay) {
    // 'YYYY-MM-DDT' of that day, from the formatter it stands in for.
    memoPrefix = new Date(day * DAY_MS).toISOString().slice(0, 11);
    memoDay = day;
  }
  let rest = ms - day * DAY_MS;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const s = Math.floor(rest / 1000);
  const milli = rest - s * 1000;
  return `${memoPrefix}${h < 10 ? '0' : ''}${h}:${m < 10 ? '0' : ''}${m}:${s < 10 ? '0' : ''}${s}.${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
}
