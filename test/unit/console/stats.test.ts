import { chainText, cumulativeSpend, denialsByReason, lastUsedBySecret, percentile, ttftPercentiles, UsageRow } from '../../../console/src/stats';

const row = (i: number, over: Partial<UsageRow> = {}): UsageRow => ({
  requestId: `r${i}`,
  at: new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString(),
  tokenId: 'tk_a',
  model: 'gpt-4o-mini',
  provider: 'openai',
  secret: 'default',
  status: 200,
  decision: 'ok',
  outcome: 'ok',
  costUsd: 0.5,
  latencyMs: 100,
  timeToFirstTokenMs: 10 * (i + 1),
  fallbackChain: [],
  ...over,
});

test('nearest-rank percentiles', () => {
  const v = Array.from({ length: 100 }, (_, i) => i + 1);
  expect([percentile(v, 50), percentile(v, 90), percentile(v, 99), percentile(v, 100)]).toEqual([50, 90, 99, 100]);
  expect(percentile([7], 99)).toBe(7);
  expect(percentile([], 50)).toBeNull();
});

test('cumulative spend follows time, whatever the input order', () => {
  const [xs, ys] = cumulativeSpend([row(2), row(0, { costUsd: undefined }), row(1, { costUsd: 0.25 })]);
  expect(ys).toEqual([0, 0.25, 0.75]);
  expect(xs).toEqual([...xs].sort((a, b) => a - b));
});

test('TTFT percentiles per bucket skip records without a first token', () => {
  const rows = [...Array.from({ length: 10 }, (_, i) => row(i)), row(11, { timeToFirstTokenMs: undefined })];
  const [xs, p50, p90, p99] = ttftPercentiles(rows, 1);
  expect(xs).toHaveLength(1);
  expect([p50[0], p90[0], p99[0]]).toEqual([50, 90, 100]);
  expect(ttftPercentiles([row(0, { timeToFirstTokenMs: undefined })])).toEqual([[], [], [], []]);
});

test('denials by reason, most frequent first; last use per secret from successful requests only', () => {
  const rows = [
    row(0, { outcome: 'denied', denialReason: 'rate_limit_exceeded' }),
    row(1, { outcome: 'denied', denialReason: 'budget_exceeded' }),
    row(2, { outcome: 'denied', denialReason: 'budget_exceeded' }),
    row(3),
    row(4, { outcome: 'error', provider: 'anthropic' }),
  ];
  expect(denialsByReason(rows)).toEqual([
    { reason: 'budget_exceeded', count: 2 },
    { reason: 'rate_limit_exceeded', count: 1 },
  ]);
  const last = lastUsedBySecret(rows);
  expect(last.get('openai/default')).toBe(rows[3].at);
  expect(last.has('anthropic/default')).toBe(false);
  expect(chainText({ fallbackChain: [{ provider: 'openai', model: 'a', outcome: 'status', status: 429, latencyMs: 1 }, { provider: 'anthropic', model: 'b', outcome: 'ok', latencyMs: 2 }] })).toBe('openai/a 429 → anthropic/b ok');
});
