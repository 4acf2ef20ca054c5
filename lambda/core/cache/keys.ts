/**
 * Per-tenant cache keys, derived from the cell's pepper with HKDF-SHA256 and domain separation:
 *
 *   lookup key = HKDF(pepper [‖ tenant factor], salt = LOOKUP_SALT, info = canonical(region, tenant))
 *   seal key   = HKDF(pepper [‖ tenant factor], salt = SEAL_SALT,   info = canonical(region, tenant))
 *
 * Not the provider-key hierarchy: a hit must not call KMS (that is half of what a hit saves), and
 * the data keys that protect provider API keys must never encrypt anything else or outlive a
 * request. The pepper is already in the router's memory (token verifiers need it), is not tenant
 * plaintext, and lives encrypted under the storage key in Secrets Manager; so a reader of the
 * cache table alone learns nothing, and tenant A's keys cannot find or open tenant B's entries.
 * A sovereign tenant's factor (unwrapped from the presented token, no KMS) is mixed in, so its
 * entries, like its provider keys, open only with a live token. Rotating the pepper or the
 * factor leaves old entries unreadable: they are misses until their TTL removes them.
 */
import { createHmac } from 'node:crypto';
import { canonicalEncode } from '../canonical';
import { hkdfSha256, zeroize } from '../crypto-util';

const LOOKUP_SALT = 'sovereign-router/response-cache/lookup/v1';
const SEAL_SALT = 'sovereign-router/response-cache/seal/v1';
const INFO_DOMAIN = 'sovereign-router/response-cache/tenant/v1';

export interface TenantCacheKeys {
  readonly lookup: Buffer;
  readonly seal: Buffer;
}

export function deriveTenantCacheKeys(pepper: Uint8Array, region: string, tenantId: string, factor?: Uint8Array): TenantCacheKeys {
  const u32 = Buffer.alloc(4);
  u32.writeUInt32BE(pepper.length, 0);
  // Length-prefixed, so (pepper, factor) pairs cannot collide.
  const ikm = Buffer.concat([u32, pepper, factor ?? Buffer.alloc(0)]);
  const info = canonicalEncode(INFO_DOMAIN, [
    ['region', region],
    ['tenant', tenantId],
    ['sovereign', factor ? '1' : '0'],
  ]);
  try {
    return { lookup: hkdfSha256(ikm, LOOKUP_SALT, info), seal: hkdfSha256(ikm, SEAL_SALT, info) };
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
