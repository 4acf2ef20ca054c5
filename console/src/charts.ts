/** The timeline's three charts on uPlot (canvas; styles set through the CSSOM, allowed by the CSP). */
import uPlot from 'uplot';
import { denialsByReason, cumulativeSpend, ttftPercentiles, UsageRow } from './stats';
import { clear, h } from './dom';

const charts: uPlot[] = [];

function widthOf(el: HTMLElement): number {
  return Math.max(260, Math.floor(el.clientWidth || 600) - 8);
}

function mount(host: HTMLElement, title: string, opts: Omit<uPlot.Options, 'width' | 'height' | 'title'>, data: uPlot.AlignedData, empty: string): void {
  clear(host);
  host.appendChild(h('h3', {}, title));
  if (data[0].length === 0) {
    host.appendChild(h('p', { class: 'empty' }, empty));
    return;
  }
  const box = h('div', { class: 'chart' });
  host.appendChild(box);
  charts.push(new uPlot({ ...opts, width: widthOf(host), height: 220 }, data, box));
}

export function destroyCharts(): void {
  while (charts.length) charts.pop()!.destroy();
}

export function resizeCharts(): void {
  for (const c of charts) {
    const host = c.root.parentElement?.parentElement;
    if (host) c.setSize({ width: widthOf(host), height: 220 });
  }
}

/** The time scale of a chart, fixed from its data: a short span gets a minute of margin each side. */
function timeScale(xs: readonly number[]): uPlot.Scale {
  if (xs.length === 0) return { time: true };
  const min = Math.min(...xs);
  const max = Math.max(...xs);
  return { time: true, auto: false, range: max - min < 120 ? [min - 60, max + 60] : [min, max] };
}

export function renderCharts(hosts: { spend: HTMLElement; ttft: HTMLElement; denials: HTMLElement }, rows: readonly UsageRow[], budgetUsd: number | undefined): void {
  destroyCharts();
  const [xs, spend] = cumulativeSpend(rows);
  const spendSeries: uPlot.Series[] = [{}, { label: 'spend (USD)', stroke: '#1f6feb', width: 2, value: (_u, v) => (v === null ? '–' : `$${v.toFixed(4)}`) }];
  const spendData: uPlot.AlignedData = [xs, spend];
  const total = spend.length ? spend[spend.length - 1] : 0;
  // A budget far above the spend would flatten the spend line to zero: then it is stated, not drawn.
  const drawBudget = budgetUsd !== undefined && budgetUsd <= Math.max(total, 1e-9) * 20;
  if (budgetUsd !== undefined && drawBudget) {
    spendSeries.push({ label: 'monthly budget', stroke: '#cf222e', width: 2, dash: [6, 4], value: (_u, v) => (v === null ? '–' : `$${v.toFixed(2)}`) });
    (spendData as unknown as (number | null)[][]).push(xs.map(() => budgetUsd));
  }
  const title =
    budgetUsd === undefined
      ? 'Spend (no monthly budget set)'
      : `Spend against the monthly budget: $${total.toFixed(6)} of $${budgetUsd.toFixed(2)} (${((total / Math.max(budgetUsd, 1e-12)) * 100).toPrecision(2)}%)${drawBudget ? '' : ', budget line off scale'}`;
  mount(hosts.spend, title, { scales: { x: timeScale(xs) }, series: spendSeries, axes: [{}, { size: 80, values: (_u, v) => v.map((n) => `$${n}`) }] }, spendData, 'No requests in this period.');

  const ttft = ttftPercentiles(rows);
  mount(
    hosts.ttft,
    'Time to first token (percentiles)',
    {
      series: [
        {},
        { label: 'p50', stroke: '#1a7f37', width: 2, value: (_u, v) => (v === null ? '–' : `${v} ms`) },
        { label: 'p90', stroke: '#9a6700', width: 2, value: (_u, v) => (v === null ? '–' : `${v} ms`) },
        { label: 'p99', stroke: '#cf222e', width: 2, value: (_u, v) => (v === null ? '–' : `${v} ms`) },
      ],
      scales: { x: timeScale(ttft[0]) },
      axes: [{}, { size: 75, values: (_u, v) => v.map((n) => `${n} ms`) }],
    },
    ttft as unknown as uPlot.AlignedData,
    'No streamed answers with a first token in this period.',
  );

  const denials = denialsByReason(rows);
  const bars = uPlot.paths.bars!({ size: [0.6, 80] });
  mount(
    hosts.denials,
    'Denials by reason',
    {
      scales: { x: { time: false, range: [-0.5, Math.max(0.5, denials.length - 0.5)] }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
      series: [{ label: 'reason', value: (_u, v) => (v === null ? '–' : (denials[v]?.reason ?? '')) }, { label: 'denied requests', fill: '#cf222e99', stroke: '#cf222e', paths: bars, points: { show: false } }],
      axes: [{ splits: () => denials.map((_d, i) => i), values: (_u, splits) => splits.map((i) => denials[i]?.reason ?? '') }, { size: 40 }],
    },
    [denials.map((_d, i) => i), denials.map((d) => d.count)],
    'No denials in this period.',
  );
}
