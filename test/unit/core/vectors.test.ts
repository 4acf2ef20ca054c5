/**
 * Published test vectors. Each expected value is checked twice: recomputed here from raw
 * node:crypto (independent of lambda/core), and produced by lambda/core. If either the vectors
 * file or the implementation drifts from the format, this fails.
 */
import { createCipheriv, createHash, createHmac, hkdfSync } from 'node:crypto';
import { canonicalIdentity, encryptionContextOf, type SecretIdentity } from '../../../lambda/core/canonical';
import { fingerprintKeyOf, openSecret, parseSealedSecret, SEALED_SECRET_ALGORITHM, SEALED_SECRET_FORMAT_VERSION, sealSecret, type SealedSecret } from '../../../lambda/core/envelope';
import type { DataKeyService, EncryptionContext } from '../../../lambda/core/ports';
import { unwrapTenantFactor, wrapTenantFactor } from '../../../lambda/core/tenant-factor';
import { generateToken, parseToken } from '../../../lambda/core/token';
import sealedVectors from '../../vectors/sealed-secret-v1.json';
import sealedVectorsV2 from '../../vectors/sealed-secret-v2.json';
import tokenVectors from '../../vectors/token-v1.json';

const hex = (s: string): Buffer => Buffer.from(s, 'hex');

/** Independent implementation of the length-prefixed canonical encoding. */
function lp(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const n = Buffer.alloc(4);
  n.writeUInt32BE(b.length);
  return Buffer.concat([n, b]);
}
function encode(domain: string, fields: Array<[string, string]>): Buffer {
  const count = Buffer.alloc(4);
  count.writeUInt32BE(fields.length);
  return Buffer.concat([lp(domain), count, ...fields.flatMap(([k, v]) => [lp(k), lp(v)])]);
}

function gcm(key: Buffer, iv: Buffer, aad: Buffer, pt: Buffer): { ct: string; tag: string } {
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(aad);
  const ct = Buffer.concat([c.update(pt), c.final()]);
  return { ct: ct.toString('hex'), tag: c.getAuthTag().toString('hex') };
}

/** Returns the vector's data key, and checks KMS is asked with exactly the vector's context. */
function vectorKms(dataKeyHex: string, wrapped: string, keyArn: string, ctx: EncryptionContext): DataKeyService {
  return {
    generateDataKey: async (c) => {
      expect(c).toEqual(ctx);
      return { plaintext: hex(dataKeyHex), wrapped: Buffer.from(wrapped, 'base64'), keyArn };
    },
    decryptDataKey: async (w, c, arn) => {
      expect([w.toString('base64'), c, arn]).toEqual([wrapped, ctx, keyArn]);
      return hex(dataKeyHex);
    },
  };
}

