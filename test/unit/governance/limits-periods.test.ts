import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { requestCounterKeys, reservationKey, spendKey, tokenCounterId, rateKey } from '../../../lambda/core/governance/keys';
import { effectiveLimits, effectiveTokenView, limitsProblems } from '../../../lambda/core/governance/limits';
import { epochSeconds, isMonthKey, monthEndMs, monthKey, secondsToNextWindow, windowKey, windowStartMs } from '../../../lambda/core/governance/periods';

describe('effective limits', () => {
  test('no limits anywhere', () => {
    expect(effectiveLimits({})).toEqual({ ipAllowlists: [], tenant: {}, token: {} });
  });

  test('the stricter wins: model lists intersect, the smaller max_tokens applies, both IP lists apply', () => {
    const e = effectiveLimits(
      { allowedModels: ['a', 'b', 'c'], maxTokens: 1000, ipAllowlist: ['10.0.0.0/8'] },
      { allowedModels: ['b', 'c', 'd'], maxTokens: 5000, ipAllowlist: ['10.1.0.0/16'] },
    );
    expect([...e.allowedModels!].sort()).toEqual(['b', 'c']);
    expect(e.maxTokens).toBe(1000);
    expect(e.ipAllowlists).toEqual([['10.0.0.0/8'], ['10.1.0.0/16']]);
    expect(effectiveLimits({ maxTokens: 1000 }, { maxTokens: 10 }).maxTokens).toBe(10);
  });

  test('one side only', () => {
    expect([...effectiveLimits({}, { allowedModels: ['x'] }).allowedModels!]).toEqual(['x']);
    expect([...effectiveLimits({ allowedModels: ['y'] }, {}).allowedModels!]).toEqual(['y']);
    expect(effectiveLimits({}, { maxTokens: 7 }).maxTokens).toBe(7);
    expect(effectiveLimits({ ipAllowlist: ['::/0'] }).ipAllowlists).toEqual([['::/0']]);
  });

  test('disjoint model lists allow nothing; an empty list allows nothing', () => {
    expect(effectiveLimits({ allowedModels: ['a'] }, { allowedModels: ['b'] }).allowedModels!.size).toBe(0);
    expect(effectiveLimits({ allowedModels: [] }).allowedModels!.size).toBe(0);
  });

  test('budgets and rates stay per scope, in micro-dollars', () => {
    const e = effectiveLimits({ monthlyBudgetUsd: 100, rpm: 60, tpm: 100_000 }, { monthlyBudgetUsd: 0.05, rpm: 600 });
    expect(e.tenant).toEqual({ budgetUsd: 100, budgetMicros: 100_000_000, rpm: 60, tpm: 100_000 });
    expect(e.token).toEqual({ budgetUsd: 0.05, budgetMicros: 50_000, rpm: 600 });
  });

  test('the admin view shows the stricter of each pair', () => {
    expect(
      effectiveTokenView({ monthlyBudgetUsd: 100, rpm: 60, allowedModels: ['a', 'b'], ipAllowlist: ['10.0.0.0/8'] }, { monthlyBudgetUsd: 5, rpm: 600, tpm: 10, allowedModels: ['b'] }),
    ).toEqual({ allowedModels: ['b'], monthlyBudgetUsd: 5, rpm: 60, tpm: 10, ipAllowlists: [['10.0.0.0/8']] });
    expect(effectiveTokenView({}, undefined)).toEqual({});
  });

  test('limitsProblems names CIDRs that do not parse', () => {
    expect(limitsProblems({ ipAllowlist: ['10.0.0.0/8'] })).toEqual([]);
    expect(limitsProblems({ ipAllowlist: ['300.0.0.1'] }, 'policy')).toEqual(['policy.ipAllowlist: not an IPv4/IPv6 address or CIDR block: 300.0.0.1']);
  });
});

