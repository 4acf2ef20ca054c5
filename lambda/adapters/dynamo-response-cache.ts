/**
 * Response-cache entries in the cell's cache table (DynamoDB, TTL on `expiresAt`): one item per
 * entry, `pk` = the entry key (an HMAC under the tenant's lookup key), the sealed bytes as a
 * binary attribute. DynamoDB deletes expired items lazily (up to days late), so a read never
 * returns an item at or past its expiry.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { AwsRpc } from './aws-rpc';
import { LeanDynamo } from './dynamo-lean';
import type { ResponseCacheStore, StoredCacheEntry } from '../core/cache/port';

export class DynamoResponseCache implements ResponseCacheStore {
  private readonly doc: LeanDynamo;

  constructor(
    client: AwsRpc | DynamoDBClient,
    private readonly table: string,
  ) {
    this.doc = new LeanDynamo(client);
  }

  async get(key: string, nowSeconds: number): Promise<StoredCacheEntry | undefined> {
    const item = await this.doc.get({ TableName: this.table, Key: { pk: key } });
    if (!item) return undefined;
    const { expiresAt, tenantId, sealed } = item;
    if (typeof expiresAt !== 'number' || !Number.isSafeInteger(expiresAt) || expiresAt <= nowSeconds || typeof tenantId !== 'string' || !(sealed instanceof Uint8Array)) return undefined;
    return { key, tenantId, expiresAt, sealed };
  }

  async put(entry: StoredCacheEntry): Promise<void> {
    await this.doc.put({ TableName: this.table, Item: { pk: entry.key, tenantId: entry.tenantId, expiresAt: entry.expiresAt, sealed: entry.sealed } });
  }
}
