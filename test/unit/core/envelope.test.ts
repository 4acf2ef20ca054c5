import crypto from 'node:crypto';
import fc from 'fast-check';
import { encryptionContextOf, type SecretIdentity } from '../../../lambda/core/canonical';
import {
  fingerprintKeyOf,
  fingerprintOf,
  legacyFingerprintOf,
  openSecret,
  parseSealedRow,
  parseSealedSecret,
  SealedSecretError,
  sealSecret,
  type SealedSecret,
} from '../../../lambda/core/envelope';
import type { DataKeyService, GeneratedDataKey } from '../../../lambda/core/ports';
import { FakeDataKeys, FakeKmsError } from './fake-data-keys';

const CANARY = 'sk-CANARY-7f3a9c1e5b2d4f6a8c0e1b3d5f7a9c1e';
const canaryForms = [
  CANARY,
  Buffer.from(CANARY).toString('base64').slice(0, 20),
  Buffer.from(CANARY).toString('hex').slice(0, 20),
  'CANARY',
];

const idA: SecretIdentity = { app: 'sovereign-router', region: 'eu-central-1', tenant: 'acme', provider: 'openai', secret: 'default', version: 1 };
const idB: SecretIdentity = { ...idA, tenant: 'globex' };
const clock = { now: () => new Date('2025-03-04T05:06:07.089Z') };

/** A KMS that ignores the encryption context: isolates the AAD/HKDF binding from KMS's own. */
class ContextBlindKms implements DataKeyService {
  constructor(private readonly inner: FakeDataKeys) {}
  generateDataKey(): Promise<GeneratedDataKey> {
    return this.inner.generateDataKey({});
  }
  decryptDataKey(wrapped: Buffer, _ctx: unknown, keyArn: string): Promise<Buffer> {
    return this.inner.decryptDataKey(wrapped, {}, keyArn);
  }
}

/** The fingerprint key of (eu-central-1, acme, openai) under a test pepper. */
const FP_KEY = fingerprintKeyOf(Buffer.alloc(32, 0x42), { region: 'eu-central-1', tenant: 'acme', provider: 'openai' });

/** The tenant erasure key of every v2 seal and open here. */
const ERASURE = Buffer.alloc(32, 0x5e);

/** Sovereign seals and opens use this version salt unless a test passes another one. */
const SALT = Buffer.alloc(32, 0x11);

function seal(identity: SecretIdentity, kms: DataKeyService, extra: { tenantFactor?: Buffer; plaintext?: string; versionSalt?: Buffer } = {}): Promise<SealedSecret> {
  const versionSalt = extra.versionSalt ?? (extra.tenantFactor ? SALT : undefined);
  return sealSecret({ identity, plaintext: Buffer.from(extra.plaintext ?? CANARY), dataKeys: kms, tenantFactor: extra.tenantFactor, versionSalt, fingerprintKey: FP_KEY, erasureKey: ERASURE, clock });
}

