/** Pure aggregations behind the charts (tested without a browser). */
export interface UsageRow {
  readonly requestId: string;
  readonly at: string;
  readonly tokenId: string;
  readonly model: string;
  readonly provider?: string;
  readonly secret?: string;
  readonly upstreamModel?: string;
  readonly status: number;
  readonly decision: string;
  readonly outcome: 'ok' | 'denied' | 'error';
  readonly denialReason?: string;
  readonly inputTokens?: number;
  readonly outputTokens?: number;
  readonly costUsd?: number;
  readonly latencyMs: number;
  readonly timeToFirstTokenMs?: number;
  readonly fallbackChain: readonly { provider: string; model: string; outcome: string; status?: number; latencyMs: number }[];
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Cumulative recorded spend over time (seconds since epoch, USD). */
export function cumulativeSpend(rows: readonly UsageRow[]): [number[], number[]] {
  const xs: number[] = [];
  const ys: number[] = [];
  let total = 0;
  for (const r of [...rows].sort((a, b) => a.at.localeCompare(b.at))) {
    total += r.costUsd ?? 0;
    xs.push(Date.parse(r.at) / 1000);
    ys.push(Math.round(total * 1e6) / 1e6);
  }
  return [xs, ys];
}

/** TTFT p50/p90/p99 per time bucket (about `buckets` of them over the rows' span). */
export function ttftPercentiles(rows: readonly UsageRow[], buckets = 24): [number[], (number | null)[], (number | null)[], (number | null)[]] {
  const timed = rows.filter((r) => typeof r.timeToFirstTokenMs === 'number');
  if (timed.length === 0) return [[], [], [], []];
  const times = timed.map((r) => Date.parse(r.at));
  const start = Math.min(...times);
  const end = Math.max(...times);
  const width = Math.max(1000, Math.ceil((end - start + 1) / buckets));
  const groups = new Map<number, number[]>();
  timed.forEach((r, i) => {
    const b = start + Math.floor((times[i] - start) / width) * width;
    const g = groups.get(b) ?? [];
    g.push(r.timeToFirstTokenMs as number);
    groups.set(b, g);
  });
  const keys = [...groups.keys()].sort((a, b) => a - b);
  const out: [number[], (number | null)[], (number | null)[], (number | null)[]] = [[], [], [], []];
  for (const k of keys) {
    const v = groups.get(k)!.sort((a, b) => a - b);
    out[0].push(k / 1000);
    out[1].push(percentile(v, 50));
    out[2].push(percentile(v, 90));
    out[3].push(percentile(v, 99));
  }
  return out;
}

/** Denied requests counted by reason, most frequent first. */
export function denialsByReason(rows: readonly UsageRow[]): { reason: string; count: number }[] {
  const counts = new Map<string, number>();
  for (const r of rows) if (r.outcome === 'denied') counts.set(r.denialReason ?? 'unknown', (counts.get(r.denialReason ?? 'unknown') ?? 0) + 1);
  return [...counts.entries()].map(([reason, count]) => ({ reason, count })).sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));
}

/** Last successful use of each (provider, secret) among the rows. */
export function lastUsedBySecret(rows: readonly UsageRow[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of rows) {
    if (r.outcome !== 'ok' || !r.provider) continue;
    const key = `${r.provider}/${r.secret ?? 'default'}`;
    const prev = out.get(key);
    if (!prev || r.at > prev) out.set(key, r.at);
  }
  return out;
}

/** The fallback chain as one line: `openai/gpt-4o 429 → anthropic/claude ok`. */
export function chainText(r: Pick<UsageRow, 'fallbackChain'>): string {
  return r.fallbackChain.map((s) => `${s.provider}/${s.model} ${s.outcome === 'ok' ? 'ok' : (s.status ?? s.outcome)}`).join(' → ');
}
