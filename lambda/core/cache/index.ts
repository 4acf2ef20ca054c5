export { beginCache, replayChunks, CACHE_HEADER, CACHE_BYPASS, MAX_CACHED_BYTES } from './stage';
export type { CacheState, CacheStatus, CacheDeps } from './stage';
export type { ResponseCacheStore, StoredCacheEntry } from './port';
export { cachePolicySchema, cacheTtlFor } from './policy';
export type { CachePolicy } from './policy';