function open(record: SealedSecret, expected: SecretIdentity, kms: DataKeyService, tenantFactor?: Buffer, versionSalt?: Buffer): Promise<string> {
  return openSecret({ record, expected, dataKeys: kms, erasureKey: ERASURE, tenantFactor, versionSalt: versionSalt ?? (tenantFactor ? SALT : undefined), use: (p) => p.toString('utf8') });
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

function expectNoCanary(text: string): void {
  for (const form of canaryForms) expect(text).not.toContain(form);
}

function expectSealedError(err: Error, reason?: string): void {
  expect(err).toBeInstanceOf(SealedSecretError);
  if (reason) expect((err as SealedSecretError).reason).toBe(reason);
  expect(['sealed secret could not be opened', 'sealed secret record is malformed']).toContain(err.message);
  expectNoCanary(`${err.message}\n${err.stack}\n${JSON.stringify(err)}`);
}

const flip = (b64: string, bit: number): string => {
  const b = Buffer.from(b64, 'base64');
  b[Math.floor(bit / 8) % b.length] ^= 1 << bit % 8;
  return b.toString('base64');
};

describe('sealSecret / openSecret round trip', () => {
  it('opens what it sealed, with one KMS call each way and the identity as context', async () => {
    const kms = new FakeDataKeys();
    const record = await seal(idA, kms);
    expect(kms.generateCalls).toBe(1);
    expect(await open(record, idA, kms)).toBe(CANARY);
    expect(kms.decryptCalls).toBe(1);
    expect(kms.contexts).toEqual([encryptionContextOf(idA), encryptionContextOf(idA)]);
  });

  it('produces a complete, valid, non-secret record', async () => {
    const kms = new FakeDataKeys();
    const record = await seal(idA, kms);
    expect(parseSealedSecret(record)).toEqual(record);
    expect(record).toMatchObject({
      formatVersion: 2,
      algorithm: 'SR2-HKDF-SHA256-AES256GCM',
      keyArn: kms.keyArn,
      region: 'eu-central-1',
      tenant: 'acme',
      provider: 'openai',
      secret: 'default',
      version: 1,
      sovereign: false,
      createdAt: '2025-03-04T05:06:07.089Z',
      fingerprint: fingerprintOf(Buffer.from(CANARY), FP_KEY),
    });
    expect(record.fingerprint).toMatch(/^hmac:[0-9a-f]{16}$/);
    expect(Buffer.from(record.iv, 'base64')).toHaveLength(12);
    expect(Buffer.from(record.tag, 'base64')).toHaveLength(16);
    expect(record.rotatedAt).toBeUndefined();
    expectNoCanary(JSON.stringify(record));
  });

  it('uses a fresh data key and IV per seal', async () => {
    const kms = new FakeDataKeys();
    const [r1, r2] = [await seal(idA, kms), await seal(idA, kms)];
    expect(r1.iv).not.toBe(r2.iv);
    expect(r1.wrappedKey).not.toBe(r2.wrappedKey);
    expect(r1.ciphertext).not.toBe(r2.ciphertext);
    expect(r1.fingerprint).toBe(r2.fingerprint);
  });

  it('awaits an async `use` and returns its value', async () => {
    const kms = new FakeDataKeys();
    const record = await seal(idA, kms);
    const out = await openSecret({ record, expected: idA, dataKeys: kms, erasureKey: ERASURE, use: async (p) => `Bearer ${p.length}` });
    expect(out).toBe(`Bearer ${CANARY.length}`);
  });

  it('validates seal inputs', async () => {
    const kms = new FakeDataKeys();
    await expect(sealSecret({ identity: idA, plaintext: Buffer.alloc(0), dataKeys: kms, fingerprintKey: FP_KEY, erasureKey: ERASURE })).rejects.toThrow(/non-empty/);
    await expect(sealSecret({ identity: idA, plaintext: Buffer.from('x'), dataKeys: kms, iv: Buffer.alloc(8), fingerprintKey: FP_KEY, erasureKey: ERASURE })).rejects.toThrow(/iv/);
    await expect(sealSecret({ identity: { ...idA, tenant: 'X' }, plaintext: Buffer.from('x'), dataKeys: kms, fingerprintKey: FP_KEY, erasureKey: ERASURE })).rejects.toThrow(/tenant/);
    await expect(sealSecret({ identity: idA, plaintext: Buffer.from('x'), dataKeys: kms, tenantFactor: Buffer.alloc(16), fingerprintKey: FP_KEY, erasureKey: ERASURE })).rejects.toThrow(SealedSecretError);
    expect(kms.generateCalls).toBe(0);
  });
});

describe('binding: swapped rows do not open', () => {
  const variants: Array<[string, SecretIdentity]> = [
    ['tenant', idB],
    ['provider', { ...idA, provider: 'anthropic' }],
    ['secret', { ...idA, secret: 'backup' }],
    ['version', { ...idA, version: 2 }],
    ['region', { ...idA, region: 'eu-west-1' }],
  ];
  const relabel = (r: SealedSecret, id: SecretIdentity): SealedSecret => ({
    ...r,
    region: id.region,
    tenant: id.tenant,
    provider: id.provider,
    secret: id.secret,
    version: id.version,
  });

  it.each(variants)('refuses a record of another %s before calling KMS', async (_field, other) => {
    const kms = new FakeDataKeys();
    const record = await seal(idA, kms);
    expectSealedError(await rejection(open(record, other, kms)), 'identity_mismatch');
    expect(kms.decryptCalls).toBe(0);
  });

  it.each(variants)('relabelled %s: KMS rejects the context', async (_field, other) => {
    const kms = new FakeDataKeys();
    const record = relabel(await seal(idA, kms), other);
    const err = await rejection(open(record, other, kms));
    expect(err).toBeInstanceOf(FakeKmsError);
  });

  it.each(variants)('relabelled %s: AAD/HKDF reject it even if KMS ignored the context', async (_field, other) => {
    const kms = new ContextBlindKms(new FakeDataKeys());
    const record = relabel(await seal(idA, kms), other);
    expectSealedError(await rejection(open(record, other, kms)), 'integrity');
  });

  it('ciphertext rows moved between tenants do not open', async () => {
    const inner = new FakeDataKeys();
    for (const kms of [inner, new ContextBlindKms(inner)]) {
      const a = await seal(idA, kms, { plaintext: 'sk-tenant-a' });
      const b = await seal(idB, kms, { plaintext: CANARY });
      const crypto = { keyArn: b.keyArn, wrappedKey: b.wrappedKey, iv: b.iv, ciphertext: b.ciphertext, tag: b.tag, fingerprint: b.fingerprint };
      const err1 = await rejection(open({ ...a, ...crypto }, idA, kms));
      expect(err1 instanceof SealedSecretError || err1 instanceof FakeKmsError).toBe(true);
      // Keep A's data key, take B's payload.
      const err2 = await rejection(open({ ...a, iv: b.iv, ciphertext: b.ciphertext, tag: b.tag }, idA, kms));
      expectSealedError(err2, 'integrity');
    }
  });
});

describe('the AAD and encryption context, kept per identity (non-secret fields only)', () => {
  const ids: SecretIdentity[] = [
    idA,
    idB,
    { ...idA, provider: 'anthropic' },
    { ...idA, secret: 'backup' },
    { ...idA, version: 2 },
    { ...idA, region: 'eu-west-1' },
  ];
  const secretOf = (id: SecretIdentity) => `sk-${id.region}-${id.tenant}-${id.provider}-${id.secret}-${id.version}`;
  const relabel = (r: SealedSecret, id: SecretIdentity): SealedSecret => ({ ...r, region: id.region, tenant: id.tenant, provider: id.provider, secret: id.secret, version: id.version });

  it('each field changes what KMS is sent and what the AAD binds, whatever was opened before', async () => {
    const kms = new FakeDataKeys();
    const blind = new ContextBlindKms(new FakeDataKeys());
    const rows: SealedSecret[] = [];
    for (const id of ids) rows.push(await seal(id, kms, { plaintext: secretOf(id) }));
    const blindA = await seal(idA, blind);
    for (let round = 0; round < 2; round++) {
      for (const [i, id] of ids.entries()) {
        kms.contexts.length = 0;
        expect(await open(rows[i], id, kms)).toBe(secretOf(id));
        expect(kms.contexts).toEqual([encryptionContextOf(id)]);
        // idA's row relabelled as this identity, with a KMS that ignores the context: only the
        // AAD and HKDF info can refuse it, and idA's are kept from the open just before.
        expect(await open(blindA, idA, blind)).toBe(CANARY);
        if (i > 0) expectSealedError(await rejection(open(relabel(blindA, id), id, blind)), 'integrity');
      }
    }
  });

  it('an identity that is not valid is never served from what a valid one left (a version of another type misses)', async () => {
    const kms = new FakeDataKeys();
    const row = await seal(idA, kms);
    await open(row, idA, kms);
    const before = kms.decryptCalls;
    const err = await rejection(open(row, { ...idA, version: '1' as unknown as number }, kms));
    expect(err.message).toBe('invalid secret identity: version');
    expect(kms.decryptCalls).toBe(before);
  });

  // JSON text alone is not the identity: a String object, or any object with a toJSON, writes
  // the same text as the string. `app` is not compared with the row, so such an app was opened
  // from the binding a valid identity left (without the memo, assertSecretIdentity refuses it).
  it('an identity with a field of another type but the same JSON text is refused as before, after a valid one was kept', async () => {
    const kms = new FakeDataKeys();
    const row = await seal(idA, kms);
    expect(await open(row, idA, kms)).toBe(CANARY);
    const before = kms.decryptCalls;
    const lookalikes: [string, SecretIdentity][] = [
      ['app', { ...idA, app: new String(idA.app) as unknown as 'sovereign-router' }],
      ['app', { ...idA, app: { toJSON: () => idA.app } as unknown as 'sovereign-router' }],
      ['tenant', { ...idA, tenant: new String(idA.tenant) as unknown as string }],
      ['version', { ...idA, version: new Number(idA.version) as unknown as number }],
    ];
    for (const [field, id] of lookalikes) {
      const err = await rejection(open(row, id, kms));
      expect(err.message).toBe(`invalid secret identity: ${field}`);
    }
    expect(kms.decryptCalls).toBe(before);
  });

  it('past its bound it is emptied, and still right', async () => {
    const kms = new FakeDataKeys();
    const row = await seal(idA, kms);
    for (let i = 0; i < 1_100; i++) expectSealedError(await rejection(open(row, { ...idA, secret: `s${i}` }, kms)), 'identity_mismatch');
    expect(kms.decryptCalls).toBe(0);
    kms.contexts.length = 0;
    expect(await open(row, idA, kms)).toBe(CANARY);
    expect(kms.contexts).toEqual([encryptionContextOf(idA)]);
  });
});

describe('tampering', () => {
  it('property: any bit flip in iv, tag or ciphertext fails with a generic error', async () => {
    const kms = new FakeDataKeys();
    const record = await seal(idA, kms);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('iv' as const, 'tag' as const, 'ciphertext' as const), fc.nat(), async (field, bit) => {
        const tampered = { ...record, [field]: flip(record[field], bit) };
        expectSealedError(await rejection(open(tampered, idA, kms)), 'integrity');
      }),
      { numRuns: 200 },
    );
  });

  it('a tampered wrapped key is refused by KMS and the error passes through', async () => {
    const kms = new FakeDataKeys();
    const record = await seal(idA, kms);
    expect(await rejection(open({ ...record, wrappedKey: flip(record.wrappedKey, 100) }, idA, kms))).toBeInstanceOf(FakeKmsError);
  });

  it('the fingerprint is display metadata: not checked on open (a pepper rotation must not lock secrets), but its shape is', async () => {
    const kms = new FakeDataKeys();
    const record = await seal(idA, kms);
    expect(await open({ ...record, fingerprint: 'hmac:0000000000000000' }, idA, kms)).toBe(CANARY);
    // Records sealed before keyed fingerprints still parse.
    expect(await open({ ...record, fingerprint: legacyFingerprintOf(Buffer.from(CANARY)) }, idA, kms)).toBe(CANARY);
    expectSealedError(await rejection(open({ ...record, fingerprint: 'hmac:00' }, idA, kms)), 'malformed');
  });

  it('fingerprints are keyed per tenant and provider: the same key shows unrelated values elsewhere', () => {
    const pepper = Buffer.alloc(32, 0x42);
    const key = Buffer.from(CANARY);
    const fp = (tenant: string, provider: string, region = 'eu-central-1', p = pepper) => fingerprintOf(key, fingerprintKeyOf(p, { region, tenant, provider }));
    const base = fp('acme', 'openai');
    expect(fp('acme', 'openai')).toBe(base);
    const others = [fp('globex', 'openai'), fp('acme', 'mistral'), fp('acme', 'openai', 'us-east-1'), fp('acme', 'openai', 'eu-central-1', Buffer.alloc(32, 0x43))];
    expect(new Set([base, ...others]).size).toBe(5);
    // Not the unkeyed hash, and ambiguous concatenations of tenant/provider do not collide.
    expect(base.slice(5)).not.toBe(legacyFingerprintOf(key).slice(7));
    expect(fp('ab-c', 'openai')).not.toBe(fp('ab', 'c-openai'));
    expect(() => fingerprintKeyOf(Buffer.alloc(16), { region: 'eu-central-1', tenant: 'acme', provider: 'openai' })).toThrow(/pepper/);
  });

  it('unknown format or algorithm is malformed, before KMS', async () => {
    const kms = new FakeDataKeys();
    const record = await seal(idA, kms);
    for (const patch of [{ formatVersion: 3 }, { formatVersion: 1 }, { algorithm: 'SR2' }, { algorithm: 'SR1-HKDF-SHA256-AES256GCM' }, { iv: 'not base64!' }, { sovereign: 'false' }]) {
      const bad = { ...record, ...patch } as unknown as SealedSecret;
      expectSealedError(await rejection(open(bad, idA, kms)), 'malformed');
    }
    expect(kms.decryptCalls).toBe(0);
  });

  it('a data key of the wrong size is refused', async () => {
    const kms = new FakeDataKeys();
    const record = await seal(idA, kms);
    const short: DataKeyService = { generateDataKey: () => kms.generateDataKey({}), decryptDataKey: async () => Buffer.alloc(16, 1) };
    expectSealedError(await rejection(open(record, idA, short)), 'bad_data_key');
  });
});

