/**
 * Sovereign mode: a random 32-byte tenant factor F is mixed into every secret-key derivation of
 * the tenant (see envelope.ts). F is stored only wrapped under a key derived from each of the
 * tenant's tokens, one WrappedFactor per token, so storage plus KMS cannot open the tenant's
 * secrets without a live token.
 *
 * Wrap key = HKDF-SHA256(ikm = token, salt, info = canonical(region, tenant, tokenId)).
 * The token carries 256 random bits, so a fast KDF is enough: password stretching (scrypt,
 * Argon2) only helps low-entropy secrets, and would add latency to every request.
 */
import { randomBytes as nodeRandomBytes } from 'node:crypto';
import { canonicalEncode } from './canonical';
import { aesGcmOpen, aesGcmSeal, decodeBase64Strict, GCM_IV_BYTES, GCM_TAG_BYTES, hkdfSha256, zeroize } from './crypto-util';
import { SealedSecretError, TENANT_FACTOR_BYTES } from './envelope';
import { parseToken } from './token';

export const TENANT_FACTOR_DOMAIN = 'sovereign-router/tenant-factor/v1';

export interface WrappedFactor {
  /** base64, 12 bytes. */
  iv: string;
  /** base64, 32 bytes. */
  ciphertext: string;
  /** base64, 16 bytes. */
  tag: string;
}

export interface FactorBinding {
  /** The live token (never stored). */
  token: string;
  region: string;
  tenant: string;
  /** The stored token record's id, so a wrapped factor cannot be moved to another token record. */
  tokenId: string;
}

/** Unwrap failure. Same generic treatment as SealedSecretError (it is one), distinct message. */
export class TenantFactorError extends SealedSecretError {
  override readonly name: string = 'TenantFactorError';

  constructor() {
    super('tenant_factor', 'tenant factor could not be unwrapped');
  }
}

export function generateTenantFactor(randomBytes: (n: number) => Buffer = nodeRandomBytes): Buffer {
  const f = randomBytes(TENANT_FACTOR_BYTES);
  if (!Buffer.isBuffer(f) || f.length !== TENANT_FACTOR_BYTES) throw new Error('generateTenantFactor: need 32 bytes');
  return f;
}

function bindingInfo(b: FactorBinding): Buffer {
  for (const k of ['token', 'region', 'tenant', 'tokenId'] as const) {
    if (typeof b[k] !== 'string' || b[k].length === 0 || b[k].length > 256) throw new Error(`tenant factor binding: invalid ${k}`);
  }
  return canonicalEncode(TENANT_FACTOR_DOMAIN, [
    ['region', b.region],
    ['tenant', b.tenant],
    ['tokenId', b.tokenId],
  ]);
}

function wrapKey(b: FactorBinding, info: Buffer): Buffer {
  const ikm = Buffer.from(b.token, 'utf8');
  try {
    return hkdfSha256(ikm, TENANT_FACTOR_DOMAIN, info);
  } finally {
    ikm.fill(0);
  }
}

/**
 * Wrap F under one token. The token must be a well-formed token of binding.region and
 * binding.tenant: a mismatch is a caller bug, reported without echoing the token.
 * `iv` is for tests and vectors only.
 */
export function wrapTenantFactor(factor: Buffer, binding: FactorBinding, iv?: Buffer): WrappedFactor {
  if (!Buffer.isBuffer(factor) || factor.length !== TENANT_FACTOR_BYTES) throw new Error('wrapTenantFactor: factor must be 32 bytes');
  const info = bindingInfo(binding);
  let parsedTenant: string;
  try {
    parsedTenant = parseToken(binding.token, binding.region).tenantId;
  } catch {
    throw new Error('wrapTenantFactor: token is not a valid token of the binding region');
  }
  if (parsedTenant !== binding.tenant) throw new Error('wrapTenantFactor: token belongs to another tenant');
  const nonce = iv ?? nodeRandomBytes(GCM_IV_BYTES);
  if (nonce.length !== GCM_IV_BYTES) throw new Error('wrapTenantFactor: iv must be 12 bytes');
  const key = wrapKey(binding, info);
  try {
    const { ciphertext, tag } = aesGcmSeal(key, nonce, info, factor);
    return { iv: nonce.toString('base64'), ciphertext: ciphertext.toString('base64'), tag: tag.toString('base64') };
  } finally {
    key.fill(0);
  }
}

/** Recover F. Any failure (wrong token, tokenId, tenant, region, tampering) is a TenantFactorError. */
export function unwrapTenantFactor(wrapped: WrappedFactor, binding: FactorBinding): Buffer {
  if (typeof wrapped !== 'object' || wrapped === null) throw new TenantFactorError();
  const iv = typeof wrapped.iv === 'string' ? decodeBase64Strict(wrapped.iv) : undefined;
  const ct = typeof wrapped.ciphertext === 'string' ? decodeBase64Strict(wrapped.ciphertext) : undefined;
  const tag = typeof wrapped.tag === 'string' ? decodeBase64Strict(wrapped.tag) : undefined;
  if (iv?.length !== GCM_IV_BYTES || ct?.length !== TENANT_FACTOR_BYTES || tag?.length !== GCM_TAG_BYTES) {
    throw new TenantFactorError();
  }
  let info: Buffer;
  try {
    info = bindingInfo(binding);
  } catch {
    throw new TenantFactorError();
  }
  let key: Buffer | undefined;
  try {
    key = wrapKey(binding, info);
    return aesGcmOpen(key, iv, info, ct, tag);
  } catch {
    throw new TenantFactorError();
  } finally {
    zeroize(key);
  }
}
