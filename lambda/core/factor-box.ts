/**
 * Tenant-factor rotation without the tokens: every token has an X25519 key pair derived from the
 * token itself, and its record stores only the public key. A rotation seals the new factor to
 * each live token's public key (ECIES: ephemeral X25519, HKDF-SHA256, AES-256-GCM), so the vault
 * rewraps F for every live token without ever seeing one, and only a holder of that token can
 * open the box. A token revoked before the rotation has no record, so it gets no box.
 *
 * The public key is authenticated with a tag keyed by the tenant factor: a table writer (who does
 * not know F) cannot substitute its own key to receive the next factor. Format and reasoning:
 * docs/sealed-secret-format.md §5.
 */
import { createHmac, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, KeyObject, randomBytes, timingSafeEqual } from 'node:crypto';
import { canonicalEncode } from './canonical';
import { aesGcmOpen, aesGcmSeal, decodeBase64Strict, GCM_IV_BYTES, GCM_TAG_BYTES, hkdfSha256, zeroize } from './crypto-util';
import { TENANT_FACTOR_BYTES } from './envelope';
import { TenantFactorError, type FactorBinding } from './tenant-factor';

export const TOKEN_KEY_DOMAIN = 'sovereign-router/token-factor-key/v1';
export const TOKEN_KEY_TAG_DOMAIN = 'sovereign-router/token-key-tag/v1';
export const FACTOR_BOX_DOMAIN = 'sovereign-router/factor-box/v1';
export const FACTOR_BOX_SCHEME = 'X25519-HKDF-SHA256-AES256GCM';

/** The tenant factor sealed to one token's public key, for one factor generation. */
export interface FactorBox {
  readonly scheme: typeof FACTOR_BOX_SCHEME;
  readonly generation: number;
  /** base64, 32 bytes: the ephemeral X25519 public key. */
  readonly epk: string;
  /** base64, 32 bytes: the token public key it is sealed to (bound as AAD; spares the router deriving it). */
  readonly publicKey: string;
  readonly iv: string;
  readonly ciphertext: string;
  readonly tag: string;
}

/** A token's public key (base64, 32 bytes) as stored in its record, with its tag under F. */
export interface TokenFactorKey {
  readonly publicKey: string;
  /** base64 HMAC-SHA256 under a key derived from the factor of `generation`; absent while managed. */
  readonly tag?: string;
  readonly generation?: number;
}

// RFC 8410 DER prefixes: PKCS#8 private and SPKI public X25519 keys around the raw 32 bytes.
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');

function bindingFields(b: Omit<FactorBinding, 'token'>): [string, string][] {
  for (const k of ['region', 'tenant', 'tokenId'] as const) {
    if (typeof b[k] !== 'string' || b[k].length === 0 || b[k].length > 256) throw new Error(`factor box binding: invalid ${k}`);
  }
  return [
    ['region', b.region],
    ['tenant', b.tenant],
    ['tokenId', b.tokenId],
  ];
}

/** The token's X25519 private key seed: HKDF-SHA256(token, TOKEN_KEY_DOMAIN, canonical binding). */
function tokenKeySeed(b: FactorBinding): Buffer {
  const ikm = Buffer.from(b.token, 'utf8');
  try {
    return hkdfSha256(ikm, TOKEN_KEY_DOMAIN, canonicalEncode(TOKEN_KEY_DOMAIN, bindingFields(b)));
  } finally {
    zeroize(ikm);
  }
}

/** The private key from PKCS#8 DER: used where the public key must be derived (issuance). */
function tokenPrivateKey(b: FactorBinding): KeyObject {
  const seed = tokenKeySeed(b);
  const der = Buffer.concat([PKCS8_X25519, seed]);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    zeroize(seed, der);
  }
}

/**
 * The private key from JWK (d = seed): about ten times faster to import than PKCS#8 here, and the
 * router does it per request. Node derives the key from `d` alone; `x` (the box's public key) is
 * a required member, and a wrong one only makes the box fail to open.
 */
function tokenPrivateKeyForOpen(b: FactorBinding, publicKey: string): KeyObject {
  const seed = tokenKeySeed(b);
  try {
    return createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: seed.toString('base64url'), x: Buffer.from(publicKey, 'base64').toString('base64url') }, format: 'jwk' });
  } finally {
    zeroize(seed);
  }
}

const rawPublic = (k: KeyObject): Buffer => (createPublicKey(k).export({ format: 'der', type: 'spki' }) as Buffer).subarray(SPKI_X25519.length);
const publicKeyOf = (raw: Buffer): KeyObject => createPublicKey({ key: Buffer.concat([SPKI_X25519, raw]), format: 'der', type: 'spki' });

/** The public key of a token (base64), stored in the token record at issuance. */
export function tokenPublicKey(b: FactorBinding): string {
  return rawPublic(tokenPrivateKey(b)).toString('base64');
}

