import { openSecret, SealedSecretError, sealSecret } from '../../../lambda/core/envelope';
import type { SecretIdentity } from '../../../lambda/core/canonical';
import {
  generateTenantFactor,
  TenantFactorError,
  unwrapTenantFactor,
  wrapTenantFactor,
  type FactorBinding,
  type WrappedFactor,
} from '../../../lambda/core/tenant-factor';
import { generateToken } from '../../../lambda/core/token';
import { FakeDataKeys } from './fake-data-keys';

const region = 'eu-central-1';
const tenant = 'acme';
const tokenA = generateToken('euc1', tenant);
const tokenB = generateToken('euc1', tenant);
const bindA: FactorBinding = { token: tokenA, region, tenant, tokenId: 'tok-a' };

function unwrapError(w: WrappedFactor, b: FactorBinding): Error {
  try {
    unwrapTenantFactor(w, b);
  } catch (err) {
    expect(err).toBeInstanceOf(TenantFactorError);
    expect(err).toBeInstanceOf(SealedSecretError);
    const e = err as Error;
    expect(e.message).toBe('tenant factor could not be unwrapped');
    for (const t of [tokenA, tokenB]) expect(`${e.message}${e.stack}`).not.toContain(t.slice(-49, -30));
    return e;
  }
  throw new Error('expected unwrap to fail');
}

describe('tenant factor', () => {
  it('is 32 fresh random bytes', () => {
    const f = generateTenantFactor();
    expect(f).toHaveLength(32);
    expect(generateTenantFactor()).not.toEqual(f);
    expect(() => generateTenantFactor(() => Buffer.alloc(16))).toThrow();
  });

  it('wraps and unwraps under one token', () => {
    const f = generateTenantFactor();
    const w = wrapTenantFactor(f, bindA);
    expect(Buffer.from(w.iv, 'base64')).toHaveLength(12);
    expect(Buffer.from(w.ciphertext, 'base64')).toHaveLength(32);
    expect(Buffer.from(w.tag, 'base64')).toHaveLength(16);
    expect(JSON.stringify(w)).not.toContain(f.toString('base64'));
    expect(unwrapTenantFactor(w, bindA)).toEqual(f);
  });

  it('can be wrapped under several tokens (rotation re-wraps F)', () => {
    const f = generateTenantFactor();
    const bindB = { ...bindA, token: tokenB, tokenId: 'tok-b' };
    const wA = wrapTenantFactor(f, bindA);
    const wB = wrapTenantFactor(unwrapTenantFactor(wA, bindA), bindB);
    expect(unwrapTenantFactor(wB, bindB)).toEqual(f);
    unwrapError(wB, bindA);
  });

  it('fails for the wrong token, tokenId, tenant or region', () => {
    const w = wrapTenantFactor(generateTenantFactor(), bindA);
    unwrapError(w, { ...bindA, token: tokenB });
    unwrapError(w, { ...bindA, tokenId: 'tok-b' });
    unwrapError(w, { ...bindA, tenant: 'acme2' });
    unwrapError(w, { ...bindA, region: 'eu-west-1' });
    unwrapError(w, { ...bindA, token: '' });
  });

  it('fails for tampered or malformed wrapped values', () => {
    const w = wrapTenantFactor(generateTenantFactor(), bindA);
    const flip = (s: string): string => {
      const b = Buffer.from(s, 'base64');
      b[0] ^= 1;
      return b.toString('base64');
    };
    unwrapError({ ...w, iv: flip(w.iv) }, bindA);
    unwrapError({ ...w, tag: flip(w.tag) }, bindA);
    unwrapError({ ...w, ciphertext: flip(w.ciphertext) }, bindA);
    unwrapError({ ...w, ciphertext: 'AAAA' }, bindA);
    unwrapError({ ...w, iv: 'not base64' }, bindA);
    unwrapError(null as unknown as WrappedFactor, bindA);
    unwrapError({} as WrappedFactor, bindA);
  });

  it('refuses to wrap under a token of another tenant or region, without echoing it', () => {
    const f = generateTenantFactor();
    const other = generateToken('euc1', 'globex');
    for (const b of [
      { ...bindA, token: other },
      { ...bindA, region: 'eu-west-1' },
      { ...bindA, token: 'short' },
    ]) {
      let msg = '';
      try {
        wrapTenantFactor(f, b);
      } catch (err) {
        msg = (err as Error).message;
      }
      expect(msg).toMatch(/^wrapTenantFactor: /);
      expect(msg).not.toContain(b.token);
    }
    expect(() => wrapTenantFactor(Buffer.alloc(31), bindA)).toThrow(/32 bytes/);
  });

  it('end to end: a sovereign secret opens only after unwrapping F with a live token', async () => {
    const kms = new FakeDataKeys();
    const id: SecretIdentity = { app: 'sovereign-router', region, tenant, provider: 'mistral', secret: 'default', version: 1 };
    const f = generateTenantFactor();
    const wrapped = wrapTenantFactor(f, bindA);
    const versionSalt = Buffer.alloc(32, 9);
    const record = await sealSecret({ identity: id, plaintext: Buffer.from('mistral-key'), dataKeys: kms, tenantFactor: f, versionSalt, fingerprintKey: Buffer.alloc(32, 3), erasureKey: Buffer.alloc(32, 4) });
    f.fill(0);

    const factor = unwrapTenantFactor(wrapped, bindA);
    try {
      expect(await openSecret({ record, expected: id, dataKeys: kms, erasureKey: Buffer.alloc(32, 4), tenantFactor: factor, versionSalt, use: (p) => p.toString() })).toBe('mistral-key');
    } finally {
      factor.fill(0);
    }
    // Storage + KMS alone (no token): the record stays closed.
    await expect(openSecret({ record, expected: id, dataKeys: kms, erasureKey: Buffer.alloc(32, 4), use: (p) => p.toString() })).rejects.toThrow(SealedSecretError);
  });
});
