/**
 * Tenant API tokens: `sr_<regionCode>_<tenantId>_<random43><crc6>`.
 *
 * - random43: 32 random bytes (256 bits) as fixed-width base62.
 * - crc6: CRC32 of everything before it, fixed-width base62. It lets us reject typos and
 *   truncations before any I/O and lets secret scanners cut false positives (GitHub-style).
 * - The region code makes a token presented to the wrong cell fail locally, with an error that
 *   names its home region; the tenant id is there for humans and scanners, not for authorization
 *   (the verifier lookup is the only authority).
 */
import { createHmac, randomBytes as nodeRandomBytes, timingSafeEqual } from 'node:crypto';
import { REGION_CODES, regionOfCode } from './regions';
import { BASE62_ALPHABET, base62EncodeBigInt, base62EncodeBytes, crc32, crc32Ascii } from './crypto-util';

export const TOKEN_PREFIX = 'sr';
export const TOKEN_RANDOM_BYTES = 32;
export const TOKEN_RANDOM_CHARS = 43; // 62^43 > 2^256
export const TOKEN_CRC_CHARS = 6; // 62^6 > 2^32
export const TOKEN_MAX_LENGTH = 128;

export const TENANT_ID_PATTERN = /^[a-z][a-z0-9-]{1,30}[a-z0-9]$/;

/** For secret scanners (GitHub custom patterns, trufflehog, gitleaks). */
export const TOKEN_SCAN_PATTERN = /\bsr_[a-z0-9]+_[a-z0-9-]+_[0-9A-Za-z]{49}\b/;

const TOKEN_SHAPE = /^sr_([a-z0-9]{2,8})_([a-z][a-z0-9-]{1,30}[a-z0-9])_([0-9A-Za-z]{43})([0-9A-Za-z]{6})$/;
/**
 * The largest random part, 2^256 - 1, in base62: the digits sort in ASCII order (0-9 < A-Z < a-z)
 * and every random part has the same width, so comparing the text compares the values, without
 * decoding 43 digits into a BigInt on every request.
 */
const MAX_RANDOM_TEXT = base62EncodeBigInt((1n << 256n) - 1n, TOKEN_RANDOM_CHARS);

export interface ParsedToken {
  readonly token: string;
  readonly regionCode: string;
  readonly region: string;
  readonly tenantId: string;
}

export type TokenErrorCode = 'malformed' | 'checksum' | 'wrong_region';

/** Rejection of a presented token. Messages never contain the token or any part of it. */
export class TokenError extends Error {
  override readonly name = 'TokenError';
  readonly code: TokenErrorCode;
  readonly homeRegion?: string;

  constructor(code: TokenErrorCode, homeRegion?: string) {
    super(messageFor(code, homeRegion));
    this.code = code;
    if (homeRegion !== undefined) this.homeRegion = homeRegion;
  }
}

function messageFor(code: TokenErrorCode, homeRegion?: string): string {
  switch (code) {
    case 'malformed':
      return 'The API key is malformed. Expected a sovereign-router key of the form sr_<region>_<tenant>_<secret>.';
    case 'checksum':
      return 'The API key failed its checksum; it was probably mistyped or truncated.';
    case 'wrong_region':
      return `This token belongs to region ${homeRegion}; call that region's endpoint.`;
  }
}

export function isValidTenantId(id: string): boolean {
  return typeof id === 'string' && TENANT_ID_PATTERN.test(id);
}

const KNOWN_CODES: ReadonlySet<string> = new Set(Object.values(REGION_CODES));

/**
 * CRC-32 of the head in 6 base62 digits (a CRC fits a Number: no BigInt arithmetic per request).
 * A head of ASCII only (every presented token that passed TOKEN_SHAPE) is its own UTF-8 bytes, so
 * its CRC is taken over the character codes without encoding it into a Buffer first.
 */
function checksumOf(head: string): string {
  let n = isAscii(head) ? crc32Ascii(head) : crc32(Buffer.from(head, 'utf8'));
  let out = '';
  for (let i = 0; i < TOKEN_CRC_CHARS; i++) {
    out = BASE62_ALPHABET[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

export function generateToken(
  regionCode: string,
  tenantId: string,
  randomBytes: (n: number) => Buffer = nodeRandomBytes,
): string {
  if (!KNOWN_CODES.has(regionCode)) throw new Error(`generateToken: unknown region code '${regionCode}'`);
  if (!isValidTenantId(tenantId)) throw new Error(`generateToken: invalid tenant id '${tenantId}'`);
  const random = randomBytes(TOKEN_RANDOM_BYTES);
  if (!Buffer.isBuffer(random) || random.length !== TOKEN_RANDOM_BYTES) {
    throw new Error(`generateToken: randomBytes must return ${TOKEN_RANDOM_BYTES} bytes`);
  }
  const head = `${TOKEN_PREFIX}_${regionCode}_${tenantId}_${base62EncodeBytes(random, TOKEN_RANDOM_CHARS)}`;
  random.fill(0);
  return head + checksumOf(head);
}

/**
 * Validate a presented token without I/O, cheapest checks first:
 * type, length cap, shape (incl. known region code), checksum, region.
 * Throws only TokenError.
 */
export function parseToken(raw: unknown, expectedRegion: string): ParsedToken {
  if (typeof raw !== 'string' || raw.length > TOKEN_MAX_LENGTH) throw new TokenError('malformed');
  const m = TOKEN_SHAPE.exec(raw);
  if (m === null) throw new TokenError('malformed');
  const [, regionCode, tenantId, body, crc] = m;
  const region = regionOfCode(regionCode);
  if (region === undefined) throw new TokenError('malformed');
  // A 43-digit base62 string can exceed 2^256; no generated token does.
  if (body > MAX_RANDOM_TEXT) throw new TokenError('malformed');
  if (checksumOf(raw.slice(0, raw.length - TOKEN_CRC_CHARS)) !== crc) throw new TokenError('checksum');
  if (region !== expectedRegion) throw new TokenError('wrong_region', region);
  return { token: raw, regionCode, region, tenantId };
}

/** Stored verifier: HMAC-SHA256(regional pepper, token). The token itself is never stored. */
export function computeVerifier(pepper: Buffer, token: string): Buffer {
  if (!Buffer.isBuffer(pepper) || pepper.length < 16) throw new Error('computeVerifier: pepper must be at least 16 bytes');
  return createHmac('sha256', pepper).update(token, 'utf8').digest();
}

/** Constant-time comparison; different lengths are simply unequal (lengths are not secret here). */
export function constantTimeEqual(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}
