/**
 * Canonical, length-prefixed encoding of (domain, [name, value]...) used as GCM AAD and HKDF info.
 *
 * Layout (all lengths uint32 big-endian byte counts of UTF-8):
 *   len(domain) domain  count  { len(name) name  len(value) value } * count
 *
 * Every string is length-prefixed, so ('ab','c') and ('a','bc') cannot collide. This matters
 * because KMS-compatible emulators (moto) join encryption-context pairs without delimiters; our
 * own AAD must not inherit that ambiguity. Lone surrogates are rejected because they would all
 * map to U+FFFD in UTF-8 and break injectivity.
 */
import { TextDecoder } from 'node:util';
import type { EncryptionContext } from './ports';
import { isWellFormedUtf16 } from './crypto-util';
import { isSupportedRegion } from './regions';
import { isValidTenantId } from './token';

export type CanonicalField = readonly [string, string];

export interface DecodedCanonical {
  readonly domain: string;
  readonly fields: ReadonlyArray<CanonicalField>;
}

function checked(s: string, what: string): string {
  if (typeof s !== 'string' || !isWellFormedUtf16(s)) throw new Error(`canonicalEncode: ${what} is not a well-formed string`);
  return s;
}

/** One allocation: the lengths are measured first, then every prefix and string is written in place. */
export function canonicalEncode(domain: string, fields: ReadonlyArray<CanonicalField>): Buffer {
  let size = 4 + Buffer.byteLength(checked(domain, 'domain'), 'utf8') + 4;
  for (const [name, value] of fields) size += 8 + Buffer.byteLength(checked(name, 'field name'), 'utf8') + Buffer.byteLength(checked(value, 'field value'), 'utf8');
  const out = Buffer.alloc(size);
  let off = 0;
  const put = (text: string): void => {
    const n = out.write(text, off + 4, 'utf8');
    out.writeUInt32BE(n, off);
    off += 4 + n;
  };
  put(domain);
  out.writeUInt32BE(fields.length, off);
  off += 4;
  for (const [name, value] of fields) {
    put(name);
    put(value);
  }
  if (off !== size) throw new Error('canonicalEncode: length mismatch');
  return out;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Inverse of canonicalEncode. Throws on truncation, trailing bytes or invalid UTF-8. */
export function decodeCanonical(buf: Buffer): DecodedCanonical {
  let off = 0;
  const readU32 = (): number => {
    if (off + 4 > buf.length) throw new Error('decodeCanonical: truncated');
    const n = buf.readUInt32BE(off);
    off += 4;
    return n;
  };
  const readStr = (): string => {
    const n = readU32();
    if (off + n > buf.length) throw new Error('decodeCanonical: truncated');
    let s: string;
    try {
      s = strictUtf8.decode(buf.subarray(off, off + n));
    } catch {
      throw new Error('decodeCanonical: invalid UTF-8');
    }
    off += n;
    return s;
  };
  const domain = readStr();
  const count = readU32();
  // Each field needs at least 8 bytes; reject absurd counts before looping.
  if (count > (buf.length - off) / 8) throw new Error('decodeCanonical: truncated');
  const fields: CanonicalField[] = [];
  for (let i = 0; i < count; i++) {
    const name = readStr();
    const value = readStr();
    fields.push([name, value]);
  }
  if (off !== buf.length) throw new Error('decodeCanonical: trailing bytes');
  return { domain, fields };
}

/** Who a sealed secret belongs to. Bound into the KMS encryption context, the HKDF info and the AAD. */
export interface SecretIdentity {
  readonly app: 'sovereign-router';
  readonly region: string;
  readonly tenant: string;
  readonly provider: string;
  readonly secret: string;
  readonly version: number;
}

export const SECRET_IDENTITY_DOMAIN = 'sovereign-router/secret-identity/v1';

/** The only encryption-context keys the root key policy accepts (kms:EncryptionContextKeys). */
export const ENCRYPTION_CONTEXT_KEYS = ['app', 'region', 'tenant', 'provider', 'secret', 'version'] as const;
export type EncryptionContextKey = (typeof ENCRYPTION_CONTEXT_KEYS)[number];

// Keeps canonicalIdentity well under hkdfSync's 1024-byte info limit and KMS context limits.
const MAX_NAME_BYTES = 128;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:/+=@-]*$/;

/** Throws a plain Error naming the offending field (identities are not secret). */
export function assertSecretIdentity(id: SecretIdentity): void {
  const bad = (field: string): never => {
    throw new Error(`invalid secret identity: ${field}`);
  };
  if (typeof id !== 'object' || id === null) bad('identity');
  if (id.app !== 'sovereign-router') bad('app');
  if (typeof id.region !== 'string' || !isSupportedRegion(id.region)) bad('region');
  if (typeof id.tenant !== 'string' || !isValidTenantId(id.tenant)) bad('tenant');
  for (const field of ['provider', 'secret'] as const) {
    const v = id[field];
    if (typeof v !== 'string' || v.length > MAX_NAME_BYTES || !NAME_PATTERN.test(v)) bad(field);
  }
  if (!Number.isSafeInteger(id.version) || id.version < 1) bad('version');
}

function identityFields(id: SecretIdentity): Array<[EncryptionContextKey, string]> {
  assertSecretIdentity(id);
  return [
    ['app', id.app],
    ['region', id.region],
    ['tenant', id.tenant],
    ['provider', id.provider],
    ['secret', id.secret],
    ['version', String(id.version)],
  ];
}

/** Canonical bytes of an identity, in the fixed ENCRYPTION_CONTEXT_KEYS order. */
export function canonicalIdentity(id: SecretIdentity): Buffer {
  return canonicalEncode(SECRET_IDENTITY_DOMAIN, identityFields(id));
}

/** KMS encryption context for a secret's data key: exactly ENCRYPTION_CONTEXT_KEYS, all strings. */
export function encryptionContextOf(id: SecretIdentity): EncryptionContext {
  return Object.freeze(Object.fromEntries(identityFields(id)));
}
