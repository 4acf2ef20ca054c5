/**
 * Factor boxes (docs/sealed-secret-format.md §11.1): the tenant factor sealed to a token's public
 * key, openable only with that token, bound to region, tenant, token id and generation; key tags
 * that a writer without the factor cannot make.
 */
import { randomBytes } from 'node:crypto';
import { isFactorBox, openFactorBox, sealFactorBox, tokenKeyIsAuthentic, tokenKeyTag, tokenPublicKey, type FactorBox } from '../../../lambda/core/factor-box';
import { factorForGeneration } from '../../../lambda/core/factor-generations';
import { TenantFactorError, wrapTenantFactor } from '../../../lambda/core/tenant-factor';
import type { TokenRecord } from '../../../lambda/core/tenant-model';
import { generateToken } from '../../../lambda/core/token';

const REGION = 'eu-central-1';
const TENANT = 'acme';
const tok = () => generateToken('euc1', TENANT);
const bind = (token: string, tokenId = 'tk_1', tenant = TENANT, region = REGION) => ({ token, region, tenant, tokenId });

describe('factor box', () => {
  const F = randomBytes(32);
  const token = tok();
  const pub = tokenPublicKey(bind(token));

  it('is opened by the token it was sealed to, for its generation, and by nothing else', () => {
    expect(tokenPublicKey(bind(token))).toBe(pub); // derived, deterministic
    expect(Buffer.from(pub, 'base64')).toHaveLength(32);
    const box = sealFactorBox(F, 3, bind(token), pub);
    expect(isFactorBox(box)).toBe(true);
    expect(openFactorBox(box, bind(token)).equals(F)).toBe(true);
    // Another token, another token id, tenant or region: refused.
    for (const b of [bind(tok()), bind(token, 'tk_2'), bind(generateToken('euc1', 'other'), 'tk_1', 'other'), bind(token, 'tk_1', TENANT, 'eu-west-1')]) {
      expect(() => openFactorBox(box, b)).toThrow(TenantFactorError);
    }
  });

  it('binds every field: a changed generation, epk, iv, ciphertext or tag fails', () => {
    const box = sealFactorBox(F, 2, bind(token), pub);
    const flip = (s: string) => {
      const b = Buffer.from(s, 'base64');
      b[0] ^= 1;
      return b.toString('base64');
    };
    const variants: FactorBox[] = [
      { ...box, generation: 3 },
      { ...box, epk: flip(box.epk) },
      { ...box, publicKey: flip(box.publicKey) },
      { ...box, iv: flip(box.iv) },
      { ...box, ciphertext: flip(box.ciphertext) },
      { ...box, tag: flip(box.tag) },
      { ...box, ciphertext: 'not base64!' },
      { ...box, scheme: 'other' as never },
    ];
    for (const v of variants) expect(() => openFactorBox(v, bind(token))).toThrow(TenantFactorError);
    // Two seals of the same factor differ (ephemeral key, IV).
    expect(sealFactorBox(F, 2, bind(token), pub).ciphertext).not.toBe(box.ciphertext);
  });

  it('seals only 32-byte factors to 32-byte public keys at generations >= 1', () => {
    expect(() => sealFactorBox(randomBytes(16), 1, bind(token), pub)).toThrow();
    expect(() => sealFactorBox(F, 0, bind(token), pub)).toThrow();
    expect(() => sealFactorBox(F, 1, bind(token), Buffer.alloc(31).toString('base64'))).toThrow();
  });
});

describe('token key tag', () => {
  const F = randomBytes(32);
  const token = tok();
  const pub = tokenPublicKey(bind(token));
  const b = { region: REGION, tenant: TENANT, tokenId: 'tk_1' };

  it('verifies under the factor that made it, and fails for a planted key, another token id or another factor', () => {
    const tag = tokenKeyTag(F, b, pub);
    expect(tokenKeyIsAuthentic(F, b, { publicKey: pub, tag })).toBe(true);
    const planted = tokenPublicKey(bind(tok()));
    expect(tokenKeyIsAuthentic(F, b, { publicKey: planted, tag })).toBe(false);
    expect(tokenKeyIsAuthentic(F, { ...b, tokenId: 'tk_2' }, { publicKey: pub, tag })).toBe(false);
    expect(tokenKeyIsAuthentic(randomBytes(32), b, { publicKey: pub, tag })).toBe(false);
    expect(tokenKeyIsAuthentic(F, b, { publicKey: pub })).toBe(false);
    expect(tokenKeyIsAuthentic(F, b, undefined)).toBe(false);
  });
});

describe('factorForGeneration', () => {
  it('opens the wrap or the pending box of the asked generation, and returns undefined for any other', () => {
    const token = tok();
    const F1 = randomBytes(32);
    const F2 = randomBytes(32);
    const pub = tokenPublicKey(bind(token));
    const record: TokenRecord = {
      verifier: 'v',
      tokenId: 'tk_1',
      tenantId: TENANT,
      role: 'invoke',
      createdAt: '2026-01-01T00:00:00.000Z',
      wrappedFactor: wrapTenantFactor(F1, bind(token)),
      pendingFactor: { box: sealFactorBox(F2, 2, bind(token), pub), keyTag: 'x' },
    };
    expect(factorForGeneration(record, bind(token), 1)!.equals(F1)).toBe(true);
    expect(factorForGeneration(record, bind(token), 2)!.equals(F2)).toBe(true);
    expect(factorForGeneration(record, bind(token), 3)).toBeUndefined();
    expect(() => factorForGeneration(record, bind(tok()), 2)).toThrow(TenantFactorError);
  });
});
