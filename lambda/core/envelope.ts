/**
 * Sealed secrets: a tenant's provider API key under envelope encryption.
 *
 *   KMS root key ─ data key (GenerateDataKey, context = identity)
 *     └─ secret key = HKDF-SHA256(dataKey [‖ Fv] ‖ Ev, salt, info = canonicalIdentity)     (v2)
 *          (sovereign: Fv = HMAC-SHA256(tenantFactor, domain ‖ canonicalIdentity ‖ versionSalt))
 *          (Ev = HMAC-SHA256(tenant erasure key, domain ‖ canonicalIdentity): crypto-shredding)
 *          └─ AES-256-GCM(plaintext), AAD = canonicalIdentity
 *
 * v1 rows (no Ev, salt .../secret-key/v1) are still opened, never written: they predate erasure
 * keys and are not crypto-shredded by offboarding until re-stored (format spec, section 12).
 *
 * The identity is bound three times (KMS context, HKDF info, GCM AAD), so a row copied to another
 * tenant, provider, version or region cannot be opened. Format spec: docs/sealed-secret-format.md.
 *
 * Plaintext discipline: every secret Buffer this module allocates (data key, HKDF output, ikm,
 * decrypted plaintext) is zero-filled in `finally`. OpenSSL/V8 internal copies are out of reach.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { BoundedMemo } from './bounded-memo';
import { isSharedRow } from './shared-rows';
import { canonicalEncode, canonicalIdentity, encryptionContextOf, type SecretIdentity } from './canonical';
import { aesGcmOpen, aesGcmSeal, decodeBase64Strict, GCM_IV_BYTES, GCM_TAG_BYTES, hkdfSha256, zeroize } from './crypto-util';
import { systemClock, type Clock, type DataKeyService, type EncryptionContext } from './ports';

/** What sealSecret writes. */
export const SEALED_SECRET_FORMAT_VERSION = 2;
export const SEALED_SECRET_ALGORITHM = 'SR2-HKDF-SHA256-AES256GCM';
export const SECRET_KEY_SALT = 'sovereign-router/secret-key/v2';
/** Rows sealed before tenant erasure keys: opened, never written. */
export const LEGACY_FORMAT_VERSION = 1;
export const LEGACY_ALGORITHM = 'SR1-HKDF-SHA256-AES256GCM';
export const LEGACY_SECRET_KEY_SALT = 'sovereign-router/secret-key/v1';
/** The tenant erasure key E (crypto-shredding), 32 bytes, held outside the backed-up tables. */
export const ERASURE_KEY_BYTES = 32;
export const ERASURE_FACTOR_DOMAIN = 'sovereign-router/erasure-factor/v2';
/** Legacy (unkeyed) fingerprints: 'sha256:' + 12 hex of SHA-256(domain ‖ plaintext). Read, never written. */
export const FINGERPRINT_DOMAIN = 'sovereign-router/fingerprint/v1';
export const FINGERPRINT_KEY_DOMAIN = 'sovereign-router/fingerprint-key/v2';
export const DATA_KEY_BYTES = 32;
export const TENANT_FACTOR_BYTES = 32;
export const SECRET_FACTOR_DOMAIN = 'sovereign-router/secret-factor/v1';
/** The domains' UTF-8 bytes, made once (public constants, in buffers of their own that nothing writes to). */
const SECRET_FACTOR_DOMAIN_BYTES = ownBytes(SECRET_FACTOR_DOMAIN);
const ERASURE_FACTOR_DOMAIN_BYTES = ownBytes(ERASURE_FACTOR_DOMAIN);
function ownBytes(text: string): Buffer {
  const b = Buffer.alloc(Buffer.byteLength(text, 'utf8'));
  b.write(text, 'utf8');
  return b;
}
/** Sovereign mode: random bytes per secret version, kept in the tenant META, never in the row. */
export const VERSION_SALT_BYTES = 32;

