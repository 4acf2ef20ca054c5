/** Timeline view: filters, summary, charts and the per-request table over a chosen period. */
import type { Api } from './api';
import { renderCharts } from './charts';
import { byId, clear, h, ms, table, usd, when } from './dom';
import { chainText, percentile, UsageRow } from './stats';

interface UsagePage {
  readonly data: UsageRow[];
  readonly next_cursor: string | null;
}

/** Pages the console loads for one view at most (500 records each). */
const MAX_PAGES = 10;

export interface TimelineState {
  rows: UsageRow[];
  truncated: boolean;
}

export function monthStartIso(now = new Date()): string {
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)).toISOString().slice(0, 10);
}

/** Reads every page of the query (up to MAX_PAGES). */
export async function loadUsage(api: Api, params: URLSearchParams): Promise<TimelineState> {
  const rows: UsageRow[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < MAX_PAGES; page++) {
    const q = new URLSearchParams(params);
    q.set('limit', '500');
    if (cursor) q.set('cursor', cursor);
    const res: UsagePage = await api.call<UsagePage>('GET', `vault/usage?${q.toString()}`);
    rows.push(...res.data);
    cursor = res.next_cursor;
    if (!cursor) return { rows, truncated: false };
  }
  return { rows, truncated: true };
}

export function filterParams(): URLSearchParams {
  const q = new URLSearchParams();
  const from = byId<HTMLInputElement>('f-from').value;
  const to = byId<HTMLInputElement>('f-to').value;
  if (from) q.set('from', from);
  if (to) q.set('to', new Date(Date.parse(to) + 86_400_000).toISOString().slice(0, 10)); // the whole 'to' day
  for (const [id, name] of [
    ['f-token', 'token'],
    ['f-model', 'model'],
    ['f-outcome', 'outcome'],
  ] as const) {
    const v = byId<HTMLInputElement | HTMLSelectElement>(id).value.trim();
    if (v) q.set(name, v);
  }
  return q;
}

export function renderTimeline(state: TimelineState, budgetUsd: number | undefined): void {
  const rows = state.rows;
  const ttfts = rows.map((r) => r.timeToFirstTokenMs).filter((v): v is number => typeof v === 'number').sort((a, b) => a - b);
  const spend = rows.reduce((s, r) => s + (r.costUsd ?? 0), 0);
  const denied = rows.filter((r) => r.outcome === 'denied').length;
  const summary = byId('summary');
  clear(summary);
  const card = (label: string, value: string, id: string) => h('div', { class: 'card', 'data-metric': id }, h('span', { class: 'label' }, label), h('strong', {}, value));
  summary.append(
    card('Requests', String(rows.length), 'requests'),
    card('Spend', usd(spend), 'spend'),
    card('Monthly budget', budgetUsd === undefined ? 'none' : usd(budgetUsd), 'budget'),
    card('TTFT p50 / p95', ttfts.length ? `${percentile(ttfts, 50)} / ${percentile(ttfts, 95)} ms` : '–', 'ttft'),
    card('Fell back', String(rows.filter((r) => r.fallbackChain.length > 1).length), 'fallbacks'),
    card('Denied', String(denied), 'denied'),
    card('Errors', String(rows.filter((r) => r.outcome === 'error').length), 'errors'),
  );
  const note = byId('timeline-note');
  note.textContent = state.truncated ? `Showing the first ${rows.length} records of the period; narrow the period or filters to see the rest.` : '';
  renderCharts({ spend: byId('chart-spend'), ttft: byId('chart-ttft'), denials: byId('chart-denials') }, rows, budgetUsd);

  const list = byId('requests');
  clear(list);
  const newest = [...rows].sort((a, b) => b.at.localeCompare(a.at));
  list.appendChild(
    table(
      ['Time (UTC)', 'Token', 'Model', 'Provider', 'Outcome', 'Status', 'Tokens in/out', 'Cost', 'Latency', 'TTFT', 'Fallback chain', 'Denial reason'],
      newest.map((r) => [
        when(r.at),
        r.tokenId,
        r.model,
        r.provider ? `${r.provider}${r.upstreamModel && r.upstreamModel !== r.model ? ` (${r.upstreamModel})` : ''}` : '–',
        h('span', { class: `badge ${r.outcome}` }, r.outcome),
        String(r.status),
        r.inputTokens === undefined ? '–' : `${r.inputTokens} / ${r.outputTokens ?? 0}`,
        usd(r.costUsd),
        ms(r.latencyMs),
        ms(r.timeToFirstTokenMs),
        chainText(r) || '–',
        r.denialReason ?? '',
      ]),
      'grid requests',
    ),
  );
}
