/**
 * The usage records' read side on the embedded database: one tenant's records in sort-key order
 * (`<at>#<requestId>`, the DynamoDB sort key) on the clustered (tenant_id, sk) key, filtered in memory
 * with the core's own predicate. Like the DynamoDB adapter, a page reads a bounded number of rows:
 * a sparse filter returns a short page with a cursor instead of scanning on.
 */
import type { UsageRecord } from '../../lambda/core/router/usage-record';
import { matchesUsageFilters, UsageQuery, UsageRecordsPort } from '../../lambda/core/usage/usage-query';
import type { EmbeddedDatabase } from './database';
import { parseJson } from './rows';

const BATCH = 200;
const MAX_BATCHES_PER_PAGE = 8;

export class EmbeddedUsageRecords implements UsageRecordsPort {
  constructor(private readonly db: EmbeddedDatabase) {}

  async queryUsage(q: UsageQuery): Promise<{ records: UsageRecord[]; lastKey?: string }> {
    // [from, to) in key order: '#' sorts before every character of a request id.
    const upper = `${q.to}#`;
    const records: UsageRecord[] = [];
    let last = q.after;
    for (let batch = 0; batch < MAX_BATCHES_PER_PAGE; batch++) {
      const rows =
        last === undefined
          ? this.db.all('SELECT sk, body FROM usage WHERE tenant_id = ? AND sk >= ? AND sk <= ? ORDER BY sk LIMIT ?', [q.tenantId, `${q.from}#`, upper, BATCH])
          : this.db.all('SELECT sk, body FROM usage WHERE tenant_id = ? AND sk > ? AND sk <= ? ORDER BY sk LIMIT ?', [q.tenantId, last, upper, BATCH]);
      for (const row of rows) {
        last = String(row.sk);
        const record = parseJson<UsageRecord>(row.body)!;
        if (matchesUsageFilters(record, q)) records.push(record);
        if (records.length >= q.limit) return { records, ...(this.more(q.tenantId, last, upper) ? { lastKey: last } : {}) };
      }
      if (rows.length < BATCH) return { records };
    }
    return { records, ...(last !== undefined ? { lastKey: last } : {}) };
  }

  private more(tenantId: string, after: string, upper: string): boolean {
    return this.db.one('SELECT 1 AS x FROM usage WHERE tenant_id = ? AND sk > ? AND sk <= ? LIMIT 1', [tenantId, after, upper]) !== undefined;
  }
}