export interface SealedSecret {
  /** 2 for everything sealed now; 1 only for rows sealed before erasure keys. */
  formatVersion: 1 | 2;
  algorithm: 'SR1-HKDF-SHA256-AES256GCM' | 'SR2-HKDF-SHA256-AES256GCM';
  keyArn: string;
  /** base64 of the KMS CiphertextBlob. */
  wrappedKey: string;
  /** base64, 12 bytes. */
  iv: string;
  /** base64. */
  ciphertext: string;
  /** base64, 16 bytes. */
  tag: string;
  region: string;
  tenant: string;
  provider: string;
  secret: string;
  version: number;
  sovereign: boolean;
  /** Non-secret display value: 'hmac:' + 16 hex, keyed per (region, tenant, provider). */
  fingerprint: string;
  createdAt: string;
  rotatedAt?: string;
}

export type SealedSecretErrorReason =
  | 'malformed'
  | 'identity_mismatch'
  | 'mode_mismatch'
  | 'bad_data_key'
  | 'integrity'
  | 'tenant_factor'
  | 'version_salt'
  /** A v2 row without the tenant's erasure key (offboarded: crypto-shredded), or a bad erasure key item. */
  | 'erasure_key'
  /** The row is not the version the tenant META records (rolled back, or deleted and restored). */
  | 'not_current';

const MSG_MALFORMED = 'sealed secret record is malformed';
const MSG_OPEN_FAILED = 'sealed secret could not be opened';

/**
 * A sealed secret failed validation or authentication. The message is deliberately generic; the
 * `reason` is safe to log and to count in metrics, never to show a tenant as an oracle.
 */
export class SealedSecretError extends Error {
  override readonly name: string = 'SealedSecretError';
  readonly reason: SealedSecretErrorReason;

  constructor(reason: SealedSecretErrorReason, message?: string) {
    super(message ?? (reason === 'malformed' ? MSG_MALFORMED : MSG_OPEN_FAILED));
    this.reason = reason;
  }
}

/** Whose fingerprints a fingerprint key makes: one key per region, tenant and provider. */
export interface FingerprintScope {
  readonly region: string;
  readonly tenant: string;
  readonly provider: string;
}

/**
 * The fingerprint key of one (region, tenant, provider):
 * HMAC-SHA256(regional pepper, canonicalEncode(FINGERPRINT_KEY_DOMAIN, [region, tenant, provider])).
 * The caller zero-fills it after use.
 */
export function fingerprintKeyOf(pepper: Buffer, scope: FingerprintScope): Buffer {
  if (!Buffer.isBuffer(pepper) || pepper.length < 32) throw new Error('fingerprintKeyOf: the pepper must be at least 32 bytes');
  const info = canonicalEncode(FINGERPRINT_KEY_DOMAIN, [
    ['region', scope.region],
    ['tenant', scope.tenant],
    ['provider', scope.provider],
  ]);
  return createHmac('sha256', pepper).update(info).digest();
}

/**
 * 'hmac:' + first 16 hex of HMAC-SHA256(fingerprint key, plaintext). Keyed per tenant and
 * provider, so the same provider key stored by two tenants (or for two providers) shows two
 * unrelated values, and a table reader cannot test a guessed key against it without the pepper.
 */
export function fingerprintOf(plaintext: Buffer, fingerprintKey: Buffer): string {
  if (!Buffer.isBuffer(fingerprintKey) || fingerprintKey.length !== 32) throw new Error('fingerprintOf: the fingerprint key must be 32 bytes');
  return 'hmac:' + createHmac('sha256', fingerprintKey).update(plaintext).digest('hex').slice(0, 16);
}

/** The pre-v2 unkeyed fingerprint, for reading old records and tests only. */
export function legacyFingerprintOf(plaintext: Buffer): string {
  return 'sha256:' + createHash('sha256').update(FINGERPRINT_DOMAIN, 'utf8').update(plaintext).digest('hex').slice(0, 12);
}