describe('sovereign mode', () => {
  const factor = Buffer.alloc(32, 0x5a);

  it('opens only with the same tenant factor', async () => {
    const kms = new FakeDataKeys();
    const record = await seal(idA, kms, { tenantFactor: factor });
    expect(record.sovereign).toBe(true);
    expect(await open(record, idA, kms, Buffer.from(factor))).toBe(CANARY);

    expectSealedError(await rejection(open(record, idA, kms)), 'mode_mismatch');
    expect(kms.decryptCalls).toBe(1);
    expectSealedError(await rejection(open(record, idA, kms, Buffer.alloc(32, 0x5b))), 'integrity');
    expectSealedError(await rejection(open(record, idA, kms, Buffer.alloc(31, 0x5a))), 'tenant_factor');
  });

  it('clearing the sovereign flag does not help an attacker without the factor', async () => {
    const kms = new FakeDataKeys();
    const record = await seal(idA, kms, { tenantFactor: factor });
    expectSealedError(await rejection(open({ ...record, sovereign: false }, idA, kms)), 'integrity');
  });

  it("opens only with this version's salt: another version's salt, none, or a salt without a factor fail", async () => {
    const kms = new FakeDataKeys();
    const record = await seal(idA, kms, { tenantFactor: factor, versionSalt: Buffer.alloc(32, 0x21) });
    expect(await open(record, idA, kms, Buffer.from(factor), Buffer.alloc(32, 0x21))).toBe(CANARY);
    // The salt of the next version (what META holds after a rotation) does not derive this row's key.
    expectSealedError(await rejection(open(record, idA, kms, Buffer.from(factor), Buffer.alloc(32, 0x22))), 'integrity');
    const calls = kms.decryptCalls;
    expectSealedError(
      await rejection(openSecret({ record, expected: idA, dataKeys: kms, erasureKey: ERASURE, tenantFactor: Buffer.from(factor), use: (p) => p.toString() })),
      'version_salt',
    );
    expectSealedError(await rejection(open(record, idA, kms, Buffer.from(factor), Buffer.alloc(16, 0x21))), 'version_salt');
    expect(kms.decryptCalls).toBe(calls);
    const standard = await seal(idA, kms);
    expectSealedError(
      await rejection(openSecret({ record: standard, expected: idA, dataKeys: kms, erasureKey: ERASURE, versionSalt: Buffer.alloc(32, 1), use: (p) => p.toString() })),
      'version_salt',
    );
    await expect(sealSecret({ identity: idA, plaintext: Buffer.from('x'), dataKeys: kms, tenantFactor: factor, fingerprintKey: FP_KEY, erasureKey: ERASURE })).rejects.toThrow(SealedSecretError);
  });

  it('a non-sovereign record refuses a factor', async () => {
    const kms = new FakeDataKeys();
    const record = await seal(idA, kms);
    expectSealedError(await rejection(open(record, idA, kms, factor)), 'mode_mismatch');
    expect(kms.decryptCalls).toBe(0);
  });
});

