/**
 * Response-cache entries in the embedded database (the local twin of the DynamoDB cache table):
 * keyed by entry key, expired rows never returned and swept like DynamoDB's TTL (expiry.ts).
 */
import type { ResponseCacheStore, StoredCacheEntry } from '../../lambda/core/cache/port';
import type { EmbeddedDatabase } from './database';

export class EmbeddedResponseCache implements ResponseCacheStore {
  constructor(private readonly db: EmbeddedDatabase) {}

  async get(key: string, nowSeconds: number): Promise<StoredCacheEntry | undefined> {
    const row = this.db.one('SELECT tenant_id, expires_at, sealed FROM response_cache WHERE key = ? AND expires_at > ?', [key, nowSeconds]);
    if (!row || !(row.sealed instanceof Uint8Array)) return undefined;
    return { key, tenantId: String(row.tenant_id), expiresAt: Number(row.expires_at), sealed: Buffer.from(row.sealed) };
  }

  async put(entry: StoredCacheEntry): Promise<void> {
    // In the request's group commit (database.ts), like its usage record.
    this.db.deferredRun('INSERT OR REPLACE INTO response_cache(key, tenant_id, expires_at, sealed) VALUES (?, ?, ?, ?)', [entry.key, entry.tenantId, entry.expiresAt, entry.sealed]);
    await this.db.durable();
  }
}