describe('periods', () => {
  const t = Date.UTC(2025, 5, 30, 23, 59, 30, 500); // 2025-06-30T23:59:30.500Z
  test('month keys are UTC calendar months', () => {
    expect(monthKey(t)).toBe('2025-06');
    expect(monthKey(t + 30_000)).toBe('2025-07');
    expect(monthKey(Date.UTC(2025, 11, 31, 23, 59, 59))).toBe('2025-12');
    expect(isMonthKey('2025-06')).toBe(true);
    expect(isMonthKey('2025-13')).toBe(false);
    expect(isMonthKey('2025-6')).toBe(false);
  });
  test('month end, across a year boundary too', () => {
    expect(monthEndMs('2025-06')).toBe(Date.UTC(2025, 6, 1));
    expect(monthEndMs('2025-12')).toBe(Date.UTC(2026, 0, 1));
    expect(() => monthEndMs('nope')).toThrow();
  });
  test('fixed one-minute windows', () => {
    expect(windowKey(t)).toBe('2025-06-30T23:59Z');
    expect(windowStartMs(t)).toBe(Date.UTC(2025, 5, 30, 23, 59));
    expect(windowKey(t + 29_499)).toBe('2025-06-30T23:59Z');
    expect(windowKey(t + 29_500)).toBe('2025-07-01T00:00Z');
    expect(Date.parse(windowKey(t))).toBe(windowStartMs(t));
    expect(secondsToNextWindow(t)).toBe(30);
    expect(secondsToNextWindow(windowStartMs(t))).toBe(60);
    expect(epochSeconds(1001)).toBe(2);
  });
});

describe('keys', () => {
  const verifier = 'ab'.repeat(32);
  test('token counter ids are stable, short, and do not contain the verifier', () => {
    const id = tokenCounterId(verifier);
    expect(id).toMatch(/^k[0-9a-f]{32}$/);
    expect(tokenCounterId(verifier)).toBe(id);
    expect(tokenCounterId('cd'.repeat(32))).not.toBe(id);
    expect(id).not.toContain(verifier.slice(0, 16));
  });
  test('property: the kept last answer is always the digest of the verifier asked, whatever came before (the empty verifier too, never the tenant key)', () => {
    const digest = (v: string) => 'k' + createHash('sha256').update(`sovereign-router/governance-counter/v1\0${v}`).digest('hex').slice(0, 32);
    // A fresh module: the memo starts as it does in a new Lambda or gateway process.
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const fresh = require('../../../lambda/core/governance/keys') as typeof import('../../../lambda/core/governance/keys');
      expect(fresh.tokenCounterId('')).toBe(digest(''));
      expect(fresh.spendKey('acme', fresh.tokenCounterId(''), '2025-06')).not.toEqual(fresh.spendKey('acme', undefined, '2025-06'));
    });
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.constant(''), fc.constant(verifier), fc.string(), fc.string({ unit: 'binary' })), { maxLength: 8 }), (vs) => {
        for (const v of vs) expect(tokenCounterId(v)).toBe(digest(v));
      }),
    );
  });
  test('layout', () => {
    const now = Date.UTC(2025, 5, 12, 10, 31, 5);
    const k = requestCounterKeys('acme', verifier, now);
    const tk = tokenCounterId(verifier);
    expect(k).toEqual({
      tenantSpend: { pk: 'SPEND#acme', sk: '2025-06' },
      tokenSpend: { pk: `SPEND#acme#${tk}`, sk: '2025-06' },
      tenantRate: { pk: 'RATE#acme', sk: '2025-06-12T10:31Z' },
      tokenRate: { pk: `RATE#acme#${tk}`, sk: '2025-06-12T10:31Z' },
    });
    expect(spendKey('acme', undefined, '2025-01')).toEqual({ pk: 'SPEND#acme', sk: '2025-01' });
    expect(rateKey('acme', 'kx', 'w')).toEqual({ pk: 'RATE#acme#kx', sk: 'w' });
    expect(reservationKey('acme', 'r1')).toEqual({ pk: 'RESV#acme', sk: 'r1' });
  });
});

test('month and window keys stay exact when calls jump between periods (the last answer is kept with its bounds)', () => {
  const jan31End = Date.UTC(2026, 0, 31, 23, 59, 59, 999);
  const feb1 = Date.UTC(2026, 1, 1);
  for (const [ms, month, window] of [
    [jan31End, '2026-01', '2026-01-31T23:59Z'],
    [feb1, '2026-02', '2026-02-01T00:00Z'],
    [jan31End, '2026-01', '2026-01-31T23:59Z'],
    [feb1 + 59_999, '2026-02', '2026-02-01T00:00Z'],
    [feb1 + 60_000, '2026-02', '2026-02-01T00:01Z'],
    [Date.UTC(2025, 11, 31, 12), '2025-12', '2025-12-31T12:00Z'],
    [Date.UTC(2026, 11, 31, 23, 59), '2026-12', '2026-12-31T23:59Z'],
    [Date.UTC(2027, 0, 1), '2027-01', '2027-01-01T00:00Z'],
  ] as const) {
    expect([monthKey(ms), windowKey(ms)]).toEqual([month, window]);
  }
  expect(() => windowKey(NaN)).toThrow(RangeError);
});
