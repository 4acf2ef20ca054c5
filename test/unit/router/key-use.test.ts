/**
 * The in-process Decrypt (DataKeyService.decryptDataKeyNow, the local root key): openSecret uses
 * it without a promise turn, the request's key-use evidence records it like any Decrypt, the data
 * key is still zero-filled after the one open, and a refusal fails the open as before.
 */
import type { SecretIdentity } from '../../../lambda/core/canonical';
import { encryptionContextOf } from '../../../lambda/core/canonical';
import { openSecret, parseSealedRow, sealSecret, type SealedSecret } from '../../../lambda/core/envelope';
import type { DataKeyService, EncryptionContext, GeneratedDataKey } from '../../../lambda/core/ports';
import { recordingDataKeys, type KeyUse } from '../../../lambda/core/router/key-use';
import { LocalRootKey } from '../../../local/embedded/local-root-key';

const id: SecretIdentity = { app: 'sovereign-router', region: 'eu-central-1', tenant: 'acme', provider: 'openai', secret: 'default', version: 3 };
const erasureKey = Buffer.alloc(32, 0x5e);
const PLAINTEXT = 'sk-key-use-test-0123456789';

/** The local root key, counting each form of Decrypt and keeping every data key it handed out. */
class CountingRootKey implements DataKeyService {
  readonly inner = LocalRootKey.open('eu-central-1');
  viaPromise = 0;
  direct = 0;
  readonly handedOut: Buffer[] = [];
  generateDataKey(context: EncryptionContext): Promise<GeneratedDataKey> {
    return this.inner.generateDataKey(context);
  }
  async decryptDataKey(wrapped: Buffer, context: EncryptionContext, keyArn: string): Promise<Buffer> {
    this.viaPromise++;
    const key = await this.inner.decryptDataKey(wrapped, context, keyArn);
    this.handedOut.push(key);
    return key;
  }
  decryptDataKeyNow(wrapped: Buffer, context: EncryptionContext, keyArn: string): Buffer {
    this.direct++;
    const key = this.inner.decryptDataKeyNow(wrapped, context, keyArn);
    this.handedOut.push(key);
    return key;
  }
}

async function sealed(keys: DataKeyService): Promise<Readonly<SealedSecret>> {
  return parseSealedRow(await sealSecret({ identity: id, plaintext: Buffer.from(PLAINTEXT), dataKeys: keys, fingerprintKey: Buffer.alloc(32, 1), erasureKey }));
}

describe('recordingDataKeys and the in-process Decrypt', () => {
  it('openSecret opens through decryptDataKeyNow, records the use with its exact context, and zero-fills the data key', async () => {
    const keys = new CountingRootKey();
    const record = await sealed(keys);
    const uses: KeyUse[] = [];
    const view = recordingDataKeys(keys, uses, () => Date.UTC(2026, 0, 2, 3, 4, 5));
    expect(view.decryptDataKeyNow).toBeDefined();
    const got = await openSecret({ record: record as SealedSecret, expected: id, dataKeys: view, erasureKey, use: (p) => p.toString('utf8') });
    expect(got).toBe(PLAINTEXT);
    expect([keys.direct, keys.viaPromise]).toEqual([1, 0]);
    expect(uses).toEqual([{ context: encryptionContextOf(id), at: '2026-01-02T03:04:05.000Z' }]);
    expect(keys.handedOut).toHaveLength(1);
    expect(keys.handedOut[0].every((b) => b === 0)).toBe(true);
  });

  it('a service without the in-process form: the view has none either, and openSecret awaits decryptDataKey', async () => {
    const keys = new CountingRootKey();
    const record = await sealed(keys);
    const remote: DataKeyService = { generateDataKey: (c) => keys.generateDataKey(c), decryptDataKey: (w, c, a) => keys.decryptDataKey(w, c, a) };
    const uses: KeyUse[] = [];
    const view = recordingDataKeys(remote, uses, Date.now);
    expect(view.decryptDataKeyNow).toBeUndefined();
    expect(await openSecret({ record: record as SealedSecret, expected: id, dataKeys: view, erasureKey, use: (p) => p.toString('utf8') })).toBe(PLAINTEXT);
    expect([keys.direct, keys.viaPromise]).toEqual([0, 1]);
    expect(uses).toHaveLength(1);
    expect(keys.handedOut[0].every((b) => b === 0)).toBe(true);
  });

  it('a refusal of the in-process Decrypt (another key, a row moved to another identity) fails the open, recorded, and nothing reaches use', async () => {
    const keys = new CountingRootKey();
    const record = await sealed(keys);
    const uses: KeyUse[] = [];
    const view = recordingDataKeys(keys, uses, Date.now);
    let used = 0;
    const use = () => {
      used++;
      return 'x';
    };
    await expect(openSecret({ record: { ...record, keyArn: record.keyArn.replace(/key\/.*/, 'key/other') } as SealedSecret, expected: id, dataKeys: view, erasureKey, use })).rejects.toMatchObject({
      name: 'KeyServiceError',
      reason: 'denied',
    });
    // The wrapped key of version 3 presented as version 4 of the same row (META moved on): the
    // context differs, so the root key refuses it.
    const moved = parseSealedRow({ ...record, version: 4 }) as SealedSecret;
    await expect(openSecret({ record: moved, expected: { ...id, version: 4 }, dataKeys: view, erasureKey, use })).rejects.toMatchObject({ name: 'KeyServiceError', reason: 'invalid_ciphertext' });
    expect(used).toBe(0);
    expect(uses.map((u) => u.context.version)).toEqual(['3', '4']);
  });
});
