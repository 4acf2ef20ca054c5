import fc from 'fast-check';
import { backoffDelay, parseRetryAfter, parseRetryAfterMs, retryDelay } from '../../../lambda/core/routing/backoff';

const NOW = Date.parse('2025-01-01T00:00:00Z');

describe('backoffDelay (full jitter)', () => {
  it('spans [0, min(cap, base * 2^(attempt-1))]', () => {
    const opts = { baseMs: 100, capMs: 1000 };
    expect(backoffDelay(1, { ...opts, random: () => 0 })).toBe(0);
    expect(backoffDelay(1, { ...opts, random: () => 0.999 })).toBe(99);
    expect(backoffDelay(2, { ...opts, random: () => 0.5 })).toBe(100);
    expect(backoffDelay(3, { ...opts, random: () => 0.5 })).toBe(200);
    expect(backoffDelay(5, { ...opts, random: () => 0.5 })).toBe(500); // 1600 capped to 1000
    expect(backoffDelay(5000, { ...opts, random: () => 0.5 })).toBe(500);
  });

  it('stays within bounds for any attempt and any random value', () => {
    fc.assert(
      fc.property(fc.integer({ min: -5, max: 2000 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 0, max: 60_000 }), (attempt, r, baseMs, capMs) => {
        const d = backoffDelay(attempt, { baseMs, capMs, random: () => r });
        const ceiling = Math.min(capMs, baseMs * 2 ** (Math.max(attempt, 1) - 1));
        expect(Number.isInteger(d)).toBe(true);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThanOrEqual(ceiling);
      }),
    );
  });

  it('a bad random source cannot produce a bad delay', () => {
    for (const r of [NaN, -1, 2, Infinity]) {
      const d = backoffDelay(3, { baseMs: 100, capMs: 1000, random: () => r });
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(400);
    }
    expect(backoffDelay(NaN, { baseMs: 100, capMs: 1000, random: () => 0.5 })).toBe(50);
  });
});

describe('retryDelay', () => {
  const base = { baseMs: 100, capMs: 1000, random: () => 0.5 };
  it('uses the backoff without a Retry-After', () => {
    expect(retryDelay(2, { ...base, remainingMs: 10_000 })).toBe(100);
  });
  it('honours a longer Retry-After', () => {
    expect(retryDelay(2, { ...base, retryAfterMs: 3000, remainingMs: 10_000 })).toBe(3000);
    expect(retryDelay(2, { ...base, retryAfterMs: 10, remainingMs: 10_000 })).toBe(100);
  });
  it('never waits past the deadline', () => {
    expect(retryDelay(2, { ...base, retryAfterMs: 30_000, remainingMs: 1500 })).toBe(1500);
    expect(retryDelay(2, { ...base, remainingMs: 40 })).toBe(40);
    expect(retryDelay(2, { ...base, remainingMs: -5 })).toBe(0);
  });
});

describe('parseRetryAfter', () => {
  it('reads delay-seconds', () => {
    expect(parseRetryAfter('1', NOW)).toBe(1000);
    expect(parseRetryAfter(' 20 ', NOW)).toBe(20_000);
    expect(parseRetryAfter('0', NOW)).toBe(0);
    expect(parseRetryAfter('1.5', NOW)).toBe(1500);
  });
  it('reads an HTTP date relative to now; a past date is 0', () => {
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:30 GMT', NOW)).toBe(30_000);
    expect(parseRetryAfter('Tue, 31 Dec 2024 23:59:00 GMT', NOW)).toBe(0);
  });
  it('caps absurd values at one day', () => {
    expect(parseRetryAfter('99999999999', NOW)).toBe(86_400_000);
  });
  it.each([null, undefined, '', 'soon', '-1', '1e3', 'x'.repeat(100)])('ignores %j', (v) => {
    expect(parseRetryAfter(v, NOW)).toBeUndefined();
  });
  it('parses retry-after-ms', () => {
    expect(parseRetryAfterMs('250')).toBe(250);
    expect(parseRetryAfterMs('12.3')).toBe(13);
    expect(parseRetryAfterMs('abc')).toBeUndefined();
    expect(parseRetryAfterMs(null)).toBeUndefined();
  });
});