/**
 * Sovereign mode: the factor of one secret version, Fv = HMAC-SHA256(F, domain ‖ identity ‖ salt).
 * The salt is new for every version and lives only in the tenant META, so after a rotation an old
 * row cannot derive its key from the tenant's current state, even with KMS and a live token.
 */
export function secretFactorOf(tenantFactor: Buffer, info: Buffer, versionSalt: Buffer): Buffer {
  return ownCopy(secretFactorMac(tenantFactor, info, versionSalt));
}

function secretFactorMac(tenantFactor: Buffer, info: Buffer, versionSalt: Buffer): Buffer {
  return createHmac('sha256', tenantFactor).update(SECRET_FACTOR_DOMAIN_BYTES).update(info).update(versionSalt).digest();
}

/** digest() may return a slice of a pooled buffer: a copy we own (and can zero), the digest zeroed. */
function ownCopy(mac: Buffer): Buffer {
  const out = Buffer.alloc(mac.length);
  mac.copy(out);
  mac.fill(0);
  return out;
}

/**
 * v2: the erasure factor of one secret, Ev = HMAC-SHA256(E, domain ‖ identity). Without the
 * tenant's E (destroyed at offboarding) no secret key of the tenant can be derived.
 */
export function erasureFactorOf(erasureKey: Buffer, info: Buffer): Buffer {
  return ownCopy(erasureMac(erasureKey, info));
}

function erasureMac(erasureKey: Buffer, info: Buffer): Buffer {
  return createHmac('sha256', erasureKey).update(ERASURE_FACTOR_DOMAIN_BYTES).update(info).digest();
}

/**
 * HKDF over DK (‖ Fv) (‖ Ev): v1 has no Ev and its own salt, v2 always has Ev. The input key
 * material is built in one buffer of ours (each factor's digest written straight into it and
 * zeroed), and everything here is zeroed here.
 */
function deriveSecretKey(
  formatVersion: 1 | 2,
  dataKey: Buffer,
  sovereign: { factor: Buffer; salt: Buffer } | undefined,
  erasureKey: Buffer | undefined,
  info: Buffer,
): Buffer {
  if (formatVersion === 2 && (!Buffer.isBuffer(erasureKey) || erasureKey.length !== ERASURE_KEY_BYTES)) throw new SealedSecretError('erasure_key');
  // DK, then Fv (sovereign), then Ev (v2): 32 bytes each.
  const ikm = Buffer.alloc(dataKey.length + (sovereign ? 32 : 0) + (formatVersion === 2 ? 32 : 0));
  try {
    let at = dataKey.copy(ikm, 0);
    if (sovereign) at += moveInto(secretFactorMac(sovereign.factor, info, sovereign.salt), ikm, at);
    if (formatVersion === 2) moveInto(erasureMac(erasureKey!, info), ikm, at);
    return hkdfSha256(ikm, formatVersion === 2 ? SECRET_KEY_SALT : LEGACY_SECRET_KEY_SALT, info);
  } finally {
    ikm.fill(0);
  }
}

/** Copies a digest into `into` at `at` and zeroes the digest; the bytes copied. */
function moveInto(mac: Buffer, into: Buffer, at: number): number {
  const n = mac.copy(into, at);
  mac.fill(0);
  return n;
}

/** Both or neither: a tenant factor (32 bytes) and its version salt (32 bytes). */
function sovereignInputs(f: Buffer | undefined, salt: Buffer | undefined): { factor: Buffer; salt: Buffer } | undefined {
  if (f !== undefined && (!Buffer.isBuffer(f) || f.length !== TENANT_FACTOR_BYTES)) {
    throw new SealedSecretError('tenant_factor');
  }
  if (f === undefined) {
    if (salt !== undefined) throw new SealedSecretError('version_salt');
    return undefined;
  }
  if (!Buffer.isBuffer(salt) || salt.length !== VERSION_SALT_BYTES) throw new SealedSecretError('version_salt');
  return { factor: f, salt };
}

