/**
 * Where sealed cache entries live: a DynamoDB table with TTL in a cell, an SQLite table locally.
 * Adapters store and return opaque sealed bytes; keys and crypto stay in core (entry.ts).
 */
export interface StoredCacheEntry {
  /** Hex HMAC of the request under the tenant's lookup key: unguessable without it. */
  readonly key: string;
  readonly tenantId: string;
  /** Epoch seconds; the adapter never returns an entry at or past it (TTL deletion is lazy). */
  readonly expiresAt: number;
  /** Format version, IV, ciphertext and tag (entry.ts). */
  readonly sealed: Uint8Array;
}

export interface ResponseCacheStore {
  /** The entry under `key` if it exists and has not expired at `nowSeconds`. */
  get(key: string, nowSeconds: number): Promise<StoredCacheEntry | undefined>;
  /** Writes (or replaces) an entry. */
  put(entry: StoredCacheEntry): Promise<void>;
}
