import { GenerateMacCommand, VerifyMacCommand, type KMSClient } from '@aws-sdk/client-kms';
import type { AuditMac } from '../core/ports';
import { awsErrorName } from './aws-errors';

const KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/(?!mrk-)[A-Za-z0-9-]+$/;
const MAX_MESSAGE_BYTES = 4096;

/** The audit key failed for a reason other than a wrong MAC; carries only the AWS error code. */
export class AuditKeyError extends Error {
  override readonly name = 'AuditKeyError';
  constructor(readonly operation: 'GenerateMac' | 'VerifyMac', readonly awsCode?: string) {
    super(`KMS ${operation} failed${awsCode ? ` (${awsCode})` : ''}`);
  }
}

/** The cell's HMAC_256 audit key through KMS GenerateMac / VerifyMac (HMAC_SHA_256). */
export class KmsAuditMac implements AuditMac {
  constructor(
    private readonly client: KMSClient,
    private readonly keyArn: string,
  ) {
    if (!KEY_ARN.test(keyArn)) throw new Error('KmsAuditMac needs the full ARN of a single-Region KMS HMAC key (not an alias)');
  }

  async generate(message: Buffer): Promise<Buffer> {
    if (message.length === 0 || message.length > MAX_MESSAGE_BYTES) throw new Error('audit MAC message must be 1-4096 bytes');
    let mac: Uint8Array | undefined;
    try {
      ({ Mac: mac } = await this.client.send(new GenerateMacCommand({ KeyId: this.keyArn, MacAlgorithm: 'HMAC_SHA_256', Message: message })));
    } catch (err) {
      throw new AuditKeyError('GenerateMac', awsErrorName(err));
    }
    if (!mac || mac.length !== 32) throw new AuditKeyError('GenerateMac');
    return Buffer.from(mac);
  }

  async verify(message: Buffer, mac: Buffer): Promise<boolean> {
    if (message.length === 0 || message.length > MAX_MESSAGE_BYTES || mac.length !== 32) return false;
    try {
      const out = await this.client.send(new VerifyMacCommand({ KeyId: this.keyArn, MacAlgorithm: 'HMAC_SHA_256', Message: message, Mac: mac }));
      return out.MacValid === true;
    } catch (err) {
      // KMS answers a wrong MAC with an exception, not with MacValid false.
      if (awsErrorName(err) === 'KMSInvalidMacException') return false;
      throw new AuditKeyError('VerifyMac', awsErrorName(err));
    }
  }
}
