/**
 * Per-tenant cache keys, derived from the cell's pepper with HKDF-SHA256 and domain separation:
 *
 *   lookup key ‖ seal key = HKDF-SHA256(pepper ‖ [tenant factor] ‖ [erasure key] (length-prefixed), salt = SALT,
 *                                       info = canonical(region, tenant, sovereign, erasure), 64 bytes)
 *
 * (one expansion, two independent 32-byte halves: HKDF output blocks are independent PRF values)
 *
 * Not the provider-key hierarchy: a hit must not call KMS (that is half of what a hit saves), and
 * the data keys that protect provider API keys must never encrypt anything else or outlive a
 * request. The pepper is already in the router's memory (token verifiers need it), is not tenant
 * plaintext, and lives encrypted under the storage key in Secrets Manager; so a reader of the
 * cache table alone learns nothing, and tenant A's keys cannot find or open tenant B's entries.
 * A sovereign tenant's factor (unwrapped from the presented token, no KMS) is mixed in, so its
 * entries, like its provider keys, open only with a live token. The tenant's erasure key (once it
 * has one) is mixed in too, so offboarding shreds its cached answers in every copy of the cache
 * table along with its secrets. Rotating the pepper or the factor, or creating the erasure key,
 * leaves old entries unreadable: they are misses until their TTL removes them.
 */
import { createHmac } from 'node:crypto';
import { canonicalEncode } from '../canonical';
import { hkdfSha256, zeroize } from '../crypto-util';

const SALT = 'sovereign-router/response-cache/keys/v1';
const INFO_DOMAIN = 'sovereign-router/response-cache/tenant/v1';

export interface TenantCacheKeys {
  readonly lookup: Buffer;
  readonly seal: Buffer;
}

export function deriveTenantCacheKeys(pepper: Uint8Array, region: string, tenantId: string, factor?: Uint8Array, erasureKey?: Uint8Array): TenantCacheKeys {
  const len = (b: Uint8Array | undefined) => {
    const u32 = Buffer.alloc(4);
    u32.writeUInt32BE(b?.length ?? 0, 0);
    return u32;
  };
  // Length-prefixed, so (pepper, factor, erasure key) triples cannot collide.
  const empty = Buffer.alloc(0);
  const ikm = Buffer.concat([len(pepper), pepper, len(factor), factor ?? empty, len(erasureKey), erasureKey ?? empty]);
  const info = canonicalEncode(INFO_DOMAIN, [
    ['region', region],
    ['tenant', tenantId],
    ['sovereign', factor ? '1' : '0'],
    ['erasure', erasureKey ? '1' : '0'],
  ]);
  try {
    const both = hkdfSha256(ikm, SALT, info, 64);
    // Views of one buffer: zeroing both halves zeroes all of it.
    return { lookup: both.subarray(0, 32), seal: both.subarray(32, 64) };
  } finally {
    zeroize(ikm);
  }
}

export function zeroizeCacheKeys(keys: TenantCacheKeys | undefined): void {
  if (keys) zeroize(keys.lookup, keys.seal);
}

/** The entry key: hex HMAC-SHA256 of the canonical request under the tenant's lookup key. */
export function cacheEntryKey(lookupKey: Uint8Array, canonicalRequest: Uint8Array): string {
  return createHmac('sha256', lookupKey).update(canonicalRequest).digest('hex');
}