describe('zeroization', () => {
  /** Every AES key handed to node:crypto (the derived secret keys, and the fake KMS's own root key). */
  let cipherKeys: unknown[];
  /** Every HMAC output as a Buffer: HKDF's PRK and blocks, the erasure and secret factors. */
  let macs: Buffer[];
  let spies: jest.SpyInstance[];
  beforeEach(() => {
    cipherKeys = [];
    macs = [];
    const realCipher = crypto.createCipheriv;
    const realDecipher = crypto.createDecipheriv;
    const realHmac = crypto.createHmac;
    spies = [
      jest.spyOn(crypto, 'createCipheriv').mockImplementation(((...args: Parameters<typeof crypto.createCipheriv>) => {
        cipherKeys.push(args[1]);
        return realCipher(...args);
      }) as typeof crypto.createCipheriv),
      jest.spyOn(crypto, 'createDecipheriv').mockImplementation(((...args: Parameters<typeof crypto.createDecipheriv>) => {
        cipherKeys.push(args[1]);
        return realDecipher(...args);
      }) as typeof crypto.createDecipheriv),
      jest.spyOn(crypto, 'createHmac').mockImplementation((...args: Parameters<typeof crypto.createHmac>) => {
        const h = realHmac(...args);
        const digest = h.digest.bind(h);
        h.digest = ((enc?: crypto.BinaryToTextEncoding) => {
          const out = enc === undefined ? digest() : digest(enc);
          if (Buffer.isBuffer(out)) macs.push(out);
          return out;
        }) as typeof h.digest;
        return h;
      }),
    ];
  });
  afterEach(() => spies.forEach((s) => s.mockRestore()));
  /** The derived secret keys: every AES key but the fake KMS's root key. */
  const derived = (kms: FakeDataKeys): unknown[] => cipherKeys.filter((k) => k !== (kms as unknown as { rootKey: Buffer }).rootKey);

  const allZero = (b: Uint8Array | ArrayBuffer): boolean => (b instanceof ArrayBuffer ? new Uint8Array(b) : b).every((x) => x === 0);

  it('zeroes data keys and HKDF output after sealing', async () => {
    const kms = new FakeDataKeys();
    await seal(idA, kms, { tenantFactor: Buffer.alloc(32, 1) });
    expect(kms.issued).toHaveLength(1);
    expect(kms.allIssuedZeroed()).toBe(true);
    expect(derived(kms)).toHaveLength(1);
    expect(derived(kms).every((k) => allZero(k as Buffer))).toBe(true);
    // Secret factor, erasure factor, HKDF's PRK and block.
    expect(macs.length).toBeGreaterThanOrEqual(4);
    expect(macs.every(allZero)).toBe(true);
  });

  it('zeroes the plaintext, data key and derived key once `use` returns', async () => {
    const kms = new FakeDataKeys();
    const record = await seal(idA, kms);
    const seen: Buffer[] = [];
    const out = await openSecret({ record, expected: idA, dataKeys: kms, erasureKey: ERASURE, use: (p) => (seen.push(p), p.toString()) });
    expect(out).toBe(CANARY);
    expect(seen).toHaveLength(1);
    expect(seen[0].length).toBe(CANARY.length);
    expect(allZero(seen[0])).toBe(true);
    expect(kms.allIssuedZeroed()).toBe(true);
    expect(derived(kms)).toHaveLength(2);
    expect(derived(kms).every((k) => allZero(k as Buffer))).toBe(true);
    expect(macs.every(allZero)).toBe(true);
  });

  it('zeroes everything when `use` throws or rejects, and passes its error through', async () => {
    const kms = new FakeDataKeys();
    const record = await seal(idA, kms, { tenantFactor: Buffer.alloc(32, 3) });
    const seen: Buffer[] = [];
    const boom = new Error('provider call failed');
    for (const use of [
      (p: Buffer) => {
        seen.push(p);
        throw boom;
      },
      async (p: Buffer) => {
        seen.push(p);
        await new Promise((r) => setTimeout(r, 5));
        // Still intact while `use` is running.
        expect(p.toString()).toBe(CANARY);
        throw boom;
      },
    ]) {
      expect(await rejection(openSecret({ record, expected: idA, dataKeys: kms, erasureKey: ERASURE, tenantFactor: Buffer.alloc(32, 3), versionSalt: SALT, use }))).toBe(boom);
    }
    expect(seen).toHaveLength(2);
    expect(seen.every(allZero)).toBe(true);
    expect(kms.allIssuedZeroed()).toBe(true);
    expect(derived(kms)).toHaveLength(3);
    expect(derived(kms).every((k) => allZero(k as Buffer))).toBe(true);
    expect(macs.every(allZero)).toBe(true);
  });

  it('zeroes the data key and derived key when authentication fails', async () => {
    const kms = new FakeDataKeys();
    const record = await seal(idA, kms);
    const use = jest.fn();
    await rejection(openSecret({ record: { ...record, tag: flip(record.tag, 3) }, expected: idA, dataKeys: kms, erasureKey: ERASURE, use }));
    expect(use).not.toHaveBeenCalled();
    expect(kms.issued).toHaveLength(2);
    expect(kms.allIssuedZeroed()).toBe(true);
    expect(derived(kms)).toHaveLength(2);
    expect(derived(kms).every((k) => allZero(k as Buffer))).toBe(true);
    expect(macs.every(allZero)).toBe(true);
  });
});

