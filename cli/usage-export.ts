/**
 * `sovereign-router usage export`: every page of GET /vault/usage for a period and filters, as
 * JSON (an array) or CSV (one row per request). CSV cells that a spreadsheet would run as a
 * formula are prefixed with a quote.
 */
import type { ApiClient } from './api-client';

export interface UsageExportRow {
  readonly [field: string]: unknown;
}

export const CSV_COLUMNS = [
  'at',
  'requestId',
  'tokenId',
  'route',
  'model',
  'provider',
  'secret',
  'upstreamModel',
  'stream',
  'status',
  'outcome',
  'denialReason',
  'inputTokens',
  'outputTokens',
  'costUsd',
  'latencyMs',
  'timeToFirstTokenMs',
  'fallbackChain',
] as const;

export interface UsageFilters {
  readonly from?: string;
  readonly to?: string;
  readonly tokenId?: string;
  readonly model?: string;
  readonly outcome?: string;
}

/** Reads every page of the query. */
export async function fetchAllUsage(client: ApiClient, f: UsageFilters, pageSize = 500): Promise<UsageExportRow[]> {
  const rows: UsageExportRow[] = [];
  let cursor: string | null = null;
  do {
    const q = new URLSearchParams();
    if (f.from) q.set('from', f.from);
    if (f.to) q.set('to', f.to);
    if (f.tokenId) q.set('token', f.tokenId);
    if (f.model) q.set('model', f.model);
    if (f.outcome) q.set('outcome', f.outcome);
    q.set('limit', String(pageSize));
    if (cursor) q.set('cursor', cursor);
    const page = (await client.call('GET', `/vault/usage?${q.toString()}`)) as { data: UsageExportRow[]; next_cursor: string | null };
    rows.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor);
  return rows;
}

function chainCell(chain: unknown): string {
  if (!Array.isArray(chain)) return '';
  return chain
    .map((s: { provider?: string; model?: string; outcome?: string; status?: number; latencyMs?: number }) =>
      `${s.provider}/${s.model}:${s.outcome}${s.status !== undefined ? `:${s.status}` : ''}:${s.latencyMs}ms`,
    )
    .join(' > ');
}

export function csvCell(value: unknown): string {
  if (value === undefined || value === null) return '';
  let s = String(value);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(rows: readonly UsageExportRow[]): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const r of rows) lines.push(CSV_COLUMNS.map((c) => csvCell(c === 'fallbackChain' ? chainCell(r[c]) : r[c])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}
