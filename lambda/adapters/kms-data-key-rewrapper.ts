import { ReEncryptCommand, type KMSClient } from '@aws-sdk/client-kms';
import type { DataKeyRewrapper, EncryptionContext } from '../core/ports';
import { acceptedRootKeys, callKms, KeyServiceError } from './kms-data-key-service';

/**
 * Root-key migration through KMS ReEncrypt: KMS decrypts under the source key and encrypts under
 * the target key internally, so the caller (whose role holds kms:ReEncryptFrom/To and no
 * kms:Decrypt) never sees a plaintext data key. Source and destination context are the same.
 */
export class KmsDataKeyRewrapper implements DataKeyRewrapper {
  private readonly sources: ReadonlySet<string>;

  constructor(
    private readonly client: KMSClient,
    /** The cell's current root key. */
    readonly targetKeyArn: string,
    /** The root keys data keys are moved away from. */
    sourceKeyArns: readonly string[],
  ) {
    const accepted = acceptedRootKeys(targetKeyArn, sourceKeyArns, 'KmsDataKeyRewrapper');
    this.sources = new Set([...accepted].filter((k) => k !== targetKeyArn));
  }

  async rewrap(wrapped: Buffer, context: EncryptionContext, fromKeyArn: string): Promise<Buffer> {
    if (!this.sources.has(fromKeyArn)) throw new KeyServiceError('denied', 'ReEncrypt');
    if (wrapped.length === 0) throw new KeyServiceError('invalid_ciphertext', 'ReEncrypt');
    const out = await callKms('ReEncrypt', () =>
      this.client.send(
        new ReEncryptCommand({
          CiphertextBlob: wrapped,
          // SourceKeyId pins the source: a blob of any other key fails instead of being moved.
          SourceKeyId: fromKeyArn,
          SourceEncryptionContext: { ...context },
          DestinationKeyId: this.targetKeyArn,
          DestinationEncryptionContext: { ...context },
        }),
      ),
    );
    if (!out.CiphertextBlob?.length || out.KeyId !== this.targetKeyArn || (out.SourceKeyId !== undefined && out.SourceKeyId !== fromKeyArn)) {
      throw new KeyServiceError('unavailable', 'ReEncrypt');
    }
    return Buffer.from(out.CiphertextBlob);
  }
}