/** Tag of a token's public key under the factor: a table writer without F cannot make one. */
export function tokenKeyTag(factor: Buffer, b: Omit<FactorBinding, 'token'>, publicKey: string): string {
  if (!Buffer.isBuffer(factor) || factor.length !== TENANT_FACTOR_BYTES) throw new Error('tokenKeyTag: factor must be 32 bytes');
  const key = createHmac('sha256', factor).update(TOKEN_KEY_TAG_DOMAIN, 'utf8').digest();
  try {
    return createHmac('sha256', key)
      .update(canonicalEncode(TOKEN_KEY_TAG_DOMAIN, [...bindingFields(b), ['publicKey', publicKey]]))
      .digest('base64');
  } finally {
    key.fill(0);
  }
}

/** True when the record's key carries a valid tag under `factor`. */
export function tokenKeyIsAuthentic(factor: Buffer, b: Omit<FactorBinding, 'token'>, key: TokenFactorKey | undefined): key is TokenFactorKey {
  if (!key || typeof key.publicKey !== 'string' || typeof key.tag !== 'string') return false;
  const raw = decodeBase64Strict(key.publicKey);
  if (raw?.length !== 32) return false;
  const want = Buffer.from(tokenKeyTag(factor, b, key.publicKey), 'base64');
  const got = decodeBase64Strict(key.tag);
  return got !== undefined && got.length === want.length && timingSafeEqual(got, want);
}

function boxInfo(b: Omit<FactorBinding, 'token'>, generation: number, epk: string, publicKey: string): Buffer {
  return canonicalEncode(FACTOR_BOX_DOMAIN, [...bindingFields(b), ['generation', String(generation)], ['epk', epk], ['publicKey', publicKey]]);
}

/** Seals F (generation `generation`) to a token's public key. Needs no token. */
export function sealFactorBox(factor: Buffer, generation: number, b: Omit<FactorBinding, 'token'>, publicKey: string): FactorBox {
  if (!Buffer.isBuffer(factor) || factor.length !== TENANT_FACTOR_BYTES) throw new Error('sealFactorBox: factor must be 32 bytes');
  if (!Number.isSafeInteger(generation) || generation < 1) throw new Error('sealFactorBox: invalid generation');
  const raw = decodeBase64Strict(publicKey);
  if (raw?.length !== 32) throw new Error('sealFactorBox: invalid public key');
  const eph = generateKeyPairSync('x25519');
  const epk = rawPublic(eph.privateKey).toString('base64');
  const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: publicKeyOf(raw) });
  const info = boxInfo(b, generation, epk, publicKey);
  const key = hkdfSha256(shared, FACTOR_BOX_DOMAIN, info);
  const iv = randomBytes(GCM_IV_BYTES);
  try {
    const { ciphertext, tag } = aesGcmSeal(key, iv, info, factor);
    return { scheme: FACTOR_BOX_SCHEME, generation, epk, publicKey, iv: iv.toString('base64'), ciphertext: ciphertext.toString('base64'), tag: tag.toString('base64') };
  } finally {
    zeroize(shared, key);
  }
}

export function isFactorBox(v: unknown): v is FactorBox {
  return typeof v === 'object' && v !== null && (v as { scheme?: unknown }).scheme === FACTOR_BOX_SCHEME;
}

/** Opens a box with the live token. Any failure is a TenantFactorError. */
export function openFactorBox(box: FactorBox, b: FactorBinding): Buffer {
  let shared: Buffer | undefined;
  let key: Buffer | undefined;
  try {
    if (!isFactorBox(box) || !Number.isSafeInteger(box.generation) || box.generation < 1) throw new TenantFactorError();
    const epk = decodeBase64Strict(box.epk);
    const pub = typeof box.publicKey === 'string' ? decodeBase64Strict(box.publicKey) : undefined;
    const iv = decodeBase64Strict(box.iv);
    const ct = decodeBase64Strict(box.ciphertext);
    const tag = decodeBase64Strict(box.tag);
    if (epk?.length !== 32 || pub?.length !== 32 || iv?.length !== GCM_IV_BYTES || ct?.length !== TENANT_FACTOR_BYTES || tag?.length !== GCM_TAG_BYTES) throw new TenantFactorError();
    const priv = tokenPrivateKeyForOpen(b, box.publicKey);
    const info = boxInfo(b, box.generation, box.epk, box.publicKey);
    shared = diffieHellman({ privateKey: priv, publicKey: publicKeyOf(epk) });
    key = hkdfSha256(shared, FACTOR_BOX_DOMAIN, info);
    return aesGcmOpen(key, iv, info, ct, tag);
  } catch {
    throw new TenantFactorError();
  } finally {
    zeroize(shared, key);
  }
}
