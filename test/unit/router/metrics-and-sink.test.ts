import { METRICS_NAMESPACE, usageMetricLine } from '../../../lambda/core/router/metrics';
import { MemorySink } from '../../../lambda/core/router/response-sink';
import type { UsageRecord } from '../../../lambda/core/router/usage-record';

const base: UsageRecord = {
  requestId: 'r-1',
  tenantId: 'acme',
  tokenId: 'tk_1',
  route: 'chat',
  model: 'smart',
  stream: true,
  status: 200,
  decision: 'ok',
  latencyMs: 120,
  fallbackChain: [],
  at: '2025-01-02T03:04:05.000Z',
};

describe('usageMetricLine (embedded metric format)', () => {
  test('one JSON line with the CloudWatch directive and the values', () => {
    const line = usageMetricLine(
      {
        ...base,
        provider: 'anthropic',
        inputTokens: 10,
        outputTokens: 5,
        costUsd: 0.02,
        timeToFirstTokenMs: 40,
        fallbackChain: [
          { provider: 'openai', model: 'gpt-4o', outcome: 'status', status: 429, latencyMs: 5 },
          { provider: 'anthropic', model: 'claude', outcome: 'ok', latencyMs: 100 },
        ],
      },
      'eu-central-1',
    );
    expect(line).not.toContain('\n');
    const m = JSON.parse(line);
    expect(m._aws.Timestamp).toBe(Date.parse(base.at));
    expect(m._aws.CloudWatchMetrics[0].Namespace).toBe(METRICS_NAMESPACE);
    const names = m._aws.CloudWatchMetrics[0].Metrics.map((x: { Name: string }) => x.Name);
    for (const n of names) expect(m).toHaveProperty(n);
    for (const dims of m._aws.CloudWatchMetrics[0].Dimensions) for (const d of dims) expect(typeof m[d]).toBe('string');
    expect(m).toMatchObject({ Region: 'eu-central-1', Decision: 'ok', Provider: 'anthropic', Requests: 1, Latency: 120, TimeToFirstToken: 40, InputTokens: 10, OutputTokens: 5, Fallbacks: 1, CostUsd: 0.02 });
  });

  test('denials keep a low-cardinality Decision dimension and the full reason as a property', () => {
    const m = JSON.parse(usageMetricLine({ ...base, status: 429, decision: 'denied:rate_limited' }, 'eu-west-1'));
    expect(m).toMatchObject({ Decision: 'denied', reason: 'denied:rate_limited', Provider: 'none', InputTokens: 0, OutputTokens: 0, Fallbacks: 0, CostUsd: 0 });
  });

  test('carries ids and counts only: no model names from the client, no chain details', () => {
    const m = JSON.parse(usageMetricLine({ ...base, model: 'sk-looks-like-a-key-in-the-model-field' }, 'eu-west-1'));
    expect(JSON.stringify(m)).not.toContain('sk-looks-like');
  });
});

describe('MemorySink', () => {
  test('start once, write after start, records times', () => {
    let t = 10;
    const s = new MemorySink(() => t++);
    expect(() => s.write('x')).toThrow();
    s.start(200, { a: 'b' });
    expect(() => s.start(500, {})).toThrow('response already started');
    s.write('one');
    s.write('two');
    s.end();
    expect([s.status, s.body, s.times, s.ended]).toEqual([200, 'onetwo', [10, 11], true]);
  });
});
