/**
 * Digest of a sealed-secret row as the audit trail records it, so that the verifier can tell a
 * restored older row (or any other row) from the one the last secret event wrote.
 */
import { createHash } from 'node:crypto';
import { canonicalEncode } from './canonical';
import type { SealedSecret } from './envelope';

const SEALED_ROW_DOMAIN = 'sovereign-router/sealed-row/v1';

/**
 * The fields that make a row what it is: identity, version, mode, wrapped key and ciphertext.
 * Timestamps and the display fingerprint are left out: they do not change what the row opens to.
 */
const DIGESTED_FIELDS = [
  'formatVersion',
  'algorithm',
  'keyArn',
  'wrappedKey',
  'iv',
  'ciphertext',
  'tag',
  'region',
  'tenant',
  'provider',
  'secret',
  'version',
  'sovereign',
] as const;

/** 'sha256:' + hex SHA-256 of the canonical encoding of the row's digested fields. */
export function sealedRowDigest(row: SealedSecret): string {
  const fields = DIGESTED_FIELDS.map((name) => [name, String(row[name])] as const);
  return 'sha256:' + createHash('sha256').update(canonicalEncode(SEALED_ROW_DOMAIN, fields)).digest('hex');
}