describe('parseSealedSecret', () => {
  let record: SealedSecret;
  beforeAll(async () => {
    record = await seal(idA, new FakeDataKeys());
  });

  it('drops storage attributes and keeps rotatedAt when valid', () => {
    const parsed = parseSealedSecret({ ...record, pk: 'TENANT#acme', sk: 'SECRET#openai#default#1', rotatedAt: '2025-06-01T00:00:00Z' });
    expect(parsed).toEqual({ ...record, rotatedAt: '2025-06-01T00:00:00Z' });
    expect(parsed).not.toHaveProperty('pk');
  });

  it('rejects anything off-format with a generic error', () => {
    const bads: unknown[] = [
      null,
      'x',
      [],
      { ...record, formatVersion: '1' },
      { ...record, keyArn: '' },
      { ...record, iv: Buffer.alloc(16).toString('base64') },
      { ...record, tag: record.tag.replace(/=+$/, '') },
      { ...record, ciphertext: '' },
      { ...record, wrappedKey: record.wrappedKey + ' ' },
      { ...record, version: 0 },
      { ...record, version: 1.5 },
      { ...record, version: '1' },
      { ...record, sovereign: 1 },
      { ...record, fingerprint: 'md5:abc' },
      { ...record, createdAt: 'yesterday' },
      { ...record, createdAt: '2025-13-45T99:99:99Z' },
      { ...record, rotatedAt: 12 },
      Object.fromEntries(Object.entries(record).filter(([k]) => k !== 'tenant')),
    ];
    for (const bad of bads) {
      let err: unknown;
      try {
        parseSealedSecret(bad);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SealedSecretError);
      expect((err as Error).message).toBe('sealed secret record is malformed');
    }
  });

  it('property: never throws anything but SealedSecretError', () => {
    fc.assert(
      fc.property(fc.anything(), (x) => {
        try {
          parseSealedSecret(x);
        } catch (e) {
          if (!(e instanceof SealedSecretError)) throw e;
        }
      }),
    );
  });
});

