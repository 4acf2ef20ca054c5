/**
 * The tenant's usage records as a paginated query: a period, optional filters (token, model,
 * outcome) and an opaque cursor. Pure: the store adapters only map it onto their storage.
 */
import { z } from 'zod';
import { ApiError } from '../http';
import type { UsageRecord } from '../router/usage-record';
import { validate } from '../validation';

/** What a request came to, from the console's and the CLI's point of view. */
export type UsageOutcome = 'ok' | 'denied' | 'error';
export const USAGE_OUTCOMES: readonly UsageOutcome[] = ['ok', 'denied', 'error'];

export const USAGE_PAGE_DEFAULT = 100;
export const USAGE_PAGE_MAX = 500;
/** Longest period one query may span: a little over a year, the records' retention. */
export const USAGE_MAX_SPAN_MS = 400 * 24 * 3600 * 1000;

export interface UsageQuery {
  readonly tenantId: string;
  /** Inclusive ISO-8601 instant. */
  readonly from: string;
  /** Exclusive ISO-8601 instant. */
  readonly to: string;
  readonly tokenId?: string;
  readonly model?: string;
  readonly outcome?: UsageOutcome;
  readonly limit: number;
  /** Sort key of the last record of the previous page. */
  readonly after?: string;
}

export interface UsagePage {
  readonly records: readonly UsageRecord[];
  /** Present when more records may follow; pass it back as `cursor`. */
  readonly nextCursor?: string;
}

/** Read side of the usage records (append-only, one per request). */
export interface UsageRecordsPort {
  /** Records of one tenant in [from, to), oldest first, filtered, at most `limit`. */
  queryUsage(q: UsageQuery): Promise<{ records: UsageRecord[]; lastKey?: string }>;
}

/** Sort key of a usage record: time first, so a period is one key range. */
export function usageSortKey(r: Pick<UsageRecord, 'at' | 'requestId'>): string {
  return `${r.at}#${r.requestId}`;
}

export function outcomeOf(decision: string): UsageOutcome {
  if (decision === 'ok') return 'ok';
  if (decision.startsWith('denied')) return 'denied';
  return 'error';
}

/** Denial reason of a record (`denied:budget_exceeded` → `budget_exceeded`), if it was denied. */
export function denialReasonOf(decision: string): string | undefined {
  return decision.startsWith('denied:') ? decision.slice('denied:'.length) : undefined;
}

const SORT_KEY = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z#[A-Za-z0-9-]{1,64}$/;
const CURSOR_VERSION = 'u1';

export function encodeCursor(sortKey: string): string {
  return Buffer.from(`${CURSOR_VERSION}|${sortKey}`, 'utf8').toString('base64url');
}

/** The cursor holds only a sort key; the tenant always comes from the authenticated token. */
export function decodeCursor(cursor: string): string {
  const bad = () => new ApiError(400, 'invalid_cursor', 'The cursor is not one this API returned.');
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(cursor)) throw bad();
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const [version, sortKey, ...rest] = text.split('|');
  if (version !== CURSOR_VERSION || rest.length > 0 || !sortKey || !SORT_KEY.test(sortKey)) throw bad();
  return sortKey;
}

const instant = z
  .string()
  .max(40)
  .refine((s) => /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2})?)?$/.test(s) && !Number.isNaN(Date.parse(s)), 'expected an ISO-8601 date or instant');

const queryParams = z
  .object({
    from: instant.optional(),
    to: instant.optional(),
    token: z.string().regex(/^tk_[A-Za-z0-9_-]{1,64}$/, 'expected a token id (tk_...)').optional(),
    model: z.string().min(1).max(128).regex(/^[A-Za-z0-9._:/@-]+$/, 'model names hold letters, digits and . _ : / @ -').optional(),
    outcome: z.enum(USAGE_OUTCOMES as [UsageOutcome, ...UsageOutcome[]]).optional(),
    cursor: z.string().max(200).optional(),
    limit: z
      .string()
      .regex(/^\d{1,4}$/, 'expected a whole number')
      .transform(Number)
      .refine((n) => n >= 1 && n <= USAGE_PAGE_MAX, `between 1 and ${USAGE_PAGE_MAX}`)
      .optional(),
  })
  .strict();

/**
 * Query-string parameters to a query. Default period: the current calendar month (UTC) up to now.
 */
export function parseUsageQuery(tenantId: string, params: Readonly<Record<string, string | undefined>>, now: number): UsageQuery {
  const defined = Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined));
  // Unknown names are refused without being echoed (a misplaced token must not come back in an error).
  const known = Object.keys(queryParams.shape);
  if (Object.keys(defined).some((k) => !known.includes(k))) {
    throw new ApiError(400, 'invalid_request', `Invalid usage query: unknown parameter; accepted: ${known.join(', ')}.`);
  }
  const p = validate(queryParams, defined, 'usage query');
  const monthStart = new Date(now);
  const defaultFrom = Date.UTC(monthStart.getUTCFullYear(), monthStart.getUTCMonth(), 1);
  const from = p.from ? Date.parse(p.from) : defaultFrom;
  const to = p.to ? Date.parse(p.to) : now + 1;
  if (!(from < to)) throw new ApiError(400, 'invalid_period', "'from' must be before 'to'.");
  if (to - from > USAGE_MAX_SPAN_MS) throw new ApiError(400, 'invalid_period', 'A query may span at most 400 days.');
  const after = p.cursor !== undefined ? decodeCursor(p.cursor) : undefined;
  return {
    tenantId,
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
    ...(p.token ? { tokenId: p.token } : {}),
    ...(p.model ? { model: p.model } : {}),
    ...(p.outcome ? { outcome: p.outcome } : {}),
    limit: p.limit ?? USAGE_PAGE_DEFAULT,
    ...(after ? { after } : {}),
  };
}

/** Runs a query on a port and turns its last key into the cursor of the next page. */
export async function queryUsagePage(port: UsageRecordsPort, q: UsageQuery): Promise<UsagePage> {
  if (q.after !== undefined && !(q.after >= q.from)) throw new ApiError(400, 'invalid_cursor', 'The cursor lies outside the period.');
  const { records, lastKey } = await port.queryUsage(q);
  return { records, ...(lastKey ? { nextCursor: encodeCursor(lastKey) } : {}) };
}

/** Whether a record passes the query's filters (used by adapters that filter in memory). */
export function matchesUsageFilters(r: UsageRecord, q: Pick<UsageQuery, 'tokenId' | 'model' | 'outcome'>): boolean {
  if (q.tokenId !== undefined && r.tokenId !== q.tokenId) return false;
  if (q.model !== undefined && r.model !== q.model) return false;
  if (q.outcome !== undefined && outcomeOf(r.decision) !== q.outcome) return false;
  return true;
}

/** The public view of a record: exactly the stored fields, none added, none secret. */
export function usageRecordView(r: UsageRecord): UsageRecord & { outcome: UsageOutcome; denialReason?: string } {
  const reason = denialReasonOf(r.decision);
  return { ...r, outcome: outcomeOf(r.decision), ...(reason ? { denialReason: reason } : {}) };
}
