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
}

/** The region's pepper for API-key verifiers (Secrets Manager). Not tenant plaintext: may be cached. */
export interface PepperSource {
  getPepper(): Promise<Buffer>;
}

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