export interface SealOptions {
  identity: SecretIdentity;
  /** Owned by the caller, who zero-fills it after sealing. */
  plaintext: Buffer;
  dataKeys: DataKeyService;
  /** Present only in sovereign mode (32 bytes). */
  tenantFactor?: Buffer;
  /** Sovereign mode only, required there: this version's 32 random bytes, stored in the tenant META. */
  versionSalt?: Buffer;
  /** fingerprintKeyOf(pepper, {region, tenant, provider}); the caller zero-fills it. */
  fingerprintKey: Buffer;
  /** The tenant's erasure key (32 bytes, from the erasure-key table); the caller zero-fills it. */
  erasureKey: Buffer;
  clock?: Clock;
  /** Tests and vectors only. */
  iv?: Buffer;
}

export async function sealSecret(opts: SealOptions): Promise<SealedSecret> {
  const { identity, plaintext, dataKeys, tenantFactor } = opts;
  const aad = canonicalIdentity(identity);
  const context = encryptionContextOf(identity);
  if (!Buffer.isBuffer(plaintext) || plaintext.length === 0) throw new Error('sealSecret: plaintext must be a non-empty Buffer');
  const sovereign = sovereignInputs(tenantFactor, opts.versionSalt);
  if (!Buffer.isBuffer(opts.erasureKey) || opts.erasureKey.length !== ERASURE_KEY_BYTES) throw new SealedSecretError('erasure_key');
  const iv = opts.iv ?? randomBytes(GCM_IV_BYTES);
  if (iv.length !== GCM_IV_BYTES) throw new Error('sealSecret: iv must be 12 bytes');
  const createdAt = (opts.clock ?? systemClock).now().toISOString();

  const generated = await dataKeys.generateDataKey(context);
  let secretKey: Buffer | undefined;
  try {
    if (generated.plaintext.length !== DATA_KEY_BYTES) throw new Error('sealSecret: data key must be 32 bytes');
    secretKey = deriveSecretKey(SEALED_SECRET_FORMAT_VERSION, generated.plaintext, sovereign, opts.erasureKey, aad);
    const { ciphertext, tag } = aesGcmSeal(secretKey, iv, aad, plaintext);
    return {
      formatVersion: SEALED_SECRET_FORMAT_VERSION,
      algorithm: SEALED_SECRET_ALGORITHM,
      keyArn: generated.keyArn,
      wrappedKey: Buffer.from(generated.wrapped).toString('base64'),
      iv: iv.toString('base64'),
      ciphertext: ciphertext.toString('base64'),
      tag: tag.toString('base64'),
      region: identity.region,
      tenant: identity.tenant,
      provider: identity.provider,
      secret: identity.secret,
      version: identity.version,
      sovereign: tenantFactor !== undefined,
      fingerprint: fingerprintOf(plaintext, opts.fingerprintKey),
      createdAt,
    };
  } finally {
    zeroize(generated.plaintext, secretKey);
  }
}

export interface OpenOptions<T> {
  record: SealedSecret;
  expected: SecretIdentity;
  dataKeys: DataKeyService;
  tenantFactor?: Buffer;
  /**
   * Sovereign mode only, required there: the salt the tenant META records for the expected
   * version (never a value read from the row itself).
   */
  versionSalt?: Buffer;
  /**
   * The tenant's erasure key, required for v2 rows (without it they never open: the tenant was
   * offboarded), ignored for v1 rows. The caller zero-fills it.
   */
  erasureKey?: Buffer;
  /**
   * Receives the plaintext for the duration of the call only: it is zero-filled as soon as `use`
   * settles. Turn it into a header string at the last moment; never keep the Buffer.
   */
  use: (plaintext: Buffer) => T | Promise<T>;
}

/**
 * Open a sealed secret. All local checks (shape, identity, mode) run before the one KMS call.
 * Errors from DataKeyService propagate unchanged so callers can tell KMS throttling or denial
 * from a bad record; errors thrown by `use` propagate unchanged as well.
 */
