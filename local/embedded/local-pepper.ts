/**
 * The local gateway's verifier pepper, standing in for the Secrets Manager secret: 48 random
 * bytes, base64url, in `<state dir>/pepper` (mode 0600), read once. Like the deployed pepper it
 * is not tenant plaintext, so it is kept in memory for the life of the process.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MIN_PEPPER_BYTES, PepperError } from '../../lambda/adapters/secrets-manager-pepper';
import type { PepperSource } from '../../lambda/core/ports';

const PEPPER_FILE = 'pepper';

export class LocalPepper implements PepperSource {
  private readonly pepper: Buffer;

  constructor(value: string) {
    this.pepper = Buffer.from(value, 'utf8');
    if (this.pepper.length < MIN_PEPPER_BYTES) throw new PepperError('invalid', `the local pepper is shorter than ${MIN_PEPPER_BYTES} bytes`);
  }

  /** The pepper of a state directory, created on first use, or a new in-memory one. */
  static open(dir?: string): LocalPepper {
    if (!dir) return new LocalPepper(randomBytes(48).toString('base64url'));
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, PEPPER_FILE);
    if (!existsSync(file)) writeFileSync(file, randomBytes(48).toString('base64url'), { mode: 0o600, flag: 'wx' });
    chmodSync(file, 0o600);
    return new LocalPepper(readFileSync(file, 'utf8'));
  }

  /** A copy: a caller that zero-fills its pepper must not wipe this one. */
  async getPepper(): Promise<Buffer> {
    return Buffer.from(this.pepper);
  }
}
