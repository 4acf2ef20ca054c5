/**
 * Ports: what the pure core needs from the outside world. Adapters in lambda/adapters implement
 * them with an injected AWS SDK client; tests implement them with fakes.
 */

/** KMS encryption context: string pairs bound to a data key. */
export type EncryptionContext = Readonly<Record<string, string>>;

export interface GeneratedDataKey {
  /** 32-byte plaintext data key. The caller zero-fills it when done. */
  readonly plaintext: Buffer;
  /** The data key wrapped by the regional root key (KMS CiphertextBlob). */
  readonly wrapped: Buffer;
  /** ARN of the KMS key that wrapped it. */
  readonly keyArn: string;
}

/** The regional root key, seen through KMS. */
export interface DataKeyService {
  /** KMS GenerateDataKey (AES_256) with the given encryption context. */
  generateDataKey(context: EncryptionContext): Promise<GeneratedDataKey>;
  /** KMS Decrypt of a wrapped data key; fails unless the context matches exactly. */
  decryptDataKey(wrapped: Buffer, context: EncryptionContext, keyArn: string): Promise<Buffer>;
  /**
   * decryptDataKey without a promise, offered only by a key service that answers in this process
   * (the local gateway's emulated root key): the same checks and the same result, its errors
   * thrown instead of rejected. Remote services (KMS) have none, and callers then await
   * decryptDataKey. The caller owns (and zero-fills) the result, as with decryptDataKey.
   */
  decryptDataKeyNow?(wrapped: Buffer, context: EncryptionContext, keyArn: string): Buffer;
}

/** One version of the region's pepper. Versions count up from 1 (the pepper a cell was created with). */
export interface PepperVersion {
  readonly version: number;
  /** The key bytes (a copy: the caller may zero-fill it). */
  readonly pepper: Buffer;
}

/**
 * The peppers a verifier may be under: the current one and, during the overlap after a rotation
 * (until the next rotation), the previous one. See lambda/core/pepper-ring.ts.
 */
export interface PepperRing {
  readonly current: PepperVersion;
  /** Version current - 1, while it is still accepted. */
  readonly previous?: PepperVersion;
  /**
   * The version new and upgraded verifiers are written under: current once every process can
   * know it (the adapter's cache lifetime after the rotation), previous until then, so a token
   * issued or upgraded right after a rotation still verifies on a process with the older cache.
   */
  readonly issuing: number;
  /** When the current version was created (ISO 8601), if known (not for the first pepper). */
  readonly rotatedAt?: string;
}

/**
 * Moves a wrapped data key from a previous root key to the current one inside KMS (ReEncrypt),
 * under the same encryption context. No plaintext data key ever reaches the caller.
 */
export interface DataKeyRewrapper {
  /** The key every rewrapped data key ends up under (the cell's current root key). */
  readonly targetKeyArn: string;
  /** The blob wrapped under `targetKeyArn`; fails unless `wrapped` is `fromKeyArn`'s under exactly `context`. */
  rewrap(wrapped: Buffer, context: EncryptionContext, fromKeyArn: string): Promise<Buffer>;
}

/** The region's pepper for API-key verifiers (Secrets Manager). Not tenant plaintext: may be cached. */
export interface PepperSource {
  /** The current pepper (keys the secret fingerprints). */
  getPepper(): Promise<Buffer>;
  /** Current and previous pepper, for verifying and issuing tokens. */
  getPeppers(): Promise<PepperRing>;
  /**
   * What getPeppers would give, without a promise, when the ring is already in memory and
   * current (no read needed); undefined otherwise, and then the caller awaits getPeppers. The
   * router asks this on every request: an await costs a microtask turn even on a cached value.
   */
  peppersNow?(): PepperRing | undefined;
}

/** A rotation that did not happen because the current version is not the expected one. */
export class PepperRotationConflict extends Error {
  override readonly name = 'PepperRotationConflict';
  constructor(readonly currentVersion: number) {
    super(`The pepper is at version ${currentVersion}, not the version this rotation started from; read the status and retry.`);
  }
}

/** Operator side of the pepper (admin function, local gateway): rotation. */
export interface PepperRotator {
  /**
   * Makes a new random pepper version `expectedCurrent + 1` current and `expectedCurrent` the
   * previous one; the version before that stops being accepted. PepperRotationConflict when the
   * current version is not `expectedCurrent` (another rotation won), so two operators cannot
   * rotate twice by accident.
   */
  rotate(expectedCurrent: number): Promise<{ readonly version: number; readonly rotatedAt: string }>;
}

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/**
 * The cell's audit MAC key (KMS HMAC_256, GENERATE_VERIFY_MAC). Writers of the audit trail may
 * only generate MACs; the verifier checks them. Table writers hold neither.
 */
export interface AuditMac {
  /** HMAC-SHA256 of `message` (at most 4096 bytes) under the audit key. */
  generate(message: Buffer): Promise<Buffer>;
  /** True if `mac` is the audit key's MAC of `message`; false for any other MAC. */
  verify(message: Buffer, mac: Buffer): Promise<boolean>;
}

/** A chain head written outside the tables, once: event `seq` of `tenantId` has MAC `mac`. */
export interface AuditAnchor {
  readonly tenantId: string;
  readonly seq: number;
  /** hex MAC of the anchored event. */
  readonly mac: string;
  readonly at: string;
}

/** An anchor as the store holds it, with what a write-once store can tell about its history. */
export interface StoredAuditAnchor {
  /** The first version written under this (tenant, seq); later writes never replace it here. */
  readonly anchor: AuditAnchor | undefined;
  readonly seq: number;
  /** Versions (and delete markers) beyond the first: any is an attempt to rewrite the anchor. */
  readonly laterVersions: number;
  /** The first version could not be parsed as an anchor of this (tenant, seq). */
  readonly malformed: boolean;
}

/** Write-once storage of chain heads (S3 Object Lock in a cell; files locally). */
export interface AuditAnchors {
  /**
   * Writes the anchor if none exists for (tenant, seq). An existing anchor is never replaced:
   * AnchorExistsError if one is there already.
   */
  put(anchor: AuditAnchor): Promise<void>;
  /** Every anchor of the tenant, ascending by seq. */
  list(tenantId: string): Promise<StoredAuditAnchor[]>;
}

/** An anchor for this (tenant, seq) exists already; it was left as it was. */
export class AnchorExistsError extends Error {
  override readonly name = 'AnchorExistsError';
}