export async function openSecret<T>(opts: OpenOptions<T>): Promise<T> {
  // A row from parseSealedRow is frozen and was checked and decoded once; any other is checked here.
  const known = DECODED.get(opts.record);
  const { record, bytes } = known ? { record: opts.record, bytes: known } : parseRow(opts.record);
  const { expected, tenantFactor } = opts;
  const matches =
    record.region === expected.region &&
    record.tenant === expected.tenant &&
    record.provider === expected.provider &&
    record.secret === expected.secret &&
    record.version === expected.version;
  // A checked row that names exactly the expected identity: its binding is kept with the row.
  const { aad, context } = known && matches ? bindingOfRow(record, expected) : identityBinding(expected);
  if (!matches) throw new SealedSecretError('identity_mismatch');
  if (record.sovereign !== (tenantFactor !== undefined)) throw new SealedSecretError('mode_mismatch');
  const sovereign = sovereignInputs(tenantFactor, opts.versionSalt);
  // Refused before KMS: a v2 row whose tenant has no erasure key any more cannot open.
  if (record.formatVersion === 2 && (!Buffer.isBuffer(opts.erasureKey) || opts.erasureKey.length !== ERASURE_KEY_BYTES)) {
    throw new SealedSecretError('erasure_key');
  }
  const { wrapped, iv, ciphertext, tag } = bytes;

  let dataKey: Buffer | undefined;
  let secretKey: Buffer | undefined;
  let plaintext: Buffer | undefined;
  try {
    // An in-process key service answers without a promise turn (ports.ts); KMS is awaited.
    const keys = opts.dataKeys;
    dataKey = keys.decryptDataKeyNow !== undefined ? keys.decryptDataKeyNow(wrapped, context, record.keyArn) : await keys.decryptDataKey(wrapped, context, record.keyArn);
    if (!Buffer.isBuffer(dataKey) || dataKey.length !== DATA_KEY_BYTES) throw new SealedSecretError('bad_data_key');
    secretKey = deriveSecretKey(record.formatVersion, dataKey, sovereign, opts.erasureKey, aad);
    try {
      plaintext = aesGcmOpen(secretKey, iv, aad, ciphertext, tag);
    } catch {
      throw new SealedSecretError('integrity');
    }
    // The fingerprint is display metadata outside the AAD, keyed with the pepper; it is not
    // checked here, so a pepper rotation never makes a secret unopenable.
    return await opts.use(plaintext);
  } finally {
    zeroize(dataKey, secretKey, plaintext);
  }
}

/**
 * identityBinding(expected) for a row from parseSealedRow whose identity fields are exactly (===)
 * the expected ones: the row's fields are primitives of the right types (parseRow checked them),
 * so the binding is a function of the row and `app`, and is kept with the (frozen) row, by
 * identity, for as long as the row lives. A different or non-string `app` is bound afresh.
 */
function bindingOfRow(row: Readonly<SealedSecret>, expected: SecretIdentity): { readonly aad: Buffer; readonly context: EncryptionContext } {
  const kept = rowBindings.get(row);
  if (kept !== undefined && typeof expected.app === 'string' && kept.app === expected.app) return kept.binding;
  const binding = identityBinding(expected);
  if (typeof expected.app === 'string') rowBindings.set(row, { app: expected.app, binding });
  return binding;
}
const rowBindings = new WeakMap<object, { readonly app: string; readonly binding: { readonly aad: Buffer; readonly context: EncryptionContext } }>();

/** Bound on the identity memo (a bound on memory: when full it is emptied, not evicted by age). */
const IDENTITY_MEMO_ENTRIES = 1_000;
const identityMemo = new BoundedMemo<{ readonly aad: Buffer; readonly context: EncryptionContext }>(IDENTITY_MEMO_ENTRIES);

/**
 * The AAD (canonicalIdentity: also the HKDF info) and the KMS encryption context of an identity,
 * kept per identity: both are pure functions of its six non-secret fields, the same for every
 * request that opens that (tenant, provider, secret, version). The key is the JSON text of exactly
 * those fields, which must be primitives (types kept: a version 1 and a version '1' differ), so any
 * change misses; only identities that passed assertSecretIdentity are kept. The AAD buffer never leaves this module
 * and nothing here writes to it; the context is frozen.
 */