describe('sealed-secret v1 vectors', () => {
  it('covers standard and sovereign mode', () => {
    expect(sealedVectors.vectors.map((v) => v.tenantFactorHex !== null)).toEqual([false, true]);
  });

  it.each(sealedVectors.vectors.map((v) => [v.name, v] as const))('%s: independent recomputation', (_name, v) => {
    const id = v.identity;
    const fields: Array<[string, string]> = [
      ['app', id.app],
      ['region', id.region],
      ['tenant', id.tenant],
      ['provider', id.provider],
      ['secret', id.secret],
      ['version', String(id.version)],
    ];
    const aad = encode(sealedVectors.identityDomain, fields);
    expect(aad.toString('hex')).toBe(v.expected.canonicalIdentityHex);
    expect(v.expected.encryptionContext).toEqual(Object.fromEntries(fields));

    // Sovereign: Fv = HMAC-SHA256(F, domain ‖ canonical identity ‖ version salt); ikm = DK ‖ Fv.
    let ikm = hex(v.dataKeyHex);
    if (v.tenantFactorHex) {
      expect(v.versionSaltHex).toMatch(/^[0-9a-f]{64}$/);
      const fv = createHmac('sha256', hex(v.tenantFactorHex))
        .update(Buffer.from(sealedVectors.secretFactorDomain, 'utf8'))
        .update(aad)
        .update(hex(v.versionSaltHex as string))
        .digest();
      expect(fv.toString('hex')).toBe((v.expected as { secretFactorHex?: string }).secretFactorHex);
      ikm = Buffer.concat([ikm, fv]);
    } else {
      expect(v.versionSaltHex).toBeNull();
    }
    const key = Buffer.from(hkdfSync('sha256', ikm, Buffer.from('sovereign-router/secret-key/v1'), aad, 32));
    expect(key.toString('hex')).toBe(v.expected.secretKeyHex);

    const { ct, tag } = gcm(key, hex(v.ivHex), aad, Buffer.from(v.plaintextUtf8, 'utf8'));
    expect(ct).toBe(v.expected.ciphertextHex);
    expect(tag).toBe(v.expected.tagHex);

    // Keyed fingerprint: FK = HMAC-SHA256(pepper, canonical(region, tenant, provider)); 'hmac:' + 16 hex of HMAC-SHA256(FK, plaintext).
    const fkInfo = encode(sealedVectors.fingerprintKeyDomain, [
      ['region', id.region],
      ['tenant', id.tenant],
      ['provider', id.provider],
    ]);
    const fk = createHmac('sha256', hex(sealedVectors.pepperHex)).update(fkInfo).digest();
    expect(fk.toString('hex')).toBe(v.expected.fingerprintKeyHex);
    const fp = createHmac('sha256', fk).update(Buffer.from(v.plaintextUtf8, 'utf8')).digest('hex').slice(0, 16);
    expect(v.expected.fingerprint).toBe(`hmac:${fp}`);
    // Not the old unkeyed hash.
    expect(fp).not.toContain(createHash('sha256').update('sovereign-router/fingerprint/v1').update(v.plaintextUtf8).digest('hex').slice(0, 12));

    expect(v.record).toMatchObject({
      algorithm: sealedVectors.algorithm,
      iv: hex(v.ivHex).toString('base64'),
      ciphertext: hex(ct).toString('base64'),
      tag: hex(tag).toString('base64'),
      sovereign: v.tenantFactorHex !== null,
      fingerprint: v.expected.fingerprint,
    });
  });

  it.each(sealedVectors.vectors.map((v) => [v.name, v] as const))('%s: lambda/core still opens it (v1 is read, never written)', async (_name, v) => {
    const id = v.identity as SecretIdentity;
    const record = parseSealedSecret(v.record) as SealedSecret;
    expect(record).toMatchObject({ formatVersion: 1, algorithm: 'SR1-HKDF-SHA256-AES256GCM' });
    expect(canonicalIdentity(id).toString('hex')).toBe(v.expected.canonicalIdentityHex);
    expect(encryptionContextOf(id)).toEqual(v.expected.encryptionContext);

    const kms = vectorKms(v.dataKeyHex, record.wrappedKey, record.keyArn, v.expected.encryptionContext);
    const tenantFactor = v.tenantFactorHex ? hex(v.tenantFactorHex) : undefined;
    const versionSalt = v.versionSaltHex ? hex(v.versionSaltHex) : undefined;
    // A v1 row has no erasure factor: with or without the tenant's erasure key it opens the same.
    for (const erasureKey of [undefined, Buffer.alloc(32, 7)]) {
      const opened = await openSecret({ record, expected: id, dataKeys: kms, erasureKey, tenantFactor: tenantFactor && Buffer.from(tenantFactor), versionSalt, use: (p) => p.toString('utf8') });
      expect(opened).toBe(v.plaintextUtf8);
    }
  });

  it.each(sealedVectors.tenantFactorWrap.map((v) => [v.name, v] as const))('tenant factor %s', (_name, v) => {
    const b = v.binding;
    const info = encode('sovereign-router/tenant-factor/v1', [
      ['region', b.region],
      ['tenant', b.tenant],
      ['tokenId', b.tokenId],
    ]);
    expect(info.toString('hex')).toBe(v.expected.infoHex);
    const key = Buffer.from(hkdfSync('sha256', Buffer.from(b.token, 'utf8'), Buffer.from('sovereign-router/tenant-factor/v1'), info, 32));
    expect(key.toString('hex')).toBe(v.expected.wrapKeyHex);
    const { ct, tag } = gcm(key, hex(v.ivHex), info, hex(v.factorHex));
    expect([ct, tag]).toEqual([v.expected.ciphertextHex, v.expected.tagHex]);

    const wrapped = wrapTenantFactor(hex(v.factorHex), b, hex(v.ivHex));
    expect(wrapped).toEqual({ iv: hex(v.ivHex).toString('base64'), ciphertext: hex(ct).toString('base64'), tag: hex(tag).toString('base64') });
    expect(unwrapTenantFactor(wrapped, b).toString('hex')).toBe(v.factorHex);
  });
});

