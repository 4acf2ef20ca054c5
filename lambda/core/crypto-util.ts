/**
 * Small byte helpers shared by the token and envelope code: fixed-width base62, CRC32 (IEEE),
 * strict base64, zero-filling, HKDF and AES-GCM wrappers. Pure: node:crypto only.
 */
import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';

export const BASE62_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * Encode a non-negative integer as exactly `width` base62 digits (left-padded with '0').
 * Fixed width keeps the token layout constant so scanners and the parser can rely on it.
 */
export function base62EncodeBigInt(value: bigint, width: number): string {
  if (value < 0n) throw new RangeError('base62: negative value');
  let out = '';
  let v = value;
  while (v > 0n) {
    out = BASE62_ALPHABET[Number(v % 62n)] + out;
    v /= 62n;
  }
  if (out.length > width) throw new RangeError('base62: value does not fit the width');
  return out.padStart(width, '0');
}

/** Fixed-width base62 of a big-endian byte string. */
export function base62EncodeBytes(bytes: Uint8Array, width: number): string {
  const value = bytes.length === 0 ? 0n : BigInt('0x' + Buffer.from(bytes).toString('hex'));
  return base62EncodeBigInt(value, width);
}

/** Inverse of base62EncodeBigInt; undefined for any character outside the alphabet. */
export function base62Decode(text: string): bigint | undefined {
  let v = 0n;
  for (const ch of text) {
    const d = BASE62_ALPHABET.indexOf(ch);
    if (d < 0) return undefined;
    v = v * 62n + BigInt(d);
  }
  return v;
}

const CRC32_TABLE: Uint32Array = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * crc32 of a string of ASCII characters (codes 0-127), which are their own UTF-8 bytes; the caller
 * checks that (any other character would be hashed as one wrong byte).
 */
export function crc32Ascii(text: string): number {
  let crc = 0xffffffff;
  for (let i = 0; i < text.length; i++) crc = CRC32_TABLE[(crc ^ text.charCodeAt(i)) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** CRC-32/ISO-HDLC (the zlib/PNG/GitHub-token one). zlib.crc32 needs Node 22, so we carry our own. */
export function crc32(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = CRC32_TABLE[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/**
 * Strict base64 decode: Buffer.from(x, 'base64') silently skips junk (and reads base64url), which
 * would let two different stored strings decode to the same bytes. Returns undefined unless
 * canonical. Node's encoder writes only canonical base64 (A-Z a-z 0-9 + /, '=' padding, zero
 * spare bits), so re-encoding and comparing is the whole check; no pattern is needed before it.
 */
export function decodeBase64Strict(text: string): Buffer | undefined {
  if (typeof text !== 'string') return undefined;
  const buf = Buffer.from(text, 'base64');
  if (buf.toString('base64') !== text) return undefined;
  return buf;
}

/** Zero-fill every given buffer. ArrayBuffers (e.g. from hkdfSync) are zeroed through a view. */
export function zeroize(...items: ReadonlyArray<Uint8Array | ArrayBuffer | undefined>): void {
  for (const item of items) {
    if (item === undefined) continue;
    if (item instanceof ArrayBuffer) new Uint8Array(item).fill(0);
    else item.fill(0);
  }
}

/** True when the string has no lone UTF-16 surrogates, i.e. it round-trips through UTF-8. */
export function isWellFormedUtf16(s: string): boolean {
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

/**
 * HKDF salts are fixed domain strings (not secret): their bytes are made once each (a Buffer made
 * from a string per call cost about 3 µs of an HKDF's 7 here). Bounded, in case a caller ever
 * passes varying salts; those are then encoded per call as before.
 */
const SALT_BYTES = new Map<string, Buffer>();
const MAX_SALTS = 64;

function saltBytesOf(salt: string): Buffer {
  let bytes = SALT_BYTES.get(salt);
  if (bytes === undefined) {
    bytes = Buffer.alloc(Buffer.byteLength(salt, 'utf8'));
    bytes.write(salt, 'utf8');
    if (SALT_BYTES.size < MAX_SALTS) SALT_BYTES.set(salt, bytes);
  }
  return bytes;
}

/**
 * HKDF-SHA256 (RFC 5869), extract then expand, with node:crypto's HMAC: the same bytes as
 * crypto.hkdfSync (property-tested against it), at about half its CPU per call and without the
 * KeyObject hkdfSync makes of the input key material (a copy of it that nothing here can zero).
 * The PRK and every block are zero-filled; the result is a Buffer of our own for the caller to zero.
 * The same limits as hkdfSync: info up to 1024 bytes, length up to 255 blocks.
 */
export function hkdfSha256(ikm: Uint8Array, salt: string, info: Uint8Array, length = 32): Buffer {
  if (!Number.isSafeInteger(length) || length < 1 || length > 255 * 32) throw new RangeError('hkdfSha256: length out of range');
  if (info.length > 1024) throw new RangeError('hkdfSha256: info longer than 1024 bytes');
  const prk = createHmac('sha256', saltBytesOf(salt)).update(ikm).digest();
  let out: Buffer = length === 32 ? EMPTY : Buffer.alloc(length);
  // T(0) is empty: the first block is HMAC(PRK, info ‖ 0x01), each later one HMAC(PRK, T(i-1) ‖ info ‖ i).
  let block: Buffer | undefined;
  try {
    for (let i = 1, at = 0; at < length; i++) {
      const mac = createHmac('sha256', prk);
      if (block !== undefined) mac.update(block);
      const next = mac.update(info).update(COUNTER_BYTES[i]).digest();
      block?.fill(0);
      block = next;
      // One block is the whole output (a 32-byte key): digest() gave a buffer of its own (its whole
      // ArrayBuffer, checked: never a pool slice), handed on as is instead of copied.
      if (at === 0 && length === block.length && block.byteOffset === 0 && block.buffer.byteLength === block.length) {
        out = block;
        block = undefined;
        break;
      }
      if (out.length !== length) out = Buffer.alloc(length);
      at += block.copy(out, at);
    }
    return out;
  } finally {
    prk.fill(0);
    block?.fill(0);
  }
}

const EMPTY = Buffer.alloc(0);
/** HKDF's block counter bytes 1..255, made once (not secret). */
const COUNTER_BYTES: readonly Uint8Array[] = Array.from({ length: 256 }, (_, i) => Uint8Array.of(i));

export const GCM_IV_BYTES = 12;
export const GCM_TAG_BYTES = 16;

export function aesGcmSeal(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): { ciphertext: Buffer; tag: Buffer } {
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: GCM_TAG_BYTES });
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { ciphertext, tag: cipher.getAuthTag() };
}

/**
 * AES-256-GCM open. update() releases plaintext before the tag is checked, so on a bad tag the
 * partial output is zeroed before the error propagates. GCM's final() emits no bytes.
 */
export function aesGcmOpen(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: GCM_TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  const out = decipher.update(ciphertext);
  let rest: Buffer | undefined;
  try {
    rest = decipher.final();
  } catch (err) {
    out.fill(0);
    throw err;
  }
  if (rest.length === 0) return out;
  const joined = Buffer.concat([out, rest]);
  zeroize(out, rest);
  return joined;
}