function identityBinding(id: SecretIdentity): { readonly aad: Buffer; readonly context: EncryptionContext } {
  // The JSON text is exact only for primitives: a String object or a toJSON writes a string's text
  // (and `app` is not compared with the row), so any other type is checked (and refused) as before.
  if (
    typeof id.app !== 'string' ||
    typeof id.region !== 'string' ||
    typeof id.tenant !== 'string' ||
    typeof id.provider !== 'string' ||
    typeof id.secret !== 'string' ||
    typeof id.version !== 'number'
  ) {
    return { aad: canonicalIdentity(id), context: encryptionContextOf(id) };
  }
  const key = JSON.stringify([id.app, id.region, id.tenant, id.provider, id.secret, id.version]);
  let hit = identityMemo.get(key);
  if (hit !== undefined) return hit;
  hit = { aad: canonicalIdentity(id), context: encryptionContextOf(id) };
  identityMemo.set(key, hit);
  return hit;
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z$/;
const FINGERPRINT = /^(hmac:[0-9a-f]{16}|sha256:[0-9a-f]{12})$/;

/**
 * Runtime validator for records read from storage. Returns a fresh object holding only the
 * format's fields (storage keys such as pk/sk are dropped). Throws SealedSecretError('malformed').
 */
export function parseSealedSecret(item: unknown): SealedSecret {
  return parseRow(item).record;
}

/** The decoded (non-secret) bytes of a row: wrapped data key, IV, ciphertext, tag. */
interface SealedBytes {
  readonly wrapped: Buffer;
  readonly iv: Buffer;
  readonly ciphertext: Buffer;
  readonly tag: Buffer;
}

/** Rows from parseSealedRow (frozen, so what was checked is what is opened) and their bytes. */
const DECODED = new WeakMap<object, SealedBytes>();

/**
 * parseSealedSecret for a row about to be opened (the router): the result is frozen and openSecret
 * uses it without checking and decoding it a second time. The same row text gives the same frozen
 * result (parsedRows below), so a row read on every request is parsed once.
 */
export function parseSealedRow(item: unknown): Readonly<SealedSecret> {
  // A shared row (shared-rows.ts: deeply frozen, one object per unchanged row) is kept by identity,
  // without building its text key.
  const shared = isSharedRow(item);
  if (shared) {
    const kept = sealedOfRows.get(item);
    if (kept !== undefined) return kept;
  }
  const key = shared ? undefined : rowKey(item);
  const known = key === undefined ? undefined : parsedRows.get(key);
  if (known !== undefined) return known;
  const { record, bytes } = parseRow(item);
  Object.freeze(record);
  DECODED.set(record, bytes);
  if (shared) sealedOfRows.set(item as object, record);
  else if (key !== undefined) parsedRows.set(key, record);
  return record;
}

/** Parsed shared rows, by row (gone with the row object). */
const sealedOfRows = new WeakMap<object, Readonly<SealedSecret>>();

/**
 * Rows parsed before, by the exact text of every field parseRow reads (a row is read on every
 * request that opens it, unchanged until the secret is rotated). Only rows that parsed are kept;
 * any change to any field is another key, so it is parsed (and checked) again. What is kept is
 * what a stored row holds anyway: no plaintext, no data key. openSecret's checks (identity
 * against the expected one, META's version, mode, AAD) run on every open, memo or not.
 */
const PARSED_ROWS = 1_000;
/**
 * And in characters of key text: a row as the vault writes it is about 1 Ki characters, but a table
 * writer can make rows of about 33 Ki (parseRow's field limits), and 1,000 of those (key, the row's
 * strings, the decoded bytes) were about 100 MB. This keeps the memo near 10 MB whatever the rows.
 */
const PARSED_ROWS_CHARS = 4 * 1024 * 1024;
const parsedRows = new BoundedMemo<Readonly<SealedSecret>>(PARSED_ROWS, PARSED_ROWS_CHARS);

/** The memo key of a row, or undefined when a field has a type no valid row has (then it is parsed as is). */
function rowKey(item: unknown): string | undefined {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) return undefined;
  const r = item as Record<string, unknown>;
  const texts = [r.algorithm, r.keyArn, r.wrappedKey, r.iv, r.ciphertext, r.tag, r.region, r.tenant, r.provider, r.secret, r.fingerprint, r.createdAt];
  for (const t of texts) if (typeof t !== 'string') return undefined;
  if (typeof r.formatVersion !== 'number' || typeof r.version !== 'number' || typeof r.sovereign !== 'boolean') return undefined;
  if (r.rotatedAt !== undefined && typeof r.rotatedAt !== 'string') return undefined;
  // JSON text: every string quoted and escaped, so no two different field lists share a key; an
  // absent rotatedAt is null (a present one is a string); a non-finite number becomes null, which
  // no kept row has where a number belongs.
  return JSON.stringify([r.formatVersion, r.version, r.sovereign, r.rotatedAt ?? null, ...texts]);
}

