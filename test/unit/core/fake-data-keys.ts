/**
 * In-memory stand-in for KMS GenerateDataKey/Decrypt. Like KMS (and moto), it binds the
 * encryption context: the data key is AES-GCM-wrapped under a root key with the context as AAD,
 * here serialized as JSON with sorted keys (unambiguous, unlike moto's delimiter-free join).
 * It counts calls and remembers every plaintext data key it hands out, so tests can assert that
 * the caller zero-filled them.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { DataKeyService, EncryptionContext, GeneratedDataKey } from '../../../lambda/core/ports';

export class FakeKmsError extends Error {
  constructor(readonly code: 'InvalidCiphertextException' | 'IncorrectKeyException') {
    super(code);
    this.name = code;
  }
}

export interface FakeDataKeysOptions {
  region?: string;
  rootKey?: Buffer;
  /** Every generated data key equals this (copied per call). */
  fixedDataKey?: Buffer;
  /** Fixed IV for wrapping, to make wrapped blobs deterministic (vectors only). */
  wrapIv?: Buffer;
}

export function canonicalJson(ctx: EncryptionContext): string {
  return JSON.stringify(Object.fromEntries(Object.entries(ctx).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
}

export class FakeDataKeys implements DataKeyService {
  readonly keyArn: string;
  generateCalls = 0;
  decryptCalls = 0;
  readonly contexts: EncryptionContext[] = [];
  /** Every plaintext data key returned to a caller. */
  readonly issued: Buffer[] = [];
  private readonly rootKey: Buffer;

  constructor(private readonly opts: FakeDataKeysOptions = {}) {
    const region = opts.region ?? 'eu-central-1';
    this.keyArn = `arn:aws:kms:${region}:111122223333:key/0b5e8f2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b`;
    this.rootKey = opts.rootKey ?? randomBytes(32);
  }

  async generateDataKey(context: EncryptionContext): Promise<GeneratedDataKey> {
    this.generateCalls++;
    this.contexts.push({ ...context });
    const plaintext = this.opts.fixedDataKey ? Buffer.from(this.opts.fixedDataKey) : randomBytes(32);
    const iv = this.opts.wrapIv ?? randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.rootKey, iv);
    c.setAAD(Buffer.from(canonicalJson(context)));
    const ct = Buffer.concat([c.update(plaintext), c.final()]);
    const wrapped = Buffer.concat([iv, c.getAuthTag(), ct]);
    this.issued.push(plaintext);
    return { plaintext, wrapped, keyArn: this.keyArn };
  }

  async decryptDataKey(wrapped: Buffer, context: EncryptionContext, keyArn: string): Promise<Buffer> {
    this.decryptCalls++;
    this.contexts.push({ ...context });
    if (keyArn !== this.keyArn) throw new FakeKmsError('IncorrectKeyException');
    if (wrapped.length !== 12 + 16 + 32) throw new FakeKmsError('InvalidCiphertextException');
    const d = createDecipheriv('aes-256-gcm', this.rootKey, wrapped.subarray(0, 12));
    d.setAAD(Buffer.from(canonicalJson(context)));
    d.setAuthTag(wrapped.subarray(12, 28));
    let plaintext: Buffer;
    try {
      plaintext = Buffer.concat([d.update(wrapped.subarray(28)), d.final()]);
    } catch {
      throw new FakeKmsError('InvalidCiphertextException');
    }
    this.issued.push(plaintext);
    return plaintext;
  }

  allIssuedZeroed(): boolean {
    return this.issued.every((b) => b.every((x) => x === 0));
  }
}
