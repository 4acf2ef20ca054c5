/**
 * Tenant erasure keys in the envelope: every v2 secret key needs the tenant's E, so destroying E
 * makes every copy of the tenant's rows unopenable, and one tenant's E opens nothing of another's.
 */
import type { SecretIdentity } from '../../../lambda/core/canonical';
import { openSecret, SealedSecretError, sealSecret, type SealedSecret } from '../../../lambda/core/envelope';
import { erasureKeyFromItem, erasureKeyItemOf, generateErasureKey } from '../../../lambda/core/erasure-key';
import { decodeBase64Strict } from '../../../lambda/core/crypto-util';
import fc from 'fast-check';
import { FakeDataKeys } from './fake-data-keys';

const idA: SecretIdentity = { app: 'sovereign-router', region: 'eu-central-1', tenant: 'acme', provider: 'openai', secret: 'default', version: 1 };
const idB: SecretIdentity = { ...idA, tenant: 'globex' };
const FP = Buffer.alloc(32, 1);
const KEY = 'sk-erasure-test-0123456789';

const seal = (id: SecretIdentity, kms: FakeDataKeys, erasureKey: Buffer) =>
  sealSecret({ identity: id, plaintext: Buffer.from(KEY), dataKeys: kms, fingerprintKey: FP, erasureKey });
const open = (record: SealedSecret, id: SecretIdentity, kms: FakeDataKeys, erasureKey: Buffer | undefined) =>
  openSecret({ record, expected: id, dataKeys: kms, erasureKey, use: (p) => p.toString('utf8') });

async function reason(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(SealedSecretError);
    return (err as SealedSecretError).reason;
  }
  throw new Error('expected a rejection');
}

describe('tenant erasure key', () => {
  it('sealing refuses to run without a 32-byte erasure key, before KMS', async () => {
    const kms = new FakeDataKeys();
    for (const bad of [undefined, Buffer.alloc(16), Buffer.alloc(33)]) {
      expect(await reason(sealSecret({ identity: idA, plaintext: Buffer.from(KEY), dataKeys: kms, fingerprintKey: FP, erasureKey: bad as unknown as Buffer }))).toBe('erasure_key');
    }
    expect(kms.generateCalls).toBe(0);
  });

  it('a v2 row does not open without its tenant\'s erasure key: no KMS call at all', async () => {
    const kms = new FakeDataKeys();
    const e = generateErasureKey();
    const record = await seal(idA, kms, e);
    expect(record.formatVersion).toBe(2);
    expect(await open(record, idA, kms, e)).toBe(KEY);
    expect(kms.decryptCalls).toBe(1);
    expect(await reason(open(record, idA, kms, undefined))).toBe('erasure_key');
    expect(await reason(open(record, idA, kms, Buffer.alloc(31)))).toBe('erasure_key');
    expect(kms.decryptCalls).toBe(1);
  });

  it('a key of the right size but not the tenant\'s fails authentication, with KMS Decrypt granted', async () => {
    const kms = new FakeDataKeys();
    const eA = generateErasureKey();
    const eB = generateErasureKey();
    const rowA = await seal(idA, kms, eA);
    const rowB = await seal(idB, kms, eB);
    // Swapped erasure keys: B's key with A's rows and the other way round.
    expect(await reason(open(rowA, idA, kms, eB))).toBe('integrity');
    expect(await reason(open(rowB, idB, kms, eA))).toBe('integrity');
    expect(await open(rowB, idB, kms, eB)).toBe(KEY);
  });

  it('the stored item must name the tenant it is read for; malformed items are refused', () => {
    const e = generateErasureKey();
    const item = erasureKeyItemOf('acme', e, new Date('2026-01-01T00:00:00Z'));
    expect(item).toEqual({ tenantId: 'acme', key: e.toString('base64'), createdAt: '2026-01-01T00:00:00.000Z' });
    expect(erasureKeyFromItem(item, 'acme')).toEqual(e);
    expect(erasureKeyFromItem(undefined, 'acme')).toBeUndefined();
    const bads: unknown[] = [
      { ...item, tenantId: 'globex' },
      { ...item, key: Buffer.alloc(16).toString('base64') },
      { ...item, key: 'not base64!' },
      { tenantId: 'acme' },
      'x',
      [],
    ];
    for (const bad of bads) expect(() => erasureKeyFromItem(bad, 'acme')).toThrow(SealedSecretError);
    expect(() => erasureKeyItemOf('acme', Buffer.alloc(8), new Date())).toThrow(/32 bytes/);
  });

  it('reads exactly what the strict base64 decode reads: its 32-byte fast path accepts no other text and decodes the same bytes', () => {
    // Node's own encoding of 32 bytes: accepted, same bytes.
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
        const key = Buffer.from(bytes).toString('base64');
        expect(erasureKeyFromItem({ tenantId: 'acme', key }, 'acme')).toEqual(Buffer.from(bytes));
      }),
      { numRuns: 300 },
    );
    // Any 44 characters from the base64 alphabet and '=' (non-canonical spare bits, padding in the
    // wrong place, base64url digits): accepted exactly when the strict decode gives 32 bytes.
    const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_'.split('');
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...chars), { minLength: 44, maxLength: 44 }), fc.integer({ min: 0, max: 3 }), (cs, tweak) => {
        // Bias towards near-canonical texts: a valid prefix with one '=' at the end.
        const text = tweak === 0 ? cs.join('') : Buffer.from(cs.join('')).toString('base64').slice(0, 43) + (tweak === 1 ? '=' : cs[0]);
        const strict = decodeBase64Strict(text);
        const expected = strict !== undefined && strict.length === 32 ? strict : undefined;
        let got: Buffer | undefined;
        try {
          got = erasureKeyFromItem({ tenantId: 'acme', key: text }, 'acme');
        } catch (err) {
          expect(err).toBeInstanceOf(SealedSecretError);
          got = undefined;
        }
        expect(got).toEqual(expected);
      }),
      { numRuns: 2000 },
    );
    // A last digit with non-zero spare bits decodes to the same bytes but is not canonical: refused.
    const canonical = Buffer.alloc(32, 7).toString('base64');
    const sloppy = canonical.slice(0, 42) + String.fromCharCode(canonical.charCodeAt(42) + 1) + '=';
    expect(Buffer.from(sloppy, 'base64')).toEqual(Buffer.alloc(32, 7));
    expect(() => erasureKeyFromItem({ tenantId: 'acme', key: sloppy }, 'acme')).toThrow(SealedSecretError);
  });
});
