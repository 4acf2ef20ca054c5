/**
 * The local gateway's emulated root key, standing in for the regional KMS key: AES-256-GCM over
 * each 32-byte data key, with the encryption context bound as AAD. The context is serialized with
 * the project's canonical, length-prefixed encoding (pairs sorted by name, as KMS treats a
 * context as a set), so a context that differs in any key or value, or has a pair more or less,
 * fails to decrypt, and no two contexts share an encoding (moto's concatenation has that flaw).
 *
 * Key material: 32 random bytes in `<state dir>/root-key.bin`, mode 0600 in a 0700 directory.
 * Anyone who can read the state directory can open every secret in it: local mode is for
 * development, not a vault. Without a state directory the key lives in memory only.
 */
import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KeyServiceError } from '../../lambda/adapters/kms-data-key-service';
import { canonicalEncode } from '../../lambda/core/canonical';
import type { DataKeyService, EncryptionContext, GeneratedDataKey } from '../../lambda/core/ports';

const AAD_DOMAIN = 'sovereign-router/local-root-key/v1';
const FORMAT = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const DATA_KEY_BYTES = 32;
const KEY_FILE = 'root-key.bin';

/** The AAD of a wrapped data key: its context, canonical and order-independent. */
export function contextAad(context: EncryptionContext): Buffer {
  const pairs = Object.keys(context)
    .sort()
    .map((k) => [k, context[k]] as const);
  return canonicalEncode(AAD_DOMAIN, pairs);
}

/**
 * The AAD of a frozen context, kept with the context object itself: the router passes the same
 * frozen context for every request that opens one secret (envelope.ts), and a frozen object's
 * own keys and values cannot change, so the AAD made from it stays exact. Held weakly (gone with
 * the context); any context that is not frozen gets its AAD made anew. Not secret: it is the
 * context's encoding.
 */
const frozenAad = new WeakMap<EncryptionContext, Buffer>();
function aadOf(context: EncryptionContext): Buffer {
  if (!Object.isFrozen(context)) return contextAad(context);
  let aad = frozenAad.get(context);
  if (aad === undefined) {
    aad = contextAad(context);
    frozenAad.set(context, aad);
  }
  return aad;
}

export class LocalRootKey implements DataKeyService {
  /**
   * @param material 32 bytes of key material (copied; the caller may wipe its own).
   * @param keyArn the ARN sealed records name, like a KMS key ARN (single-Region form).
   */
  constructor(
    private readonly material: Buffer,
    readonly keyArn: string,
  ) {
    if (material.length !== 32) throw new Error('the local root key needs 32 bytes of material');
    this.material = Buffer.from(material);
  }

  /** The key of a state directory, created on first use (mode 0600), or an in-memory one. */
  static open(region: string, dir?: string): LocalRootKey {
    const arn = (id: string) => `arn:aws:kms:${region}:000000000000:key/${id}`;
    if (!dir) return new LocalRootKey(randomBytes(32), arn(randomUUID()));
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, KEY_FILE);
    if (!existsSync(file)) {
      const id = randomUUID();
      // 36 ASCII bytes of key id, then the material: one file, written once, never rewritten.
      writeFileSync(file, Buffer.concat([Buffer.from(id, 'ascii'), randomBytes(32)]), { mode: 0o600, flag: 'wx' });
    }
    chmodSync(file, 0o600);
    const raw = readFileSync(file);
    if (raw.length !== 36 + 32) throw new Error(`${file} is not a local root key file`);
    const key = new LocalRootKey(raw.subarray(36), arn(raw.subarray(0, 36).toString('ascii')));
    raw.fill(0);
    return key;
  }

  async generateDataKey(context: EncryptionContext): Promise<GeneratedDataKey> {
    const plaintext = randomBytes(DATA_KEY_BYTES);
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.material, iv);
    cipher.setAAD(contextAad(context));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const wrapped = Buffer.concat([Buffer.from([FORMAT]), iv, body, cipher.getAuthTag()]);
    return { plaintext, wrapped, keyArn: this.keyArn };
  }

  async decryptDataKey(wrapped: Buffer, context: EncryptionContext, keyArn: string): Promise<Buffer> {
    return this.decryptDataKeyNow(wrapped, context, keyArn);
  }

  /** decryptDataKey without a promise (ports.ts): the key is in this process. */
  decryptDataKeyNow(wrapped: Buffer, context: EncryptionContext, keyArn: string): Buffer {
    if (keyArn !== this.keyArn) throw new KeyServiceError('denied', 'Decrypt');
    if (wrapped.length !== 1 + IV_BYTES + DATA_KEY_BYTES + TAG_BYTES || wrapped[0] !== FORMAT) throw new KeyServiceError('invalid_ciphertext', 'Decrypt');
    const iv = wrapped.subarray(1, 1 + IV_BYTES);
    const body = wrapped.subarray(1 + IV_BYTES, 1 + IV_BYTES + DATA_KEY_BYTES);
    const tag = wrapped.subarray(1 + IV_BYTES + DATA_KEY_BYTES);
    // update() hands back a buffer of its own (not a pool slice) holding the data key before the
    // tag is checked: it is returned only after final() authenticated it, and zero-filled otherwise.
    let out: Buffer | undefined;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.material, iv);
      decipher.setAAD(aadOf(context));
      decipher.setAuthTag(tag);
      out = decipher.update(body);
      decipher.final();
      if (out.length !== DATA_KEY_BYTES) throw new Error('data key length');
      return out;
    } catch {
      out?.fill(0);
      throw new KeyServiceError('invalid_ciphertext', 'Decrypt');
    }
  }
}
