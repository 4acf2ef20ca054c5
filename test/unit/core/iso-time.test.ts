/**
 * isoTime stands in for `new Date(ms).toISOString()` on the router's per-request timestamps; it
 * must write exactly the same text for every input, including across day boundaries (its one-entry
 * day memo) and outside the range it formats itself.
 */
import fc from 'fast-check';
import { isoTime } from '../../../lambda/core/iso-time';

const MAX_MS = 253_402_300_799_999;

describe('isoTime', () => {
  it('is toISOString for any whole millisecond of years 1970-9999', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_MS }), (ms) => {
        expect(isoTime(ms)).toBe(new Date(ms).toISOString());
      }),
      { numRuns: 20_000 },
    );
  });

  it('is toISOString around day, month, year and leap-day boundaries, in any order (the day memo is never stale)', () => {
    const edges = [0, 86_399_999, 86_400_000, Date.UTC(2024, 1, 28, 23, 59, 59, 999), Date.UTC(2024, 1, 29), Date.UTC(2024, 2, 1), Date.UTC(2026, 11, 31, 23, 59, 59, 999), Date.UTC(2027, 0, 1), MAX_MS];
    const around = edges.flatMap((e) => [e - 1, e, e + 1]).filter((ms) => ms >= 0 && ms <= MAX_MS);
    for (const ms of [...around, ...around.reverse(), ...around]) expect(isoTime(ms)).toBe(new Date(ms).toISOString());
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...around), { minLength: 1, maxLength: 20 }), (xs) => {
        for (const ms of xs) expect(isoTime(ms)).toBe(new Date(ms).toISOString());
      }),
    );
  });

  it('outside its range (fractions, negatives, beyond 9999, non-finite) it is toISOString itself, a RangeError included', () => {
    for (const ms of [1.5, -1, -86_400_001, MAX_MS + 1, 8.64e15]) expect(isoTime(ms)).toBe(new Date(ms).toISOString());
    for (const ms of [Number.NaN, Number.POSITIVE_INFINITY, 8.64e15 + 1]) expect(() => isoTime(ms)).toThrow(RangeError);
  });
});
