/**
 * Usage records on DynamoDB: one partition per tenant (`REQ#<tenant>`), sort key `<at>#<requestId>`,
 * so a period is one key range. Filters are DynamoDB filter expressions; `Limit` bounds the items
 * read per call (filters apply after it), so a page holds at most `limit` records and the cursor is
 * the last key evaluated.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { UsageRecord } from '../core/router/usage-record';
import type { UsageQuery, UsageRecordsPort } from '../core/usage/usage-query';

/** Query calls per page at most: a sparse filter returns a short page with a cursor rather than scan on. */
const MAX_CALLS_PER_PAGE = 8;

export function usagePartition(tenantId: string): string {
  return `REQ#${tenantId}`;
}

export class DynamoUsageRecords implements UsageRecordsPort {
  private readonly doc: DynamoDBDocumentClient;

  constructor(
    client: DynamoDBClient,
    private readonly table: string,
  ) {
    this.doc = DynamoDBDocumentClient.from(client);
  }

  async queryUsage(q: UsageQuery): Promise<{ records: UsageRecord[]; lastKey?: string }> {
    const filter = filterExpression(q);
    const records: UsageRecord[] = [];
    let start: Record<string, unknown> | undefined = q.after ? { pk: usagePartition(q.tenantId), sk: q.after } : undefined;
    for (let call = 0; call < MAX_CALLS_PER_PAGE && records.length < q.limit; call++) {
      const out = await this.doc.send(
        new QueryCommand({
          TableName: this.table,
          // '#' sorts before every character of a request id, and '~' after them: [from, to) in key order.
          KeyConditionExpression: 'pk = :pk AND sk BETWEEN :from AND :to',
          ...(filter.expression ? { FilterExpression: filter.expression } : {}),
          ...(Object.keys(filter.names).length ? { ExpressionAttributeNames: filter.names } : {}),
          ExpressionAttributeValues: { ':pk': usagePartition(q.tenantId), ':from': `${q.from}#`, ':to': `${q.to}#`, ...filter.values },
          Limit: q.limit - records.length,
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      for (const item of out.Items ?? []) records.push(toRecord(item));
      start = out.LastEvaluatedKey;
      if (!start) break;
    }
    return { records, ...(start ? { lastKey: String(start.sk) } : {}) };
  }
}

function filterExpression(q: UsageQuery): { expression?: string; names: Record<string, string>; values: Record<string, unknown> } {
  const parts: string[] = [];
  const names: Record<string, string> = {};
  const values: Record<string, unknown> = {};
  if (q.tokenId !== undefined) {
    parts.push('#tokenId = :tokenId');
    names['#tokenId'] = 'tokenId';
    values[':tokenId'] = q.tokenId;
  }
  if (q.model !== undefined) {
    parts.push('#model = :model');
    names['#model'] = 'model';
    values[':model'] = q.model;
  }
  if (q.outcome === 'ok') {
    parts.push('#decision = :ok');
    names['#decision'] = 'decision';
    values[':ok'] = 'ok';
  } else if (q.outcome === 'denied') {
    parts.push('begins_with(#decision, :denied)');
    names['#decision'] = 'decision';
    values[':denied'] = 'denied';
  } else if (q.outcome === 'error') {
    parts.push('#decision <> :ok AND NOT begins_with(#decision, :denied)');
    names['#decision'] = 'decision';
    values[':ok'] = 'ok';
    values[':denied'] = 'denied';
  }
  return { ...(parts.length ? { expression: parts.join(' AND ') } : {}), names, values };
}

/** Strips the table's own attributes: the record as the router wrote it. */
function toRecord(item: Record<string, unknown>): UsageRecord {
  const { pk: _pk, sk: _sk, expiresAt: _e, ...record } = item;
  return record as unknown as UsageRecord;
}
