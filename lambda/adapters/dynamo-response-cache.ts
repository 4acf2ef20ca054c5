/**
 * Response-cache entries in the cell's cache table (DynamoDB, TTL on `expiresAt`): one item per
 * entry, `pk` = the entry key (an HMAC under the tenant's lookup key), the sealed bytes as a
 * binary attribute. DynamoDB deletes expired items lazily (up to days late), so a read never
 * returns an item at or past its expiry.
 */
import { DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import type { ResponseCacheStore, StoredCacheEntry } from '../core/cache/port';

export class DynamoResponseCache implements ResponseCacheStore {
  constructor(
    private readonly ddb: DynamoDBClient,
    private readonly table: string,
  ) {}

  async get(key: string, nowSeconds: number): Promise<StoredCacheEntry | undefined> {
    const out = await this.ddb.send(new GetItemCommand({ TableName: this.table, Key: { pk: { S: key } } }));
    const item = out.Item;
    if (!item) return undefined;
    const expiresAt = Number(item.expiresAt?.N);
    const tenantId = item.tenantId?.S;
    const sealed = item.sealed?.B;
    if (!Number.isSafeInteger(expiresAt) || expiresAt <= nowSeconds || tenantId === undefined || sealed === undefined) return undefined;
    return { key, tenantId, expiresAt, sealed };
  }

  async put(entry: StoredCacheEntry): Promise<void> {
    await this.ddb.send(
      new PutItemCommand({
        TableName: this.table,
        Item: { pk: { S: entry.key }, tenantId: { S: entry.tenantId }, expiresAt: { N: String(entry.expiresAt) }, sealed: { B: entry.sealed } },
      }),
    );
  }
}
