/**
 * The router's cache stage. Before the reservation and the KMS call: derive the tenant's keys,
 * compute the entry key from the canonical request, and look the entry up. A hit is replayed as
 * the client got it the first time (JSON body or the complete event stream) with no KMS call,
 * no provider call and no spend. On a miss, what the client receives is captured and, after its
 * last byte, sealed and stored with the tenant's TTL. The cache never fails a request: a store
 * that errs, or an entry that does not open, is a miss.
 */
import { canonicalEncode } from '../canonical';
import { errorFields, Logger } from '../logger';
import type { PepperSource } from '../ports';
import type { ClientRequest } from '../router/client-request';
import type { Target } from '../routing/types';
import type { TenantRecord } from '../tenant-model';
import { canonicalJson } from './canonical-json';
import { CachedResponse, openCacheEntry, sealCacheEntry } from './entry';
import { cacheEntryKey, deriveTenantCacheKeys, zeroizeCacheKeys } from './keys';
import { cacheTtlFor } from './policy';
import type { ResponseCacheStore } from './port';

/** The response header that says what the cache did. */
export const CACHE_HEADER = 'x-sovereign-cache';
/** A client that must not get (or leave) a cached answer sends `x-sovereign-cache: bypass`. */
export const CACHE_BYPASS = 'bypass';
/** Answers larger than this (as sent to the client) are not cached. */
export const MAX_CACHED_BYTES = 256 * 1024;
/** DynamoDB items hold 400 KB; the sealed entry must fit with its attributes. */
const MAX_SEALED_BYTES = 380 * 1024;
const REQUEST_DOMAIN = 'sovereign-router/response-cache/request/v1';

export type CacheStatus = 'hit' | 'miss' | 'bypass';

export interface CacheDeps {
  readonly store: ResponseCacheStore;
  readonly pepper: PepperSource;
  readonly region: string;
  readonly log: Logger;
  readonly now: () => number;
}

export interface CacheState {
  readonly status: CacheStatus;
  /** Set on a hit: what to replay. */
  readonly hit?: CachedResponse;
  /** A miss collects what the client receives (bounded). */
  capture(chunk: string): void;
  /**
   * After the client's last byte: seal and store a complete answer (`answered`), or drop what was
   * captured (undefined: the request did not end in a complete 200). Zeroes the seal key. Never throws.
   */
  complete(answered?: { provider?: string; upstreamModel?: string }): Promise<void>;
}

/** The canonical form of a request as the cache keys it: everything that shapes the answer. */
export function canonicalCacheRequest(o: { region: string; tenantId: string; client: ClientRequest; targets: readonly Target[]; anthropicVersion?: string }): Buffer {
  const targets = o.targets.map((t) => `${t.provider}\u0000${t.model}\u0000${t.secret}`).sort();
  return canonicalEncode(REQUEST_DOMAIN, [
    ['region', o.region],
    ['tenant', o.tenantId],
    ['api', o.client.route],
    ['model', o.client.model],
    ['targets', canonicalJson(targets)],
    ['maxTokens', o.client.maxTokens === undefined ? '' : String(o.client.maxTokens)],
    ['anthropicVersion', o.anthropicVersion ?? ''],
    ['body', canonicalJson(o.client.body)],
  ]);
}

/**
 * The cache state for this request, or undefined when the tenant has not opted this route in.
 * `factor` is a sovereign tenant's factor and `erasureKey` the tenant's erasure key (both mixed into its keys).
 */
export async function beginCache(
  deps: CacheDeps,
  o: { tenant: TenantRecord; client: ClientRequest; targets: readonly Target[]; headers: Readonly<Record<string, string | undefined>>; factor?: Buffer; erasureKey?: Buffer; requestId: string },
): Promise<CacheState | undefined> {
  const ttl = cacheTtlFor(o.tenant.policy.cache, o.client.route, o.client.model);
  if (ttl === undefined) return undefined;
  if (o.headers[CACHE_HEADER]?.trim().toLowerCase() === CACHE_BYPASS) return { status: 'bypass', capture: () => undefined, complete: async () => undefined };

  const tenantId = o.tenant.tenantId;
  const keys = deriveTenantCacheKeys(await deps.pepper.getPepper(), deps.region, tenantId, o.factor, o.erasureKey);
  // The seal key outlives this function on a miss (until save); the lookup key does not.
  let key: string;
  try {
    key = cacheEntryKey(keys.lookup, canonicalCacheRequest({ region: deps.region, tenantId, client: o.client, targets: o.targets, anthropicVersion: o.headers['anthropic-version'] }));
  } catch (err) {
    zeroizeCacheKeys(keys);
    throw err;
  }
  keys.lookup.fill(0);
  const nowSeconds = Math.floor(deps.now() / 1000);

  let hit: CachedResponse | undefined;
  try {
    const stored = await deps.store.get(key, nowSeconds);
    if (stored && stored.tenantId === tenantId && stored.expiresAt > nowSeconds) {
      hit = openCacheEntry(keys.seal, { region: deps.region, tenantId, key, expiresAt: stored.expiresAt }, stored.sealed);
      if (!hit) deps.log.warn('cache entry refused: it does not open under this tenant and request', { requestId: o.requestId, tenantId });
    } else if (stored) {
      deps.log.warn('cache entry refused: tenant or expiry does not match', { requestId: o.requestId, tenantId });
    }
  } catch (err) {
    deps.log.error('cache lookup failed; answering as a miss', { requestId: o.requestId, tenantId, ...errorFields(err) });
  }
  if (hit) {
    keys.seal.fill(0);
    return { status: 'hit', hit, capture: () => undefined, complete: async () => undefined };
  }

  const chunks: string[] = [];
  let bytes = 0;
  let overflow = false;
  let saved = false;
  return {
    status: 'miss',
    capture(chunk) {
      if (overflow) return;
      bytes += Buffer.byteLength(chunk, 'utf8');
      if (bytes > MAX_CACHED_BYTES) {
        overflow = true;
        chunks.length = 0;
        return;
      }
      chunks.push(chunk);
    },
    async complete(meta) {
      if (saved) return;
      saved = true;
      try {
        if (!meta || overflow || chunks.length === 0) return;
        const expiresAt = Math.floor(deps.now() / 1000) + ttl;
        const response: CachedResponse = { kind: o.client.stream ? 'sse' : 'json', body: chunks.join(''), ...meta };
        const sealed = sealCacheEntry(keys.seal, { region: deps.region, tenantId, key, expiresAt }, response);
        if (sealed.length > MAX_SEALED_BYTES) return;
        await deps.store.put({ key, tenantId, expiresAt, sealed });
      } catch (err) {
        deps.log.error('cache entry not stored', { requestId: o.requestId, tenantId, ...errorFields(err) });
      } finally {
        keys.seal.fill(0);
        chunks.length = 0;
      }
    },
  };
}

/** The pieces a hit writes: one JSON body, or the stream event by event (as a stream arrives). */
export function replayChunks(r: CachedResponse): string[] {
  if (r.kind === 'json') return [r.body];
  const events = r.body.split(/(?<=\n\n)/);
  return events.filter((e) => e.length > 0);
}
