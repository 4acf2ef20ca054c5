import type { UsageRecord } from './usage-record';

export const METRICS_NAMESPACE = 'SovereignRouter';

/**
 * One CloudWatch embedded-metric-format line per request: CloudWatch turns it into metrics
 * without any API call from the function.
 */
export function usageMetricLine(r: UsageRecord, region: string): string {
  return JSON.stringify({
    _aws: {
      Timestamp: Date.parse(r.at),
      CloudWatchMetrics: [
        {
          Namespace: METRICS_NAMESPACE,
          Dimensions: [['Region'], ['Region', 'Decision'], ['Region', 'Provider']],
          Metrics: [
            { Name: 'Requests', Unit: 'Count' },
            { Name: 'Latency', Unit: 'Milliseconds' },
            { Name: 'TimeToFirstToken', Unit: 'Milliseconds' },
            { Name: 'InputTokens', Unit: 'Count' },
            { Name: 'OutputTokens', Unit: 'Count' },
            { Name: 'Fallbacks', Unit: 'Count' },
            { Name: 'CostUsd', Unit: 'None' },
          ],
        },
      ],
    },
    Region: region,
    Decision: r.decision.split(':')[0],
    Provider: r.provider ?? 'none',
    Requests: 1,
    Latency: r.latencyMs,
    TimeToFirstToken: r.timeToFirstTokenMs,
    InputTokens: r.inputTokens ?? 0,
    OutputTokens: r.outputTokens ?? 0,
    Fallbacks: Math.max(0, r.fallbackChain.length - 1),
    CostUsd: r.costUsd ?? 0,
    requestId: r.requestId,
    tenantId: r.tenantId,
    reason: r.decision,
  });
}
