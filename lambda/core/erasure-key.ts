/**
 * Tenant erasure keys (crypto-shredding). Every v2 sealed secret of a tenant needs, besides its
 * KMS data key, the tenant's 32-byte erasure key E, which lives in its own table: no PITR, no
 * backup, no export (docs/sealed-secret-format.md section 12). Offboarding deletes E first; from
 * then on no copy of the backed-up tables opens the tenant's secrets, with or without KMS.
 */
import { randomBytes } from 'node:crypto';
import { decodeBase64Strict } from './crypto-util';
import { ERASURE_KEY_BYTES, SealedSecretError } from './envelope';
import type { TenantStore } from './store';

export { ERASURE_KEY_BYTES };

/**
 * Canonical base64 of 32 bytes: 42 digits, a last digit whose 2 spare bits are zero (32 bytes = 256
 * bits = 42 x 6 + 4), and one '='. Exactly the strings Node's encoder writes for 32 bytes.
 */
const CANONICAL_32_BYTES = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** The stored item, keyed by tenant id. `key` is base64 of E; nothing else in it is secret. */
export interface ErasureKeyItem {
  readonly tenantId: string;
  readonly key: string;
  readonly createdAt: string;
}

/** 32 fresh random bytes; the caller zero-fills them once stored. */
export function generateErasureKey(): Buffer {
  return randomBytes(ERASURE_KEY_BYTES);
}

export function erasureKeyItemOf(tenantId: string, key: Buffer, at: Date): ErasureKeyItem {
  if (!Buffer.isBuffer(key) || key.length !== ERASURE_KEY_BYTES) throw new Error('erasureKeyItemOf: the erasure key must be 32 bytes');
  return { tenantId, key: key.toString('base64'), createdAt: at.toISOString() };
}

/**
 * E from a stored item, which must name the tenant it was read for (an item copied under another
 * tenant's key is refused here; a key value copied into another tenant's item fails GCM, because
 * that tenant's rows were derived from its own E). Undefined when there is no item: offboarded,
 * or never created (a tenant with only v1 rows). The caller zero-fills the result.
 */
export function erasureKeyFromItem(item: unknown, tenantId: string): Buffer | undefined {
  if (item === undefined || item === null) return undefined;
  if (typeof item !== 'object' || Array.isArray(item)) throw new SealedSecretError('erasure_key');
  const r = item as Record<string, unknown>;
  if (r.tenantId !== tenantId || typeof r.key !== 'string') throw new SealedSecretError('erasure_key');
  // The canonical base64 of exactly 32 bytes (what erasureKeyItemOf writes) is checked by its
  // pattern, so the key is decoded once and not encoded back into a string of the secret just to
  // compare; anything else takes the general strict decode (and is refused below).
  const key = CANONICAL_32_BYTES.test(r.key) ? Buffer.from(r.key, 'base64') : decodeBase64Strict(r.key);
  if (!key || key.length !== ERASURE_KEY_BYTES) throw new SealedSecretError('erasure_key');
  return key;
}

/**
 * The tenant's erasure key, created on its first seal (only while the tenant is active). The
 * caller zero-fills it.
 */
export async function tenantErasureKey(store: TenantStore, tenantId: string): Promise<Buffer> {
  const existing = await store.getErasureKey(tenantId);
  if (existing) return existing;
  const fresh = generateErasureKey();
  try {
    return await store.ensureErasureKey(tenantId, fresh);
  } finally {
    fresh.fill(0);
  }
}