describe('parseSealedRow keeps what it parsed, by the exact text of every field it reads', () => {
  const FIELDS = ['formatVersion', 'algorithm', 'keyArn', 'wrappedKey', 'iv', 'ciphertext', 'tag', 'region', 'tenant', 'provider', 'secret', 'version', 'sovereign', 'fingerprint', 'createdAt', 'rotatedAt'] as const;

  it('the same row text again: the same frozen result, which opens', async () => {
    const kms = new FakeDataKeys();
    const record = await seal(idA, kms);
    const first = parseSealedRow({ ...record });
    expect(parseSealedRow({ ...record, pk: 'TENANT#acme' })).toBe(first);
    expect(await open(first as SealedSecret, idA, kms)).toBe(CANARY);
  });

  it('property: after the row was parsed, any change to any field is parsed again, exactly as parseSealedSecret parses it', async () => {
    const record = await seal(idA, new FakeDataKeys());
    const kept = parseSealedRow(record);
    const values = fc.oneof(
      fc.constantFrom<unknown>(undefined, null, NaN, Infinity, -0, 0, 1, 2, 3, true, false, '', '1', '2', 'true', [], {}),
      fc.constantFrom<unknown>(...FIELDS.map((f) => (record as unknown as Record<string, unknown>)[f])),
      fc.string({ maxLength: 24 }),
      fc.base64String({ maxLength: 40 }),
    );
    fc.assert(
      fc.property(fc.constantFrom(...FIELDS), values, (field, value) => {
        const changed: Record<string, unknown> = { ...record, [field]: value };
        if (value === undefined) delete changed[field];
        const same = Object.is((record as unknown as Record<string, unknown>)[field], value);
        let expected: SealedSecret | Error;
        try {
          expected = parseSealedSecret(changed);
        } catch (err) {
          expected = err as Error;
        }
        let got: Readonly<SealedSecret> | Error;
        try {
          got = parseSealedRow(changed);
        } catch (err) {
          got = err as Error;
        }
        if (expected instanceof Error) {
          expect(got).toBeInstanceOf(SealedSecretError);
          return;
        }
        expect(got).toEqual(expected);
        if (!same) expect(got).not.toBe(kept);
      }),
      { numRuns: 2_000 },
    );
  });

  it('a row whose rotatedAt is null or whose version is not a number is refused, though a valid row with the same other fields was kept', async () => {
    const record = await seal(idA, new FakeDataKeys());
    parseSealedRow(record);
    for (const bad of [{ rotatedAt: null }, { version: NaN }, { version: '1' }, { sovereign: 'false' }, { formatVersion: '2' }]) {
      expect(() => parseSealedRow({ ...record, ...bad })).toThrow(SealedSecretError);
    }
  });

  it('a tampered copy of a kept row does not open; past its bound it is emptied, and still right', async () => {
    const kms = new FakeDataKeys();
    const record = await seal(idA, kms);
    parseSealedRow(record);
    expectSealedError(await rejection(open(parseSealedRow({ ...record, tag: flip(record.tag, 5) }) as SealedSecret, idA, kms)), 'integrity');
    for (let i = 0; i < 1_100; i++) parseSealedRow({ ...record, createdAt: new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString() });
    const again = parseSealedRow(record);
    expect(again).toEqual(parseSealedSecret(record));
    expect(await open(again as SealedSecret, idA, kms)).toBe(CANARY);
  });
  // A table writer can make rows of the largest size parseRow takes (two 16 Ki-character base64
  // fields, a 2 Ki keyArn): 1,000 of them kept were about 100 MB of a router's memory (key text,
  // the row's strings, the decoded bytes). The memo is bounded in characters as well as in rows.
  it('the memo holds a bounded number of characters, not only of rows: big rows are not all kept', async () => {
    const record = await seal(idA, new FakeDataKeys());
    const big = (i: number): SealedSecret => ({ ...record, ciphertext: Buffer.alloc(12_288, i % 256).toString('base64'), wrappedKey: Buffer.alloc(12_288, (i >> 8) + 1).toString('base64') });
    const first = parseSealedRow(big(0));
    expect(parseSealedRow({ ...big(0) })).toBe(first);
    for (let i = 1; i < 200; i++) parseSealedRow(big(i));
    // 200 rows of about 33 Ki characters each are over the bound: the first one is no longer kept.
    const again = parseSealedRow({ ...big(0) });
    expect(again).not.toBe(first);
    expect(again).toEqual(parseSealedSecret(big(0)));
    // A row as the vault writes it is kept as before.
    const usual = parseSealedRow(record);
    expect(parseSealedRow({ ...record })).toBe(usual);
  });
});