function parseRow(item: unknown): { record: SealedSecret; bytes: SealedBytes } {
  const fail = (): never => {
    throw new SealedSecretError('malformed');
  };
  if (typeof item !== 'object' || item === null || Array.isArray(item)) return fail();
  const r = item as Record<string, unknown>;
  const str = (k: string, maxLen = 2048): string => {
    const v = r[k];
    return typeof v === 'string' && v.length > 0 && v.length <= maxLen ? v : fail();
  };
  const decoded: Record<string, Buffer> = {};
  const b64 = (k: 'wrappedKey' | 'iv' | 'ciphertext' | 'tag', exactBytes?: number): string => {
    const v = str(k, 16384);
    const bytes = decodeBase64Strict(v);
    if (bytes === undefined || bytes.length === 0) return fail();
    if (exactBytes !== undefined && bytes.length !== exactBytes) return fail();
    decoded[k] = bytes;
    return v;
  };
  const time = (k: string): string => {
    const v = str(k, 64);
    return ISO_TIME.test(v) && !Number.isNaN(Date.parse(v)) ? v : fail();
  };

  // Version and algorithm go together; anything else is refused before any KMS call.
  const v2 = r.formatVersion === SEALED_SECRET_FORMAT_VERSION && r.algorithm === SEALED_SECRET_ALGORITHM;
  const v1 = r.formatVersion === LEGACY_FORMAT_VERSION && r.algorithm === LEGACY_ALGORITHM;
  if (!v1 && !v2) fail();
  const version = r.version;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) fail();
  if (typeof r.sovereign !== 'boolean') fail();
  const fingerprint = str('fingerprint', 64);
  if (!FINGERPRINT.test(fingerprint)) fail();

  // Plain properties: a literal spread first puts the object on V8's slow path (about 10 µs here).
  const out: SealedSecret = {
    formatVersion: v2 ? SEALED_SECRET_FORMAT_VERSION : LEGACY_FORMAT_VERSION,
    algorithm: v2 ? SEALED_SECRET_ALGORITHM : LEGACY_ALGORITHM,
    keyArn: str('keyArn'),
    wrappedKey: b64('wrappedKey'),
    iv: b64('iv', GCM_IV_BYTES),
    ciphertext: b64('ciphertext'),
    tag: b64('tag', GCM_TAG_BYTES),
    region: str('region', 128),
    tenant: str('tenant', 128),
    provider: str('provider', 128),
    secret: str('secret', 128),
    version: version as number,
    sovereign: r.sovereign as boolean,
    fingerprint,
    createdAt: time('createdAt'),
  };
  if (r.rotatedAt !== undefined) out.rotatedAt = time('rotatedAt');
  return { record: out, bytes: { wrapped: decoded.wrappedKey, iv: decoded.iv, ciphertext: decoded.ciphertext, tag: decoded.tag } };
}
