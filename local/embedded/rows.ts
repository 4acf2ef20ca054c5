/** Row decoding shared by the embedded adapters. */
import { COUNTER_FIELDS } from '../../lambda/core/governance/ledger';
import type { Row } from './database';

/** A JSON column; undefined for a missing row. A corrupt body is an error naming no content. */
export function parseJson<T>(body: unknown): T | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body !== 'string') throw new Error('embedded store: a stored record is not text');
  try {
    return JSON.parse(body) as T;
  } catch {
    throw new Error('embedded store: a stored record is not valid JSON');
  }
}

/** A counters row as governance reads it (the same fields a DynamoDB item has). */
export function counterItemOf(row: Row): Record<string, unknown> {
  const item: Record<string, unknown> = { pk: row.pk, sk: row.sk };
  for (const f of COUNTER_FIELDS) if (row[f] !== null && row[f] !== undefined) item[f] = Number(row[f]);
  if (row.expires_at !== null && row.expires_at !== undefined) item.expiresAt = Number(row.expires_at);
  if (typeof row.token_id === 'string') item.tokenId = row.token_id;
  return item;
}

/** One SELECT of `n` counters rows by (pk, sk): a primary-key search per key, one statement. */
export const countersByKeySql = (() => {
  const bySize = new Map<number, string>();
  return (n: number): string => {
    let sql = bySize.get(n);
    if (!sql) {
      sql = `SELECT * FROM counters WHERE (pk, sk) IN (VALUES ${Array.from({ length: n }, () => '(?, ?)').join(', ')})`;
      bySize.set(n, sql);
    }
    return sql;
  };
})();
