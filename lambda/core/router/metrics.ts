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
          Dimensions: [['Region'], ['Region', 'Decision'], ['Region', 'Provider'], ['Region', 'Guardrail'], ['Region', 'Cache']],
          Metrics: [
            { Name: 'Requests', Unit: 'Count' },
            { Name: 'Latency', Unit: 'Milliseconds' },
            { Name: 'TimeToFirstToken', Unit: 'Milliseconds' },
            { Name: 'InputTokens', Unit: 'Count' },
            { Name: 'OutputTokens', Unit: 'Count' },
            { Name: 'Fallbacks', Unit: 'Count' },
            { Name: 'CostUsd', Unit: 'None' },
            { Name: 'GuardrailRedactions', Unit: 'Count' },
            { Name: 'GuardrailRefusals', Unit: 'Count' },
            { Name: 'CacheHits', Unit: 'Count' },
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
    // 'none' when the request had no guardrails; rule names only, never matched text.
    Guardrail: r.guardrails?.action ?? 'none',
    GuardrailRedactions: r.guardrails?.action === 'redacted' ? 1 : 0,
    GuardrailRefusals: r.guardrails?.action === 'refused' ? 1 : 0,
    // 'off' when the route is not cached.
    Cache: r.cache ?? 'off',
    CacheHits: r.cache === 'hit' ? 1 : 0,
    ...(r.guardrails && r.guardrails.rules.length > 0 ? { guardrailRules: r.guardrails.rules.join(',') } : {}),
    requestId: r.requestId,
    tenantId: r.tenantId,
    reason: r.decision,
  });
}