describe('sealed-secret v2 vectors (tenant erasure key)', () => {
  it('covers standard and sovereign mode, and is what sealSecret writes', () => {
    expect(sealedVectorsV2.vectors.map((v) => v.tenantFactorHex !== null)).toEqual([false, true]);
    expect([sealedVectorsV2.formatVersion, sealedVectorsV2.algorithm]).toEqual([SEALED_SECRET_FORMAT_VERSION, SEALED_SECRET_ALGORITHM]);
  });

  it.each(sealedVectorsV2.vectors.map((v) => [v.name, v] as const))('%s: independent recomputation', (_name, v) => {
    const aad = hex(v.expected.canonicalIdentityHex);
    // Ev = HMAC-SHA256(E, erasure domain ‖ canonical identity); ikm = DK (‖ Fv) ‖ Ev.
    const ev = createHmac('sha256', hex(v.erasureKeyHex)).update(Buffer.from(sealedVectorsV2.erasureFactorDomain, 'utf8')).update(aad).digest();
    expect(ev.toString('hex')).toBe(v.expected.erasureFactorHex);
    const parts = [hex(v.dataKeyHex)];
    if (v.tenantFactorHex) {
      const fv = createHmac('sha256', hex(v.tenantFactorHex))
        .update(Buffer.from(sealedVectorsV2.secretFactorDomain, 'utf8'))
        .update(aad)
        .update(hex(v.versionSaltHex as string))
        .digest();
      expect(fv.toString('hex')).toBe((v.expected as { secretFactorHex?: string }).secretFactorHex);
      parts.push(fv);
    }
    parts.push(ev);
    const key = Buffer.from(hkdfSync('sha256', Buffer.concat(parts), Buffer.from('sovereign-router/secret-key/v2'), aad, 32));
    expect(key.toString('hex')).toBe(v.expected.secretKeyHex);
    const { ct, tag } = gcm(key, hex(v.ivHex), aad, Buffer.from(v.plaintextUtf8, 'utf8'));
    expect([ct, tag]).toEqual([v.expected.ciphertextHex, v.expected.tagHex]);
    expect(v.record).toMatchObject({ formatVersion: 2, algorithm: sealedVectorsV2.algorithm, ciphertext: hex(ct).toString('base64'), tag: hex(tag).toString('base64') });
  });

  it.each(sealedVectorsV2.vectors.map((v) => [v.name, v] as const))('%s: lambda/core reproduces and opens it, and nothing opens it without E', async (_name, v) => {
    const id = v.identity as SecretIdentity;
    const record = parseSealedSecret(v.record) as SealedSecret;
    const kms = vectorKms(v.dataKeyHex, record.wrappedKey, record.keyArn, v.expected.encryptionContext);
    const tenantFactor = v.tenantFactorHex ? hex(v.tenantFactorHex) : undefined;
    const versionSalt = v.versionSaltHex ? hex(v.versionSaltHex) : undefined;
    const resealed = await sealSecret({
      identity: id,
      plaintext: Buffer.from(v.plaintextUtf8, 'utf8'),
      dataKeys: kms,
      tenantFactor,
      versionSalt,
      erasureKey: hex(v.erasureKeyHex),
      fingerprintKey: fingerprintKeyOf(hex(sealedVectorsV2.pepperHex), { region: id.region, tenant: id.tenant, provider: id.provider }),
      iv: hex(v.ivHex),
      clock: { now: () => new Date(record.createdAt) },
    });
    expect(resealed).toEqual(record);
    const open = (erasureKey: Buffer | undefined, r: SealedSecret = record) =>
      openSecret({ record: r, expected: id, dataKeys: kms, erasureKey, tenantFactor: tenantFactor && Buffer.from(tenantFactor), versionSalt, use: (p) => p.toString('utf8') });
    expect(await open(hex(v.erasureKeyHex))).toBe(v.plaintextUtf8);
    await expect(open(undefined)).rejects.toMatchObject({ name: 'SealedSecretError', reason: 'erasure_key' });
    await expect(open(Buffer.alloc(32, 7))).rejects.toMatchObject({ name: 'SealedSecretError', reason: 'integrity' });
    // Relabelled as v1 (no erasure factor, v1 salt): a different key, so it does not open.
    await expect(open(undefined, { ...record, formatVersion: 1, algorithm: 'SR1-HKDF-SHA256-AES256GCM' })).rejects.toMatchObject({ reason: 'integrity' });
  });
});

describe('token v1 vectors', () => {
  const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  const b62 = (n: bigint, width: number): string => {
    let s = '';
    for (let i = 0; i < width; i++, n /= 62n) s = B62[Number(n % 62n)] + s;
    return s;
  };
  // Bitwise CRC-32 (reflected, poly 0xEDB88320), independent of the table-driven one in lambda/core.
  const crc = (buf: Buffer): number => {
    let c = ~0 >>> 0;
    for (const byte of buf) {
      c ^= byte;
      for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
    }
    return ~c >>> 0;
  };

  it.each(tokenVectors.vectors.map((v) => [v.token, v] as const))('%s', (_t, v) => {
    const head = `sr_${v.regionCode}_${v.tenantId}_${b62(BigInt('0x' + v.randomHex), 43)}`;
    expect(crc(Buffer.from(head))).toBe(v.crc32);
    expect(head + b62(BigInt(v.crc32), 6)).toBe(v.token);
    expect(generateToken(v.regionCode, v.tenantId, () => hex(v.randomHex))).toBe(v.token);
    expect(parseToken(v.token, v.region)).toEqual({ token: v.token, regionCode: v.regionCode, region: v.region, tenantId: v.tenantId });
  });
});