describe('parseSealedRow (checked and decoded once, for the router)', () => {
  it('is parseSealedSecret frozen: it opens, and nothing can change it between the check and the open', async () => {
    const kms = new FakeDataKeys();
    const record = await seal(idA, kms);
    const row = parseSealedRow({ ...record, pk: 'TENANT#acme' });
    expect(row).toEqual(parseSealedSecret(record));
    expect(Object.isFrozen(row)).toBe(true);
    expect(() => {
      (row as SealedSecret).ciphertext = flip(record.ciphertext, 3);
    }).toThrow(TypeError);
    expect(await open(row as SealedSecret, idA, kms)).toBe(CANARY);
  });

  it('a copy of a parsed row is checked and decoded again: a tampered copy fails', async () => {
    const kms = new FakeDataKeys();
    const row = parseSealedRow(await seal(idA, kms));
    expectSealedError(await rejection(open({ ...row, tag: flip(row.tag, 5) }, idA, kms)), 'integrity');
    expectSealedError(await rejection(open({ ...row, iv: 'not base64!' }, idA, kms)), 'malformed');
  });

  it('a parsed row of another identity still does not open', async () => {
    const kms = new FakeDataKeys();
    const row = parseSealedRow(await seal(idA, kms));
    expectSealedError(await rejection(open(row as SealedSecret, idB, kms)), 'identity_mismatch');
  });

  it('refuses off-format rows like parseSealedSecret', () => {
    expect(() => parseSealedRow({ formatVersion: 2 })).toThrow(SealedSecretError);
  });
});

