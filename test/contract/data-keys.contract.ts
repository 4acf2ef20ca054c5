/**
 * DataKeyService contract (the root key): data keys round-trip under their exact encryption
 * context and fail for any other context, a tampered blob, another key, or an empty blob, with
 * the same error reasons.
 */
import { KeyServiceError, KmsDataKeyService } from '../../lambda/adapters/kms-data-key-service';
import type { EncryptionContext } from '../../lambda/core/ports';
import { BackendFactory, ContractBackend } from './backend';

const CONTEXT: EncryptionContext = { app: 'sovereign-router', region: 'eu-central-1', tenant: 'acme', provider: 'openai', secret: 'default', version: '1' };

async function reasonOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof KeyServiceError) return err.reason;
    throw err;
  }
  return 'opened';
}

export function dataKeysContract(name: string, factory: BackendFactory): void {
  describe(`DataKeyService contract: ${name}`, () => {
    let b: ContractBackend;
    beforeAll(() => {
      b = factory();
    });

    test('a generated data key is 32 bytes, wrapped under the backend key, and opens under its exact context (key order irrelevant)', async () => {
      const dk = await b.dataKeys.generateDataKey(CONTEXT);
      expect(dk.plaintext).toHaveLength(32);
      expect(dk.keyArn).toBe(b.keyArn);
      expect(dk.wrapped.includes(dk.plaintext)).toBe(false);
      const reordered = Object.fromEntries(Object.entries(CONTEXT).reverse());
      expect((await b.dataKeys.decryptDataKey(dk.wrapped, reordered, dk.keyArn)).equals(dk.plaintext)).toBe(true);
      const again = await b.dataKeys.generateDataKey(CONTEXT);
      expect(again.plaintext.equals(dk.plaintext)).toBe(false);
    });

    test('any other context fails: a changed value, a pair more, a pair less, values moved between keys', async () => {
      const dk = await b.dataKeys.generateDataKey(CONTEXT);
      const variants: EncryptionContext[] = [
        { ...CONTEXT, tenant: 'acme2' },
        { ...CONTEXT, region: 'us-east-1' },
        { ...CONTEXT, version: '2' },
        { ...CONTEXT, extra: 'x' },
        Object.fromEntries(Object.entries(CONTEXT).filter(([k]) => k !== 'secret')),
        { ...CONTEXT, provider: 'default', secret: 'openai' },
      ];
      for (const ctx of variants) expect(await reasonOf(b.dataKeys.decryptDataKey(dk.wrapped, ctx, dk.keyArn))).toBe('invalid_ciphertext');
    });

    test('a tampered or truncated blob fails as invalid_ciphertext; another key ARN is denied before any use; an empty blob is refused', async () => {
      const dk = await b.dataKeys.generateDataKey(CONTEXT);
      const flipped = Buffer.from(dk.wrapped);
      flipped[flipped.length - 5] ^= 0x01;
      expect(await reasonOf(b.dataKeys.decryptDataKey(flipped, CONTEXT, dk.keyArn))).toBe('invalid_ciphertext');
      expect(await reasonOf(b.dataKeys.decryptDataKey(dk.wrapped.subarray(0, dk.wrapped.length - 1), CONTEXT, dk.keyArn))).toBe('invalid_ciphertext');
      const otherArn = dk.keyArn.replace(/key\/.*/, 'key/00000000-0000-4000-8000-000000000000');
      expect(await reasonOf(b.dataKeys.decryptDataKey(dk.wrapped, CONTEXT, otherArn))).toBe('denied');
      expect(await reasonOf(b.dataKeys.decryptDataKey(Buffer.alloc(0), CONTEXT, dk.keyArn))).toBe('invalid_ciphertext');
    });

    test('decryptDataKeyNow, where offered (an in-process key only), opens and refuses exactly as decryptDataKey', async () => {
      const now = b.dataKeys.decryptDataKeyNow?.bind(b.dataKeys);
      // KMS is remote: no form without a promise, and callers await decryptDataKey.
      if (b.dataKeys instanceof KmsDataKeyService) expect(now).toBeUndefined();
      if (now === undefined) return;
      const dk = await b.dataKeys.generateDataKey(CONTEXT);
      const flipped = Buffer.from(dk.wrapped);
      flipped[flipped.length - 5] ^= 0x01;
      const otherArn = dk.keyArn.replace(/key\/.*/, 'key/00000000-0000-4000-8000-000000000000');
      const cases: [Buffer, EncryptionContext, string][] = [
        [dk.wrapped, CONTEXT, dk.keyArn],
        [dk.wrapped, Object.fromEntries(Object.entries(CONTEXT).reverse()), dk.keyArn],
        [dk.wrapped, { ...CONTEXT, tenant: 'acme2' }, dk.keyArn],
        [dk.wrapped, { ...CONTEXT, extra: 'x' }, dk.keyArn],
        [dk.wrapped, Object.freeze({ ...CONTEXT, version: '2' }), dk.keyArn],
        [flipped, CONTEXT, dk.keyArn],
        [dk.wrapped.subarray(0, dk.wrapped.length - 1), CONTEXT, dk.keyArn],
        [dk.wrapped, CONTEXT, otherArn],
        [Buffer.alloc(0), CONTEXT, dk.keyArn],
      ];
      for (const [wrapped, ctx, arn] of cases) {
        const viaPromise = await reasonOf(b.dataKeys.decryptDataKey(wrapped, ctx, arn));
        let direct: string;
        try {
          const key = now(wrapped, ctx, arn);
          expect(key.equals(dk.plaintext)).toBe(true);
          direct = 'opened';
        } catch (err) {
          expect(err).toBeInstanceOf(KeyServiceError);
          direct = (err as KeyServiceError).reason;
        }
        expect(direct).toBe(viaPromise);
      }
    });
  });
}
