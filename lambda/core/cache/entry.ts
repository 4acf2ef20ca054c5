/**
 * A cache entry's sealed form: AES-256-GCM under the tenant's seal key (keys.ts), with the
 * entry's identity as AAD (region, tenant, entry key, expiry). An entry copied under another
 * tenant's or request's key, or with its expiry moved, fails to open and counts as a miss.
 *
 *   sealed = version (1 byte, 1) ‖ IV (12) ‖ ciphertext ‖ tag (16)
 */
import { randomBytes } from 'node:crypto';
import { canonicalEncode } from '../canonical';
import { aesGcmOpen, aesGcmSeal, zeroize } from '../crypto-util';

const FORMAT = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const AAD_DOMAIN = 'sovereign-router/response-cache/entry/v1';

/** What a hit replays: the client-format body, as the client got it on the miss. */
export interface CachedResponse {
  /** `json`: one JSON body; `sse`: the event-stream text, complete and well-formed. */
  readonly kind: 'json' | 'sse';
  readonly body: string;
  readonly provider?: string;
  readonly upstreamModel?: string;
}

export interface EntryIdentity {
  readonly region: string;
  readonly tenantId: string;
  readonly key: string;
  readonly expiresAt: number;
}

const aadOf = (id: EntryIdentity) =>
  canonicalEncode(AAD_DOMAIN, [
    ['region', id.region],
    ['tenant', id.tenantId],
    ['key', id.key],
    ['expiresAt', String(id.expiresAt)],
  ]);

export function sealCacheEntry(sealKey: Uint8Array, id: EntryIdentity, response: CachedResponse): Buffer {
  const iv = randomBytes(IV_BYTES);
  const plaintext = Buffer.from(JSON.stringify(response), 'utf8');
  try {
    const { ciphertext, tag } = aesGcmSeal(sealKey, iv, aadOf(id), plaintext);
    return Buffer.concat([Buffer.from([FORMAT]), iv, ciphertext, tag]);
  } finally {
    zeroize(plaintext);
  }
}

/** The response, or undefined when the entry does not authenticate under this identity. */
export function openCacheEntry(sealKey: Uint8Array, id: EntryIdentity, sealed: Uint8Array): CachedResponse | undefined {
  const b = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  if (b.length < 1 + IV_BYTES + TAG_BYTES || b[0] !== FORMAT) return undefined;
  let plaintext: Buffer;
  try {
    plaintext = aesGcmOpen(sealKey, b.subarray(1, 1 + IV_BYTES), aadOf(id), b.subarray(1 + IV_BYTES, b.length - TAG_BYTES), b.subarray(b.length - TAG_BYTES));
  } catch {
    return undefined;
  }
  try {
    const r = JSON.parse(plaintext.toString('utf8')) as CachedResponse;
    if ((r.kind !== 'json' && r.kind !== 'sse') || typeof r.body !== 'string') return undefined;
    return r;
  } catch {
    return undefined;
  } finally {
    zeroize(plaintext);
  }
}
