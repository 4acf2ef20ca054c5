import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { AuditMac } from '../core/ports';

const KEY_BYTES = 32;
const MAX_MESSAGE_BYTES = 4096;

/**
 * The embedded audit key: HMAC-SHA256 in process, with a 32-byte key kept in memory or in a file
 * (mode 0600) of the local state directory. The same contract as KMS GenerateMac / VerifyMac, but
 * whoever can read the state directory holds the key: a developer's gateway, not a cell.
 */
export class LocalAuditMac implements AuditMac {
  private constructor(private readonly key: Buffer) {}

  /** A key that lives as long as the process. */
  static inMemory(): LocalAuditMac {
    return new LocalAuditMac(randomBytes(KEY_BYTES));
  }

  /** The key in `file`, created (0600) on first use. */
  static fromFile(file: string): LocalAuditMac {
    if (!existsSync(file)) {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      writeFileSync(file, randomBytes(KEY_BYTES).toString('hex'), { mode: 0o600, flag: 'wx' });
    }
    chmodSync(file, 0o600);
    const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
    if (key.length !== KEY_BYTES) throw new Error(`${file} does not hold a ${KEY_BYTES}-byte audit key`);
    return new LocalAuditMac(key);
  }

  async generate(message: Buffer): Promise<Buffer> {
    if (message.length === 0 || message.length > MAX_MESSAGE_BYTES) throw new Error('audit MAC message must be 1-4096 bytes');
    return createHmac('sha256', this.key).update(message).digest();
  }

  async verify(message: Buffer, mac: Buffer): Promise<boolean> {
    if (message.length === 0 || message.length > MAX_MESSAGE_BYTES || mac.length !== 32) return false;
    return timingSafeEqual(createHmac('sha256', this.key).update(message).digest(), mac);
  }
}
